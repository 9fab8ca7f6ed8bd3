"""Readers on every real file in ../shared/data, with counts checked against each SOURCE.md."""
from __future__ import annotations

import collections
import re

import pytest

from core import schema as S
from processing.readers import detect_format, read_file
from processing.readers.base import Event, Profile, ReadContext, Reject

pytestmark = pytest.mark.shared_data


def read_all(path):
    fmt = detect_format(str(path))
    return fmt, list(read_file(str(path), fmt, ReadContext(str(path), "salt")))


def count(recs, cls):
    return sum(isinstance(r, cls) for r in recs)


@pytest.mark.parametrize("name, n, kind", [("RC_2005-12.zst", 1075, S.COMMENT), ("RC_2006-01.zst", 3666, S.COMMENT),
                                           ("RS_2019-10.zst", 8271, S.SUBMISSION)])
def test_reddit_dumps(shared_data, name, n, kind):
    fmt, recs = read_all(shared_data / "reddit_pushshift" / name)
    assert fmt == "reddit_pushshift"
    ev = [r for r in recs if isinstance(r, Event)]
    assert len(ev) == n and count(recs, Reject) == 0 and {e[S.KIND] for e in ev} == {kind}
    assert len({e[S.EVENT_ID] for e in ev}) == n


def test_reddit_2005_authors_and_threads(shared_data):
    _, recs = read_all(shared_data / "reddit_pushshift" / "RC_2005-12.zst")
    authors = collections.Counter(r[S.AUTHOR] for r in recs)
    assert authors["[deleted]"] == 185  # SOURCE.md: 185 [deleted]
    assert len(authors) - 1 == 393  # 393 distinct non-deleted authors
    assert all(r[S.PARENT_ID].startswith("t3_") for r in recs)  # every comment knows its submission


def test_reddit_2019_submissions_removed(shared_data):
    _, recs = read_all(shared_data / "reddit_pushshift" / "RS_2019-10.zst")
    kept_bodies = sum(1 for r in recs if r[S.TEXT])
    assert sum(r[S.AUTHOR] == "[deleted]" for r in recs) == 4336
    assert 300 <= kept_bodies <= 330  # SOURCE.md: only 316 have real selftext
    assert all(r[S.TITLE] is not None for r in recs)


def manifest(shared_data) -> dict[str, int]:
    text = (shared_data / "blog_authorship" / "SOURCE.md").read_text()
    table = text.split("## Per-file manifest", 1)[1].split("##", 1)[0]  # (the later table lists bytes)
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^\| `([^`]+\.xml)` \| (\d+) \|", table, re.M)}


def test_blogger_every_file_matches_manifest(shared_data):
    expected = manifest(shared_data)
    files = sorted((shared_data / "blog_authorship").glob("*.xml"))
    assert len(files) == 48
    for f in files:
        fmt, recs = read_all(f)
        assert fmt == "blogger_xml"
        assert count(recs, Event) == expected[f.name], f.name
        assert count(recs, Reject) == 0 and count(recs, Profile) == 1


def test_blogger_latin1_file(shared_data):
    _, recs = read_all(shared_data / "blog_authorship" / "1790119.male.37.indUnk.Aquarius.xml")
    prof = [r for r in recs if isinstance(r, Profile)][0]
    assert '"encoding": "cp1252"' in prof[S.META] and '"age": 37' in prof[S.META]


def test_amazon_2018(shared_data):
    fmt, recs = read_all(shared_data / "amazon_reviews_2018" / "AMAZON_FASHION_5.json")
    ev = [r for r in recs if isinstance(r, Event)]
    assert fmt == "amazon_2018" and len(ev) == 3176 and count(recs, Reject) == 0
    assert len({e[S.USER_ID] for e in ev}) == 406 and len({e[S.PARENT_ID] for e in ev}) == 31
    assert sum(1 for e in ev if not e[S.TEXT]) == 16  # 16 reviews lack reviewText
    tuples = {(e[S.USER_ID], e[S.PARENT_ID], e[S.TS], e[S.TEXT]) for e in ev}
    assert len(tuples) == 3087  # near-duplicate style variants, as SOURCE.md says


def test_sentiment140_with_header(shared_data):
    fmt, recs = read_all(shared_data / "twitter_sentiment140" / "testdata.manual.2009.06.14.csv")
    ev = [r for r in recs if isinstance(r, Event)]
    assert fmt == "sentiment140" and len(ev) == 498 and count(recs, Reject) == 0
    # SOURCE.md says 491 users; the 498 rows hold 490 distinct names (491 with the header's "user")
    assert len({e[S.USER_ID] for e in ev}) == 490
