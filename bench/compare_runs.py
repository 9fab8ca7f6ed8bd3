"""Compare two run roots file by file: the same files, the same Parquet rows, the same JSON (timings and
memory samples left out), the same tensors in safetensors files, the same bytes for everything else.

    python bench/compare_runs.py runs/before runs/after [--ignore 'logs/*'] [--rename /src/a=/src/b]

Prints one line per difference and a summary; exits 1 when the trees differ. Used to check that a
refactor leaves a run's outputs unchanged (same config, same seed, run before and after).
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import os
import re
import sys

import pyarrow.parquet as pq

log = logging.getLogger("compare_runs")
# Keys whose values are measurements of the run, not its output.
VOLATILE = {"seconds", "wall_seconds", "step_wall_seconds", "peak_rss_mb", "train_seconds", "tokens_per_second", "elapsed", "timestamp",
            "_runtime", "_timestamp", "mfu", "step_seconds", "tokens_per_s", "completion_tokens_per_s"}


SHARD_HASH = re.compile(r"-[0-9a-f]{8}(?=[./]|$)")  # curate's shard ids end in a hash of the input's URI


def files_of(root: str, ignore: list[str], any_input_folder: bool = False) -> dict[str, str]:
    """{key: relative path} of every file; with any_input_folder, keys drop the input-URI hash of
    curate's shard names, so runs that read the same inputs from two folders pair up."""
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            rel = os.path.relpath(os.path.join(d, n), root)
            if not any(fnmatch.fnmatch(rel, pat) for pat in ignore):
                out[SHARD_HASH.sub("-#", rel) if any_input_folder else rel] = rel
    return out


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _renamed(obj, renames: list[tuple[str, str]]):
    """obj with each old folder replaced by the new one in every string and key (run a's side), and
    curate's input-URI hashes dropped from shard names (both sides)."""
    if isinstance(obj, str):
        for old, new in renames:
            obj = obj.replace(old, new)
        return SHARD_HASH.sub("-#", obj) if renames else obj
    if isinstance(obj, dict):
        return {_renamed(k, renames): _renamed(v, renames) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_renamed(v, renames) for v in obj]
    return obj


def same_file(a: str, b: str, renames: list[tuple[str, str]] = ()) -> str | None:
    """None when equal, else a short reason. `renames` maps folder names of run a to run b's."""
    if a.endswith(".parquet"):
        ta, tb = pq.read_table(a), pq.read_table(b)
        if ta.schema != tb.schema:
            return "schema differs"
        if ta.equals(tb) or (renames and _renamed(ta.to_pylist(), renames) == _renamed(tb.to_pylist(), renames)):
            return None
        return f"rows differ ({ta.num_rows} vs {tb.num_rows})"
    if a.endswith(".safetensors"):  # the same tensors, whatever the file's header order and metadata
        from safetensors.torch import load_file

        ta, tb = load_file(a), load_file(b)
        if ta.keys() != tb.keys():
            return "tensor names differ"
        bad = [k for k in ta if ta[k].dtype != tb[k].dtype or not ta[k].equal(tb[k])]
        return f"{len(bad)} tensors differ (e.g. {bad[0]})" if bad else None
    if a.endswith(".json"):
        with open(a) as fa, open(b) as fb:
            ja, jb = (_renamed(_strip(json.load(x)), renames) for x in (fa, fb))
            return None if ja == jb else "JSON differs"
    if a.endswith(".jsonl"):
        with open(a) as fa, open(b) as fb:
            la = [_renamed(_strip(json.loads(x)), renames) for x in fa if x.strip()]
            lb = [_renamed(_strip(json.loads(x)), renames) for x in fb if x.strip()]
        return None if la == lb else "JSON lines differ"
    with open(a, "rb") as fa, open(b, "rb") as fb:
        ba, bb = fa.read(), fb.read()
    if ba == bb:
        return None
    if renames:  # text that names its run's folder (report.html, cards)
        try:
            if _renamed(ba.decode(), renames) == _renamed(bb.decode(), renames):
                return None
        except UnicodeDecodeError:
            pass
    return "bytes differ"


def compare(a: str, b: str, ignore: list[str], renames: list[tuple[str, str]] = ()) -> list[str]:
    fa, fb = files_of(a, ignore, bool(renames)), files_of(b, ignore, bool(renames))
    diffs = [f"only in {a}: {fa[k]}" for k in sorted(fa.keys() - fb.keys())]
    diffs += [f"only in {b}: {fb[k]}" for k in sorted(fb.keys() - fa.keys())]
    for key in sorted(fa.keys() & fb.keys()):
        reason = same_file(os.path.join(a, fa[key]), os.path.join(b, fb[key]), renames)
        if reason:
            diffs.append(f"{fa[key]}: {reason}")
    log.info("compared %d common files", len(fa.keys() & fb.keys()))
    return diffs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--ignore", action="append", default=[], help="glob of relative paths to leave out")
    p.add_argument("--rename", action="append", default=[], metavar="OLD=NEW",
                   help="a folder in run a's values that reads NEW in run b (runs made in two checkouts; "
                        "curate's shard names then pair up without their input-URI hash)")
    args = p.parse_args(argv)
    renames = [tuple(r.split("=", 1)) for r in args.rename]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    diffs = compare(args.a, args.b, args.ignore, renames)
    for d in diffs:
        log.info("DIFF %s", d)
    log.info("%s", "identical" if not diffs else f"{len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
