"""The curate stage, step 2 (`decide`): which events the cross-row rules drop, in tasks of bounded memory.

Rules about one user run in one task per user bucket of step 1: minimum history, Twitter corporate
accounts, Reddit comments by users without a kept submission, Amazon (user, item) duplicates. Rules
that join across users run over hash partitions of their key, the rows exchanged through files
(`processing.exchange`): a Reddit comment needs its parent submission kept (partitioned by submission
id); Amazon's item title, top-fraction-by-frequency and iterative k-core rules run partitioned by item,
each k-core round summing the users' counts in partitions by user, until a round drops nothing, then
the minimum history. Each task writes the event ids it drops, with the reason, under
`WORK/decisions/<platform>/`, and the context the timeline step attaches (parent submissions, item
metadata) under `WORK/parents/<platform>/`. No task reads a whole platform.
"""
from __future__ import annotations

import functools
import json
import logging
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core import schema as S
from core.layout import RunLayout
from processing import exchange
from processing.curate import ITEMS, PROFILES, STAGE1, WORK
from processing.dedup_stage import load_clusters
from processing.rules import is_corporate_bio
from processing.settings import CurateConfig

log = logging.getLogger(__name__)
DECISIONS = f"{WORK}/decisions"
PARENTS = f"{WORK}/parents"
EXCHANGE = f"{WORK}/exchange"
KEY_COLUMNS = [S.EVENT_ID, S.USER_ID, S.KIND, S.TS, S.NATIVE_ID, S.PARENT_ID]
DECISION_SCHEMA = pa.schema([pa.field(S.EVENT_ID, pa.string()), pa.field(S.REASON, pa.string())])
PARENT_SCHEMA = pa.schema([pa.field(S.NATIVE_ID, pa.string()), pa.field(S.TITLE, pa.string()),
                           pa.field(S.TEXT, pa.string()), pa.field(S.META, pa.string())])
PARENT_TEXT_CHARS = 2000
# Exchanged rows: a Reddit comment's link to its parent; an Amazon review as an edge (user, item);
# a user's review count in one item partition; a user the k-core or minimum history drops.
LINKS = pa.schema([pa.field(S.EVENT_ID, pa.string()), pa.field(S.PARENT_ID, pa.string())])
EDGES = pa.schema([pa.field(S.EVENT_ID, pa.string()), pa.field(S.USER_ID, pa.string()),
                   pa.field(S.PARENT_ID, pa.string())])
PART = "part"
USER_COUNTS = pa.schema([pa.field(S.USER_ID, pa.string()), pa.field(PART, pa.int64()), pa.field("n", pa.int64())])
DROPPED_USERS = pa.schema([pa.field(S.USER_ID, pa.string()), pa.field(S.REASON, pa.string())])
K_CORE, MIN_HISTORY = "k_core", "min_history"


# --- the rules, over in-memory tables -------------------------------------------------------------

def _drop(reason: str, ids: pa.Array | pa.ChunkedArray) -> pa.Table:
    return pa.table({S.EVENT_ID: pc.cast(ids, pa.string()), S.REASON: pa.array([reason] * len(ids), pa.string())})


def _count_by(table: pa.Table, key: str) -> pa.Table:
    return table.group_by(key).aggregate([([], "count_all")])


def _split(table: pa.Table, mask) -> tuple[pa.Table, pa.Table]:
    mask = pc.fill_null(mask, False)
    return table.filter(pc.invert(mask)), table.filter(mask)


def min_history(keys: pa.Table, minimum: int) -> tuple[pa.Table, list[pa.Table]]:
    """Drop every event of users with fewer than `minimum` events (every event of a user is in `keys`)."""
    counts = _count_by(keys, S.USER_ID)
    below = counts.filter(pc.less(counts["count_all"], minimum))[S.USER_ID]
    keep, drop = _split(keys, pc.is_in(keys[S.USER_ID], below))
    return keep, [_drop(MIN_HISTORY, drop[S.EVENT_ID])]


def reddit_user_rules(keys: pa.Table, cfg: CurateConfig) -> tuple[pa.Table, pa.Table, list[pa.Table]]:
    """One bucket's submissions after the minimum history, and its comments whose author kept a
    submission (their parents are checked in the partition of the parent); (submissions, comments, drops)."""
    subs, comments = _split(keys, pc.equal(keys[S.KIND], S.COMMENT))
    subs, drops = min_history(subs, cfg.reddit.min_history)
    comments, not_sub = _split(comments, pc.invert(pc.is_in(comments[S.USER_ID], pc.unique(subs[S.USER_ID]))))
    return subs, comments, drops + [_drop("comment_author_not_submitter", not_sub[S.EVENT_ID])]


def twitter_user_rules(keys: pa.Table, profiles: pa.Table, cfg: CurateConfig) -> tuple[pa.Table, list[pa.Table]]:
    words = cfg.twitter.corporate_bio_words
    corporate = sorted({u for u, m in zip(profiles[S.USER_ID].to_pylist(), profiles[S.META].to_pylist())
                        if is_corporate_bio(json.loads(m or "{}").get("bio"), words)})
    keys, corp = _split(keys, pc.is_in(keys[S.USER_ID], pa.array(corporate, pa.string())))
    keys, drops = min_history(keys, cfg.twitter.min_history)
    return keys, [_drop("corporate_account", corp[S.EVENT_ID])] + drops


def user_item_duplicates(keys: pa.Table) -> tuple[pa.Table, pa.Table]:
    """A user's later reviews of an item they reviewed before (ties by event id); (kept, dropped ids)."""
    keys = keys.sort_by([(S.USER_ID, "ascending"), (S.PARENT_ID, "ascending"), (S.TS, "ascending"),
                         (S.EVENT_ID, "ascending")])
    if keys.num_rows < 2:
        return keys, _drop("duplicate_user_item", pa.array([], pa.string()))
    same = pc.and_(pc.equal(keys[S.USER_ID][1:], keys[S.USER_ID][:-1]),
                   pc.equal(keys[S.PARENT_ID][1:], keys[S.PARENT_ID][:-1]))
    keys, dups = _split(keys, pa.concat_arrays([pa.array([False]), pc.fill_null(same, False).combine_chunks()]))
    return keys, _drop("duplicate_user_item", dups[S.EVENT_ID])


def top_count(counts: dict[int, int], fraction: float) -> int:
    """The fewest events an item may have and stay among the `fraction` most frequent items, from the
    number of items per event count: the count of the ceil(fraction * items)-th item, ties kept (an item
    as frequent as a kept one is kept). 0 keeps every item."""
    total = sum(counts.values())
    if fraction >= 1.0 or total == 0:
        return 0
    rank, seen = math.ceil(total * fraction), 0
    for count in sorted(counts, reverse=True):
        seen += counts[count]
        if seen >= rank:
            return count
    return 0


# --- the steps, one task each (run_shards) ---------------------------------------------------------

def _bucket_keys(root, platform: str, bucket: int) -> pa.Table:
    """Step 1's key columns of one user bucket, less the duplicates dedup dropped."""
    keys = root.read_parquet(f"{STAGE1}/{platform}/b={bucket:04d}", columns=KEY_COLUMNS, schema=S.EVENT_SCHEMA)
    clusters = load_clusters(root, platform, keys[S.EVENT_ID])
    return keys.filter(pc.invert(pc.is_in(keys[S.EVENT_ID], clusters.filter(pc.is_valid(clusters[S.REASON]))[S.EVENT_ID])))


def _write_decisions(root, platform: str, name: str, drops: list[pa.Table]) -> dict:
    """Write one task's dropped events; its counts by reason."""
    decisions = pa.concat_tables([d.cast(DECISION_SCHEMA) for d in drops] or [DECISION_SCHEMA.empty_table()])
    root.write_parquet(f"{DECISIONS}/{platform}/{name}.parquet", decisions)
    counts = _count_by(decisions, S.REASON)
    return {"decide": {platform: dict(zip(counts[S.REASON].to_pylist(), counts["count_all"].to_pylist()))}}


def _x(platform: str, name: str) -> str:
    return f"{EXCHANGE}/{platform}/{name}"


def users_step(task: dict, cfg: CurateConfig, layout: RunLayout) -> dict:
    """One (platform, user bucket): the rules about one user; Reddit's and Amazon's rows for the
    partitioned rules go to their partitions."""
    root, platform, bucket, n = layout.root, task["platform"], task["bucket"], task["parts"]
    keys = _bucket_keys(root, platform, bucket)
    source = f"b{bucket:04d}"
    if platform == S.TWITTER:
        profiles = root.read_where(f"{PROFILES}/{platform}", S.PROFILE_SCHEMA, S.USER_ID, pc.unique(keys[S.USER_ID]))
        _, drops = twitter_user_rules(keys, profiles, cfg)
    elif platform == S.REDDIT and cfg.reddit.comments_need_kept_submission:
        subs, comments, drops = reddit_user_rules(keys, cfg)
        exchange.write_hashed(root, _x(platform, "links"), comments.select(LINKS.names).cast(LINKS), S.PARENT_ID, n, source)
        parents = root.read_where(f"{STAGE1}/{platform}/b={bucket:04d}", S.EVENT_SCHEMA, S.EVENT_ID, subs[S.EVENT_ID],
                                  columns=PARENT_SCHEMA.names)
        parents = parents.set_column(2, S.TEXT, pc.utf8_slice_codeunits(pc.fill_null(parents[S.TEXT], ""), 0,
                                                                         PARENT_TEXT_CHARS)).cast(PARENT_SCHEMA)
        exchange.write_hashed(root, _x(platform, "submissions"), parents, S.NATIVE_ID, n, source)
    elif platform == S.AMAZON:
        drops = []
        if cfg.amazon.dedupe_user_item:
            keys, dups = user_item_duplicates(keys)
            drops.append(dups)
        exchange.write_hashed(root, _x(platform, "edges"), keys.select(EDGES.names).cast(EDGES), S.PARENT_ID, n, source)
    else:
        rules = getattr(cfg, platform)
        _, drops = min_history(keys, rules.min_history)
    return _write_decisions(root, platform, f"users-{bucket:04d}", drops)


def reddit_parents_step(task: dict, cfg: CurateConfig, layout: RunLayout) -> dict:
    """One partition of submission ids: comments whose parent was not kept are dropped; the kept
    comments' parents are written as their context."""
    root, part, platform = layout.root, task["part"], S.REDDIT
    subs = exchange.read(root, _x(platform, "submissions"), part, PARENT_SCHEMA)
    links = exchange.read(root, _x(platform, "links"), part, LINKS)
    links, orphans = _split(links, pc.invert(pc.is_in(links[S.PARENT_ID], subs[S.NATIVE_ID])))
    parents = subs.filter(pc.is_in(subs[S.NATIVE_ID], pc.unique(links[S.PARENT_ID])))
    root.write_parquet(f"{PARENTS}/{platform}/{part:04d}.parquet",
                       parents.sort_by([(S.NATIVE_ID, "ascending")]))
    return _write_decisions(root, platform, f"parents-{part:04d}", [_drop("parent_not_kept", orphans[S.EVENT_ID])])


def _round_edges(r: int) -> str:
    return _x(S.AMAZON, f"edges-r{r:02d}")


def amazon_items_step(task: dict, cfg: CurateConfig, layout: RunLayout) -> dict:
    """One partition of items: reviews of items without a title are dropped; the items' review counts
    go back to the driver (to find the top fraction), the reviews on to the k-core rounds."""
    root, part = layout.root, task["part"]
    edges = exchange.read(root, _x(S.AMAZON, "edges"), part, EDGES)
    drops = []
    if cfg.amazon.require_item_title:
        items = root.read_where(f"{ITEMS}/{S.AMAZON}", S.ITEM_SCHEMA, S.ITEM_ID, pc.unique(edges[S.PARENT_ID]),
                                columns=[S.ITEM_ID, S.TITLE])
        titled = items.filter(pc.greater(pc.utf8_length(pc.fill_null(items[S.TITLE], "")), 0))[S.ITEM_ID]
        edges, untitled = _split(edges, pc.invert(pc.is_in(edges[S.PARENT_ID], titled)))
        drops.append(_drop("item_no_title", untitled[S.EVENT_ID]))
    root.write_parquet(f"{_round_edges(0)}/{part:04d}.parquet", edges)
    counts = _count_by(_count_by(edges, S.PARENT_ID).rename_columns([S.PARENT_ID, "reviews"]), "reviews")
    out = _write_decisions(root, S.AMAZON, f"items-{part:04d}", drops)
    out["items_by_count"] = {str(c): n for c, n in zip(counts["reviews"].to_pylist(), counts["count_all"].to_pylist())}
    return out


def kcore_items_step(task: dict, cfg: CurateConfig, layout: RunLayout) -> dict:
    """Round r of the k-core on one partition of items: drop the reviews of the users the last round
    found below the k-core (and, in the final round, below the minimum history); in round 0 the items
    below the top fraction; then the items left with fewer than item_k reviews. The users' review
    counts go to their partitions; the final round writes the kept items' metadata instead."""
    root, part, r, n = layout.root, task["part"], task["round"], task["parts"]
    final = task["final"]
    edges = root.read_parquet(f"{_round_edges(r)}/{part:04d}.parquet", schema=EDGES).select(EDGES.names)
    drops = []
    if r == 0 and task["top_count"]:
        counts = _count_by(edges, S.PARENT_ID)
        rare = counts.filter(pc.less(counts["count_all"], task["top_count"]))[S.PARENT_ID]
        edges, dropped = _split(edges, pc.is_in(edges[S.PARENT_ID], rare))
        drops.append(_drop("item_low_frequency", dropped[S.EVENT_ID]))
    if r > 0:
        users = exchange.read(root, _x(S.AMAZON, f"dropped-users-r{r - 1:02d}"), part, DROPPED_USERS)
        for reason in (K_CORE, MIN_HISTORY) if final else (K_CORE,):
            these = users.filter(pc.equal(users[S.REASON], reason))[S.USER_ID]
            edges, dropped = _split(edges, pc.is_in(edges[S.USER_ID], these))
            drops.append(_drop(reason, dropped[S.EVENT_ID]))
    item_drops = 0
    if final:
        root.write_parquet(f"{PARENTS}/{S.AMAZON}/{part:04d}.parquet", _item_context(root, pc.unique(edges[S.PARENT_ID])))
    else:
        counts = _count_by(edges, S.PARENT_ID)
        low = counts.filter(pc.less(counts["count_all"], cfg.amazon.item_k))[S.PARENT_ID]
        edges, dropped = _split(edges, pc.is_in(edges[S.PARENT_ID], low))
        drops.append(_drop(K_CORE, dropped[S.EVENT_ID]))
        item_drops = dropped.num_rows
        root.write_parquet(f"{_round_edges(r + 1)}/{part:04d}.parquet", edges)
        per_user = _count_by(edges, S.USER_ID)
        per_user = pa.table({S.USER_ID: per_user[S.USER_ID], PART: pa.array(np.full(per_user.num_rows, part)),
                             "n": per_user["count_all"]}, schema=USER_COUNTS)
        exchange.write_hashed(root, _x(S.AMAZON, f"user-counts-r{r:02d}"), per_user, S.USER_ID, n, f"i{part:04d}")
    out = _write_decisions(root, S.AMAZON, f"k{r:02d}-{part:04d}", drops)
    out["kcore"] = {"item_drops": item_drops}
    return out


def kcore_users_step(task: dict, cfg: CurateConfig, layout: RunLayout) -> dict:
    """Round r of the k-core on one partition of users: sum each user's reviews over the item
    partitions; users below user_k (k_core) or below the minimum history (applied once the k-core
    holds) are sent to every item partition holding their reviews."""
    root, part, r = layout.root, task["part"], task["round"]
    counts = exchange.read(root, _x(S.AMAZON, f"user-counts-r{r:02d}"), part, USER_COUNTS)
    totals = counts.group_by(S.USER_ID).aggregate([("n", "sum")])
    a = cfg.amazon
    reason = pc.if_else(pc.less(totals["n_sum"], a.user_k), K_CORE,
                        pc.if_else(pc.less(totals["n_sum"], a.min_history), MIN_HISTORY, pa.scalar(None, pa.string())))
    dropped = pa.table({S.USER_ID: totals[S.USER_ID], S.REASON: reason}).filter(pc.is_valid(reason))
    sent = counts.join(dropped, S.USER_ID, join_type="inner").sort_by([(S.USER_ID, "ascending"), (PART, "ascending")])
    exchange.write(root, _x(S.AMAZON, f"dropped-users-r{r:02d}"), sent.select(DROPPED_USERS.names).cast(DROPPED_USERS),
                   sent[PART].to_numpy(), f"u{part:04d}")
    return {"kcore": {"k_core_users": int(pc.sum(pc.equal(dropped[S.REASON], K_CORE)).as_py() or 0)}}


def _item_context(root, items_wanted: pa.Array) -> pa.Table:
    """Item metadata (title, scrubbed metadata) of the kept items, the first record of each item."""
    items = root.read_where(f"{ITEMS}/{S.AMAZON}", S.ITEM_SCHEMA, S.ITEM_ID, items_wanted)
    items = items.sort_by([(S.ITEM_ID, "ascending"), (S.SOURCE_URI, "ascending"), (S.SOURCE_ROW, "ascending")])
    if items.num_rows:
        first = pc.not_equal(items[S.ITEM_ID][1:], items[S.ITEM_ID][:-1]).combine_chunks()
        items = items.filter(pa.concat_arrays([pa.array([True]), first]))
    titles = [scrub_value(x) for x in items[S.TITLE].to_pylist()]
    metas = [json.dumps(scrub_value(json.loads(m)), sort_keys=True, ensure_ascii=False) if m else m
             for m in items[S.META].to_pylist()]
    return pa.table({S.NATIVE_ID: items[S.ITEM_ID], S.TITLE: pa.array(titles, pa.string()),
                     S.TEXT: pa.nulls(items.num_rows, pa.string()), S.META: pa.array(metas, pa.string())},
                    schema=PARENT_SCHEMA)


def scrub_value(value):
    """Item metadata as sellers wrote it (titles, descriptions, features) with PII and secrets scrubbed,
    strings at any depth of lists and objects."""
    from processing.cleaning import scrub_pii

    if isinstance(value, str):
        return scrub_pii(value)[0]
    if isinstance(value, list):
        return [scrub_value(v) for v in value]
    if isinstance(value, dict):
        return {k: scrub_value(v) for k, v in value.items()}
    return value


# --- the driver -------------------------------------------------------------------------------------

def decide_steps(platforms: list[str], cfg: CurateConfig, layout: RunLayout, base: dict, parts: int,
                 run) -> dict[str, dict]:
    """Every decide step through `run(name, tasks, fn)` (run_shards: a rerun skips finished shards);
    `parts` partitions for the joins. Returns {step name: {shard: stats}}."""
    steps: dict[str, dict] = {}

    def step(name: str, tasks: list[dict], fn) -> dict:
        steps[name] = run(name, tasks, functools.partial(fn, cfg=cfg, layout=layout))
        return steps[name]

    task = {**base, "parts": parts}
    step("curate-decide-users", [{**task, "shard": f"{p}-{b:04d}", "platform": p, "bucket": b}
                                 for p in platforms for b in range(base["n_buckets"])], users_step)
    if S.REDDIT in platforms and cfg.reddit.comments_need_kept_submission:
        step("curate-decide-parents", [{**task, "shard": f"{S.REDDIT}-{q:04d}", "part": q} for q in range(parts)],
             reddit_parents_step)
    if S.AMAZON in platforms:
        items = step("curate-decide-items", [{**task, "shard": f"{S.AMAZON}-{q:04d}", "part": q}
                                             for q in range(parts)], amazon_items_step)
        by_count: dict[int, int] = {}
        for s in items.values():
            for c, k in s["items_by_count"].items():
                by_count[int(c)] = by_count.get(int(c), 0) + k
        threshold = top_count(by_count, cfg.amazon.top_item_fraction)
        r, final, rounds = 0, False, []
        while True:
            rt = {**task, "round": r, "final": final, "top_count": threshold}
            out = step(f"curate-decide-kcore-r{r:02d}", [{**rt, "shard": f"{S.AMAZON}-{q:04d}", "part": q}
                                                        for q in range(parts)], kcore_items_step)
            if final:
                break
            users = step(f"curate-decide-kusers-r{r:02d}", [{**rt, "shard": f"{S.AMAZON}-{q:04d}", "part": q}
                                                           for q in range(parts)], kcore_users_step)
            rounds.append((sum(s["kcore"]["item_drops"] for s in out.values()),
                           sum(s["kcore"]["k_core_users"] for s in users.values())))
            log.debug("decide amazon k-core round %d: %d reviews of rare items dropped, %d users below the k-core",
                      r, *rounds[-1])
            final = rounds[-1] == (0, 0)
            r += 1
        log.info("decide amazon: %d items, the top %.0f%% have at least %d reviews; the k-core settled in %d rounds "
                 "(per round, reviews of rare items dropped: %s; users below %d reviews: %s)", sum(by_count.values()),
                 100 * cfg.amazon.top_item_fraction, threshold, len(rounds), ", ".join(str(i) for i, _ in rounds),
                 cfg.amazon.user_k, ", ".join(str(u) for _, u in rounds))
    for name in steps:
        for s in steps[name].values():
            s.pop("items_by_count", None)
            s.pop("kcore", None)
    return steps
