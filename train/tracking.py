"""Tracking on world rank 0 only: W&B (`wandb.init` with a run id that survives restarts, stored in the
checkpoint or derived from the run name; offline unless an API key is in the environment) and a local
`metrics.jsonl` beside the exported model (one JSON object per logged step)."""
from __future__ import annotations

import hashlib
import json
import logging
import os

from core.layout import RunLayout
from train.settings import TrainConfig

log = logging.getLogger(__name__)


def wandb_mode(cfg: TrainConfig) -> str:
    return cfg.wandb.mode or ("online" if os.environ.get("WANDB_API_KEY") else "offline")


def run_id(cfg: TrainConfig) -> str:
    return hashlib.sha1(f"{cfg.storage_path}/{cfg.name}".encode()).hexdigest()[:16]


class Tracker:
    """W&B run (optional) and metrics.jsonl of one training run, on rank 0."""

    def __init__(self, run, metrics_path: str | None):
        self.run, self.metrics_path = run, metrics_path

    def log(self, metrics: dict, step: int) -> None:
        if self.run is not None:
            self.run.log(metrics, step=step)
        if self.metrics_path:
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(metrics) + "\n")

    def finish(self, summary: dict) -> None:
        if self.run is not None:
            self.run.summary.update({k: v for k, v in summary.items() if v is not None})
            self.run.finish()


def init_tracking(cfg: TrainConfig, rank: int, state: dict, extra: dict) -> Tracker | None:
    """The tracker on rank 0 (None on other ranks); resumes the W&B run of a restarted job."""
    if rank != 0:
        return None
    local = cfg.output_dir if "://" not in cfg.output_dir else None
    if local:
        os.makedirs(local, exist_ok=True)
    run = None
    if cfg.wandb.enabled and wandb_mode(cfg) != "disabled":
        import wandb

        state["wandb_id"] = state.get("wandb_id") or run_id(cfg)
        run = wandb.init(project=cfg.wandb.project, entity=cfg.wandb.entity, name=cfg.name, id=state["wandb_id"],
                         resume="allow", mode=wandb_mode(cfg), dir=local,
                         config={**cfg.model_dump(mode="json"), **extra})  # the API key stays in the environment
        log.info("W&B run %s (%s)", run.id, wandb_mode(cfg))
    return Tracker(run, os.path.join(local, RunLayout.TRAIN_METRICS) if local else None)
