"""Entry point of the evaluation stage: `python ray_jobs/evaluate.py --config configs/local.yaml` (also
`humanllm evaluate ...`, or `ray job submit --working-dir . -- python ray_jobs/evaluate.py ...`):
every model of `evaluate.models` on the in-domain test split and the out-of-domain benchmarks, then
<run_root>/eval/report.html."""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script too

from ray_jobs.common import entry_point, run_stage  # noqa: E402
from ray_jobs.curate import add_arguments  # noqa: E402


def run(args: argparse.Namespace) -> int:
    from evaluation.stage import run_evaluate

    run_stage(args, run_evaluate)
    return 0


def main(argv: list[str] | None = None) -> int:
    return entry_point(__doc__, add_arguments, run, argv)

if __name__ == "__main__":
    sys.exit(main())
