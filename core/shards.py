"""Stage machinery every stage reuses: shards with completion markers under a run root, resume,
parallel execution on Ray Data (or in-process), and stats merged into stats.json.

A stage is a list of shard tasks (plain dicts with a stable `shard` id) and a function
`fn(task) -> stats` that writes the shard's outputs under the run root with deterministic names.
A shard whose marker exists is skipped on rerun; its stats are read back from the marker, so a
resumed run reports the same totals as an uninterrupted one.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import threading
import time
from typing import Any, Callable, Iterable

import pyarrow as pa

from core.console import progress
from core.layout import RunLayout
from core.storage import RunRoot

log = logging.getLogger(__name__)


def merge_stats(into: dict, other: dict) -> dict:
    """Add nested dicts of numbers (lists are concatenated); returns `into`."""
    for key, value in other.items():
        if isinstance(value, dict):
            merge_stats(into.setdefault(key, {}), value)
        elif isinstance(value, list):
            into.setdefault(key, []).extend(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            into[key] = into.get(key, 0) + value
        else:
            into[key] = value
    return into


def fingerprint(obj: Any) -> str:
    """A short stable hash of a JSON-serialisable object (configs, task lists)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class StageMarkers:
    """Completion markers of one stage (or one step of a stage) under `_markers/<name>/`."""

    def __init__(self, root: RunRoot, name: str):
        self.root, self.name = root, name

    def _rel(self, shard: str) -> str:
        return RunLayout.markers(self.name, shard)

    def done(self, shard: str) -> bool:
        return self.root.exists(self._rel(shard))

    def stats(self, shard: str) -> dict:
        return self.root.read_json(self._rel(shard))["stats"]

    def mark(self, shard: str, stats: dict) -> None:
        self.root.write_json(self._rel(shard), {"shard": shard, "stats": stats})

    def check_config(self, config_fp: str) -> None:
        """Refuse to resume a run that was started with a different configuration."""
        rel = RunLayout.markers(self.name, "_config")
        if self.root.exists(rel):
            old = self.root.read_json(rel)["fingerprint"]
            if old != config_fp:
                raise RuntimeError(
                    f"{self.root.uri_of(rel)}: this run root holds stage `{self.name}` run with another "
                    f"configuration ({old} != {config_fp}); use a new run_root, or rerun with --restart")
        else:
            self.root.write_json(rel, {"fingerprint": config_fp})


class PeakRSS:
    """Samples this process's resident memory while a block runs; `mb` is the largest sample.

    A Ray worker runs many shards, so the process-lifetime maximum (ru_maxrss) would mix them up.
    """

    INTERVAL = 0.02

    def __init__(self) -> None:
        self.mb = 0.0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        try:
            with open("/proc/self/statm") as f:
                self.mb = max(self.mb, int(f.read().split()[1]) * self._page / 2**20)
        except OSError:  # not Linux: no per-shard figure
            pass

    def _run(self) -> None:
        while not self._stop.wait(self.INTERVAL):
            self._sample()

    def __enter__(self) -> "PeakRSS":
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def release_memory() -> None:
    """Return this process's freed memory to the system: Arrow's pool and glibc's heap (no gc.collect: it
    costs ~70 ms a call in a big process, and reference counting has already freed the shards' tables)."""
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # glibc only
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


def _ray_map(tasks: list[dict], fn: Callable[[dict], dict], concurrency: int | None,
             ray_remote_args: dict | None, on_done: Callable[[], None]) -> list[dict]:
    import ray.data

    def run_batch(batch: pa.Table) -> pa.Table:
        out = [json.dumps(fn(json.loads(t))) for t in batch.column("task").to_pylist()]
        return pa.table({"stats": pa.array(out, pa.string())})

    ds = ray.data.from_items([{"task": json.dumps(t)} for t in tasks], override_num_blocks=len(tasks))
    ds = ds.map_batches(run_batch, batch_size=1, batch_format="pyarrow", concurrency=concurrency,
                        **(ray_remote_args or {}))
    out = []
    for row in ds.iter_rows():
        out.append(json.loads(row["stats"]))
        on_done()
    return out


def run_shards(root: RunRoot, name: str, tasks: Iterable[dict], fn: Callable[[dict], dict], *,
               use_ray: bool = True, concurrency: int | None = None,
               ray_remote_args: dict | None = None) -> dict[str, dict]:
    """Run `fn` on every task whose shard is not marked done; return {shard: stats} for all tasks.

    `fn` must be a picklable callable that writes the shard's outputs atomically; this function
    writes the marker after it returns, so a kill between the two only redoes that shard.
    """
    markers = StageMarkers(root, name)
    tasks = list(tasks)
    pending = [t for t in tasks if not markers.done(t["shard"])]
    if len(pending) < len(tasks):
        log.info("%s: %d of %d shards already done, skipping them", name, len(tasks) - len(pending), len(tasks))

    def run_and_mark(task: dict) -> dict:
        release_memory()  # what earlier shards of this worker left is not counted in this one's peak
        t0 = time.perf_counter()
        with PeakRSS() as peak:
            stats = fn(task)
        stats.setdefault("seconds", {})[name] = time.perf_counter() - t0
        stats.setdefault("peak_rss_mb", {})[name] = [peak.mb]
        markers.mark(task["shard"], stats)
        return stats

    if len(pending) == 1:  # one task: no bar (its seconds are in the step's stats)
        run_and_mark(pending[0])
    elif pending:
        with progress(len(pending), f"{name}{' (Ray Data)' if use_ray else ''}", unit="shards") as bar:
            if use_ray:
                _ray_map(pending, run_and_mark, concurrency, ray_remote_args, bar.update)
            else:
                for task in pending:
                    run_and_mark(task)
                    bar.update()
    return {t["shard"]: markers.stats(t["shard"]) for t in tasks}


def funnel_table(stats: dict) -> str:
    """Render the per-platform funnel (read, kept, dropped per reason) as a fixed-width table."""
    lines = [f"{'platform':<10} {'step':<12} {'reason':<30} {'rows':>10}"]
    for platform, p in sorted(stats.get("platforms", {}).items()):
        lines.append(f"{platform:<10} {'read':<12} {'':<30} {p.get('read', 0):>10}")
        for step, reasons in sorted(p.get("rejected", {}).items()):
            for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
                lines.append(f"{platform:<10} {step:<12} {reason:<30} {-n:>10}")
        lines.append(f"{platform:<10} {'kept':<12} {'events':<30} {p.get('kept', 0):>10}")
        lines.append(f"{platform:<10} {'kept':<12} {'users':<30} {p.get('users', 0):>10}")
    dedup = stats.get("dedup", {})
    if dedup:
        lines.append("")
        lines.append(f"{'platform':<10} {'dup clusters':>12} {'exact removed':>14} {'near removed':>13} "
                     f"{'exact edges':>12} {'near edges':>11} {'capped':>7}")
        for platform, d in sorted(dedup.items()):
            lines.append(f"{platform:<10} {d.get('clusters', 0):>12} {d.get('exact_duplicate', 0):>14} "
                         f"{d.get('near_duplicate', 0):>13} {d.get('exact_edges', 0):>12} {d.get('near_edges', 0):>11} "
                         f"{d.get('capped_bucket_members', 0):>7}")
    steps = stats.get("steps", {})
    if steps:
        lines.append("")
        lines.append("seconds are summed over shards (CPU-seconds); peak RSS is the largest worker's")
        lines.append(f"{'step':<22} {'rows in':>12} {'MB in':>10} {'seconds':>10} {'rows/s':>10}")
        for step, s in steps.items():
            secs = s.get("seconds", 0.0)
            rate = s.get("rows", 0) / secs if secs else 0.0
            lines.append(f"{step:<22} {s.get('rows', 0):>12} {s.get('bytes', 0) / 1e6:>10.1f} {secs:>10.2f} {rate:>10.0f}")
    peaks = stats.get("peak_rss_mb", {})
    if peaks:
        lines.append("")
        lines.append("peak RSS per worker (MB): " + ", ".join(f"{k}={max(v):.0f}" for k, v in peaks.items()))
    return "\n".join(lines)
