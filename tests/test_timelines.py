"""Cross-row rules (minimum history, Reddit threads, corporate accounts, Amazon k-core), run as the
decide steps run them (user buckets and join partitions on a local run root), and users."""
from __future__ import annotations

import json

import pyarrow as pa
import pytest

from core import schema as S
from core.layout import RunLayout
from core.shards import run_shards
from processing.curate import ITEMS, PROFILES, STAGE1
from processing.decide import (
    DECISION_SCHEMA,
    DECISIONS,
    decide_steps,
    min_history,
    PARENT_SCHEMA,
    PARENTS,
    top_count,
)
from processing.settings import CurateConfig
from processing.timelines import build_users


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


def decide(tmp_path, platform: str, rows: list[tuple], cfg: CurateConfig, *, buckets: int = 2, parts: int = 1,
           items: pa.Table | None = None, profiles: pa.Table | None = None) -> tuple[dict[str, str], dict[str, int]]:
    """The decide steps over `rows` as step 1 would leave them (each user's events in one of `buckets`
    buckets), `parts` join partitions, one process: (dropped event id -> reason, step name -> tasks)."""
    layout = RunLayout(str(tmp_path / f"run-{platform}-{buckets}-{parts}"))
    root = layout.root
    table = keys(rows)
    users = sorted(set(table[S.USER_ID].to_pylist()))
    events = pa.Table.from_pylist([{**r, S.PLATFORM: platform, S.TEXT: f"text of {r[S.EVENT_ID]}",
                                    S.TITLE: f"title of {r[S.EVENT_ID]}", S.SOURCE_URI: "log", S.SOURCE_ROW: n}
                                   for n, r in enumerate(table.to_pylist())],
                                  schema=S.EVENT_SCHEMA)
    for b in range(buckets):
        mine = [users.index(u) % buckets == b for u in events[S.USER_ID].to_pylist()]
        root.write_parquet(f"{STAGE1}/{platform}/b={b:04d}/part-0.parquet", events.filter(pa.array(mine)))
    if items is not None:
        root.write_parquet(f"{ITEMS}/{platform}/x.parquet", items)
    if profiles is not None:
        root.write_parquet(f"{PROFILES}/{platform}/x.parquet", profiles)
    steps = decide_steps([platform], cfg, layout, {"n_buckets": buckets}, parts,
                         lambda name, tasks, fn: run_shards(root, name, tasks, fn, use_ray=False))
    decisions = root.read_parquet(f"{DECISIONS}/{platform}", schema=DECISION_SCHEMA)
    out = dict(zip(decisions[S.EVENT_ID].to_pylist(), decisions[S.REASON].to_pylist()))
    assert len(out) == decisions.num_rows  # an event is dropped once, for one reason
    return out, {name: len(shards) for name, shards in steps.items()}


def profile_rows(metas: dict[str, dict]) -> pa.Table:
    return pa.Table.from_pylist([{S.USER_ID: u, S.PLATFORM: S.TWITTER, S.META: json.dumps(m), S.SOURCE_URI: "p",
                                  S.SOURCE_ROW: i} for i, (u, m) in enumerate(metas.items())], schema=S.PROFILE_SCHEMA)


def item_rows(titles: dict[str, str]) -> pa.Table:
    return pa.Table.from_pylist([{S.ITEM_ID: i, S.PLATFORM: S.AMAZON, S.TITLE: t, S.SOURCE_URI: "meta",
                                  S.SOURCE_ROW: n} for n, (i, t) in enumerate(titles.items())], schema=S.ITEM_SCHEMA)


def test_min_history():
    t = keys([("a1", "a", "x", 1, None, None), ("a2", "a", "x", 2, None, None), ("b1", "b", "x", 1, None, None)])
    kept, drops = min_history(t, 2)
    assert kept[S.EVENT_ID].to_pylist() == ["a1", "a2"] and dropped(drops) == {"b1": "min_history"}


@pytest.mark.parametrize("buckets, parts", [(1, 1), (2, 3)])
def test_reddit_paper_comment_policy(tmp_path, buckets, parts):
    rows = [(f"s{i}", "sub", S.SUBMISSION, i, f"t3_{i}", None) for i in range(6)]
    rows += [("few1", "few", S.SUBMISSION, 1, "t3_f", None)]
    rows += [("c_ok", "sub", S.COMMENT, 9, "t1_a", "t3_0"),  # by a kept submitter under a kept submission
             ("c_orphan", "sub", S.COMMENT, 9, "t1_b", "t3_zz"),  # parent not in the data
             ("c_few", "sub", S.COMMENT, 9, "t1_c", "t3_f"),  # parent dropped (its author has 1 post)
             ("c_stranger", "other", S.COMMENT, 9, "t1_d", "t3_0"),
             ("o1", "op", S.SUBMISSION, 1, "t3_o1", None), ("o2", "op", S.SUBMISSION, 2, "t3_o2", None),
             ("o3", "op", S.SUBMISSION, 3, "t3_o3", None), ("o4", "op", S.SUBMISSION, 4, "t3_o4", None),
             ("o5", "op", S.SUBMISSION, 5, "t3_o5", None), ("o6", "op", S.SUBMISSION, 6, "t3_o6", None),
             ("c_other", "op", S.COMMENT, 9, "t1_e", "t3_2")]  # under another user's (another bucket's) submission
    got, steps = decide(tmp_path, S.REDDIT, rows, CurateConfig(), buckets=buckets, parts=parts)
    assert got == {"few1": "min_history", "c_orphan": "parent_not_kept", "c_few": "parent_not_kept",
                   "c_stranger": "comment_author_not_submitter"}
    assert steps == {"curate-decide-users": buckets, "curate-decide-parents": parts}
    layout = RunLayout(str(tmp_path / f"run-{S.REDDIT}-{buckets}-{parts}"))
    parents = layout.root.read_parquet(f"{PARENTS}/{S.REDDIT}", schema=PARENT_SCHEMA)
    assert sorted(parents[S.NATIVE_ID].to_pylist()) == ["t3_0", "t3_2"]  # the kept comments' parents only
    assert parents.filter(pa.compute.equal(parents[S.NATIVE_ID], "t3_2"))[S.TITLE].to_pylist() == ["title of s2"]

    standalone = CurateConfig.model_validate({"reddit": {"comments_need_kept_submission": False, "min_history": 2}})
    got, steps = decide(tmp_path / "standalone", S.REDDIT, rows, standalone, buckets=buckets, parts=parts)
    assert got == {"few1": "min_history", "c_stranger": "min_history"}
    assert steps == {"curate-decide-users": buckets}


def test_twitter_corporate_accounts(tmp_path):
    rows = [(f"a{i}", "acme", S.TWEET, i, None, None) for i in range(6)] + \
           [(f"p{i}", "pat", S.TWEET, i, None, None) for i in range(6)] + [("q0", "quiet", S.TWEET, 0, None, None)]
    profiles = profile_rows({"acme": {"bio": "Official store of ACME Inc."}, "pat": {"bio": "Nurse, runner, mum of two"}})
    got, _ = decide(tmp_path, S.TWITTER, rows, CurateConfig(), profiles=profiles)
    assert got == {**{f"a{i}": "corporate_account" for i in range(6)}, "q0": "min_history"}


K_CORE_ROWS = [(f"{u}{i}", u, S.REVIEW, 0, None, i) for u in ("u1", "u2", "u3") for i in ("i1", "i2", "i3")] + \
    [("u4i1", "u4", S.REVIEW, 0, None, "i1"), ("u4i4", "u4", S.REVIEW, 0, None, "i4"),
     ("u5i4", "u5", S.REVIEW, 0, None, "i4"), ("u5i5", "u5", S.REVIEW, 0, None, "i5"),
     ("u5i6", "u5", S.REVIEW, 0, None, "i6")]


@pytest.mark.parametrize("buckets, parts", [(1, 1), (3, 4)])
def test_k_core_is_iterative_over_partitions(tmp_path, buckets, parts):
    # u1-u3 review i1-i3 (a 3x3 core). u4 reviews i1 and i4: u4 falls (user_k=3) in round 0, which leaves
    # i4 with one review (u5's) in round 1, then u5 has two and falls, then i5 and i6 have none left.
    cfg = CurateConfig.model_validate({"amazon": {"user_k": 3, "item_k": 2, "min_history": 3,
                                                  "require_item_title": False, "top_item_fraction": 1.0}})
    got, steps = decide(tmp_path, S.AMAZON, K_CORE_ROWS, cfg, buckets=buckets, parts=parts)
    assert got == {e: "k_core" for e in ("u4i1", "u4i4", "u5i4", "u5i5", "u5i6")}
    rounds = sorted(name for name in steps if name.startswith("curate-decide-kcore-r"))
    assert len(rounds) >= 3 and all(steps[name] == parts for name in rounds)
    layout = RunLayout(str(tmp_path / f"run-{S.AMAZON}-{buckets}-{parts}"))
    assert layout.root.read_parquet(f"{PARENTS}/{S.AMAZON}", schema=PARENT_SCHEMA).num_rows == 0  # no items/ files


def test_amazon_decisions_in_paper_order(tmp_path):
    cfg = CurateConfig.model_validate({"amazon": {"user_k": 2, "item_k": 2, "min_history": 3}})
    rows = [("a_hot", "a", S.REVIEW, 1, None, "hot"), ("a_hot2", "a", S.REVIEW, 2, None, "hot"),
            ("a_warm", "a", S.REVIEW, 3, None, "warm"), ("a_lux", "a", S.REVIEW, 4, None, "lux"),
            ("b_hot", "b", S.REVIEW, 1, None, "hot"), ("b_warm", "b", S.REVIEW, 2, None, "warm"),
            ("b_cold", "b", S.REVIEW, 3, None, "cold"), ("b_untitled", "b", S.REVIEW, 4, None, "untitled"),
            ("c_hot", "c", S.REVIEW, 1, None, "hot"), ("d_hot", "d", S.REVIEW, 1, None, "hot"),
            ("d_warm", "d", S.REVIEW, 2, None, "warm"), ("d_x", "d", S.REVIEW, 3, None, "x"),
            ("d_lux", "d", S.REVIEW, 4, None, "lux"), ("e_x", "e", S.REVIEW, 3, None, "x"),
            ("e_hot", "e", S.REVIEW, 3, None, "hot"), ("f_lux", "f", S.REVIEW, 3, None, "lux")]
    items = item_rows({"hot": "H", "warm": "W", "lux": "L", "cold": "C", "x": "X", "other": "O", "untitled": ""})
    got, _ = decide(tmp_path, S.AMAZON, rows, cfg, buckets=2, parts=3, items=items)
    # By count: hot 5, warm 3, lux 3, x 2, cold 1: the top half (3 of 5) are hot, warm and lux; then c, e
    # and f (one review left) are below the 2-core, and b (two) below the minimum history of 3.
    assert got == {"b_untitled": "item_no_title", "a_hot2": "duplicate_user_item", "b_cold": "item_low_frequency",
                   "d_x": "item_low_frequency", "e_x": "item_low_frequency", "c_hot": "k_core", "e_hot": "k_core",
                   "f_lux": "k_core", "b_hot": "min_history", "b_warm": "min_history"}
    layout = RunLayout(str(tmp_path / f"run-{S.AMAZON}-2-3"))
    parents = layout.root.read_parquet(f"{PARENTS}/{S.AMAZON}", schema=PARENT_SCHEMA)
    assert sorted(zip(parents[S.NATIVE_ID].to_pylist(), parents[S.TITLE].to_pylist())) == \
        [("hot", "H"), ("lux", "L"), ("warm", "W")]  # the kept reviews' items only


def test_top_fraction_keeps_ties():
    assert top_count({5: 1, 3: 1, 1: 2}, 0.5) == 3  # 4 items: the 2nd has 3 reviews
    assert top_count({5: 1, 3: 2, 1: 1}, 0.5) == 3  # an item as frequent as the 2nd is kept too
    assert top_count({2: 4}, 0.5) == 2 and top_count({2: 4}, 1.0) == 0 and top_count({}, 0.5) == 0


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
    from processing.decide import _item_context

    layout = RunLayout(str(tmp_path))
    meta = {"description": ["Call our shop at +44 20 7946 0958 for spares", "Model KX-200, 1.7 l"],
            "details": {"contact": "orders@kettle-shop.example"}}
    items = pa.Table.from_pylist([{S.ITEM_ID: "B01", S.PLATFORM: S.AMAZON, S.TITLE: "Kettle KX-200 (mail seller@shop.example)",
                                   S.META: json.dumps(meta), S.SOURCE_URI: "meta.jsonl", S.SOURCE_ROW: 0}],
                                 schema=S.ITEM_SCHEMA)
    layout.root.write_parquet(f"{ITEMS}/{S.AMAZON}/x.parquet", items)
    parent = _item_context(layout.root, pa.array(["B01"])).to_pylist()[0]
    assert parent[S.TITLE] == "Kettle KX-200 (mail [EMAIL])"
    got = json.loads(parent[S.META])
    assert got["description"] == ["Call our shop at [PHONE] for spares", "Model KX-200, 1.7 l"]
    assert got["details"]["contact"] == "[EMAIL]"
