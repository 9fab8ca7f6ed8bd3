"""Cross-row rules (minimum history, Reddit threads, corporate accounts, Amazon k-core) and users."""
from __future__ import annotations

import json

import pyarrow as pa

from core import schema as S
from processing.settings import CurateConfig
from processing.timelines import (
    build_users,
    decide_amazon,
    decide_reddit,
    decide_twitter,
    k_core,
    min_history,
)


def keys(rows: list[tuple]) -> pa.Table:
    """rows of (event_id, user_id, kind, ts, native_id, parent_id)."""
    cols = list(zip(*rows))
    return pa.table({S.EVENT_ID: cols[0], S.USER_ID: cols[1], S.KIND: cols[2],
                     S.TS: pa.array(cols[3], S.TS_TYPE), S.NATIVE_ID: cols[4], S.PARENT_ID: cols[5]})


def dropped(drops: list[pa.Table]) -> dict[str, str]:
    out = {}
    for d in drops:
        out.update(zip(d[S.EVENT_ID].to_pylist(), d[S.REASON].to_pylist()))
    return out


def test_min_history():
    t = keys([("a1", "a", "x", 1, None, None), ("a2", "a", "x", 2, None, None), ("b1", "b", "x", 1, None, None)])
    kept, drops = min_history(t, 2)
    assert kept[S.EVENT_ID].to_pylist() == ["a1", "a2"] and dropped(drops) == {"b1": "min_history"}


def test_reddit_paper_comment_policy():
    rows = [(f"s{i}", "sub", S.SUBMISSION, i, f"t3_{i}", None) for i in range(6)]
    rows += [("few1", "few", S.SUBMISSION, 1, "t3_f", None)]
    rows += [("c_ok", "sub", S.COMMENT, 9, "t1_a", "t3_0"),  # by a kept submitter under a kept submission
             ("c_orphan", "sub", S.COMMENT, 9, "t1_b", "t3_zz"),  # parent not in the data
             ("c_few", "sub", S.COMMENT, 9, "t1_c", "t3_f"),  # parent dropped (its author has 1 post)
             ("c_stranger", "other", S.COMMENT, 9, "t1_d", "t3_0")]
    kept, drops = decide_reddit(keys(rows), CurateConfig())
    assert sorted(kept[S.EVENT_ID].to_pylist()) == sorted([f"s{i}" for i in range(6)] + ["c_ok"])
    assert dropped(drops) == {"few1": "min_history", "c_orphan": "parent_not_kept", "c_few": "parent_not_kept",
                              "c_stranger": "comment_author_not_submitter"}
    standalone = CurateConfig.model_validate({"reddit": {"comments_need_kept_submission": False, "min_history": 2}})
    kept, drops = decide_reddit(keys(rows), standalone)
    assert dropped(drops) == {"few1": "min_history", "c_stranger": "min_history"}


def test_twitter_corporate_accounts():
    rows = [(f"a{i}", "acme", S.TWEET, i, None, None) for i in range(6)] + \
           [(f"p{i}", "pat", S.TWEET, i, None, None) for i in range(6)]
    profiles = pa.table({S.USER_ID: ["acme", "pat"], S.META: [json.dumps({"bio": "Official store of ACME Inc."}),
                                                              json.dumps({"bio": "Nurse, runner, mum of two"})]})
    kept, drops = decide_twitter(keys(rows), profiles, CurateConfig())
    assert set(kept[S.USER_ID].to_pylist()) == {"pat"}
    assert set(dropped(drops).values()) == {"corporate_account"} and len(dropped(drops)) == 6


def test_k_core_is_iterative():
    # u1-u3 review i1-i3 (a 3x3 core); u4 reviews i1 and i4 only: u4 falls (user_k=3), then i4 has 1 review.
    rows = [(f"{u}{i}", u, S.REVIEW, 0, None, i) for u in ("u1", "u2", "u3") for i in ("i1", "i2", "i3")]
    rows += [("u4i1", "u4", S.REVIEW, 0, None, "i1"), ("u4i4", "u4", S.REVIEW, 0, None, "i4")]
    kept, core = k_core(keys(rows), user_k=3, item_k=3)
    assert kept.num_rows == 9 and sorted(core[S.EVENT_ID].to_pylist()) == ["u4i1", "u4i4"]


def test_amazon_decisions_in_paper_order():
    cfg = CurateConfig.model_validate({"amazon": {"user_k": 2, "item_k": 2, "min_history": 2}})
    rows = [("a_hot", "a", S.REVIEW, 1, None, "hot"), ("a_hot2", "a", S.REVIEW, 2, None, "hot"),
            ("a_warm", "a", S.REVIEW, 3, None, "warm"), ("b_hot", "b", S.REVIEW, 1, None, "hot"),
            ("b_warm", "b", S.REVIEW, 2, None, "warm"), ("b_cold", "b", S.REVIEW, 3, None, "cold"),
            ("b_untitled", "b", S.REVIEW, 4, None, "untitled"), ("c_hot", "c", S.REVIEW, 1, None, "hot")]
    items = pa.table({S.ITEM_ID: ["hot", "warm", "cold", "other", "untitled"], S.TITLE: ["H", "W", "C", "O", ""]})
    kept, drops = decide_amazon(keys(rows), items, cfg)
    # hot (3 reviews) and warm (2) are the top half of {hot, warm, cold}; c has one review left.
    assert sorted(kept[S.EVENT_ID].to_pylist()) == ["a_hot", "a_warm", "b_hot", "b_warm"]
    assert dropped(drops) == {"b_untitled": "item_no_title", "a_hot2": "duplicate_user_item",
                              "b_cold": "item_low_frequency", "c_hot": "k_core"}


def test_build_users():
    ev = pa.table({S.USER_ID: ["u", "u", "v"], S.KIND: [S.SUBMISSION, S.COMMENT, S.COMMENT],
                   S.TS: pa.array([0, 86_400_000_000 * 2, 5], S.TS_TYPE)})
    profiles = pa.table({S.USER_ID: ["u"], S.META: ['{"age": 30}']})
    users = build_users(ev, profiles, "reddit")
    assert users.schema == S.USER_SCHEMA
    u = users.to_pylist()[0]
    assert u[S.N_EVENTS] == 2 and u[S.SPAN_DAYS] == 2.0 and json.loads(u[S.N_BY_KIND]) == {"comment": 1, "submission": 1}
    assert u[S.META] == '{"age": 30}' and users.to_pylist()[1][S.META] is None


def test_amazon_item_metadata_is_scrubbed_before_it_becomes_context(tmp_path):
    """A seller's phone number or email in an item's title or description never reaches events/."""
    from core.layout import RunLayout
    from processing.curate import ITEMS
    from processing.timelines import _parents

    layout = RunLayout(str(tmp_path))
    meta = {"description": ["Call our shop at +44 20 7946 0958 for spares", "Model KX-200, 1.7 l"],
            "details": {"contact": "orders@kettle-shop.example"}}
    items = pa.Table.from_pylist([{S.ITEM_ID: "B01", S.PLATFORM: S.AMAZON, S.TITLE: "Kettle KX-200 (mail seller@shop.example)",
                                   S.META: json.dumps(meta), S.SOURCE_URI: "meta.jsonl", S.SOURCE_ROW: 0}],
                                 schema=S.ITEM_SCHEMA)
    layout.root.write_parquet(f"{ITEMS}/{S.AMAZON}/x.parquet", items)
    kept = pa.table({S.PARENT_ID: ["B01"]})
    parent = _parents(layout.root, S.AMAZON, kept).to_pylist()[0]
    assert parent[S.TITLE] == "Kettle KX-200 (mail [EMAIL])"
    got = json.loads(parent[S.META])
    assert got["description"] == ["Call our shop at [PHONE] for spares", "Model KX-200, 1.7 l"]
    assert got["details"]["contact"] == "[EMAIL]"
