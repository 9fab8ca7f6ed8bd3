"""A corpus of bad input, generated here: no crash, every row kept or rejected with a reason, and
unreadable files reported by path."""
from __future__ import annotations

import gzip
import json
from collections import Counter

import pyarrow.compute as pc

from core import schema as S
from core.storage import RunRoot
from processing.curate_stage import run as run_curate
from ray_jobs.config import parse_config

LONG = "My neighbour and I finally fixed the fence after the storm knocked it down last week, " * 5


def write_bad_corpus(d) -> None:
    good_sub = {"id": "s1", "author": "ann", "title": "Fence", "selftext": LONG, "created_utc": 1704067200,
                "score": 5, "num_comments": 5, "is_self": True}
    lines = [json.dumps(good_sub).encode(),
             b'{"id": "s2", "author": "ann", "title": "Trunc',  # truncated JSON
             b'{"id": "s3", "author": "ann", "title": "caf\xe9", "created_utc": 1}',  # invalid UTF-8
             json.dumps({**good_sub, "id": "s4", "score": "lots"}).encode(),  # wrong type
             json.dumps({**good_sub, "id": "s5", "created_utc": None}).encode(),  # missing field
             json.dumps({**good_sub, "id": "s6", "title": " ", "selftext": "   "}).encode(),  # whitespace text
             json.dumps({**good_sub, "id": "s7", "title": "", "selftext": ""}).encode(),  # empty text
             json.dumps({**good_sub, "id": "s8", "selftext": "x" * (10 * 1024 * 1024)}).encode(),  # a 10 MB line
             json.dumps({**good_sub, "id": "s9", "author": 12345}).encode(),  # numeric author: accepted as a name
             json.dumps({**good_sub, "id": "s10", "title": ["not", "a", "string"]}).encode(),
             b"[]", b"null"]
    (d / "RS_bad.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (d / "1.female.20.Student.Leo.xml").write_bytes(
        b"<Blog><date>1,May,2004</date><post>" + LONG.encode() + b" & <b>broken</post>"
        b"<date>2,Mai,2004</date><post>bad month</post><date>3,May,2004</date><post>\xff\xfe\xfd" + LONG.encode())
    with gzip.open(d / "reviews.jsonl.gz", "wb") as f:
        f.write(b"\n".join(json.dumps({"user_id": f"u{i}", "parent_asin": "P", "rating": 5, "text": LONG,
                                       "timestamp": 1588615855070 + i}).encode() for i in range(50)))
    data = (d / "reviews.jsonl.gz").read_bytes()
    (d / "reviews.jsonl.gz").write_bytes(data[: len(data) // 2])  # truncated: a corrupt gzip stream
    (d / "mystery.dat").write_bytes(b"\x00\x01\x02 who knows")
    (d / "empty.jsonl").write_bytes(b"")


def test_bad_input_is_accounted_for(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_bad_corpus(raw)
    cfg = parse_config({
        "run_root": str(tmp_path / "run"), "salt": "t",
        "curate": {"inputs": [{"path": str(raw / "RS_bad.jsonl"), "format": "reddit_pushshift"},
                              {"path": str(raw / "*.xml"), "format": "blogger_xml"},
                              {"path": str(raw / "reviews.jsonl.gz"), "format": "amazon_2023"},
                              {"path": str(raw / "empty.jsonl"), "format": "twitter_v1"},
                              {"path": str(raw / "mystery.dat")}],
                   "max_record_bytes": 1024 * 1024, "num_user_buckets": 2,
                   "reddit": {"min_history": 1}, "amazon": {"require_item_title": False, "top_item_fraction": 1.0,
                                                             "user_k": 1, "item_k": 1, "min_history": 1}},
    })
    stats = run_curate(cfg, use_ray=False)
    root = RunRoot(cfg.run_root)
    events = root.read_parquet("events", schema=S.EVENT_SCHEMA)
    rejects = root.read_parquet("rejects", schema=S.REJECT_SCHEMA)

    assert stats["accounting_errors"] == []
    kept = Counter(events[S.SOURCE_URI].to_pylist())
    row_rejects = rejects.filter(pc.greater_equal(rejects[S.SOURCE_ROW], 0))
    rejected = Counter(row_rejects[S.SOURCE_URI].to_pylist())
    for uri, f in stats["files"].items():
        assert f["read"] == kept[uri] + rejected[uri], uri
    # Every input row is there once: no duplicates between kept and rejected.
    pairs = list(zip(events[S.SOURCE_URI].to_pylist(), events[S.SOURCE_ROW].to_pylist())) + \
        list(zip(row_rejects[S.SOURCE_URI].to_pylist(), row_rejects[S.SOURCE_ROW].to_pylist()))
    assert len(pairs) == len(set(pairs))

    reddit = {r: n for r, n in Counter(
        row_rejects.filter(pc.equal(row_rejects[S.SOURCE_URI], str(raw / "RS_bad.jsonl")))[S.REASON].to_pylist()).items()}
    assert reddit == {"bad_json": 3, "invalid_utf8": 1, "bad_field": 2, "missing_field": 1, "empty_text": 2,
                      "record_too_large": 1, "exact_duplicate": 1}  # s9 repeats s1's text
    assert stats["files"][str(raw / "RS_bad.jsonl")]["read"] == 12
    assert events.filter(pc.equal(events[S.PLATFORM], "reddit"))[S.EVENT_ID].to_pylist() == ["reddit:t3_s1"]

    blog = row_rejects.filter(pc.equal(row_rejects[S.PLATFORM], "blogger"))[S.REASON].to_pylist()
    assert blog == ["bad_date", "near_duplicate"] and stats["files"][str(raw / "1.female.20.Student.Leo.xml")]["read"] == 3

    errors = {e["uri"]: e["reason"] for e in stats["file_errors"]}
    assert errors == {str(raw / "reviews.jsonl.gz"): "unreadable_file", str(raw / "mystery.dat"): "unknown_format"}
    file_rows = rejects.filter(pc.equal(rejects[S.SOURCE_ROW], -1))
    assert sorted(file_rows[S.SOURCE_URI].to_pylist()) == sorted(errors)
    assert stats["files"][str(raw / "empty.jsonl")]["read"] == 0
