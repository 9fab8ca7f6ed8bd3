"""Compare two run roots file by file: the same files, the same Parquet rows, the same JSON (timings and
memory samples left out), the same bytes for everything else.

    python bench/compare_runs.py runs/before runs/after [--ignore 'logs/*' --ignore 'train/*']

Prints one line per difference and a summary; exits 1 when the trees differ. Used to check that a
refactor leaves a run's outputs unchanged (same config, same seed, run before and after).
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import os
import sys

import pyarrow.parquet as pq

log = logging.getLogger("compare_runs")
# Keys whose values are measurements of the run, not its output.
VOLATILE = {"seconds", "wall_seconds", "peak_rss_mb", "train_seconds", "tokens_per_second", "elapsed", "timestamp",
            "_runtime", "_timestamp", "mfu", "step_seconds"}


def files_of(root: str, ignore: list[str]) -> set[str]:
    out = set()
    for d, _, names in os.walk(root):
        for n in names:
            rel = os.path.relpath(os.path.join(d, n), root)
            if not any(fnmatch.fnmatch(rel, pat) for pat in ignore):
                out.add(rel)
    return out


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def same_file(a: str, b: str) -> str | None:
    """None when equal, else a short reason."""
    if a.endswith(".parquet"):
        ta, tb = pq.read_table(a), pq.read_table(b)
        if ta.schema != tb.schema:
            return "schema differs"
        return None if ta.equals(tb) else f"rows differ ({ta.num_rows} vs {tb.num_rows})"
    if a.endswith(".json"):
        with open(a) as fa, open(b) as fb:
            return None if _strip(json.load(fa)) == _strip(json.load(fb)) else "JSON differs"
    if a.endswith(".jsonl"):
        with open(a) as fa, open(b) as fb:
            la = [_strip(json.loads(x)) for x in fa if x.strip()]
            lb = [_strip(json.loads(x)) for x in fb if x.strip()]
        return None if la == lb else "JSON lines differ"
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return None if fa.read() == fb.read() else "bytes differ"


def compare(a: str, b: str, ignore: list[str]) -> list[str]:
    fa, fb = files_of(a, ignore), files_of(b, ignore)
    diffs = [f"only in {a}: {p}" for p in sorted(fa - fb)] + [f"only in {b}: {p}" for p in sorted(fb - fa)]
    for rel in sorted(fa & fb):
        reason = same_file(os.path.join(a, rel), os.path.join(b, rel))
        if reason:
            diffs.append(f"{rel}: {reason}")
    log.info("compared %d common files", len(fa & fb))
    return diffs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--ignore", action="append", default=[], help="glob of relative paths to leave out")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    diffs = compare(args.a, args.b, args.ignore)
    for d in diffs:
        log.info("DIFF %s", d)
    log.info("%s", "identical" if not diffs else f"{len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
