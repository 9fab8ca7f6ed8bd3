"""Curation on one worker node and on two: the same output, the speed-up, and where it is lost.

Each run is a local multi-node Ray cluster of Ray's own `ray.cluster_utils.Cluster` (a head with no
task CPUs and N worker nodes of --cpus-per-node logical CPUs each, started and stopped by this script,
never `ray stop`), curating the same generated corpus (bench/curate.py's) from scratch with the
curate stage on Ray. It prints each run's wall time and events/s, the speed-up of every step
(`stats.json`'s `step_wall_seconds`) against the one-node run, and whether both runs wrote the same
events, users and rejects. Usage: python bench/scaling.py [--events 1000000] [--nodes 1,2]
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import curate as bench_curate  # noqa: E402  (its corpus and config)
from bench.subprocess_run import child  # noqa: E402

log = logging.getLogger("bench.scaling")


def output_digest(run_root: str) -> dict[str, str]:
    """SHA-256 of each output table's rows in a canonical order (events, users, rejects)."""
    from core import schema as S
    from core.storage import RunRoot

    root, out = RunRoot(run_root), {}
    for name, schema, key in (("events", S.EVENT_SCHEMA, [S.EVENT_ID]), ("users", S.USER_SCHEMA, [S.USER_ID]),
                              ("rejects", S.REJECT_SCHEMA, [S.SOURCE_URI, S.SOURCE_ROW])):
        table = root.read_parquet(name, schema=schema).sort_by([(k, "ascending") for k in key])
        digest = hashlib.sha256()
        for batch in table.to_batches(max_chunksize=65536):
            digest.update(repr(batch.to_pylist()).encode())
        out[name] = f"{table.num_rows} rows {digest.hexdigest()[:16]}"
    return out


def run_on_nodes(raw: str, run_root: str, nodes: int, cpus_per_node: int) -> dict:
    """Child process: a cluster of `nodes` worker nodes, one curate run on it, the cluster stopped."""
    logging.basicConfig(level=logging.WARNING)
    import ray
    from ray.cluster_utils import Cluster

    from processing.curate_stage import run as run_curate

    temp = tempfile.mkdtemp(prefix="rs", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    cluster = Cluster(initialize_head=True, head_node_args={  # its own ports: another Ray may hold the defaults
        "num_cpus": 0, "include_dashboard": False, "object_store_memory": 200_000_000, "temp_dir": temp,
        "gcs_server_port": free_port()})
    try:
        for _ in range(nodes):
            cluster.add_node(num_cpus=cpus_per_node, object_store_memory=400_000_000)
        ray.init(address=cluster.address, runtime_env={"env_vars": {"PYTHONPATH": os.getcwd()}})
        cfg = bench_curate.config(raw, run_root, nodes * cpus_per_node)
        t0 = time.perf_counter()
        stats = run_curate(cfg, use_ray=True, restart=True)
        wall = time.perf_counter() - t0
        ray.shutdown()
    finally:
        cluster.shutdown()
    return {"wall": wall, "stats": stats, "digest": output_digest(run_root)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--nodes", default="1,2", help="worker-node counts to run, the first is the baseline")
    ap.add_argument("--cpus-per-node", type=int, default=1)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "humanllm-bench"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raw = bench_curate.corpus(args.events, args.workdir)
    runs = {}
    for n in [int(x) for x in args.nodes.split(",")]:
        log.info("curate on %d worker node(s) of %d CPU(s) ...", n, args.cpus_per_node)
        runs[n] = child(run_on_nodes, raw, os.path.join(args.workdir, f"run-{n}-nodes"), n, args.cpus_per_node)
        if "error" in runs[n]:
            raise SystemExit(f"the run on {n} node(s) failed: {runs[n]['error']}")
        log.info("%d node(s): %.1f s", n, runs[n]["wall"])
    base_n = next(iter(runs))
    base = runs[base_n]
    events = sum(p["read"] for p in base["stats"]["platforms"].values())
    print(f"\n{'nodes':>5} {'CPUs':>5} {'wall s':>8} {'events/s':>9} {'speed-up':>8} {'efficiency':>10}  same output")
    for n, r in runs.items():
        up = base["wall"] / r["wall"]
        print(f"{n:>5} {n * args.cpus_per_node:>5} {r['wall']:>8.1f} {events / r['wall']:>9.0f} {up:>7.2f}x "
              f"{up / (n / base_n):>9.0%}  {r['digest'] == base['digest']}")
    steps = list(base["stats"]["step_wall_seconds"])
    print(f"\n{'step':<22}" + "".join(f"{f'{n} node(s) s':>14}" for n in runs) + "".join(
        f"{f'x{n}/{base_n}':>9}" for n in list(runs)[1:]))
    for step in steps:
        walls = [r["stats"]["step_wall_seconds"].get(step, float("nan")) for r in runs.values()]
        print(f"{step:<22}" + "".join(f"{w:>14.1f}" for w in walls) + "".join(
            f"{walls[0] / w:>8.2f}x" if w else f"{'-':>9}" for w in walls[1:]))
    print(f"\noutputs ({base_n} node(s)): {base['digest']}")
    for n, r in runs.items():
        if r["digest"] != base["digest"]:
            print(f"outputs differ on {n} node(s): {r['digest']}")
    print(f"machine: {os.cpu_count()} cores; the driver and the head share them with the worker nodes")


if __name__ == "__main__":
    main()
