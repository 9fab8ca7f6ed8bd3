"""Entry point of the person ablation: `python -m ray_jobs.ablate_person --config configs/real_data.yaml`
(also `humanllm ablate-person ...`): the same SFT with and without the person part of the prompt,
compared by held-out loss on unseen users (evaluation/ablation.py)."""
from __future__ import annotations

import argparse
import sys

from ray_jobs.common import add_arguments, entry_point, run_stage


def run(args: argparse.Namespace) -> int:
    from evaluation.ablation import run as stage

    run_stage(args, stage)
    return 0


def main(argv: list[str] | None = None) -> int:
    return entry_point(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
