"""Deduplication benchmark: our exact + MinHash-LSH dedup against two peers on a corpus with planted
duplicate clusters (default 1M documents; see `bench/planted.py` for the kinds).

Runs, each in its own child process pinned to one CPU (peak RSS from getrusage):
  ours        the whole curate stage in one process (`run_curate(use_ray=False)`, language ID and
              platform rules off) on the full corpus, on its first N/10 documents and on the peers'
              prefix; docs/s per core = docs / (dedup_signatures + dedup-exact + dedup-near +
              dedup-cluster seconds). Each dedup step is then rerun alone in a fresh process (all its
              tasks in a row, like one worker) for its peak RSS at N/10 and N.
  datasketch  the textbook single-process `MinHashLSH` (word 5-gram shingles, 112 permutations,
              params=(bands, rows) of ours; query then insert per document, union-find over the hits,
              the first document of each component kept; with our `verify`, a hit counts only when
              `MinHash.jaccard` of the two full signatures reaches our threshold), on the first
              --peer-docs documents
  datatrove   DataTrove's MinHash pipeline (MinhashDedupSignature -> Buckets -> Cluster -> Filter,
              MinhashConfig() defaults: 5-grams, 14 buckets x 8 hashes, 64-bit xxhash) with
              LocalPipelineExecutor(workers=1) (tasks=1; 14 for the bucket step, which needs one
              task per bucket) from a JSONL copy of the same prefix to JSONL of the kept documents
Quality against the planted ground truth: a removed document is a true positive when it is in a
planted cluster and another member of that cluster is kept. Precision = true positives / removed;
recall per kind = true positives / (members - 1, summed over that kind's clusters). The peers' P/R
are on the prefix with the prefix's own ground truth (clusters cut to their members in the prefix).
Also prints fastText's cost per event (language ID; the quality model when one trains here).

Usage: python bench/dedup.py [--docs N] [--peer-docs M] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import re
import resource
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# The repository first and bench/ last (for planted, subprocess_run): bench/train.py must not shadow the
# `train` package that ray_jobs.config imports (Python puts the script's folder first on the path).
sys.path[:] = [os.path.dirname(HERE)] + [p for p in sys.path if os.path.abspath(p or ".") != HERE] + [HERE]

import numpy as np  # noqa: E402
import planted  # noqa: E402
from subprocess_run import child  # noqa: E402

log = logging.getLogger("bench.dedup")
DEDUP_STEPS = ("dedup_signatures", "dedup-exact", "dedup-near", "dedup-cluster")
MEM_STEPS = ("signatures", "exact", "near", "cluster")
KIND_COLS = planted.KINDS[1:]


# ----------------------------------------------------------------------------- child processes

def _pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def curate_config(path: str, run_root: str, dedup: dict | None = None):
    """The curate config of tests/test_dedup.py: Amazon 2023 reviews, language ID and platform rules off;
    `dedup`: curate.dedup overrides (--set)."""
    from ray_jobs.config import parse_config

    return parse_config({
        "run_root": run_root, "salt": "bench",
        "curate": {"inputs": [{"path": path, "format": "amazon_2023"}],
                   "language": {"enabled": False},
                   "amazon": {"require_item_title": False, "top_item_fraction": 1.0, "user_k": 1, "item_k": 1,
                              "min_history": 1, "min_words": 1},
                   "dedup": dict(dedup or {})},
    })


def run_ours(path: str, run_root: str, dedup: dict, cpu: int | None) -> dict:
    """One curate run; the dedup step seconds, wall, peak RSS and the source rows dedup removed."""
    _pin(cpu)
    logging.basicConfig(level=logging.WARNING)
    import pyarrow.compute as pc

    from core import schema as S
    from processing.curate_stage import run as run_curate

    cfg = curate_config(path, run_root, dedup)
    t0 = time.perf_counter()
    stats = run_curate(cfg, use_ray=False, restart=True)
    wall = time.perf_counter() - t0
    peak = _peak_mb()
    layout = cfg.layout()
    rej = layout.root.read_parquet(layout.rejects(), schema=S.REJECT_SCHEMA, columns=[S.STAGE, S.SOURCE_ROW])
    other = rej.filter(pc.not_equal(rej[S.STAGE], "dedup"))
    removed = rej.filter(pc.equal(rej[S.STAGE], "dedup"))[S.SOURCE_ROW].to_numpy()
    partitions = layout.root.read_json(layout.dedup_params())["num_partitions"]
    index_mb = sum(os.path.getsize(f) for f in glob.glob(os.path.join(run_root, "dedup_index", "**", "*.parquet"),
                                                         recursive=True)) / 1e6
    near = stats.get("dedup", {}).get("amazon", {})
    return {"wall": wall, "peak_rss_mb": peak, "removed": removed, "partitions": partitions, "index_mb": index_mb,
            "candidate_pairs": near.get("candidate_pairs", 0), "verified_pairs": near.get("verified_pairs", 0),
            "steps": {k: v["seconds"] for k, v in stats["steps"].items()},
            "step_peaks": {k: max(v) for k, v in stats.get("peak_rss_mb", {}).items()},
            "other_rejects": other.num_rows, "read": stats["platforms"]["amazon"]["read"]}


def step_memory(path: str, run_root: str, step: str, dedup: dict, cpu: int | None) -> dict:
    """Rerun one dedup step of a finished run alone (every task in a row, like one worker): peak RSS.

    signatures: the stage-1 events in batches of curate.batch_rows through dedup_rows and a
    DedupRowWriter into a scratch root (the index itself is left alone); exact/near/cluster: the
    step's tasks as run_curate runs them (they rewrite the same outputs).
    """
    _pin(cpu)
    logging.basicConfig(level=logging.WARNING)
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core import schema as S
    from core.storage import RunRoot
    from processing.curate import STAGE1
    from processing.dedup_stage import cluster_steps, dedup_rows, dedup_tasks, DedupRowWriter, exact_step, near_step

    cfg = curate_config(path, run_root, dedup)
    layout = cfg.layout()
    parts = layout.root.read_json(layout.dedup_params())["num_partitions"]  # "auto" partitions, as resolved
    dcfg = cfg.curate.dedup.model_copy(update={"num_partitions": parts})
    base_rss = _rss_mb()
    t0 = time.perf_counter()
    if step == "signatures":
        scratch = tempfile.mkdtemp(prefix="dedup-sig-")
        try:
            writer = DedupRowWriter(RunRoot(scratch), "amazon", "bench")
            cols = [S.EVENT_ID, S.USER_ID, S.TITLE, S.TEXT]
            for f in sorted(glob.glob(os.path.join(run_root, STAGE1, "amazon", "**", "*.parquet"), recursive=True)):
                for batch in pq.ParquetFile(f).iter_batches(batch_size=cfg.curate.batch_rows, columns=cols):
                    writer.write(dedup_rows(pa.Table.from_batches([batch]), dcfg))
            writer.close()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    else:
        base = {"n_buckets": 8}
        exact, near = dedup_tasks(["amazon"], dcfg, base)
        if step == "cluster":  # the components rounds and the cluster step, every task in this process
            cluster_steps(["amazon"], dcfg, layout, base, lambda name, tasks, fn: {t["shard"]: fn(t) for t in tasks})
        else:
            fn, tasks = {"exact": (exact_step, exact), "near": (near_step, near)}[step]
            for task in tasks:
                fn(task, dcfg, layout)
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": _peak_mb(), "base_rss_mb": base_rss}


def run_datasketch(path: str, dedup: dict, cpu: int | None) -> dict:
    """Textbook datasketch: per document MinHash of its word n-grams, query the LSH, union the hits, insert
    (n-gram size, permutations, bands and rows are ours, with the --set overrides). With our `verify`, a hit
    is unioned only when the two signatures' Jaccard estimate (`MinHash.jaccard`'s share of equal values,
    on the full 32-bit values kept per document) reaches our threshold."""
    _pin(cpu)
    from datasketch import MinHash, MinHashLSH

    from processing.settings import DedupConfig

    d = DedupConfig(**dedup)
    word = re.compile(r"\w+")
    lsh = MinHashLSH(num_perm=d.num_perm, params=(d.bands, d.rows))
    parent: list[int] = []
    kept_sigs: dict[int, np.ndarray] = {}  # with verify: each inserted document's hash values

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    parse = 0.0
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            tp = time.perf_counter()
            obj = json.loads(line)
            parse += time.perf_counter() - tp
            parent.append(i)
            words = word.findall(obj["text"].lower())
            n = d.shingle_size
            shingles = {" ".join(words[j:j + n]).encode() for j in range(len(words) - n + 1)}
            if not shingles:
                continue
            m = MinHash(num_perm=d.num_perm, seed=d.seed)
            m.update_batch(shingles)
            for j in lsh.query(m):
                if d.verify and np.count_nonzero(m.hashvalues == kept_sigs[j]) / d.num_perm < d.threshold:
                    continue  # MinHash.jaccard below the threshold: a false candidate
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)  # the earliest document is the root: it is kept
            lsh.insert(i, m)
            if d.verify:
                kept_sigs[i] = m.hashvalues
    seconds = time.perf_counter() - t0 - parse
    removed = np.array([i for i in range(len(parent)) if find(i) != i], np.int64)
    return {"seconds": seconds, "parse_seconds": parse, "docs": len(parent), "removed": removed,
            "peak_rss_mb": _peak_mb()}


def run_datatrove(path: str, work: str, cpu: int | None) -> dict:
    """DataTrove's four MinHash stages with LocalPipelineExecutor(workers=1), then JSONL read-only and
    read+write passes over the same input (their cost is subtracted for the dedup-only seconds)."""
    _pin(cpu)
    os.environ["TQDM_DISABLE"] = "1"
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    import xxhash
    from datatrove.utils.hashes import xxhash as dt_xxhash

    if int(xxhash.VERSION.split(".")[0]) >= 4:
        # xxhash 4 refuses str and DataTrove 0.10.1 passes str (huggingface/datatrove#508); encode as
        # xxhash 3 did, the fix of datatrove PR #519: same digests, one .encode() per shingle.
        dt_xxhash.xxhash32 = lambda data: xxhash.xxh32_intdigest(data.encode() if isinstance(data, str) else data)
        dt_xxhash.xxhash64 = lambda data: xxhash.xxh64_intdigest(data.encode() if isinstance(data, str) else data)
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    shutil.rmtree(work, ignore_errors=True)
    src = os.path.dirname(path)
    cfg = MinhashConfig()
    d = {k: os.path.join(work, k) for k in ("sigs", "buckets", "remove", "kept", "copy", "logs")}

    def reader():
        return JsonlReader(src, glob_pattern="*.jsonl", compression=None)

    stages = {
        "1 signature": ([reader(), MinhashDedupSignature(output_folder=d["sigs"], config=cfg)], 1),
        "2 buckets": ([MinhashDedupBuckets(input_folder=d["sigs"], output_folder=d["buckets"], config=cfg)],
                      cfg.num_buckets),
        "3 cluster": ([MinhashDedupCluster(input_folder=d["buckets"], output_folder=d["remove"], config=cfg)], 1),
        "4 filter": ([reader(), MinhashDedupFilter(input_folder=d["remove"]),
                      JsonlWriter(d["kept"], compression=None)], 1),
        "io read": ([reader()], 1),
        "io read+write": ([reader(), JsonlWriter(d["copy"], compression=None)], 1),
    }
    seconds = {}
    for name, (pipeline, tasks) in stages.items():
        ex = LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1,
                                   logging_dir=os.path.join(d["logs"], name.replace(" ", "_")))
        t0 = time.perf_counter()
        ex.run()
        seconds[name] = time.perf_counter() - t0
    peak = _peak_mb()
    kept = set()
    for f in glob.glob(os.path.join(d["kept"], "*.jsonl")):
        with open(f) as fh:
            kept.update(int(json.loads(line)["id"]) for line in fh)
    with open(path, "rb") as fh:
        n = sum(1 for _ in fh)
    removed = np.array(sorted(set(range(n)) - kept), np.int64)
    total = sum(v for k, v in seconds.items() if not k.startswith("io"))
    return {"stages": seconds, "total": total, "net": total - seconds["io read"] - seconds["io read+write"],
            "docs": n, "removed": removed, "peak_rss_mb": peak}


def run_fasttext(corpus_dir: str, n_texts: int, cpu: int | None) -> dict:
    """Seconds per text of language ID (lid.176) and of a tiny quality model trained here."""
    _pin(cpu)
    import pyarrow as pa

    texts = []
    with open(os.path.join(corpus_dir, "corpus.jsonl"), "rb") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
            if len(texts) >= n_texts:
                break
    arr = pa.array(texts, pa.string())
    out: dict = {"texts": len(texts)}
    from processing.langid import identify, load_model

    t0 = time.perf_counter()
    load_model(None)
    out["langid_load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    lang, _ = identify(arr)
    out["langid"] = time.perf_counter() - t0
    out["langid_en"] = sum(1 for x in lang.to_pylist() if x == "en") / len(texts)
    try:
        from processing.quality import score, train_quality
        from processing.settings import QualityTrainConfig

        rng = np.random.default_rng(0)
        idx = rng.permutation(len(texts))[:2000]
        rows = pa.table({"text": [texts[i] for i in idx],
                         "label": ["high" if len(texts[i]) > 900 else "low" for i in idx]})
        model = os.path.join(tempfile.mkdtemp(prefix="bench-quality-"), "quality.bin")
        rep = train_quality(rows, model, QualityTrainConfig(epoch=5, dim=16, bucket=20_000))
        t0 = time.perf_counter()
        score(arr[:100], model, ("high",))  # loads the model
        out["quality_load"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        score(arr, model, ("high",))
        out["quality"] = time.perf_counter() - t0
        out["quality_model_bytes"] = rep["model_bytes"]
        shutil.rmtree(os.path.dirname(model), ignore_errors=True)
    except Exception as exc:  # noqa: BLE001 - reported, the rest of the bench stands
        out["quality_error"] = f"{type(exc).__name__}: {exc}"
    return out


# ----------------------------------------------------------------------------- evaluation

def evaluate(removed: np.ndarray, cluster: np.ndarray, kind: np.ndarray) -> dict:
    """Precision and recall per planted kind of a removal set (document indices) against the truth."""
    n = len(cluster)
    rm = np.zeros(n, bool)
    rm[np.asarray(removed, np.int64)] = True
    planted_ = cluster >= 0
    ids = np.where(planted_, cluster, 0)
    size = np.bincount(ids[planted_], minlength=int(ids.max()) + 1 if n else 1)
    kept = np.bincount(ids[planted_ & ~rm], minlength=len(size))
    tp = rm & planted_ & (kept[ids] > 0)
    out = {"removed": int(rm.sum()), "tp": int(tp.sum())}
    out["precision"] = out["tp"] / out["removed"] if out["removed"] else 1.0
    for k in KIND_COLS:
        ki = planted.KINDS.index(k)
        members = (kind == ki) & planted_
        n_clusters = len(np.unique(cluster[members]))
        due = int(members.sum()) - n_clusters  # members - 1 per cluster (clusters cut by a prefix count what is in it)
        out[k] = (int((tp & members).sum()) / due) if due else float("nan")
        out[f"{k}_due"] = due
    out["fp_unique"] = int((rm & ~planted_).sum())
    return out


def planted_jaccard(corpus_dir: str, block: int, cluster: np.ndarray, kind: np.ndarray, n: int,
                    pairs: int = 400) -> dict:
    """Median word-n-gram Jaccard (our normalisation) of member pairs per planted kind, from the first block."""
    import pyarrow as pa

    from processing.words import words

    k = min(block, len(cluster))
    texts = []
    with open(os.path.join(corpus_dir, "corpus.jsonl"), "rb") as f:
        for i, line in enumerate(f):
            if i >= k:
                break
            texts.append(json.loads(line)["text"])
    norm = words(pa.array(texts)).to_pylist()
    rng = np.random.default_rng(0)
    out = {}
    for name in KIND_COLS:
        members = np.flatnonzero((kind[:k] == planted.KINDS.index(name)) & (cluster[:k] >= 0))
        by = {}
        for m in members:
            by.setdefault(int(cluster[m]), []).append(int(m))
        groups = [g for g in by.values() if len(g) > 1]
        js = []
        for _ in range(pairs if groups else 0):
            g = groups[int(rng.integers(len(groups)))]
            a, b = rng.choice(g, 2, replace=False)
            sa, sb = ({tuple(w[j:j + n]) for j in range(len(w) - n + 1)} for w in (norm[a], norm[b]))
            js.append(len(sa & sb) / max(1, len(sa | sb)))
        out[name] = float(np.median(js)) if js else float("nan")
    return out


# ----------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--peer-docs", type=int, default=200_000, help="prefix the peers run on (default 200,000)")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "humanllm-bench-dedup"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--block", type=int, default=None,
                    help="documents per generation block (planted clusters never cross one); default "
                         "min(50,000, docs/10), so the N/10 and peer prefixes hold whole clusters")
    ap.add_argument("--langid-texts", type=int, default=10_000)
    ap.add_argument("--no-pin", action="store_true", help="do not pin each measured process to one CPU")
    ap.add_argument("--skip-datatrove", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override one of our curate.dedup settings (e.g. --set bands=28 --set rows=4); "
                         "datasketch follows them, DataTrove keeps its defaults (5-grams, 14x8)")
    ap.add_argument("--skip-datasketch", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from processing.dedup import s_curve_text
    from processing.settings import DedupConfig

    load0 = os.getloadavg()
    overrides = {k: json.loads(v) if re.fullmatch(r"-?[\d.]+|true|false", v) else v
                 for k, v in (item.split("=", 1) for item in args.set)}
    n = args.docs
    small = max(1, n // 10)
    peer_n = min(args.peer_docs, n)
    cpu = None if args.no_pin or not hasattr(os, "sched_getaffinity") else max(os.sched_getaffinity(0))
    os.makedirs(args.workdir, exist_ok=True)
    cdir = os.path.join(args.workdir, f"corpus-{n}-s{args.seed}-b{args.block or 'auto'}")
    log.info("corpus: %d documents under %s ...", n, cdir)
    block = args.block or max(1, min(50_000, n // 10))
    manifest = planted.generate(n, cdir, seed=args.seed, block=block)
    log.info("corpus: %s (generated in %.1f s)", manifest["kinds"], manifest["seconds"])
    cluster, kind = planted.truth(cdir)

    ours, mem, evals = {}, {}, {}
    sizes = [("full", n)] + ([("N/10", small)] if small < n else []) + \
            ([("peer", peer_n)] if peer_n not in (n, small) else [])
    for label, k in sizes:
        path = os.path.join(cdir, "corpus.jsonl") if k == n else planted.prefix(cdir, k)
        root = os.path.join(args.workdir, f"run-{k}")
        log.info("ours on %d documents (one process) ...", k)
        ours[k] = child(run_ours, path, root, overrides, cpu)
        if "error" in ours[k]:
            raise SystemExit(1)
        if ours[k]["other_rejects"]:
            log.warning("ours on %d: %d rows rejected outside dedup (they count as removed)", k, ours[k]["other_rejects"])
        evals[("ours", k)] = evaluate(ours[k]["removed"], cluster[:k], kind[:k])
        if label != "peer":
            mem[k] = {}
            for step in MEM_STEPS:
                log.info("ours on %d: %s step alone for its peak RSS ...", k, step)
                mem[k][step] = child(step_memory, path, root, step, overrides, cpu)
        shutil.rmtree(root, ignore_errors=True)

    peers = {}
    if peer_n:
        dt_path = planted.prefix(cdir, peer_n, fmt="datatrove")
        if not args.skip_datasketch:
            log.info("datasketch MinHashLSH on %d documents ...", peer_n)
            peers["datasketch"] = child(run_datasketch, dt_path, overrides, cpu)
        if not args.skip_datatrove:
            log.info("DataTrove MinHash pipeline on %d documents ...", peer_n)
            peers["datatrove"] = child(run_datatrove, dt_path, os.path.join(args.workdir, "datatrove"), cpu)
            shutil.rmtree(os.path.join(args.workdir, "datatrove"), ignore_errors=True)
        for name, r in peers.items():
            if "error" not in r:
                evals[(name, peer_n)] = evaluate(r["removed"], cluster[:peer_n], kind[:peer_n])
    log.info("fastText costs on %d texts ...", args.langid_texts)
    ft = child(run_fasttext, cdir, args.langid_texts, cpu)

    # ---------------------------------------------------------------- report
    def dedup_seconds(r: dict) -> float:
        return sum(r["steps"].get(s, 0.0) for s in DEDUP_STEPS)

    rows = []
    for k in ours:
        tag = "ours" + (" (N/10 prefix)" if k == small and k != n else " (peer prefix)" if k != n else "")
        s = dedup_seconds(ours[k])
        rows.append((tag, k, s, k / s, ours[k]["peak_rss_mb"], evals[("ours", k)]))
    for name, r in peers.items():
        if "error" in r:
            continue
        s = r["net"] if name == "datatrove" else r["seconds"]
        rows.append((f"{name} (peer prefix)", r["docs"], s, r["docs"] / s, r["peak_rss_mb"], evals[(name, peer_n)]))

    from processing.dedup import s_curve, verify_probability

    d = DedupConfig(**overrides)
    jac = planted_jaccard(cdir, block, cluster, kind, d.shingle_size)
    kinds_txt = ", ".join(f"{k} {v}" for k, v in manifest["kinds"].items())
    print(f"\ncorpus: {n:,} documents, {manifest['clusters']:,} planted clusters ({kinds_txt}); "
          f"{manifest['bytes'] / 1e6:.0f} MB JSONL, generated in {manifest['seconds']:.1f} s")
    print(s_curve_text(d))
    if (d.bands, d.rows, d.shingle_size) != (14, 8, 5):
        print("datatrove (MinhashConfig defaults, word 5-grams): "
              + s_curve_text(DedupConfig(bands=14, rows=8, num_perm=112, verify=False)))
    if overrides:
        print(f"ours and datasketch with curate.dedup overrides {overrides} (DataTrove keeps 5-grams, 14x8)")
    print(f"planted pairs, median word-{d.shingle_size}-gram Jaccard -> chance to become an LSH candidate"
          + (" / to be linked (candidate and verified)" if d.verify else "") + ": " + ", ".join(
              f"{k} {j:.2f}->{s_curve(d.bands, d.rows, (j,))[0][1]:.2f}"
              + (f"/{s_curve(d.bands, d.rows, (j,))[0][1] * verify_probability(j, d):.2f}" if d.verify else "")
              for k, j in jac.items()))
    print(f"load average before/after: {load0[0]:.1f}/{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(another job on the machine slows every run)")
    cut = [f"{k:,}" for k in ours if k != n and k % block]
    print(f"each run in its own process{'' if cpu is None else f' pinned to CPU {cpu}'}; peers on the first "
          f"{peer_n:,} documents, their P/R against that prefix's own ground truth"
          + (f"; prefixes {', '.join(cut)} cut planted clusters (block {block:,}): their recall is lower" if cut else ""))
    hdr = (f"{'run':<26} {'docs':>9} {'dedup s':>8} {'docs/s/core':>11} {'peak RSS MB':>11} {'removed':>8} "
           f"{'precision':>9} " + " ".join(f"{k:>8}" for k in KIND_COLS))
    print("\n" + hdr)
    print("-" * len(hdr))
    for tag, docs, s, dps, rss, e in rows:
        print(f"{tag:<26} {docs:>9,} {s:>8.1f} {dps:>11,.0f} {rss:>11.0f} {e['removed']:>8,} {e['precision']:>9.4f} "
              + " ".join(f"{e[k]:>8.3f}" for k in KIND_COLS))
    print("(recall columns per planted kind; dedup s: ours = sum of its dedup steps, datasketch = all but JSON "
          "parsing, datatrove = its 4 stages minus a JSONL read pass and a read+write pass)")

    full = ours[n]
    print(f"\nours, {n:,} documents: dedup steps " + ", ".join(f"{s} {full['steps'].get(s, 0):.1f} s" for s in DEDUP_STEPS)
          + f"; whole curate run {full['wall']:.1f} s wall ({n / full['wall']:,.0f} docs/s end to end, peak RSS "
          f"{full['peak_rss_mb']:.0f} MB); dedup index {full['index_mb']:.0f} MB ({full['index_mb'] * 1e6 / n:,.0f} "
          f"bytes/doc)" + (f"; {full['candidate_pairs']:,} candidate pairs verified, {full['verified_pairs']:,} linked"
                           if d.verify else ""))
    ks = sorted(mem)
    print(f"\n{'our dedup step alone':<22} " + " ".join(f"{f'peak MB @{k:,}':>17} {'(base)':>7}" for k in ks)
          + f" {'ratio':>6}   (partitions: " + ", ".join(f"{ours[k]['partitions']} @{k:,}" for k in ks) + ")")
    ratios = {}
    for step in MEM_STEPS:
        cells = []
        for k in ks:
            m = mem[k][step]
            cells.append(f"{m.get('peak_rss_mb', float('nan')):>17.0f} {m.get('base_rss_mb', float('nan')):>7.0f}")
        if len(ks) == 2:
            ratios[step] = mem[ks[1]][step].get("peak_rss_mb", np.nan) / mem[ks[0]][step].get("peak_rss_mb", np.nan)
        print(f"{step:<22} " + " ".join(cells) + (f" {ratios[step]:>6.2f}" if step in ratios else ""))
    names = [k for k in ours[ks[-1]].get("step_peaks", {})] if ks else []
    if names:
        print("in-run peak RSS per step (run_shards' sampler, one process, so earlier steps' memory carries over): "
              + "; ".join(f"@{k:,} " + ", ".join(f"{nm.removeprefix('curate-')} {ours[k]['step_peaks'].get(nm, float('nan')):.0f}"
                                                 for nm in names) for k in ks))
    if "datatrove" in peers and "error" not in peers["datatrove"]:
        dt = peers["datatrove"]
        print("\ndatatrove stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in dt["stages"].items())
              + f"; dedup total {dt['total']:.1f} s, net of JSONL I/O {dt['net']:.1f} s")
    if "datasketch" in peers and "error" not in peers["datasketch"]:
        print(f"datasketch: {peers['datasketch']['seconds']:.1f} s (+ {peers['datasketch']['parse_seconds']:.1f} s "
              "JSON parsing, not counted)")

    if "error" not in ft:
        per_ours = dedup_seconds(full) / n
        line = (f"\nfastText per event: language ID {ft['langid'] / ft['texts'] * 1e6:.0f} us "
                f"(lid.176.ftz, {ft['texts']:,} texts, {ft['langid_en']:.0%} 'en' on this synthetic text; model load "
                f"{ft['langid_load']:.2f} s)")
        if "quality" in ft:
            line += (f"; quality score {ft['quality'] / ft['texts'] * 1e6:.0f} us (tiny model trained here, "
                     f"{ft['quality_model_bytes'] / 1e6:.1f} MB)")
        else:
            line += f"; quality model not timed: {ft.get('quality_error')}"
        print(line + f"; our whole dedup: {per_ours * 1e6:.0f} us per event")

    print()
    dt_e = evals.get(("datatrove", peer_n))
    if dt_e is not None:
        ours_dps = n / dedup_seconds(full)
        dt_dps = peers["datatrove"]["docs"] / peers["datatrove"]["net"]
        ratio = ours_dps / dt_dps
        print(f"{'PASS' if ratio >= 5 else 'MISS'} speed: ours {ours_dps:,.0f} docs/s/core vs datatrove {dt_dps:,.0f} "
              f"= {ratio:.1f}x (target >= 5x, aim 10x: {'met' if ratio >= 10 else 'not met'})")
        oe = evals[("ours", peer_n)]

        def se(k: str) -> float:  # standard error of the difference of two recalls on the same clusters
            return float(np.sqrt((oe[k] * (1 - oe[k]) + dt_e[k] * (1 - dt_e[k])) / max(1, oe[f"{k}_due"])))

        valid = [k for k in KIND_COLS if not np.isnan(oe[k]) and not np.isnan(dt_e[k])]
        lower = [k for k in valid if oe[k] < dt_e[k]]
        signif = [k for k in lower if dt_e[k] - oe[k] > 2 * max(se(k), 1e-12)]
        prec_ok = oe["precision"] >= 0.99
        detail = ", ".join(f"{k} {oe[k]:.3f} vs {dt_e[k]:.3f}" + (f" ({oe[k] - dt_e[k]:+.3f} = "
                           f"{(oe[k] - dt_e[k]) / max(se(k), 1e-12):+.1f} se)" if k in lower else "") for k in valid)
        print(f"{'PASS' if prec_ok and not lower else 'MISS'} recall >= datatrove's on every kind, same {peer_n:,} "
              f"documents: {detail}; precision {oe['precision']:.4f} (target >= 0.99) vs {dt_e['precision']:.4f}")
        for k, target in (("near-5%", 0.90), ("near-10%", 0.50)):
            if k in oe:
                print(f"{'PASS' if oe[k] >= target and prec_ok else 'MISS'} recall {k} {oe[k]:.3f} (target >= "
                      f"{target:.2f}) at precision {oe['precision']:.4f} (target >= 0.99), {peer_n:,} documents")
        print(f"{'PASS' if prec_ok and not signif else 'MISS'} recall not significantly below datatrove's (> 2 se) "
              f"on any kind: {', '.join(signif) if signif else 'none'} (" + (
              "both use the same 14x8 S-curve; differences come from different hash functions)"
              if (d.bands, d.rows, d.shingle_size) == (14, 8, 5) else
              f"ours {d.shingle_size}-grams {d.bands}x{d.rows}, datatrove 5-grams 14x8: not like for like)"))
    else:
        print("---- speed and recall targets: DataTrove did not run")
    if ratios:
        worst = max(ratios, key=ratios.get)
        peak_small = max(mem[ks[0]][s]["peak_rss_mb"] for s in MEM_STEPS)
        peak_big = max(mem[ks[1]][s]["peak_rss_mb"] for s in MEM_STEPS)
        ok = all(r <= 1.5 for r in ratios.values())
        print(f"{'PASS' if ok else 'MISS'} memory per worker at {ks[0]:,} -> {ks[1]:,} documents: peak "
              f"{peak_small:.0f} -> {peak_big:.0f} MB ({peak_big / peak_small:.2f}x); worst step {worst} "
              f"{ratios[worst]:.2f}x (target <= 1.5x per step)")
        a, b = ours[ks[0]]["peak_rss_mb"], ours[ks[1]]["peak_rss_mb"]
        print(f"info  whole curate stage in one process (every step, decide and timeline too): peak {a:.0f} -> "
              f"{b:.0f} MB ({b / a:.2f}x)")


if __name__ == "__main__":
    main()
