"""Each duplicate cluster's kept copy, chosen in pieces no bigger than a partition.

A cluster's members are spread over the hash partitions of their ids, and a cluster can grow with the
corpus (templated posts chain into one component). So no step gathers a cluster: each member
partition sends, per root, only its best member and its member count to the root's partition
(`partial_bests`); there the partial bests give each cluster's kept copy and size, sent back to every
partition that holds members of it (`root_info`); each partition then marks its own members
(`mark_clusters`). Best is rank order: an earlier run's event (ids prefixed with "\\x00"), then the
highest quality (missing: -1), the earliest time (missing: 0), the smallest id; it is a total order,
so the best of partial bests is the cluster's best.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core import schema as S

OLD = "\x00"  # prefix of an earlier run's member ids (sorts first)
PARTIAL = pa.schema([pa.field("root", pa.string()), pa.field("member", pa.string()), pa.field(S.KEY, pa.uint64()),
                     pa.field(S.QUALITY, pa.float32()), pa.field(S.TS, S.TS_TYPE), pa.field("count", pa.int64()),
                     pa.field("part", pa.int64())])
ROOT_INFO = pa.schema([pa.field("root", pa.string()), pa.field("best", pa.string()), pa.field("best_key", pa.uint64()),
                       pa.field("size", pa.int64()), pa.field("part", pa.int64())])


def _first_per_root(t: pa.Table) -> pa.Table:
    """Each root's best row: rows sorted by root, then best first."""
    quality = t[S.QUALITY]
    rank = pa.table({
        "root": t["root"], "old": pc.starts_with(t["member"], OLD),
        "q": pc.fill_null(pc.if_else(pc.is_nan(quality), pa.scalar(None, quality.type), quality), -1.0),
        "ts": pc.fill_null(pc.cast(t[S.TS], pa.int64()), 0), "member": t["member"], "i": np.arange(t.num_rows)})
    order = rank.sort_by([("root", "ascending"), ("old", "descending"), ("q", "descending"), ("ts", "ascending"),
                          ("member", "ascending")])["i"]
    roots = t["root"].take(order)
    first = np.ones(len(roots), bool)
    if len(roots) > 1:
        first[1:] = pc.not_equal(roots.slice(1), roots.slice(0, len(roots) - 1)).to_numpy(zero_copy_only=False)
    return t.take(order.take(pa.array(np.flatnonzero(first))))


def partial_bests(labels: pa.Table, part: int) -> pa.Table:
    """Per root, the best of one partition's members (LABEL_INFO rows) and their count (PARTIAL)."""
    if labels.num_rows == 0:
        return PARTIAL.empty_table()
    best = _first_per_root(labels)
    counts = labels.group_by("root").aggregate([("member", "count")])
    n = pc.take(counts["member_count"], pc.index_in(best["root"], counts["root"]))
    return pa.table({"root": best["root"], "member": best["member"], S.KEY: best[S.KEY], S.QUALITY: best[S.QUALITY],
                     S.TS: best[S.TS], "count": n, "part": pa.array(np.full(best.num_rows, part, np.int64))},
                    schema=PARTIAL)


def root_info(partials: pa.Table) -> pa.Table:
    """Per (root, partition that sent a partial): the cluster's kept copy, its exact key and size (ROOT_INFO)."""
    if partials.num_rows == 0:
        return ROOT_INFO.empty_table()
    best = _first_per_root(partials)
    sizes = partials.group_by("root").aggregate([("count", "sum")])
    at_best = pc.index_in(partials["root"], best["root"])
    at_size = pc.index_in(partials["root"], sizes["root"])
    return pa.table({"root": partials["root"], "best": pc.take(best["member"], at_best),
                     "best_key": pc.take(best[S.KEY], at_best), "size": pc.take(sizes["count_sum"], at_size),
                     "part": partials["part"]}, schema=ROOT_INFO)


def mark_clusters(labels: pa.Table, roots: pa.Table) -> tuple[pa.Table, dict]:
    """One partition's members (LABEL_INFO) with their cluster (ROOT_INFO rows of their roots): CLUSTER_SCHEMA
    rows of this run's members (an earlier run's members are left out), by event id; and the counts of
    exact and near duplicates marked."""
    at = pc.index_in(labels["root"], roots["root"])
    if labels.num_rows and pc.any(pc.is_null(at)).as_py():
        raise ValueError("dedup: a member's root has no cluster info; delete the curate-dedup-cc-* and "
                         "curate-dedup-cluster markers and rerun")
    best, best_key, size = (pc.take(roots[c], at) for c in ("best", "best_key", "size"))
    member, key = labels["member"], labels[S.KEY]
    exact = pc.fill_null(pc.equal(key, best_key), False)
    reason = pc.if_else(pc.equal(member, best), pa.scalar(None, pa.string()),
                        pc.if_else(exact, "exact_duplicate", "near_duplicate"))
    new = pc.invert(pc.starts_with(member, OLD))
    out = pa.table({S.EVENT_ID: member, S.DUP_CLUSTER: pc.utf8_ltrim(best, OLD),
                    S.DUP_CLUSTER_SIZE: pc.cast(size, pa.int32()), S.REASON: reason}, schema=S.CLUSTER_SCHEMA).filter(new)
    reasons = out[S.REASON]
    counts = {"exact_duplicate": int(pc.sum(pc.equal(reasons, "exact_duplicate")).as_py() or 0),
              "near_duplicate": int(pc.sum(pc.equal(reasons, "near_duplicate")).as_py() or 0)}
    return out.sort_by([(S.EVENT_ID, "ascending")]), counts
