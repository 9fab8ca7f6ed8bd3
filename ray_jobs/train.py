"""Entry point of the training stage: `python -m ray_jobs.train --config configs/local.yaml` (also
`humanllm train ...`, or `ray job submit --working-dir . -- python -m ray_jobs.train ...`): SFT on Ray
Train + DeepSpeed, then the LM-Cocktail merge with the base model (model/tuned, model/merged)."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from core import console
from core.layout import RunLayout
from core.storage import RunRoot
from ray_jobs.common import add_arguments, entry_point, run_stage
from ray_jobs.config import PipelineConfig

log = logging.getLogger("humanllm")


def _steps(models: RunRoot) -> list[dict]:
    """The optimizer steps logged so far in metrics.jsonl of the model folder, local or on S3 (the step-0
    baseline has no `loss`)."""
    if not models.exists(RunLayout.TRAIN_METRICS):
        return []
    rows = []
    for line in models.read_bytes(RunLayout.TRAIN_METRICS).decode().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # a line the worker is still writing
            continue
    return [r for r in rows if "loss" in r]


def train_with_progress(cfg: PipelineConfig, layout: RunLayout, *, use_ray: bool = True, restart: bool = False) -> dict:
    """The training stage with a progress bar of optimizer steps and the training curve on the console."""
    from train.launcher import run as train_stage

    models = layout.at(layout.model_dir())
    before = 0 if restart else len(_steps(models))  # a resumed run appends to the same file
    with console.progress(cfg.train.max_steps, "train", unit="steps") as bar, \
            console.poll_progress(bar, lambda: len(_steps(models)) - before):
        metrics = train_stage(cfg, layout, use_ray=use_ray, restart=restart)
    rows = _steps(models)
    if rows:
        log.info("training curve (%s):\n%s", layout.train_metrics(), console.format_table(
            rows, ["step", "loss", "eval_loss", "lr", "tokens_per_s", "step_seconds"]))
    log.debug("training done: %s", json.dumps(metrics, default=str))
    return metrics


def run(args: argparse.Namespace) -> int:
    run_stage(args, train_with_progress)
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
