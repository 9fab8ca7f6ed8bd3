"""Entry point of the person ablation: `python ray_jobs/ablate_person.py --config configs/real_data.yaml`
(also `humanllm ablate-person ...`): the same SFT with and without the person part of the prompt,
compared by held-out loss on unseen users (evaluation/ablation.py)."""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script too

from ray_jobs.common import entry_point, run_stage  # noqa: E402
from ray_jobs.curate import add_arguments  # noqa: E402


def run(args: argparse.Namespace) -> int:
    from evaluation.ablation import run_person_ablation

    run_stage(args, run_person_ablation)
    return 0


def main(argv: list[str] | None = None) -> int:
    return entry_point(__doc__, add_arguments, run, argv)

if __name__ == "__main__":
    sys.exit(main())
