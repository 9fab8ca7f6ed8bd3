"""Entry point of the training stage: `python -m ray_jobs.train --config configs/local.yaml` (also
`humanllm train ...`, or `ray job submit --working-dir . -- python -m ray_jobs.train ...`): SFT on Ray
Train + DeepSpeed, then the LM-Cocktail merge with the base model (model/tuned, model/merged)."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from ray_jobs.common import add_arguments, entry_point, run_stage

log = logging.getLogger("humanllm")


def run(args: argparse.Namespace) -> int:
    from train.launcher import run as stage

    metrics = run_stage(args, stage)
    log.info("training done: %s", json.dumps(metrics, default=str))
    return 0


def merge(args: argparse.Namespace) -> int:
    from train.merge import merge_models

    merge_models(args.tuned, args.base, args.out, (args.weight, 1.0 - args.weight))
    return 0


def add_merge_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tuned", required=True, help="the fine-tuned model folder")
    p.add_argument("--base", required=True, help="its base model (folder, hub id or smollm2)")
    p.add_argument("--out", required=True, help="where to write the merged model")
    p.add_argument("--weight", type=float, default=0.5, help="weight of the tuned model (the base gets 1 - weight)")


def main(argv: list[str] | None = None) -> int:
    return entry_point(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
