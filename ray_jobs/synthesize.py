"""Entry point of the synthesis stage: `python -m ray_jobs.synthesize --config configs/local.yaml`
(also `humanllm synthesize ...`, or `ray job submit --working-dir . -- python -m ray_jobs.synthesize ...`)."""
from __future__ import annotations

import argparse
import sys

from ray_jobs.common import add_arguments, entry_point, run_stage


def run(args: argparse.Namespace) -> int:
    from synthesis.stage import run as stage

    run_stage(args, stage)
    return 0


def main(argv: list[str] | None = None) -> int:
    return entry_point(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
