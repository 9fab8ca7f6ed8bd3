"""Every reader on hand-written rows: fields, ids, timestamps, rejects with reasons."""
from __future__ import annotations

import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from core import schema as S
from processing.readers import UnknownFormat, detect_format, read_file
from processing.readers.base import (
    Event,
    Item,
    Profile,
    ReadContext,
    Reject,
    iter_lines,
)
from processing.readers.blogger import iter_posts, parse_file_name


def read(path, fmt: str) -> list[dict]:
    return list(read_file(str(path), fmt, ReadContext(str(path), "salt")))


def events(recs):
    return [r for r in recs if isinstance(r, Event)]


def rejects(recs):
    return [r for r in recs if isinstance(r, Reject)]


def ndjson(rows) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


SUB = {"id": "abc", "author": "Alice", "title": "My week", "selftext": "long story", "created_utc": 1704067200,
       "subreddit": "AskWomen", "score": 5, "num_comments": 3, "is_self": True, "distinguished": None}
COM = {"id": "c1", "author": "Bob", "body": "I agree", "created_utc": "1704067300", "link_id": "t3_abc",
       "parent_id": "t3_abc", "subreddit": "AskWomen", "score": 2}


def test_reddit_submissions_and_comments_zstd(tmp_path):
    p = tmp_path / "RS_2024-01.zst"
    rows = [SUB, {**SUB, "id": "d", "created_utc": 1704067201.0, "selftext": "[removed]"},
            COM, {**COM, "id": "c2", "parent_id": "t1_c1", "author": "[deleted]", "body": "[deleted]"}]
    p.write_bytes(zstandard.ZstdCompressor().compress(ndjson(rows)))
    recs = read(p, "reddit_pushshift")
    ev = events(recs)
    assert [e[S.KIND] for e in ev] == [S.SUBMISSION, S.SUBMISSION, S.COMMENT, S.COMMENT]
    assert ev[0][S.EVENT_ID] == "reddit:t3_abc" and ev[0][S.TITLE] == "My week"
    assert ev[0][S.TS] == 1704067200 * 1_000_000 and ev[1][S.TS] == 1704067201 * 1_000_000
    assert ev[1][S.TEXT] == "" and ev[1][S.REMOVED] is True  # "[removed]" blanked and flagged
    assert ev[2][S.TS] == 1704067300 * 1_000_000  # string created_utc
    assert ev[2][S.PARENT_ID] == "t3_abc" and ev[2][S.IS_TOP_LEVEL] is True  # linked to its submission
    assert ev[3][S.IS_TOP_LEVEL] is False and ev[3][S.AUTHOR] == "[deleted]" and ev[3][S.REMOVED]
    assert ev[0][S.USER_ID] != "alice" and len(ev[0][S.USER_ID]) == 20  # keyed hash, never the name
    assert ev[0][S.AUTHOR] == "alice"  # transient rule input only
    assert [e[S.SOURCE_ROW] for e in ev] == [0, 1, 2, 3]


def test_reddit_bad_rows_become_rejects(tmp_path):
    p = tmp_path / "RC_bad.jsonl"
    p.write_bytes(ndjson([COM, b'{"id": "x", "body": "trunc', b"\xff\xfe not utf8", {"id": "y"},
                          {**COM, "created_utc": "yesterday"}, {**COM, "created_utc": None}, b"[1, 2]", b"   "]))
    recs = read(p, "reddit_pushshift")
    assert len(events(recs)) == 1
    assert [r[S.REASON] for r in rejects(recs)] == [
        "bad_json", "invalid_utf8", "missing_field", "bad_field", "missing_field", "bad_json"]
    assert [r[S.SOURCE_ROW] for r in rejects(recs)] == [1, 2, 3, 4, 5, 6]  # the blank line is no record


def test_lines_orjson_refuses_are_read_as_json_reads_them(tmp_path):
    """NaN, integers over 64 bits and lone surrogate escapes: json.loads accepts them, orjson does not
    (a NaN or a number past int64 is then a bad field, not a crash)."""
    p = tmp_path / "RC_json.jsonl"
    p.write_bytes(ndjson([{**COM, "id": "n"}, b'{"id": "a", "author": "bob", "created_utc": 1500000000, "body": "x",'
                          b' "score": NaN}', b'{"id": "b", "author": "bob", "created_utc": 1500000000, "body": "x",'
                          b' "score": 123456789012345678901234567890}', b'{"id": "c", "author": "bob",'
                          b' "created_utc": 1500000000, "body": "half \\ud83d pair"}']))
    recs = read(p, "reddit_pushshift")
    ev = events(recs)
    assert [e[S.NATIVE_ID] for e in ev] == ["t1_n", "t1_c"] and ev[1][S.TEXT] == "half \ud83d pair"
    assert [(r[S.REASON], r[S.SOURCE_ROW]) for r in rejects(recs)] == [("bad_field", 1), ("bad_field", 2)]


def test_iter_lines_bounds_memory_on_huge_lines():
    data = b"a\n" + b"x" * 5000 + b"\nb\n" + b"y" * 3000
    out = list(iter_lines(io.BytesIO(data), max_bytes=1000))
    assert out[0] == b"a" and out[2] == b"b"
    assert type(out[1]).__name__ == "TooLarge" and len(out[1]) <= 1024
    assert type(out[3]).__name__ == "TooLarge"


def test_twitter_v1_and_retweets(tmp_path):
    p = tmp_path / "t.jsonl"
    user = {"id_str": "9", "screen_name": "Carol", "description": "I love hiking", "followers_count": 10}
    p.write_bytes(ndjson([
        {"id_str": "1", "full_text": "hello world", "created_at": "Wed Oct 10 20:19:24 +0000 2018", "user": user},
        {"id_str": "2", "text": "RT @dave: hi", "created_at": "Wed Oct 10 20:19:25 +0000 2018", "user": user},
        {"id_str": "3", "text": "no user", "created_at": "Wed Oct 10 20:19:25 +0000 2018"},
    ]))
    recs = read(p, "twitter_v1")
    ev = events(recs)
    assert [e[S.EVENT_ID] for e in ev] == ["twitter:1", "twitter:2"]
    assert ev[0][S.TEXT] == "hello world" and ev[0][S.IS_RETWEET] is False and ev[1][S.IS_RETWEET] is True
    assert ev[0][S.TS] == 1539202764 * 1_000_000
    profiles = [r for r in recs if isinstance(r, Profile)]
    assert len(profiles) == 1 and json.loads(profiles[0][S.META])["bio"] == "I love hiking"
    assert rejects(recs)[0][S.REASON] == "missing_field"


def test_twitter_v2_pages(tmp_path):
    p = tmp_path / "pages.jsonl"
    page = {"data": [{"id": "11", "text": "first", "author_id": "5", "created_at": "2021-03-01T12:00:00.000Z"},
                     {"id": "12", "text": "second", "author_id": "5", "created_at": "2021-03-01T13:00:00.000Z"}],
            "includes": {"users": [{"id": "5", "username": "Erin", "description": "bio"}]}}
    p.write_bytes(ndjson([page, {"data": "oops"}]))
    recs = read(p, "twitter_v2")
    ev = events(recs)
    assert [e[S.EVENT_ID] for e in ev] == ["twitter:11", "twitter:12"]
    assert ev[0][S.USER_ID] == ev[1][S.USER_ID]
    assert [e[S.SOURCE_ROW] for e in ev] == [0, 1] and rejects(recs)[0][S.SOURCE_ROW] == 2
    assert rejects(recs)[0][S.REASON] == "bad_field"


@pytest.mark.parametrize("header", [True, False])
def test_sentiment140_with_or_without_header(tmp_path, header):
    p = tmp_path / "s140.csv"
    lines = ['"4","3","Mon May 11 03:17:40 UTC 2009","kindle2","tpryan","I love my Kindle2."',
             '"0","4","Mon May 11 03:18:03 UTC 2009","kindle2","vcu451","caf\xe9 is closed"',
             '"4","5","not a date","q","u","text"', '"only","three","cols"']
    body = ("polarity,id,date,query,user,text\n" if header else "") + "\n".join(lines) + "\n"
    p.write_bytes(body.encode("latin-1"))
    recs = read(p, "sentiment140")
    ev = events(recs)
    assert [e[S.EVENT_ID] for e in ev] == ["twitter:3", "twitter:4"]
    assert ev[1][S.TEXT] == "café is closed"  # Latin-1 byte decoded
    assert [r[S.REASON] for r in rejects(recs)] == ["bad_field", "bad_csv"]
    assert [r[S.SOURCE_ROW] for r in rejects(recs)] == [2, 3]


def test_twitter100m_parquet(tmp_path):
    tweets = pa.table({"user": ["Gina", "Gina", None], "id": [1, 2, 3], "tweet": ["a", "b", "c"],
                       "replies": [0, 1, 2], "retweets": [0, 0, 0], "likes": [3, 4, 5], "quotes": [0, 0, 0],
                       "date": ["2022-10-15 20:57:12+00:00", "2022-10-16 08:00:00+00:00", "2022-10-16 08:00:00"]})
    users = pa.table({"user": ["Gina"], "description": ["Official store"], "followers": [5], "location": ["Paris"]})
    pq.write_table(tweets, tmp_path / "tweets.parquet")
    pq.write_table(users, tmp_path / "users.parquet")
    recs = read(tmp_path / "tweets.parquet", "twitter100m_tweets")
    assert [e[S.EVENT_ID] for e in events(recs)] == ["twitter:1", "twitter:2"]
    assert rejects(recs)[0][S.REASON] == "missing_field"
    prof = read(tmp_path / "users.parquet", "twitter100m_users")
    assert len(prof) == 1 and prof[0][S.USER_ID] == events(recs)[0][S.USER_ID]


BLOG = ("<Blog>\r\n\r\n<date>25,February,2003</date>\r\n<post>\r\n\t\tFish & chips < lunch. urlLink here\r\n</post>\r\n\r\n"
        "<date>03,January,2003</date>\r\n<post>\r\n second post &nbsp; \r\n</post>\r\n"
        "<date>31,Febtember,2003</date>\r\n<post>bad date</post>\r\n"
        "<date>04,March,2003</date>\r\n<post>unclosed post runs to the end\r\n</Blog>\r\n")


def test_blogger_tolerant_parse_and_latin1(tmp_path):
    p = tmp_path / "123.female.15.indUnk.Scorpio.xml"
    p.write_bytes(BLOG.replace("Fish", "Caf\xe9 fish").encode("latin-1"))
    recs = read(p, "blogger_xml")
    ev = events(recs)
    assert [e[S.TEXT] for e in ev] == ["Café fish & chips < lunch. urlLink here", "second post &nbsp;",
                                       "unclosed post runs to the end"]
    assert ev[0][S.TS] < ev[2][S.TS] and ev[1][S.TS] < ev[0][S.TS]
    assert [r[S.REASON] for r in rejects(recs)] == ["bad_date"]
    meta = json.loads([r for r in recs if isinstance(r, Profile)][0][S.META])
    assert meta == {"gender": "female", "age": 15, "industry": "indUnk", "sign": "Scorpio", "encoding": "cp1252"}


def test_blogger_helpers():
    assert parse_file_name("3102377.male.16.indUnk.Sagittarius.xml")["age"] == 16
    assert parse_file_name("notes.xml") is None
    assert list(iter_posts("<date>1,May,2004</date><post>a</post><post>b")) == [("1,May,2004", "a"), ("1,May,2004", "b")]


def test_amazon_2018_2023_gzip_and_meta(tmp_path):
    r18 = {"reviewerID": "A1", "asin": "B1", "overall": 5.0, "reviewText": "Great shoes, very comfy",
           "summary": "Five Stars", "unixReviewTime": 1441324800, "style": {"Size:": " 9"}}
    r23 = {"user_id": "U1", "parent_asin": "P1", "asin": "P1-red", "rating": 4.0, "text": "Nice", "title": "ok",
           "timestamp": 1588615855070}
    (tmp_path / "r18.jsonl").write_bytes(ndjson([r18, r18, {"reviewerID": "A2"}]))
    with gzip.open(tmp_path / "r23.jsonl.gz", "wb") as f:
        f.write(ndjson([r23, {**r23, "rating": "five"}]))
    (tmp_path / "meta.jsonl").write_bytes(ndjson([{"parent_asin": "P1", "title": " Red Shoe ", "price": 9.99,
                                                  "features": ["soft"]}, {"title": "no id"}]))
    a = read(tmp_path / "r18.jsonl", "amazon_2018")
    ev = events(a)
    assert len(ev) == 2 and ev[0][S.EVENT_ID] != ev[1][S.EVENT_ID]  # identical rows, distinct ids
    assert ev[0][S.PARENT_ID] == "B1" and ev[0][S.TITLE] == "Five Stars" and ev[0][S.TS] == 1441324800 * 10**6
    assert rejects(a)[0][S.REASON] == "missing_field"
    b = read(tmp_path / "r23.jsonl.gz", "amazon_2023")
    assert events(b)[0][S.TS] == 1588615855070 * 1000 and events(b)[0][S.PARENT_ID] == "P1"
    assert rejects(b)[0][S.REASON] == "bad_field"
    m = read(tmp_path / "meta.jsonl", "amazon_meta")
    items = [r for r in m if isinstance(r, Item)]
    assert items[0][S.TITLE] == "Red Shoe" and "price" not in json.loads(items[0][S.META])
    assert rejects(m)[0][S.REASON] == "missing_field"


def test_detect_format(tmp_path):
    (tmp_path / "x.jsonl").write_bytes(ndjson([{"reviewerID": "A", "asin": "B"}]))
    (tmp_path / "y.jsonl").write_bytes(ndjson([{"data": []}]))
    (tmp_path / "z.bin").write_bytes(b"\x00\x01")
    assert detect_format(str(tmp_path / "x.jsonl")) == "amazon_2018"
    assert detect_format(str(tmp_path / "y.jsonl")) == "twitter_v2"
    assert detect_format("RC_2005-12.zst") == "reddit_pushshift"
    with pytest.raises(UnknownFormat, match="z.bin"):
        detect_format(str(tmp_path / "z.bin"))
