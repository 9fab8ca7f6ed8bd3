"""Entry point of the training stage: `python ray_jobs/train.py --config configs/local.yaml` (also
`humanllm train ...`, or `ray job submit --working-dir . -- python ray_jobs/train.py ...`): SFT on Ray
Train + DeepSpeed, then the LM-Cocktail merge with the base model (<output_dir>/tuned, merged)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script too

from core import console  # noqa: E402
from ray_jobs.common import entry_point, load, start_run  # noqa: E402

log = logging.getLogger("humanllm")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="pipeline YAML (see configs/local.yaml)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. train.max_steps=10")
    p.add_argument("--verbose", action="store_true", help="Ray, Ray Train and DeepSpeed logs on the terminal too")


def _steps(path: str) -> list[dict]:
    """The optimizer steps logged so far in a metrics.jsonl (the step-0 baseline has no `loss`)."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:  # a line the worker is still writing
                continue
    return [r for r in rows if "loss" in r]


def run(args: argparse.Namespace) -> int:
    from train.launcher import resolved, run_training
    from train.merge import merge_models

    cfg = load(args.config, args.set)
    start_run(cfg, args.verbose)
    t = resolved(cfg)
    curve = os.path.join(t.output_dir, "metrics.jsonl")
    with console.stage("train") as record:
        before = len(_steps(curve))  # a resumed run appends to the same file
        with console.progress(t.max_steps, "train", unit="steps") as bar, \
                console.poll_progress(bar, lambda: len(_steps(curve)) - before):
            metrics = run_training(cfg)
        merge_models(metrics["tuned"], t.model, os.path.join(t.output_dir, "merged"), tuple(t.merge_weights))
        rows = _steps(curve)
        if rows:
            log.info("training curve (%s):\n%s", curve, console.format_table(
                rows, ["step", "loss", "eval_loss", "lr", "tokens_per_s", "step_seconds"]))
        record.output = os.path.join(t.output_dir, "merged")
    log.debug("training done: %s", json.dumps(metrics, default=str))
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
