"""The kept copy of each duplicate cluster, chosen from partial bests over member partitions, equals a
whole-cluster choice (rank order as documented), whatever the number of partitions."""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from core import schema as S
from processing.components import partition_of, split_by
from processing.dedup_stage import LABEL_INFO
from processing.kept_copy import OLD, mark_clusters, partial_bests, root_info


def labels_table(rng: np.random.Generator, n: int = 400) -> pa.Table:
    members = [f"{OLD}o{i:03d}" if i % 37 == 0 else f"e{i:04d}" for i in range(n)]
    roots = [members[int(rng.integers(0, 12)) * 7 % n] for _ in range(n)]  # a few big clusters and some small ones
    quality = [None if i % 11 == 0 else (math.nan if i % 13 == 0 else float(rng.integers(0, 4)) / 4) for i in range(n)]
    ts = [None if i % 17 == 0 else int(rng.integers(0, 5)) * 1_000_000 for i in range(n)]
    keys = [None if i % 5 == 0 else int(rng.integers(0, 3)) for i in range(n)]
    return pa.table({"member": members, "root": roots, S.QUALITY: pa.array(quality, pa.float32()),
                     S.TS: pa.array(ts, pa.int64()).cast(S.TS_TYPE), S.KEY: pa.array(keys, pa.uint64())},
                    schema=LABEL_INFO)


def whole_cluster_choice(labels: pa.Table) -> dict[str, tuple]:
    """event -> (cluster, size, reason), each cluster gathered in one place: the reference."""
    rows = labels.to_pylist()
    by_root: dict[str, list[dict]] = {}
    for r in rows:
        by_root.setdefault(r["root"], []).append(r)

    def rank(r: dict) -> tuple:
        q = r[S.QUALITY]
        q = -1.0 if q is None or math.isnan(q) else q
        ts = r[S.TS].timestamp() if r[S.TS] is not None else 0
        return (not r["member"].startswith(OLD), -q, ts, r["member"])

    out = {}
    for group in by_root.values():
        best = min(group, key=rank)
        for r in group:
            if r["member"].startswith(OLD):
                continue
            reason = None if r is best else (
                "exact_duplicate" if r[S.KEY] is not None and r[S.KEY] == best[S.KEY] else "near_duplicate")
            out[r["member"]] = (best["member"].lstrip(OLD), len(group), reason)
    return out


@pytest.mark.parametrize("n_parts", [1, 2, 5])
def test_partial_bests_give_the_whole_cluster_choice(n_parts):
    labels = labels_table(np.random.default_rng(n_parts))
    parts = split_by(labels, partition_of(labels["member"], n_parts))
    partials = [partial_bests(t, q) for q, t in parts.items()]
    # each root's partition combines the partials it receives; each member partition gets its roots' info
    combined = pa.concat_tables(partials)
    by_root = split_by(combined, partition_of(combined["root"], n_parts))
    info = pa.concat_tables([root_info(t) for t in by_root.values()])
    got, counts = {}, {"exact_duplicate": 0, "near_duplicate": 0}
    for q, t in parts.items():
        clusters, c = mark_clusters(t, info.filter(pc.equal(info["part"], q)))
        assert clusters[S.EVENT_ID].to_pylist() == sorted(clusters[S.EVENT_ID].to_pylist())
        got.update({r[S.EVENT_ID]: (r[S.DUP_CLUSTER], r[S.DUP_CLUSTER_SIZE], r[S.REASON]) for r in clusters.to_pylist()})
        counts = {k: counts[k] + c[k] for k in counts}
    want = whole_cluster_choice(labels)
    assert got == want
    reasons = [v[2] for v in want.values()]
    assert counts == {"exact_duplicate": reasons.count("exact_duplicate"), "near_duplicate": reasons.count("near_duplicate")}
    assert counts["exact_duplicate"] > 0 and counts["near_duplicate"] > 0
    assert any(c.startswith("o") for c, _, _ in want.values())  # an earlier run's event kept for some cluster


def test_a_member_without_cluster_info_is_an_error():
    labels = labels_table(np.random.default_rng(0), 20)
    with pytest.raises(ValueError, match="no cluster info"):
        mark_clusters(labels, root_info(partial_bests(labels.slice(0, 5), 0)).slice(0, 0))
