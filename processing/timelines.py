"""The curate stage, step 3 (`timeline`, one task per platform and user bucket): apply the decisions
of dedup and of step 2 (`processing.decide`), attach context (parent submission, item metadata), sort
each user's events by time and write events/, users/ and the rejects.
"""
from __future__ import annotations

import json
import logging

import pyarrow as pa
import pyarrow.compute as pc

from core import schema as S
from core.layout import RunLayout
from processing.curate import PROFILES, STAGE1, tally, to_rejects
from processing.decide import DECISION_SCHEMA, DECISIONS, PARENT_SCHEMA, PARENTS
from processing.dedup_stage import load_clusters
from processing.settings import CurateConfig

log = logging.getLogger(__name__)
_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False)  # json.dumps would build one a call


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
        contexts.append(_JSON.encode({k: v for k, v in c.items() if v not in (None, "", {})}))
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
    # Every platform-wide table is read filtered to this bucket's rows (batch by batch as the files are
    # read), so the task's memory follows its bucket, not the corpus.
    mine = events[S.EVENT_ID].combine_chunks()
    clusters = load_clusters(root, platform, mine)
    dups = clusters.filter(pc.is_valid(clusters[S.REASON]))
    decisions = pa.concat_tables([dups.select([S.EVENT_ID, S.REASON]),
                                  root.read_where(f"{DECISIONS}/{platform}", DECISION_SCHEMA, S.EVENT_ID, mine)])
    dropped_mask = pc.is_in(events[S.EVENT_ID], decisions[S.EVENT_ID])
    dropped = events.filter(dropped_mask)
    last = decisions.take(pa.array(range(decisions.num_rows - 1, -1, -1), pa.int64()))  # an event's last decision
    dropped = dropped.append_column(S.REASON, pc.take(last[S.REASON], pc.index_in(dropped[S.EVENT_ID], last[S.EVENT_ID])))
    is_dup = pc.is_in(dropped[S.EVENT_ID], dups[S.EVENT_ID])
    at = pc.index_in(dropped[S.EVENT_ID], clusters[S.EVENT_ID])  # null: not in a cluster
    detail = pc.binary_join_element_wise("cluster=", pc.take(clusters[S.DUP_CLUSTER], at), " size=",
                                         pc.cast(pc.take(clusters[S.DUP_CLUSTER_SIZE], at), pa.string()), "")
    rejects = pa.concat_tables([to_rejects(dropped.filter(is_dup), "dedup", detail.filter(is_dup)),
                                to_rejects(dropped.filter(pc.invert(is_dup)), "timeline")])
    rejects = rejects.sort_by([(S.SOURCE_URI, "ascending"), (S.SOURCE_ROW, "ascending")])
    kept = events.filter(pc.invert(dropped_mask))
    at = pc.index_in(kept[S.EVENT_ID], clusters[S.EVENT_ID])  # null: a cluster of its own
    kept = kept.set_column(kept.schema.get_field_index(S.DUP_CLUSTER), S.DUP_CLUSTER,
                           pc.coalesce(pc.take(clusters[S.DUP_CLUSTER], at), kept[S.EVENT_ID]))
    kept = kept.set_column(kept.schema.get_field_index(S.DUP_CLUSTER_SIZE), S.DUP_CLUSTER_SIZE,
                           pc.coalesce(pc.cast(pc.take(clusters[S.DUP_CLUSTER_SIZE], at), pa.int32()), pa.scalar(1, pa.int32())))
    parents = pc.unique(kept[S.PARENT_ID]).drop_null()
    kept = _with_context(kept, root.read_where(f"{PARENTS}/{platform}", PARENT_SCHEMA, S.NATIVE_ID, parents))
    kept = kept.select(S.EVENT_SCHEMA.names).cast(S.EVENT_SCHEMA)
    kept = kept.sort_by([(S.USER_ID, "ascending"), (S.TS, "ascending"), (S.EVENT_ID, "ascending")])
    profiles = root.read_where(f"{PROFILES}/{platform}", S.PROFILE_SCHEMA, S.USER_ID, pc.unique(kept[S.USER_ID]))
    profiles = _scrub_profiles(profiles.sort_by([(S.SOURCE_URI, "ascending"), (S.SOURCE_ROW, "ascending")]))
    users = build_users(kept, profiles, platform)
    name = f"{platform}/part-{bucket:04d}"
    root.write_parquet(RunLayout.events(name), kept)
    root.write_parquet(RunLayout.users(name), users)
    root.write_parquet(RunLayout.rejects("timeline", name), rejects)
    pstats: dict = {"kept": kept.num_rows, "users": users.num_rows, "rejected": {}}
    tally(pstats, rejects)
    return {"platforms": {platform: pstats}, "steps": {"timeline": {"rows": events.num_rows, "bytes": 0, "seconds": 0.0}}}
