"""Entry point of the curate stage: `python ray_jobs/curate.py --config configs/local.yaml`
(also `humanllm curate ...`, or `ray job submit --working-dir . -- python ray_jobs/curate.py ...`)."""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script too

from ray_jobs.common import entry_point, run_stage  # noqa: E402


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="pipeline YAML (see configs/local.yaml)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. run_root=s3://b/run")
    p.add_argument("--restart", action="store_true", help="discard this stage's outputs and markers first")
    p.add_argument("--no-ray", action="store_true", help="run every shard in this process (debugging)")
    p.add_argument("--verbose", action="store_true", help="Ray, Ray Data, vLLM and DeepSpeed logs on the terminal "
                   "too (by default they go to <run_root>/logs/driver.log)")


def run(args: argparse.Namespace) -> int:
    from processing.curate_stage import run_curate

    stats = run_stage(args, run_curate)
    return 1 if stats["accounting_errors"] else 0


def main(argv: list[str] | None = None) -> int:
    return entry_point(__doc__, add_arguments, run, argv)

if __name__ == "__main__":
    sys.exit(main())
