"""Tests for demo.sample_data: determinism, manifest counts, native formats, planted rows."""
from __future__ import annotations

import csv
import gzip
import io
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

pq = pytest.importorskip("pyarrow.parquet")
zstandard = pytest.importorskip("zstandard")

from demo.sample_data import main, write_sample, write_synthetic_corpus  # noqa: E402

T_LO, T_HI = 1672531200, 1735689600  # 2023-01-01 .. 2025-01-01


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("sample")
    return out, write_sample(out, seed=0, users_per_platform=30)


def _ndjson_zst(path: Path) -> list[dict]:
    with open(path, "rb") as fh:
        reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(fh)
        return [json.loads(line) for line in io.TextIOWrapper(reader, encoding="utf-8")]


def _records(path: Path) -> list:
    """Parse one file with stdlib / pyarrow the way a reader would; return its records."""
    name = path.name
    if name.endswith(".zst"):
        return _ndjson_zst(path)
    if name.endswith(".jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return [json.loads(line) for line in fh]
    if name == "pages_v2.jsonl":
        return [tweet for line in path.read_text("utf-8").splitlines() for tweet in json.loads(line)["data"]]
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    if name.endswith(".csv"):
        return list(csv.reader(io.StringIO(path.read_bytes().decode("latin-1"))))
    if name.endswith(".parquet"):
        return pq.read_table(path).to_pylist()
    if name.endswith(".xml"):
        text = path.read_bytes().decode("latin-1")
        return re.findall(r"<date>(.*?)</date>\r\n<post>\r\n(.*?)\r\n</post>", text, re.S)
    raise AssertionError(f"unexpected file {path}")


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_runs_are_byte_identical(sample, tmp_path):
    out, manifest = sample
    again = write_sample(tmp_path, seed=0, users_per_platform=30)
    assert again == manifest
    assert _files(tmp_path) == _files(out)
    other = write_sample(tmp_path / "seed1", seed=1, users_per_platform=30)
    assert (tmp_path / "seed1/reddit/RS_2024-01.zst").read_bytes() != (out / "reddit/RS_2024-01.zst").read_bytes()
    assert other.keys() != manifest.keys()  # blogger ids differ by seed


def test_counts_match_manifest_and_size(sample):
    out, manifest = sample
    files = _files(out)
    assert sorted(files) == sorted(manifest)
    for rel, n in manifest.items():
        assert len(_records(out / rel)) == n, rel
    assert sum(len(b) for b in files.values()) < 2 * 1024 * 1024
    assert {rel.split("/")[0] for rel in manifest} == {"reddit", "twitter", "blogger", "amazon"}


def test_reddit_native_fields_and_funnel(sample):
    out, _ = sample
    subs, coms = _ndjson_zst(out / "reddit/RS_2024-01.zst"), _ndjson_zst(out / "reddit/RC_2024-01.zst")
    assert list(subs[0]) == ["id", "author", "title", "selftext", "created_utc", "subreddit", "score",
                             "num_comments", "is_self", "distinguished", "permalink", "url"]
    assert {type(r["created_utc"]) for r in subs + coms} == {int, float, str}
    assert all(T_LO <= int(float(r["created_utc"])) < T_HI for r in subs + coms)
    assert all(re.fullmatch(r"[0-9a-z]+", r["id"]) for r in subs + coms)
    sub_ids, com_ids = {s["id"] for s in subs}, {c["id"] for c in coms}
    assert all(c["link_id"][3:] in sub_ids for c in coms)
    assert all(c["parent_id"] == c["link_id"] or c["parent_id"][3:] in com_ids for c in coms)
    long_subs = [s for s in subs if len(s["title"] + s["selftext"]) >= 300]
    good_coms = [c for c in coms if len(c["body"]) >= 200 and c["parent_id"] == c["link_id"]]
    assert len(long_subs) > 0.8 * len(subs) and len(good_coms) > 0.8 * len(coms)
    submitters = {s["author"] for s in long_subs}
    assert all(c["author"] in submitters for c in good_coms if c["author"] != "AutoModerator")
    # planted rejections
    assert any(s["author"] == "[deleted]" for s in subs) and any(c["author"] == "[deleted]" for c in coms)
    assert any(c["author"] == "AutoModerator" for c in coms)
    assert any(s["selftext"] == "[removed]" for s in subs) and any(c["body"] == "[removed]" for c in coms)
    assert any(not s["is_self"] for s in subs) and any(s["distinguished"] == "moderator" for s in subs)
    assert any(s["score"] < 2 and s["num_comments"] < 2 for s in subs)
    assert any(s["selftext"].endswith("?") and len(s["selftext"].split()) < 10 for s in subs)  # bare question
    assert any(c["parent_id"].startswith("t1_") for c in coms) and any(len(c["body"]) < 20 for c in coms)
    text = " ".join(s["selftext"] for s in subs)
    for needle in ("@example.com", "555-01", "https://", "&amp;", "\U0001F60A", "Esta semana"):
        assert needle in text, needle
    # each regular user has a long history
    posts = Counter(r["author"] for r in long_subs + good_coms)
    assert sum(n >= 8 for n in posts.values()) >= 25


def test_twitter_formats(sample):
    out, _ = sample
    v1 = _records(out / "twitter/tweets_v1.jsonl")
    for t in v1:
        created = datetime.strptime(t["created_at"], "%a %b %d %H:%M:%S %z %Y")
        assert T_LO <= created.timestamp() < T_HI and t["id_str"] == str(t["id"])
        assert {"id_str", "screen_name", "name", "description", "followers_count", "location"} <= set(t["user"])
    assert any("retweeted_status" in t and t["full_text"].startswith("RT @") for t in v1)
    assert any("text" in t for t in v1) and any("text" not in t for t in v1)
    assert any(t["user"]["description"].startswith("Official store of ACME Inc.") for t in v1)
    assert any("Buy now" in t["full_text"] and "discount" in t["full_text"] for t in v1)

    for line in (out / "twitter/pages_v2.jsonl").read_text("utf-8").splitlines():
        page = json.loads(line)
        users = {u["id"] for u in page["includes"]["users"]}
        assert page["meta"]["result_count"] == len(page["data"])
        for t in page["data"]:
            assert t["author_id"] in users
            datetime.strptime(t["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    s140 = _records(out / "twitter/sentiment140.csv")
    assert all(len(r) == 6 and r[0] in ("0", "4") and r[3] == "NO_QUERY" for r in s140)
    assert not s140[0][0].isalpha()  # no header row
    for r in s140:
        datetime.strptime(r[2], "%a %b %d %H:%M:%S UTC %Y")
    (out / "twitter/sentiment140.csv").read_bytes().decode("ascii")

    tweets = pq.read_table(out / "twitter/twitter100m/tweets.parquet")
    users = pq.read_table(out / "twitter/twitter100m/users.parquet")
    assert tweets.column_names == ["id", "user", "user_id", "tweet", "date", "likes", "retweets", "replies",
                                   "quotes"]
    assert str(tweets.schema.field("id").type) == "int64" and str(users.schema.field("user_id").type) == "int64"
    assert set(tweets.column("user_id").to_pylist()) <= set(users.column("user_id").to_pylist())
    assert set(users.column_names) == {"user_id", "user", "name", "description", "followers", "location",
                                       "verified"}

    texts = [t["full_text"] for t in v1] + [r[5] for r in s140] + tweets.column("tweet").to_pylist()
    assert sum(len(t) >= 300 for t in texts) > 0.7 * len(texts)
    assert any(len(t) < 50 for t in texts)


def test_blogger_corpus_quirks(sample):
    out, manifest = sample
    blogs = [out / rel for rel in manifest if rel.startswith("blogger/")]
    assert all(re.fullmatch(r"\d+\.(male|female)\.\d+\.[\w-]+\.\w+\.xml", p.name) for p in blogs)
    latin1, bad_dates, malformed = 0, 0, 0
    for path in blogs:
        raw = path.read_bytes()
        assert raw.startswith(b"<Blog>\r\n\r\n<date>") and raw.endswith(b"</Blog>\r\n")
        assert b"\n" not in raw.replace(b"\r\n", b"")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            latin1 += 1
            assert "café" in raw.decode("latin-1")
        try:
            ET.fromstring(raw)
        except ET.ParseError:
            malformed += 1
        posts = _records(path)
        stamps = []
        for date, _ in posts:
            try:
                stamps.append(datetime.strptime(date, "%d,%B,%Y"))
            except ValueError:
                bad_dates += 1
        if len(stamps) > 3:
            assert stamps != sorted(stamps)
    assert latin1 == 1 and bad_dates >= 1 and malformed >= 1
    text = " ".join(t for p in blogs for _, t in _records(p))
    assert "urlLink" in text and " & " in text
    long_posts = sum(len(t.strip()) > 300 for p in blogs for _, t in _records(p))
    assert long_posts > 0.9 * sum(manifest[rel] for rel in manifest if rel.startswith("blogger/"))


def _k_core(pairs: list[tuple[str, str]], k_user: int = 8, k_item: int = 3) -> list[tuple[str, str]]:
    while True:
        users, items = Counter(u for u, _ in pairs), Counter(i for _, i in pairs)
        kept = [(u, i) for u, i in pairs if users[u] >= k_user and items[i] >= k_item]
        if len(kept) == len(pairs):
            return kept
        pairs = kept


def test_amazon_k_core_and_metadata(sample):
    out, _ = sample
    rev = _records(out / "amazon/reviews_2023.jsonl.gz")
    meta = _records(out / "amazon/meta_2023.jsonl")
    assert all(T_LO * 1000 <= r["timestamp"] < T_HI * 1000 and isinstance(r["rating"], float) for r in rev)
    good = [(r["user_id"], r["parent_asin"]) for r in rev if len(r["text"].split()) > 5]
    users = {r["user_id"] for r in rev}
    core_users = {u for u, _ in _k_core(good)}
    assert len(core_users) >= 0.8 * (len(users) - 3) and len(core_users) < len(users)
    assert {r["parent_asin"] for r in rev} <= {m["parent_asin"] for m in meta}
    assert sum(m["title"] == "" for m in meta) == 2
    assert any(len(r["text"].split()) <= 5 for r in rev)

    old = _records(out / "amazon/reviews_2018.jsonl")
    for r in old:
        d = datetime.fromtimestamp(r["unixReviewTime"], timezone.utc)
        assert r["reviewTime"] == f"{d.month:02d} {d.day}, {d.year}"
    assert len({u for u, _ in _k_core([(r["reviewerID"], r["asin"]) for r in old])}) >= 8
    assert {r["asin"] for r in old} <= {m["asin"] for m in _records(out / "amazon/meta_2018.jsonl")}


def test_synthetic_corpus(tmp_path):
    manifest = write_synthetic_corpus(tmp_path / "a", 4000, seed=0, files=4)
    assert sum(manifest.values()) == 4000
    assert sum(rel.startswith("reddit/RS_") for rel in manifest) == 2
    assert sum(rel.startswith("reddit/RC_") for rel in manifest) == 2
    for rel, n in manifest.items():
        assert len(_records(tmp_path / "a" / rel)) == n, rel
    assert write_synthetic_corpus(tmp_path / "b", 4000, seed=0, files=4) == manifest
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    bodies = [r["body"] for rel in manifest if "RC_" in rel for r in _ndjson_zst(tmp_path / "a" / rel)]
    dup_share = 1 - len(set(bodies)) / len(bodies)
    assert 0.02 < dup_share < 0.3


def test_cli(tmp_path):
    main([str(tmp_path), "--seed", "3", "--users", "6"])
    assert (tmp_path / "reddit/RS_2024-01.zst").exists() and (tmp_path / "amazon/meta_2023.jsonl").exists()
