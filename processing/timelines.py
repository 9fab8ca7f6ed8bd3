"""The curate stage, steps 2 and 3: user- and item-level rules, then per-user timelines.

Step 2 (`decide`, one task per platform) reads only key columns of step 1's output and decides
which events the cross-row rules drop: minimum history, Reddit comments without a kept parent
submission or by non-submitters, Twitter corporate accounts, Amazon item titles, (user, item)
duplicates, the top-half item rule and iterative k-core. Step 3 (`timeline`, one task per
platform and user bucket) applies those decisions, attaches context (parent submission, item
metadata), sorts each user's events by time and writes events/, users/ and the rejects.
"""
from __future__ import annotations

import json
import logging
import math

import pyarrow as pa
import pyarrow.compute as pc

from core import schema as S
from core.layout import RunLayout
from core.storage import RunRoot
from processing.curate import ITEMS, PROFILES, STAGE1, tally, to_rejects, WORK
from processing.dedup_stage import load_clusters
from processing.rules import is_corporate_bio
from processing.settings import CurateConfig

log = logging.getLogger(__name__)
DECISIONS = f"{WORK}/decisions"
PARENTS = f"{WORK}/parents"
KEY_COLUMNS = [S.EVENT_ID, S.USER_ID, S.KIND, S.TS, S.NATIVE_ID, S.PARENT_ID]
DECISION_SCHEMA = pa.schema([pa.field(S.EVENT_ID, pa.string()), pa.field(S.REASON, pa.string())])
PARENT_SCHEMA = pa.schema([pa.field(S.NATIVE_ID, pa.string()), pa.field(S.TITLE, pa.string()),
                           pa.field(S.TEXT, pa.string()), pa.field(S.META, pa.string())])
PARENT_TEXT_CHARS = 2000


def _drop(reason: str, ids: pa.Array | pa.ChunkedArray) -> pa.Table:
    return pa.table({S.EVENT_ID: pc.cast(ids, pa.string()), S.REASON: pa.array([reason] * len(ids), pa.string())})


def _count_by(table: pa.Table, key: str) -> pa.Table:
    return table.group_by(key).aggregate([([], "count_all")])


def _users_below(table: pa.Table, minimum: int) -> pa.Array:
    counts = _count_by(table, S.USER_ID)
    return counts.filter(pc.less(counts["count_all"], minimum))[S.USER_ID].combine_chunks()


def _split(table: pa.Table, mask) -> tuple[pa.Table, pa.Table]:
    mask = pc.fill_null(mask, False)
    return table.filter(pc.invert(mask)), table.filter(mask)


def min_history(keys: pa.Table, minimum: int) -> tuple[pa.Table, list[pa.Table]]:
    """Drop every event of users with fewer than `minimum` events."""
    keep, drop = _split(keys, pc.is_in(keys[S.USER_ID], _users_below(keys, minimum)))
    return keep, [_drop("min_history", drop[S.EVENT_ID])]


def decide_reddit(keys: pa.Table, cfg: CurateConfig) -> tuple[pa.Table, list[pa.Table]]:
    r = cfg.reddit
    if not r.comments_need_kept_submission:
        return min_history(keys, r.min_history)
    subs, comments = _split(keys, pc.equal(keys[S.KIND], S.COMMENT))
    subs, drops = min_history(subs, r.min_history)
    submitters = pc.unique(subs[S.USER_ID])
    comments, not_sub = _split(comments, pc.invert(pc.is_in(comments[S.USER_ID], submitters)))
    comments, orphan = _split(comments, pc.invert(pc.is_in(comments[S.PARENT_ID], subs[S.NATIVE_ID])))
    drops += [_drop("comment_author_not_submitter", not_sub[S.EVENT_ID]), _drop("parent_not_kept", orphan[S.EVENT_ID])]
    return pa.concat_tables([subs, comments]), drops


def decide_twitter(keys: pa.Table, profiles: pa.Table, cfg: CurateConfig) -> tuple[pa.Table, list[pa.Table]]:
    words = cfg.twitter.corporate_bio_words
    corporate = sorted({u for u, m in zip(profiles[S.USER_ID].to_pylist(), profiles[S.META].to_pylist())
                        if is_corporate_bio(json.loads(m or "{}").get("bio"), words)})
    keys, corp = _split(keys, pc.is_in(keys[S.USER_ID], pa.array(corporate, pa.string())))
    keys, drops = min_history(keys, cfg.twitter.min_history)
    return keys, [_drop("corporate_account", corp[S.EVENT_ID])] + drops


def k_core(keys: pa.Table, user_k: int, item_k: int) -> tuple[pa.Table, pa.Table]:
    """Iteratively drop users with < user_k events and items with < item_k events; (kept, dropped)."""
    dropped = []
    while True:
        low_users = _users_below(keys, user_k)
        items = _count_by(keys, S.PARENT_ID)
        low_items = items.filter(pc.less(items["count_all"], item_k))[S.PARENT_ID]
        mask = pc.or_(pc.is_in(keys[S.USER_ID], low_users), pc.is_in(keys[S.PARENT_ID], low_items))
        keys, drop = _split(keys, mask)
        if drop.num_rows == 0:
            break
        dropped.append(drop)
    drop_ids = pa.concat_tables(dropped)[S.EVENT_ID] if dropped else pa.array([], pa.string())
    return keys, _drop("k_core", drop_ids)


def decide_amazon(keys: pa.Table, items: pa.Table, cfg: CurateConfig) -> tuple[pa.Table, list[pa.Table]]:
    a = cfg.amazon
    drops: list[pa.Table] = []
    if a.require_item_title:
        titled = items.filter(pc.greater(pc.utf8_length(pc.fill_null(items[S.TITLE], "")), 0))[S.ITEM_ID]
        keys, no_title = _split(keys, pc.invert(pc.is_in(keys[S.PARENT_ID], titled)))
        drops.append(_drop("item_no_title", no_title[S.EVENT_ID]))
    if a.dedupe_user_item:
        keys = keys.sort_by([(S.USER_ID, "ascending"), (S.PARENT_ID, "ascending"), (S.TS, "ascending"),
                             (S.EVENT_ID, "ascending")])
        users, item_ids = keys[S.USER_ID].to_pylist(), keys[S.PARENT_ID].to_pylist()
        dup = [i > 0 and users[i] == users[i - 1] and item_ids[i] == item_ids[i - 1] for i in range(len(users))]
        keys, dups = _split(keys, pa.array(dup, pa.bool_()))
        drops.append(_drop("duplicate_user_item", dups[S.EVENT_ID]))
    if a.top_item_fraction < 1.0 and keys.num_rows:
        counts = _count_by(keys, S.PARENT_ID).sort_by([("count_all", "descending"), (S.PARENT_ID, "ascending")])
        top = counts[S.PARENT_ID].slice(0, math.ceil(counts.num_rows * a.top_item_fraction))
        keys, rare = _split(keys, pc.invert(pc.is_in(keys[S.PARENT_ID], top)))
        drops.append(_drop("item_low_frequency", rare[S.EVENT_ID]))
    keys, core = k_core(keys, a.user_k, a.item_k)
    keys, hist = min_history(keys, a.min_history)
    return keys, drops + [core] + hist


def decide(task: dict, cfg: CurateConfig, layout: RunLayout) -> dict:
    """Step-2 task for one platform: write its decisions (dropped event ids + reason) and parents."""
    root = layout.root
    platform = task["platform"]
    keys = root.read_parquet(f"{STAGE1}/{platform}", columns=KEY_COLUMNS, schema=S.EVENT_SCHEMA)
    clusters = load_clusters(root, platform)
    keys = keys.filter(pc.invert(pc.is_in(keys[S.EVENT_ID], clusters.filter(pc.is_valid(clusters[S.REASON]))[S.EVENT_ID])))
    if platform == S.REDDIT:
        kept, drops = decide_reddit(keys, cfg)
    elif platform == S.TWITTER:
        kept, drops = decide_twitter(keys, root.read_parquet(f"{PROFILES}/{platform}", schema=S.PROFILE_SCHEMA), cfg)
    elif platform == S.AMAZON:
        kept, drops = decide_amazon(keys, root.read_parquet(f"{ITEMS}/{platform}", schema=S.ITEM_SCHEMA), cfg)
    else:
        kept, drops = min_history(keys, cfg.blogger.min_history)
    decisions = pa.concat_tables([d.cast(DECISION_SCHEMA) for d in drops] or [DECISION_SCHEMA.empty_table()])
    root.write_parquet(f"{DECISIONS}/{platform}.parquet", decisions)
    root.write_parquet(f"{PARENTS}/{platform}.parquet", _parents(root, platform, kept))
    counts = {}
    for d in drops:
        if d.num_rows:
            counts[d[S.REASON][0].as_py()] = counts.get(d[S.REASON][0].as_py(), 0) + d.num_rows
    log.info("decide %s: %d events in, %d kept, dropped %s", platform, keys.num_rows, kept.num_rows, counts)
    return {"decide": {platform: counts}}


def _parents(root: RunRoot, platform: str, kept: pa.Table) -> pa.Table:
    """Context rows for kept events: Reddit parent submissions, Amazon item metadata."""
    if platform == S.REDDIT:
        wanted = pc.unique(kept.filter(pc.equal(kept[S.KIND], S.COMMENT))[S.PARENT_ID])
        if len(wanted) == 0:
            return PARENT_SCHEMA.empty_table()
        subs = root.read_parquet(f"{STAGE1}/{platform}", columns=[S.NATIVE_ID, S.TITLE, S.TEXT, S.META],
                                 filters=pc.field(S.NATIVE_ID).isin(wanted.to_pylist()), schema=S.EVENT_SCHEMA)
        subs = subs.set_column(2, S.TEXT, pc.utf8_slice_codeunits(pc.fill_null(subs[S.TEXT], ""), 0, PARENT_TEXT_CHARS))
        return subs.cast(PARENT_SCHEMA)
    if platform == S.AMAZON:
        items = root.read_parquet(f"{ITEMS}/{platform}", schema=S.ITEM_SCHEMA)
        items = items.filter(pc.is_in(items[S.ITEM_ID], pc.unique(kept[S.PARENT_ID])))
        items = items.sort_by([(S.ITEM_ID, "ascending"), (S.SOURCE_URI, "ascending"), (S.SOURCE_ROW, "ascending")])
        first = [i == 0 or a != b for i, (a, b) in enumerate(zip(items[S.ITEM_ID].to_pylist(),
                                                                [None] + items[S.ITEM_ID].to_pylist()[:-1]))]
        items = items.filter(pa.array(first, pa.bool_()))
        titles = [_scrub_value(x) for x in items[S.TITLE].to_pylist()]
        metas = [json.dumps(_scrub_value(json.loads(m)), sort_keys=True, ensure_ascii=False) if m else m
                 for m in items[S.META].to_pylist()]
        return pa.table({S.NATIVE_ID: items[S.ITEM_ID], S.TITLE: pa.array(titles, pa.string()),
                         S.TEXT: pa.nulls(items.num_rows, pa.string()), S.META: pa.array(metas, pa.string())},
                        schema=PARENT_SCHEMA)
    return PARENT_SCHEMA.empty_table()


def _with_context(events: pa.Table, parents: pa.Table) -> pa.Table:
    """Merge parent title/text (Reddit) or item title/metadata (Amazon) into each event's context JSON."""
    if parents.num_rows == 0 or events.num_rows == 0:
        return events
    lookup = {nid: (t, x, m) for nid, t, x, m in zip(*(parents[c].to_pylist() for c in PARENT_SCHEMA.names))}
    contexts = []
    for ctx, pid, kind in zip(events[S.CONTEXT].to_pylist(), events[S.PARENT_ID].to_pylist(), events[S.KIND].to_pylist()):
        parent = lookup.get(pid)
        if parent is None or kind == S.SUBMISSION:
            contexts.append(ctx)
            continue
        c = json.loads(ctx) if ctx else {}
        title, text, meta = parent
        if kind == S.REVIEW:
            c.update(item_title=title, item=json.loads(meta) if meta else {})
        else:
            c.update(parent_title=title, parent_text=text)
        contexts.append(json.dumps({k: v for k, v in c.items() if v not in (None, "", {})}, sort_keys=True,
                                   ensure_ascii=False))
    return events.set_column(events.schema.get_field_index(S.CONTEXT), S.CONTEXT, pa.array(contexts, pa.string()))


def build_users(events: pa.Table, profiles: pa.Table, platform: str) -> pa.Table:
    """One row per user of a sorted event table: counts, time span and profile metadata."""
    if events.num_rows == 0:
        return S.USER_SCHEMA.empty_table()
    g = events.group_by(S.USER_ID).aggregate([([], "count_all"), (S.TS, "min"), (S.TS, "max")])
    by_kind = events.group_by([S.USER_ID, S.KIND]).aggregate([([], "count_all")])
    kinds: dict[str, dict[str, int]] = {}
    for u, k, n in zip(by_kind[S.USER_ID].to_pylist(), by_kind[S.KIND].to_pylist(), by_kind["count_all"].to_pylist()):
        kinds.setdefault(u, {})[k] = n
    meta: dict[str, str] = {}
    for u, m in zip(profiles[S.USER_ID].to_pylist(), profiles[S.META].to_pylist()):
        meta.setdefault(u, m)  # profiles are sorted by source: the first one wins
    users = g[S.USER_ID].to_pylist()
    first, last = g[f"{S.TS}_min"], g[f"{S.TS}_max"]
    span = pc.divide(pc.cast(pc.subtract(pc.cast(last, pa.int64()), pc.cast(first, pa.int64())), pa.float64()), 86_400e6)
    table = pa.table({
        S.USER_ID: users, S.PLATFORM: [platform] * len(users), S.N_EVENTS: g["count_all"],
        S.N_BY_KIND: [json.dumps(kinds[u], sort_keys=True) for u in users], S.FIRST_TS: first, S.LAST_TS: last,
        S.SPAN_DAYS: span, S.META: [meta.get(u) for u in users],
    }, schema=S.USER_SCHEMA)
    return table.sort_by([(S.USER_ID, "ascending")])


def _scrub_value(value):
    """Item metadata as sellers wrote it (titles, descriptions, features) with PII and secrets scrubbed,
    strings at any depth of lists and objects."""
    from processing.cleaning import scrub_pii

    if isinstance(value, str):
        return scrub_pii(value)[0]
    if isinstance(value, list):
        return [_scrub_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    return value


def _scrub_profiles(profiles: pa.Table) -> pa.Table:
    """PII-scrub free-text profile fields (bios) before they reach users/."""
    from processing.cleaning import scrub_pii

    out = []
    for m in profiles[S.META].to_pylist():
        d = json.loads(m or "{}")
        for key in ("bio", "location"):
            if isinstance(d.get(key), str):
                d[key] = scrub_pii(d[key])[0]
        out.append(json.dumps(d, sort_keys=True, ensure_ascii=False))
    return profiles.set_column(profiles.schema.get_field_index(S.META), S.META, pa.array(out, pa.string()))


def timeline(task: dict, cfg: CurateConfig, layout: RunLayout) -> dict:
    """Step-3 task for one (platform, bucket): apply decisions, add context, sort, write outputs."""
    root = layout.root
    platform, bucket = task["platform"], task["bucket"]
    events = root.read_parquet(f"{STAGE1}/{platform}/b={bucket:04d}", schema=S.EVENT_SCHEMA)
    # Every platform-wide table is read filtered to this bucket's rows (the filter applies per row group
    # as the file is scanned), so the task's memory follows its bucket, not the corpus.
    mine = pc.field(S.EVENT_ID).isin(events[S.EVENT_ID].combine_chunks())
    clusters = load_clusters(root, platform, mine)
    dups = clusters.filter(pc.is_valid(clusters[S.REASON]))
    decisions = pa.concat_tables([dups.select([S.EVENT_ID, S.REASON]),
                                  root.read_parquet(f"{DECISIONS}/{platform}.parquet", filters=mine,
                                                    schema=DECISION_SCHEMA)])
    dropped_mask = pc.is_in(events[S.EVENT_ID], decisions[S.EVENT_ID])
    dropped = events.filter(dropped_mask)
    reason_of = dict(zip(decisions[S.EVENT_ID].to_pylist(), decisions[S.REASON].to_pylist()))
    dropped = dropped.append_column(S.REASON, pa.array([reason_of[e] for e in dropped[S.EVENT_ID].to_pylist()], pa.string()))
    cluster_of = {e: (c, n) for e, c, n in zip(clusters[S.EVENT_ID].to_pylist(), clusters[S.DUP_CLUSTER].to_pylist(),
                                               clusters[S.DUP_CLUSTER_SIZE].to_pylist())}
    is_dup = pc.is_in(dropped[S.EVENT_ID], dups[S.EVENT_ID])
    detail = pa.array([f"cluster={cluster_of[e][0]} size={cluster_of[e][1]}" if e in cluster_of else None
                       for e in dropped[S.EVENT_ID].to_pylist()], pa.string())
    rejects = pa.concat_tables([to_rejects(dropped.filter(is_dup), "dedup", detail.filter(is_dup)),
                                to_rejects(dropped.filter(pc.invert(is_dup)), "timeline")])
    rejects = rejects.sort_by([(S.SOURCE_URI, "ascending"), (S.SOURCE_ROW, "ascending")])
    kept = events.filter(pc.invert(dropped_mask))
    ids = kept[S.EVENT_ID].to_pylist()
    kept = kept.set_column(kept.schema.get_field_index(S.DUP_CLUSTER), S.DUP_CLUSTER,
                           pa.array([cluster_of.get(e, (e, 1))[0] for e in ids], pa.string()))
    kept = kept.set_column(kept.schema.get_field_index(S.DUP_CLUSTER_SIZE), S.DUP_CLUSTER_SIZE,
                           pa.array([cluster_of.get(e, (e, 1))[1] for e in ids], pa.int32()))
    parents = pc.field(S.NATIVE_ID).isin(pc.unique(kept[S.PARENT_ID]).drop_null())
    kept = _with_context(kept, root.read_parquet(f"{PARENTS}/{platform}.parquet", filters=parents,
                                                 schema=PARENT_SCHEMA))
    kept = kept.select(S.EVENT_SCHEMA.names).cast(S.EVENT_SCHEMA)
    kept = kept.sort_by([(S.USER_ID, "ascending"), (S.TS, "ascending"), (S.EVENT_ID, "ascending")])
    profiles = root.read_parquet(f"{PROFILES}/{platform}", schema=S.PROFILE_SCHEMA,
                                 filters=pc.field(S.USER_ID).isin(pc.unique(kept[S.USER_ID])))
    profiles = _scrub_profiles(profiles.sort_by([(S.SOURCE_URI, "ascending"), (S.SOURCE_ROW, "ascending")]))
    users = build_users(kept, profiles, platform)
    name = f"{platform}/part-{bucket:04d}"
    root.write_parquet(RunLayout.events(name), kept)
    root.write_parquet(RunLayout.users(name), users)
    root.write_parquet(RunLayout.rejects("timeline", name), rejects)
    pstats: dict = {"kept": kept.num_rows, "users": users.num_rows, "rejected": {}}
    tally(pstats, rejects)
    return {"platforms": {platform: pstats}, "steps": {"timeline": {"rows": events.num_rows, "bytes": 0, "seconds": 0.0}}}
