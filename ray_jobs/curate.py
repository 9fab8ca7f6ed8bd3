"""Entry point of the curate stage: `python -m ray_jobs.curate --config configs/local.yaml`
(also `humanllm curate ...`, or `ray job submit --working-dir . -- python -m ray_jobs.curate ...`)."""
from __future__ import annotations

import argparse
import sys

from ray_jobs.common import add_arguments, entry_point, run_stage


def run(args: argparse.Namespace) -> int:
    from processing.curate_stage import run as stage

    stats = run_stage(args, stage)
    return 1 if stats["accounting_errors"] else 0


def main(argv: list[str] | None = None) -> int:
    return entry_point(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
