"""The whole curate stage: plan shards from the configured inputs, run the three steps (read,
decide, timeline) with completion markers, and write stats.json with the funnel."""
from __future__ import annotations

import functools
import logging
import math
import time
from typing import TYPE_CHECKING

from core import schema as S
from core.layout import RunLayout
from core.shards import fingerprint, funnel_table, merge_stats, run_shards, StageMarkers
from core.storage import expand_glob, file_size, RunRoot
from processing.curate import curate_file, shard_id
from processing.dedup import s_curve_text
from processing.dedup_stage import cluster_steps, dedup_tasks, exact_step, index_params, near_step
from processing.decide import decide_steps
from processing.timelines import timeline

if TYPE_CHECKING:  # the composed config imports every stage's settings
    from ray_jobs.config import PipelineConfig

log = logging.getLogger(__name__)
STAGE = "curate"


def resolve_sizes(cfg: PipelineConfig, tasks: list[dict]) -> PipelineConfig:
    """Replace `auto` bucket and partition counts by numbers sized to the input (compressed bytes)."""
    cur = cfg.curate
    if "auto" not in (cur.num_user_buckets, cur.join_partitions, cur.dedup.num_partitions):
        return cfg
    total_mb = sum(file_size(t["uri"], cfg.storage) for t in tasks) / 2**20
    buckets = cur.num_user_buckets
    if buckets == "auto":
        buckets = max(1, min(4096, math.ceil(total_mb / cur.bucket_mb)))
    joins = cur.join_partitions
    if joins == "auto":
        joins = max(1, min(4096, math.ceil(total_mb / cur.join_mb)))
    parts = cur.dedup.num_partitions
    if parts == "auto":
        prev = cur.dedup.previous_runs
        parts = (RunRoot(prev[0], cfg.storage).read_json(RunLayout.dedup_params())["num_partitions"] if prev
                 else max(1, min(65536, math.ceil(total_mb / cur.dedup.partition_mb))))
    log.info("curate: %.0f MB of input -> %d user buckets, %d join partitions, %d dedup partitions", total_mb,
             buckets, joins, parts)
    dedup = cur.dedup.model_copy(update={"num_partitions": parts})
    return cfg.model_copy(update={"curate": cur.model_copy(update={"num_user_buckets": buckets, "join_partitions": joins,
                                                                   "dedup": dedup})})


def plan_inputs(cfg: PipelineConfig) -> list[dict]:
    """One task per input file (sorted, de-duplicated); an input matching no file is an error."""
    tasks, seen = [], set()
    for spec in cfg.curate.inputs:
        files = expand_glob(spec.path, cfg.storage)
        if not files:
            raise FileNotFoundError(f"curate.inputs: `{spec.path}` matches no file; check the path "
                                    f"(local paths are relative to {__import__('os').getcwd()})")
        for uri in files:
            if uri not in seen:
                seen.add(uri)
                tasks.append({"shard": shard_id(uri), "uri": uri, "format": spec.format})
    return tasks


def check_index_params(layout: RunLayout, cfg: PipelineConfig) -> None:
    """Record this run's dedup index settings; earlier runs to deduplicate against must match them."""
    params = index_params(cfg.curate.dedup)
    layout.root.write_json(layout.dedup_params(), params)
    for prev in cfg.curate.dedup.previous_runs:
        other = layout.at(prev)
        if not other.exists(layout.dedup_params()):
            raise FileNotFoundError(f"curate.dedup.previous_runs: {prev} has no {layout.dedup_params()} "
                                    "(not a curate run?)")
        theirs = other.read_json(layout.dedup_params())
        if theirs != params:
            diff = {k: (theirs.get(k), v) for k, v in params.items() if theirs.get(k) != v}
            raise ValueError(f"curate.dedup.previous_runs: {prev} was indexed with other settings {diff} "
                             "(theirs, ours); use the same dedup settings")


def check_accounting(stats: dict) -> list[str]:
    """Every read record is kept or rejected: return the platforms where that does not add up."""
    bad = []
    for platform, p in stats.get("platforms", {}).items():
        rejected = sum(n for step in p.get("rejected", {}).values() for n in step.values())
        if p.get("read", 0) != p.get("kept", 0) + rejected:
            bad.append(f"{platform}: read {p.get('read', 0)} != kept {p.get('kept', 0)} + rejected {rejected}")
    return bad


def run(cfg: PipelineConfig, layout: RunLayout | None = None, *, use_ray: bool = True, restart: bool = False) -> dict:
    """Run (or resume) the curate stage under the run root; return the stats written to stats.json."""
    t0 = time.perf_counter()
    layout = layout or cfg.layout()
    root = layout.root
    markers = StageMarkers(root, STAGE)
    if restart:
        for d in layout.curate_outputs():
            root.delete(d)
    tasks = plan_inputs(cfg)
    cfg = resolve_sizes(cfg, tasks)
    markers.check_config(fingerprint(cfg.curate.model_dump(mode="json")))
    base = {"n_buckets": cfg.curate.num_user_buckets}
    salt = cfg.user_salt()
    log.info("curate: %d input files -> %s", len(tasks), root.uri)

    walls: dict[str, float] = {}  # each step's wall seconds in this invocation (where a scale-out loses time)

    def timed(step: str, step_tasks: list[dict], fn) -> dict:
        t = time.perf_counter()
        out = run_shards(root, step, step_tasks, fn, use_ray=use_ray)
        walls[step] = round(time.perf_counter() - t, 3)
        return out

    read_stats = timed("curate-read", [{**base, **t} for t in tasks],
                       functools.partial(curate_file, cfg=cfg.curate, layout=layout, salt=salt))
    stats: dict = {}
    for shard in sorted(read_stats):
        merge_stats(stats, read_stats[shard])
    platforms = sorted(p for p in stats.get("platforms", {}) if p in S.PLATFORMS)
    dedup = cfg.curate.dedup
    if dedup.exact or dedup.near:
        log.info("dedup: %s", s_curve_text(dedup))
        check_index_params(layout, cfg)
        exact, near = dedup_tasks(platforms, dedup, base)
        by_step = {name: timed(name, tasks_, functools.partial(fn, cfg=dedup, layout=layout))
                   for name, tasks_, fn in (("curate-dedup-exact", exact, exact_step),
                                            ("curate-dedup-near", near, near_step))}
        cluster_stats, rounds = cluster_steps(platforms, dedup, layout, base, timed)
        by_step.update(cluster_stats)
        merge_stats(stats, rounds)
        for name, step_stats in by_step.items():
            for shard in sorted(step_stats):
                merge_stats(stats, {k: v for k, v in step_stats[shard].items() if k != "cc"})
            # the components' rounds count as the cluster step in the per-step table
            cluster = name.startswith(("curate-dedup-cc", "curate-dedup-cluster"))
            table_step = "dedup-cluster" if cluster else name.removeprefix("curate-")
            seconds = stats["steps"].setdefault(table_step, {"rows": 0, "bytes": 0, "seconds": 0.0})
            seconds["seconds"] += sum(s["seconds"][name] for s in step_stats.values())

    decide_stats = decide_steps(platforms, cfg.curate, layout, base, cfg.curate.join_partitions, timed)
    timeline_tasks = [{**base, "shard": f"{p}-{b:04d}", "platform": p, "bucket": b}
                      for p in platforms for b in range(cfg.curate.num_user_buckets)]
    timeline_stats = timed("curate-timeline", timeline_tasks, functools.partial(timeline, cfg=cfg.curate, layout=layout))
    for part in [*decide_stats.values(), timeline_stats]:
        for shard in sorted(part):
            merge_stats(stats, part[shard])
    for p in platforms:
        stats["platforms"][p].setdefault("kept", 0)
        stats["platforms"][p].setdefault("users", 0)
    stats["steps"]["decide"] = {"rows": 0, "bytes": 0, "seconds": sum(s["seconds"][name] for name, step in
                                                                      decide_stats.items() for s in step.values())}
    stats["steps"]["timeline"]["seconds"] = sum(s["seconds"]["curate-timeline"] for s in timeline_stats.values())
    stats.pop("seconds", None)
    stats["peak_rss_mb"] = {k: [max(v)] for k, v in stats.get("peak_rss_mb", {}).items()}
    stats["wall_seconds"] = time.perf_counter() - t0
    stats["step_wall_seconds"] = walls
    stats["accounting_errors"] = check_accounting(stats)
    root.write_json(layout.STATS, stats)
    if stats["accounting_errors"]:
        log.error("curate: rows unaccounted for: %s", stats["accounting_errors"])
    for err in stats.get("file_errors", []):
        log.error("curate: file not fully read: %s: %s", err["uri"], err["error"])
    log.info("curate funnel (%s):\n%s", root.uri_of(layout.STATS), funnel_table(stats))
    return stats
