"""Distributed exact + MinHash-LSH deduplication, as steps of the curate stage.

Layout under the run root, per platform (scope corpus = within a platform; scope user = within a user):
  dedup_index/<platform>/p=NNNN/<shard>.parquet   band rows (band, key, event_id[, sig]) hash-partitioned
                                                  by key; band -1 is the exact key; with verify, every LSH
                                                  band row carries its text's b-bit signature (`sig`,
                                                  fixed-size binary). Written by step 1 (read).
                                                  It is also the index a later run deduplicates against.
  _work/curate/dedup/<platform>/...               exact edges and secondaries, near edges per pass
  _work/curate/dedup/<platform>/members/p=NNNN/<shard>.parquet  every event's quality, time and exact key,
                                                  by the hash partition of its id (step 1), for the
                                                  kept-copy choice
  _work/curate/dedup/<platform>/cc/r<k>/<q>/...    round k's directed edges, by the partition q of their first node
  _work/curate/dedup/<platform>/cc/members/<q>.parquet  member -> component root, with the member's quality,
                                                  time and exact key, for the members of partition q
  _work/curate/dedup/<platform>/cc/partials/<r>/... per root: partition q's best member and count, by the
                                                  partition r of the root
  _work/curate/dedup/<platform>/cc/roots/<q>/...  per root: the cluster's kept copy and size, sent to each
                                                  partition q that holds members of it
  _work/curate/dedup/<platform>/clusters/<q>.parquet  every event in a duplicate cluster: cluster id, size,
                                                  reason, by the partition q of the event

Steps (each a list of shards with completion markers):
  exact   one task per partition: rows with equal exact keys are chained (k copies -> k-1 edges)
  near    one task per (pass, partition): the bands of that pass only (bounded memory), exact
          secondaries left out; rows with equal band keys are candidates: with verify, a member is
          linked to its bucket's head only when their signatures' estimated Jaccard reaches the
          threshold (the signatures are on the rows, so pairs are verified where they are formed);
          without, the bucket is chained; huge buckets capped
  cluster connected components over the edges (only edges travel, never signatures) in rounds of one
          task per (platform, partition) (`processing.components`: large-star / small-star until the
          graph is a forest of stars), then each cluster's kept copy (the earlier run's event, else
          highest quality, earliest, smallest id) from partial bests per member partition, combined in
          the root's partition and sent back (`processing.kept_copy`), so no task gathers a cluster.
          A round's task holds a chunk of its partition's edges and a row per node; a member's quality,
          time and exact key join its label in the member's partition, so no task reads a platform's
          events or index
"""
from __future__ import annotations

import functools
import logging
import posixpath

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core import schema as S
from core.layout import RunLayout
from core.storage import PARQUET_COMPRESSION, ParquetShardWriter, RunRoot
from processing.components import (
    DIRECTED,
    LABELS,
    U,
    by_partition,
    components,
    directed,
    local_stars,
    neighbourhoods,
    round_bound,
    split_by,
    star_edges,
    star_labels,
    unsettled,
)
from processing.dedup import (
    band_keys,
    chain_edges,
    exact_keys,
    pack_signatures,
    scope_salt,
    signatures,
    verified_edges,
)
from processing.kept_copy import OLD, PARTIAL, ROOT_INFO, mark_clusters, partial_bests, root_info
from processing.settings import DedupConfig
from processing.words import words

log = logging.getLogger(__name__)
WORK = RunLayout.curate_work("dedup")
EDGE_SCHEMA = pa.schema([pa.field("a", pa.string()), pa.field("b", pa.string())])
PARAM_KEYS = ("scope", "num_perm", "bands", "rows", "shingle_size", "short_texts", "char_ngram", "seed",
              "num_partitions", "verify", "signature_bits")
SIG = "sig"  # the b-bit signature column of the band rows (with verify)
# LZ4 for the signatures: within 2% of zstd's size on them, a third less CPU to write, 2.5x faster to read
INDEX_COMPRESSION = {**{c: PARQUET_COMPRESSION for c in S.DEDUP_ROW_SCHEMA.names}, SIG: "lz4"}
MEMBER_SCHEMA = pa.schema([pa.field(S.EVENT_ID, pa.string()), pa.field(S.QUALITY, pa.float32()),
                           pa.field(S.TS, S.TS_TYPE), pa.field(S.KEY, pa.uint64())])
LABEL_INFO = pa.schema([*LABELS, *MEMBER_SCHEMA.remove(0)])  # member -> root, with the member's MEMBER_SCHEMA


NORMALIZATION_VERSION = 2  # bump when `words.words` changes: older indexes then no longer match


def index_params(cfg: DedupConfig) -> dict:
    """The settings two runs must share for one to deduplicate against the other's index."""
    return {**{k: getattr(cfg, k) for k in PARAM_KEYS}, "normalization": NORMALIZATION_VERSION}


def row_schema(cfg: DedupConfig) -> pa.Schema:
    """Columns of the index rows: S.DEDUP_ROW_SCHEMA, plus the signature with verify."""
    if cfg.near and cfg.verify:
        return S.DEDUP_ROW_SCHEMA.append(pa.field(SIG, pa.binary(cfg.num_perm * cfg.signature_bits // 8)))
    return S.DEDUP_ROW_SCHEMA


def group_order(part: np.ndarray, passes: np.ndarray) -> np.ndarray:
    """The stable order of rows by (part, pass): numpy's radix sort on one 16-bit key when both fit."""
    span = int(passes.max()) + 2 if len(passes) else 1  # passes run from -1
    if len(part) and (int(part.max()) + 1) * span <= 1 << 16:
        return np.argsort(part.astype(np.uint16) * np.uint16(span) + (passes + 1).astype(np.uint16), kind="stable")
    return np.lexsort((passes, part))


def dedup_rows(events: pa.Table, cfg: DedupConfig) -> pa.Table:
    """Band rows of a batch of events: one exact row (band -1) and one row per LSH band for texts
    long enough to shingle, with a `part` column (key mod num_partitions) and a `pass` column (band //
    bands_per_pass; -1 for exact rows) for the writer, sorted by (part, pass). With verify, the band
    rows carry their text's b-bit signature (`sig`; null on exact rows)."""
    schema = row_schema(cfg)
    if events.num_rows == 0:
        return pa.schema([pa.field("part", pa.int32()), pa.field("pass", pa.int16()), *schema]).empty_table()
    text = pc.binary_join_element_wise(pc.fill_null(events[S.TITLE], ""), pc.fill_null(events[S.TEXT], ""), "\n")
    norm = words(text)
    salt = scope_salt(events[S.USER_ID].to_pylist() if cfg.scope == "user" else None, len(norm))
    verify = SIG in schema.names
    bands, keys, event_of, sig_of = [], [], [], []  # per row: band, key, event index, signature index (-1: none)
    if cfg.exact:
        ek = exact_keys(norm, salt)
        nz = np.flatnonzero(ek)
        bands.append(np.full(len(nz), -1, np.int16))
        keys.append(ek[nz])
        event_of.append(nz)
        sig_of.append(np.full(len(nz), -1, np.int64))
    sig = None
    if cfg.near:
        sig, has = signatures(norm, cfg)
        idx = np.flatnonzero(has)
        sig = sig[idx]
        bands.append(np.tile(np.arange(cfg.bands, dtype=np.int16), len(idx)))
        keys.append(band_keys(sig, cfg, salt[idx]).reshape(-1))  # (n, bands), row-major
        event_of.append(np.repeat(idx, cfg.bands))
        sig_of.append(np.repeat(np.arange(len(idx)), cfg.bands))
    band = np.concatenate(bands) if bands else np.zeros(0, np.int16)
    key = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
    part = (key % np.uint64(cfg.num_partitions)).astype(np.int32)
    passes = np.where(band >= 0, band // cfg.bands_per_pass, -1).astype(np.int16)
    order = group_order(part, passes)  # stable: a batch's rows of one (part, pass) stay in event order
    out = {"part": part[order], "pass": passes[order], S.BAND: band[order], S.KEY: key[order],
           S.EVENT_ID: events[S.EVENT_ID].take(pa.array(np.concatenate(event_of)[order] if event_of else [], pa.int64()))}
    if verify:
        rows = np.concatenate(sig_of)[order] if sig_of else np.zeros(0, np.int64)
        out[SIG] = pack_signatures(sig if sig is not None else np.zeros((0, cfg.num_perm), np.uint32),
                                   cfg.signature_bits, rows)
    return pa.table(out)


def members_path(platform: str, part: int, shard: str | None = None) -> str:
    """Where step 1 writes its events' MEMBER_SCHEMA rows of one hash partition (a folder without `shard`)."""
    return f"{WORK}/{platform}/members/p={part:04d}" + (f"/{shard}.parquet" if shard else "")


def member_rows(events: pa.Table, rows: pa.Table, n: int) -> dict[int, pa.Table]:
    """Each event's quality, time and exact key (from its `dedup_rows` rows; null without one), split by
    the hash partition of its id over `n`, as the components' rounds partition their nodes."""
    exact = rows.filter(pc.equal(rows[S.BAND], -1))
    keys = pc.take(exact[S.KEY], pc.index_in(events[S.EVENT_ID], exact[S.EVENT_ID]))
    table = pa.table({S.EVENT_ID: events[S.EVENT_ID], S.QUALITY: events[S.QUALITY], S.TS: events[S.TS], S.KEY: keys},
                     schema=MEMBER_SCHEMA)
    return by_partition(table, S.EVENT_ID, n)


def _with_member_info(labels: pa.Table, platform: str, part: int, cfg: DedupConfig, layout: RunLayout) -> pa.Table:
    """Labels of the members in hash partition `part`, with each member's MEMBER_SCHEMA columns (an
    earlier run's members: only their exact key, from that run's index)."""
    root = layout.root
    rel = members_path(platform, part)
    if labels.num_rows and not root.exists(rel):
        raise FileNotFoundError(f"dedup: {root.uri_of(rel)} is missing: this run's step 1 (curate-read) was written "
                                "by an older version; rerun the curate stage with --restart")
    info = root.read_parquet(rel, schema=MEMBER_SCHEMA)
    old = pc.starts_with(labels["member"], OLD)
    old_ids = pc.utf8_slice_codeunits(labels["member"].filter(old), 1)
    for r in cfg.previous_runs if len(old_ids) else ():  # an earlier run's members: their exact keys from its index
        rows = layout.at(r).read_parquet(RunLayout.dedup_index(platform), schema=row_schema(cfg),
                                         filters=(pc.field(S.BAND) == -1) & pc.field(S.EVENT_ID).isin(old_ids),
                                         columns=[S.KEY, S.EVENT_ID])
        info = pa.concat_tables([info, pa.table({S.EVENT_ID: pc.binary_join_element_wise(OLD, rows[S.EVENT_ID], ""),
                                                 S.QUALITY: pa.nulls(rows.num_rows, pa.float32()),
                                                 S.TS: pa.nulls(rows.num_rows, S.TS_TYPE), S.KEY: rows[S.KEY]},
                                                schema=MEMBER_SCHEMA)])
    at = pc.index_in(labels["member"], info[S.EVENT_ID])
    return pa.table([labels["member"], labels["root"], *(pc.take(info[c], at) for c in MEMBER_SCHEMA.names[1:])],
                    schema=LABEL_INFO)


class DedupRowWriter:
    """Step-1 side output: a shard's band rows, one file per hash partition.

    Each batch's rows of one pass (the exact rows, or the bands one near task reads) are written as
    their own row group, so a task's band filter skips the other passes' row groups by their
    statistics: a near task decodes only its own bands' signatures.
    """

    def __init__(self, root: RunRoot, platform: str, shard: str):
        self.root, self.platform, self.shard = root, platform, shard
        self.writers: dict[int, ParquetShardWriter] = {}

    def write(self, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        parts = rows["part"].to_numpy()
        passes = rows["pass"].to_numpy() if "pass" in rows.column_names else np.zeros(len(parts), np.int16)
        if len(parts) and (np.diff(parts.astype(np.int64) * (1 << 16) + passes) < 0).any():  # dedup_rows' are sorted
            order = group_order(parts, passes)
            rows, parts, passes = rows.take(pa.array(order)), parts[order], passes[order]
        bounds = np.flatnonzero((np.diff(parts) != 0) | (np.diff(passes) != 0)) + 1
        for lo, hi in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(parts)]])):
            p = int(parts[lo])
            if p not in self.writers:  # the index columns are the rows' (the signature too, with verify)
                schema = pa.schema([f for f in rows.schema if f.name not in ("part", "pass")])
                self.writers[p] = ParquetShardWriter(  # keys and signatures are distinct: no dictionary
                    self.root, RunLayout.dedup_index(self.platform, p, self.shard), schema,
                    use_dictionary=[S.BAND, S.EVENT_ID], compression=INDEX_COMPRESSION)
            self.writers[p].write(rows.slice(lo, hi - lo))

    def close(self) -> None:
        for w in self.writers.values():
            w.close()


def _read_rows(layout: RunLayout, platform: str, part: int, bands: tuple[int, int], cfg: DedupConfig,
               columns: list[str] | None = None) -> pa.Table:
    """Band rows of one partition and band range, this run's and the earlier runs' (flag `old`)."""
    flt = (pc.field(S.BAND) >= bands[0]) & (pc.field(S.BAND) < bands[1])
    tables = []
    for i, r in enumerate((layout.root.uri, *cfg.previous_runs)):
        rr = layout.at(r)
        t = rr.read_parquet(RunLayout.dedup_index(platform, part), filters=flt, schema=row_schema(cfg), columns=columns)
        if i > 0:  # an earlier run: only its kept copies count
            clusters = load_clusters(rr, platform)
            gone = clusters.filter(pc.is_valid(clusters[S.REASON]))[S.EVENT_ID]
            t = t.filter(pc.invert(pc.is_in(t[S.EVENT_ID], gone)))
        tables.append(t.append_column("old", pa.array([i > 0] * t.num_rows, pa.bool_())))
    return pa.concat_tables(tables)


def _member_ids(t: pa.Table) -> pa.Array | pa.ChunkedArray:
    """Old (earlier-run) ids are prefixed with a marker that sorts first, so chains start at them."""
    if not pc.any(t["old"]).as_py():
        return t[S.EVENT_ID]
    return pc.if_else(t["old"], pc.binary_join_element_wise("\x00", t[S.EVENT_ID], ""), t[S.EVENT_ID])


def exact_step(task: dict, cfg: DedupConfig, layout: RunLayout) -> dict:
    """Chain the rows of each exact key in one partition (written as stars: `local_stars`); record every
    copy but the first as secondary."""
    root = layout.root
    platform, part = task["platform"], task["part"]
    rows = _read_rows(layout, platform, part, (-1, 0), cfg, columns=[S.BAND, S.KEY, S.EVENT_ID])
    edges, _ = chain_edges(rows[S.KEY], _member_ids(rows), cap=1 << 62)
    root.write_parquet(f"{WORK}/{platform}/edges/exact-{part:04d}.parquet", local_stars(edges))
    secondary = pc.unique(edges["b"])
    root.write_parquet(f"{WORK}/{platform}/secondary/{part:04d}.parquet", pa.table({S.EVENT_ID: secondary}))
    return {"dedup": {platform: {"exact_edges": edges.num_rows}}}


def near_step(task: dict, cfg: DedupConfig, layout: RunLayout) -> dict:
    """Link the rows of each (band, key) bucket for the bands of one pass in one partition: verified
    pairs (estimated Jaccard >= threshold, from the signatures on the rows) with verify, else a chain;
    the links are written as the stars of their components (`local_stars`)."""
    root = layout.root
    platform, part, lo, hi = task["platform"], task["part"], task["band_lo"], task["band_hi"]
    rows = _read_rows(layout, platform, part, (lo, hi), cfg)
    secondary = root.read_parquet(f"{WORK}/{platform}/secondary", schema=pa.schema([pa.field(S.EVENT_ID, pa.string())]))
    members = _member_ids(rows)
    skip = pc.is_in(members, secondary[S.EVENT_ID]).to_numpy(zero_copy_only=False)
    # Band keys are seeded with their band number, so the key alone identifies a (band, bucket).
    if cfg.verify:
        edges, counts = verified_edges(rows[S.KEY], members, rows[SIG], cfg.threshold, cfg.signature_bits,
                                       cfg.max_bucket_size, skip=skip)
    else:
        edges, skipped = chain_edges(rows[S.KEY].filter(pa.array(~skip)), members.filter(pa.array(~skip)), cfg.max_bucket_size)
        counts = {"capped_bucket_members": skipped}
    out = local_stars(edges)  # the task's components as stars: fewer edges, fewer rounds
    root.write_parquet(f"{WORK}/{platform}/edges/near-{lo:03d}-{part:04d}.parquet", out)
    return {"dedup": {platform: {"near_edges": out.num_rows, **counts}}}


def _cc(platform: str, *parts: str) -> str:
    return "/".join((f"{WORK}/{platform}/cc", *parts))


def cc_local_step(task: dict, cfg: DedupConfig, layout: RunLayout) -> dict:
    """A run with one partition: the platform's components in this one task (every round in memory),
    then its clusters."""
    root, platform = layout.root, task["platform"]
    edges = root.read_parquet(f"{WORK}/{platform}/edges", schema=EDGE_SCHEMA)
    labels, rounds = components(edges)
    labels = _with_member_info(labels, platform, 0, cfg, layout)
    roots = root_info(partial_bests(labels, 0))
    stats = _write_clusters(root, platform, 0, labels, roots)
    stats["dedup"][platform]["clusters"] = roots.num_rows
    return {**stats, "cc": {platform: {"rounds": rounds}}}


def cc_split_step(task: dict, cfg: DedupConfig, layout: RunLayout) -> dict:
    """Round 0's input from one edge file: both directions of each edge, by the partition of the first node."""
    root, platform = layout.root, task["platform"]
    edges = root.read_parquet(task["file"], schema=EDGE_SCHEMA)
    for q, part in by_partition(directed(edges), U, cfg.num_partitions).items():
        root.write_parquet(_cc(platform, "r00", f"{q:04d}", f"{task['name']}.parquet"), part)
    return {"cc": {platform: {"edges": edges.num_rows}}}


def cc_round_step(task: dict, cfg: DedupConfig, layout: RunLayout) -> dict:
    """One large-star (even rounds) or small-star round over one partition, read in chunks (the
    neighbourhoods first, then each chunk's output, a file per chunk and next partition: one for most
    partitions); the output, by partition, is the next round's input. Reports the partition's unsettled
    nodes (0 everywhere: stop)."""
    root, platform, k, q = layout.root, task["platform"], task["round"], task["part"]
    src = _cc(platform, f"r{k:02d}", f"{q:04d}")
    hood = neighbourhoods(root.iter_parquet(src, DIRECTED))
    for i, chunk in enumerate(root.iter_parquet(src, DIRECTED)):
        out = star_edges(chunk, hood, large=k % 2 == 0, own_nodes=i == 0)
        for q2, part in by_partition(directed(out), U, cfg.num_partitions).items():
            root.write_parquet(_cc(platform, f"r{k + 1:02d}", f"{q2:04d}", f"from-{q:04d}-{i:04d}.parquet"), part)
    return {"cc": {platform: {"unsettled": unsettled(hood)}}}


def cc_labels_step(task: dict, cfg: DedupConfig, layout: RunLayout) -> dict:
    """Member -> root for one partition of the final round's forest of stars, with the members' quality,
    time and exact key (from the same partition of step 1's member rows), kept in the partition; each
    root's best member here and count go to the root's partition."""
    root, platform, k, q = layout.root, task["platform"], task["round"], task["part"]
    labels = star_labels(neighbourhoods(root.iter_parquet(_cc(platform, f"r{k:02d}", f"{q:04d}"), DIRECTED)))
    labels = _with_member_info(labels, platform, q, cfg, layout)
    root.write_parquet(_cc(platform, "members", f"{q:04d}.parquet"), labels)
    for r, part in by_partition(partial_bests(labels, q), "root", cfg.num_partitions).items():
        root.write_parquet(_cc(platform, "partials", f"{r:04d}", f"from-{q:04d}.parquet"), part)
    return {}


def cc_roots_step(task: dict, cfg: DedupConfig, layout: RunLayout) -> dict:
    """The clusters whose root is in one partition: kept copy and size from the partial bests, sent to
    each partition that holds members of them."""
    root, platform, r = layout.root, task["platform"], task["part"]
    info = root_info(root.read_parquet(_cc(platform, "partials", f"{r:04d}"), schema=PARTIAL))
    for q, part in split_by(info, info["part"].to_numpy()).items():
        root.write_parquet(_cc(platform, "roots", f"{q:04d}", f"from-{r:04d}.parquet"), part)
    return {"dedup": {platform: {"clusters": len(pc.unique(info["root"]))}}}


def cluster_step(task: dict, cfg: DedupConfig, layout: RunLayout) -> dict:
    """Mark one partition's cluster members: kept copy (reason null), exact or near duplicate."""
    root, platform, q = layout.root, task["platform"], task["part"]
    labels = root.read_parquet(_cc(platform, "members", f"{q:04d}.parquet"), schema=LABEL_INFO)
    roots = root.read_parquet(_cc(platform, "roots", f"{q:04d}"), schema=ROOT_INFO)
    return _write_clusters(root, platform, q, labels, roots)


def _write_clusters(root: RunRoot, platform: str, part: int, labels: pa.Table, roots: pa.Table) -> dict:
    clusters, counts = mark_clusters(labels, roots)
    root.write_parquet(f"{WORK}/{platform}/clusters/{part:04d}.parquet", clusters)
    return {"dedup": {platform: counts}}


def dedup_tasks(platforms: list[str], cfg: DedupConfig, base: dict) -> tuple[list[dict], list[dict]]:
    """Shard lists of the exact and near steps."""
    parts = range(cfg.num_partitions)
    exact = [{**base, "shard": f"{p}-{i:04d}", "platform": p, "part": i} for p in platforms for i in parts]
    near = [{**base, "shard": f"{p}-{lo:03d}-{i:04d}", "platform": p, "part": i, "band_lo": lo,
             "band_hi": min(lo + cfg.bands_per_pass, cfg.bands)}
            for p in platforms for lo in range(0, cfg.bands, cfg.bands_per_pass) for i in parts] if cfg.near else []
    return exact, near


def cluster_steps(platforms: list[str], cfg: DedupConfig, layout: RunLayout, base: dict,
                  run) -> tuple[dict[str, dict], dict]:
    """Connected components in rounds, then the cluster step; each step through `run(name, tasks, fn)`
    (run_shards: a rerun skips the finished shards of every round). Returns ({step name: {shard: stats}}
    with the rounds' own bookkeeping under "cc", stats to merge: the rounds per platform)."""
    steps: dict[str, dict] = {}

    def step(name: str, tasks: list[dict], fn) -> dict:
        steps[name] = run(name, tasks, functools.partial(fn, cfg=cfg, layout=layout))
        return steps[name]

    if cfg.num_partitions == 1:  # one task per platform: every round in it, then its clusters
        out = step("curate-dedup-cluster", [{**base, "shard": p, "platform": p} for p in platforms], cc_local_step)
        rounds = {p: c["rounds"] for s in out.values() for p, c in s["cc"].items()}
    else:
        rounds = _partitioned_rounds(platforms, cfg, layout, base, step)
        step("curate-dedup-cluster", [{**base, "shard": f"{p}-{r:04d}", "platform": p, "part": r}
                                      for p in platforms for r in range(cfg.num_partitions)], cluster_step)
    for p in platforms:
        c = {k_: sum(s.get("dedup", {}).get(p, {}).get(k_, 0) for out in steps.values() for s in out.values())
             for k_ in ("clusters", "exact_duplicate", "near_duplicate")}
        log.info("dedup %s: %d clusters (components in %d rounds), %d exact and %d near duplicates removed", p,
                 c["clusters"], rounds[p], c["exact_duplicate"], c["near_duplicate"])
    return steps, {"dedup": {p: {"components_rounds": rounds[p]} for p in platforms}}


def _partitioned_rounds(platforms: list[str], cfg: DedupConfig, layout: RunLayout, base: dict, step) -> dict[str, int]:
    """Split the edges by partition, run rounds until every platform's graph is a forest of stars, and
    write each platform's labels, then its clusters' kept copies and sizes (`processing.kept_copy`);
    returns the rounds per platform."""
    parts = range(cfg.num_partitions)
    split = [{**base, "shard": f"{p}-{posixpath.basename(f).removesuffix('.parquet')}", "platform": p, "file": f,
              "name": posixpath.basename(f).removesuffix(".parquet")}
             for p in platforms for f in layout.root.list(f"{WORK}/{p}/edges", ".parquet")]
    n_edges = {p: 0 for p in platforms}
    for s in step("curate-dedup-cc-split", split, cc_split_step).values():
        for p, c in s.get("cc", {}).items():
            n_edges[p] += c["edges"]
    final: dict[str, int] = {}
    pending, k = list(platforms), 0
    while pending:
        bound = max(round_bound(n_edges[p]) for p in pending)
        if k >= bound:
            raise RuntimeError(f"dedup: connected components of {pending} not settled after {k} rounds (bound "
                               f"{bound}); delete {WORK}/<platform>/cc and the curate-dedup-cc-* markers to redo them")
        tasks = [{**base, "shard": f"{p}-{q:04d}", "platform": p, "round": k, "part": q} for p in pending for q in parts]
        unsettled = {p: 0 for p in pending}
        for s in step(f"curate-dedup-cc-r{k:02d}", tasks, cc_round_step).values():
            for p, c in s["cc"].items():
                unsettled[p] += c["unsettled"]
        log.info("dedup components round %d (%s-star), nodes unsettled: %s (bound %s rounds)", k,
                 "large" if k % 2 == 0 else "small", ", ".join(f"{p} {n}" for p, n in unsettled.items()),
                 ", ".join(f"{p} {round_bound(n_edges[p])}" for p in pending))
        final.update({p: k for p, n in unsettled.items() if not n})
        pending, k = [p for p in pending if p not in final], k + 1
    step("curate-dedup-cc-labels", [{**base, "shard": f"{p}-{q:04d}", "platform": p, "round": final[p], "part": q}
                                    for p in platforms for q in parts], cc_labels_step)
    step("curate-dedup-cc-roots", [{**base, "shard": f"{p}-{r:04d}", "platform": p, "part": r}
                                   for p in platforms for r in parts], cc_roots_step)
    return {p: k_ + 1 for p, k_ in final.items()}


def load_clusters(root: RunRoot, platform: str, ids: pa.Array | pa.ChunkedArray | None = None) -> pa.Table:
    """The events of the platform's duplicate clusters (kept copies with reason null; with `ids`, only
    those events, read in batches), by event id."""
    rel = f"{WORK}/{platform}/clusters"
    if not root.exists(rel) and root.exists(f"{rel}.parquet"):  # a run root from before the partitioned clusters
        rel += ".parquet"
    clusters = root.read_parquet(rel, schema=S.CLUSTER_SCHEMA) if ids is None else \
        root.read_where(rel, S.CLUSTER_SCHEMA, S.EVENT_ID, ids)
    return clusters.sort_by([(S.EVENT_ID, "ascending")])
