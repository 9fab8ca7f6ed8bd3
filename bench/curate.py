"""Curation throughput and peak memory on a generated corpus (default 1M events).

Runs, on the same corpus and in one invocation:
  ours/1-proc   the curate stage in one process (events/s on one core, peak RSS, per-step breakdown)
  ours/ray      the same stage on an embedded Ray cluster with one worker per real core
  peer          a row-at-a-time pass in the style of the paper's reference scripts (json.loads,
                regex cleaning and a per-text language ID call for each record), on a prefix of
                the same files: the per-core baseline a user would otherwise run
and prints events/s per core for each and the ratios. Usage: python bench/curate.py [--events N]

With --memory it instead runs the stage on Ray on N/10 and on N generated events, user buckets, join
and dedup partitions sized per MB of input so that N/10 already fills 8 of each, and prints each step's
peak memory per task (run_shards' sampler in the worker that ran it) at both sizes and the ratio.
"""
from __future__ import annotations

import argparse
import glob
import io
import json
import logging
import multiprocessing as mp
import os
import re
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

log = logging.getLogger("bench.curate")


def corpus(n_events: int, workdir: str) -> str:
    from demo.sample_data import write_synthetic_corpus

    out = os.path.join(workdir, f"corpus-{n_events}")
    if not os.path.exists(os.path.join(out, "manifest.json")):
        t0 = time.perf_counter()
        manifest = write_synthetic_corpus(out, n_events, files=8)
        with open(os.path.join(out, "manifest.json"), "w") as f:
            json.dump(manifest, f)
        log.info("generated %d events in %.0f s under %s", n_events, time.perf_counter() - t0, out)
    return out


def config(raw: str, run_root: str, num_cpus: int, per_task_mb: int | None = None):
    """The bench's curate config; `per_task_mb` sizes buckets and partitions per MB of input (else 8 buckets)."""
    from ray_jobs.config import parse_config

    curate = {"inputs": [{"path": f"{raw}/reddit/*.zst", "format": "reddit_pushshift"},
                         {"path": f"{raw}/amazon/*.jsonl.gz", "format": "amazon_2023"}],
              "num_user_buckets": 8, "amazon": {"require_item_title": False}}
    if per_task_mb:
        curate.update(num_user_buckets="auto", bucket_mb=per_task_mb, join_partitions="auto", join_mb=per_task_mb,
                      dedup={"num_partitions": "auto", "partition_mb": per_task_mb})
    return parse_config({"run_root": run_root, "salt": "bench", "ray": {"num_cpus": num_cpus}, "curate": curate})


def run_ours(raw: str, run_root: str, use_ray: bool, queue, per_task_mb: int | None = None) -> None:
    """Child process: one curate run; reports wall time, stats and this process's peak RSS."""
    logging.basicConfig(level=logging.WARNING)
    from processing.curate_stage import run as run_curate

    cores = os.cpu_count() or 1
    cfg = config(raw, run_root, cores, per_task_mb)
    if use_ray:
        import ray

        ray.init(address="local", num_cpus=cores, include_dashboard=False, object_store_memory=500_000_000,
                 runtime_env={"env_vars": {"PYTHONPATH": os.getcwd()}})
    t0, c0 = time.perf_counter(), time.process_time()
    stats = run_curate(cfg, use_ray=use_ray, restart=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    queue.put({"wall": wall, "cpu": cpu, "stats": stats,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def child(target, *args, **kwargs) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q), kwargs=kwargs)
    p.start()
    out = q.get()
    p.join()
    return out


URL = re.compile(r"https?://\S+|www\.\S+")
ESC = re.compile(r"\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}")
ENT = re.compile(r"&[a-z]+;|&#\d+;")
TAG = re.compile(r"<[^>]+>")
EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF]")


def run_peer(raw: str, limit: int, queue) -> None:
    """Child process: the reference scripts' shape, one record at a time, on the first `limit` rows."""
    import py3langid
    import zstandard

    files = sorted(glob.glob(f"{raw}/reddit/*.zst"))
    t0, n, kept = time.perf_counter(), 0, 0
    per_file = max(1, limit // len(files))
    for path in files:
        with open(path, "rb") as fh:
            reader = io.TextIOWrapper(zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(fh), "utf-8")
            for i, line in enumerate(reader):
                if i >= per_file:
                    break
                obj = json.loads(line)
                n += 1
                if obj.get("author") in (None, "[deleted]", "AutoModerator", "autotldr"):
                    continue
                text = obj.get("body") or ((obj.get("title") or "") + "\n" + (obj.get("selftext") or ""))
                cleaned = EMOJI.sub("", TAG.sub("", ENT.sub("", ESC.sub("", URL.sub("", text))))).strip()
                if len(cleaned) < len(text) / 2 or len(cleaned) < (200 if "body" in obj else 300):
                    continue
                if py3langid.classify(cleaned)[0] == "en":
                    kept += 1
    wall = time.perf_counter() - t0
    queue.put({"wall": wall, "events": n, "kept": kept,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


ROUND = re.compile(r"(.*-r)\d\d$")  # a round of a step family: curate-dedup-cc-r03, curate-decide-kcore-r01


def step_peaks(stats: dict) -> dict[str, float]:
    """Peak RSS per task of each step (the rounds of a step family together, as `<family>-rounds`)."""
    out: dict[str, float] = {}
    for step, peaks in stats.get("peak_rss_mb", {}).items():
        m = ROUND.match(step)
        name = f"{m.group(1)}ounds" if m else step
        out[name] = max(out.get(name, 0.0), max(peaks))
    return out


def memory(args) -> None:
    """Each step's peak memory per task at N/10 and N events, on Ray, sizes per MB of input."""
    sizes = [args.events // 10, args.events]
    raws = [corpus(n, args.workdir) for n in sizes]
    small_mb = sum(os.path.getsize(f) for f in glob.glob(f"{raws[0]}/*/*")) / 2**20
    per_task_mb = max(1, int(small_mb / 8))
    runs = []
    for n, raw in zip(sizes, raws):
        log.info("ours on Ray, %d events, buckets and partitions of %d MB of input ...", n, per_task_mb)
        runs.append(child(run_ours, raw, os.path.join(args.workdir, f"run-mem-{n}"), True, per_task_mb=per_task_mb))
    peaks = [step_peaks(r["stats"]) for r in runs]
    print(f"\nper-task peak RSS (MB) by step, {per_task_mb} MB of input per bucket / partition; wall "
          + ", ".join(f"{r['wall']:.0f} s @{n:,}" for r, n in zip(runs, sizes)))
    print(f"{'step':<30} {f'@{sizes[0]:,}':>12} {f'@{sizes[1]:,}':>12} {'ratio':>7}")
    worst = 0.0
    for step in peaks[1]:
        a, b = peaks[0].get(step, float("nan")), peaks[1][step]
        worst = max(worst, b / a) if a == a else worst
        print(f"{step:<30} {a:>12.0f} {b:>12.0f} {b / a:>7.2f}")
    print(f"{'PASS' if worst <= 1.2 else 'MISS'} every step within 1.2x: worst {worst:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "humanllm-bench"))
    ap.add_argument("--peer-events", type=int, default=40_000)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--memory", action="store_true", help="per-step peak memory per task at N/10 and N events")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.memory:
        memory(args)
        return
    from core.shards import funnel_table

    raw = corpus(args.events, args.workdir)
    cores = os.cpu_count() or 1
    log.info("ours, one process ...")
    one = child(run_ours, raw, os.path.join(args.workdir, "run-1proc"), False)
    ray_run = None if args.skip_ray else (log.info("ours, Ray with %d CPUs ...", cores) or
                                          child(run_ours, raw, os.path.join(args.workdir, "run-ray"), True))
    log.info("peer (reference-style, row at a time) on %d events ...", args.peer_events)
    peer = child(run_peer, raw, args.peer_events)

    n = sum(p["read"] for p in one["stats"]["platforms"].values())
    rows = [("ours/1-proc", n, one["wall"], 1, one["peak_rss_mb"])]
    if ray_run:
        rows.append((f"ours/ray ({cores} cores)", n, ray_run["wall"], cores, ray_run["peak_rss_mb"]))
    rows.append(("peer/1-proc", peer["events"], peer["wall"], 1, peer["peak_rss_mb"]))
    print(funnel_table(one["stats"]))
    print(f"\n{'run':<22} {'events':>10} {'wall s':>9} {'events/s':>10} {'ev/s/core':>10} {'peak RSS MB':>12}")
    for name, ev, wall, c, rss in rows:
        print(f"{name:<22} {ev:>10} {wall:>9.1f} {ev / wall:>10.0f} {ev / wall / c:>10.0f} {rss:>12.0f}")
    clean = one["stats"]["steps"].get("clean_pii", {})
    print(f"\nours/1-proc CPU time (this process; steady on a shared machine): {one['cpu']:.1f} s, "
          f"{n / one['cpu']:.0f} events/s; clean + PII step: "
          f"{clean.get('seconds', 0) / max(1, clean.get('rows', 0)) * 1e6:.0f} µs/event (wall)")
    ours_pc = n / one["wall"]
    peer_pc = peer["events"] / peer["wall"]
    print(f"\nours/1-proc vs peer, events/s per core: {ours_pc / peer_pc:.2f}x")
    if ray_run:
        print(f"ours/ray vs ours/1-proc, wall-clock speed-up on {cores} cores: {one['wall'] / ray_run['wall']:.2f}x")
    print("(ray peak RSS is the driver's only; workers are separate processes)")


if __name__ == "__main__":
    main()
