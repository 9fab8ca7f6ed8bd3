"""Tracking on world rank 0 only: W&B (`wandb.init` with a run id that survives restarts, stored in the
checkpoint or derived from the run name; offline unless an API key is in the environment) and
`metrics.jsonl` beside the exported model (one JSON object per logged step). When the model folder is
on S3, both are written to a local temporary folder: metrics.jsonl is uploaded after every logged step,
the W&B run files when the run finishes (a GPU node's disk goes away with the node)."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile

from core.config import StorageConfig
from core.layout import RunLayout
from core.storage import RunRoot
from train.settings import TrainConfig

log = logging.getLogger(__name__)


def wandb_mode(cfg: TrainConfig) -> str:
    return cfg.wandb.mode or ("online" if os.environ.get("WANDB_API_KEY") else "offline")


def run_id(cfg: TrainConfig) -> str:
    return hashlib.sha1(f"{cfg.storage_path}/{cfg.name}".encode()).hexdigest()[:16]


class Tracker:
    """W&B run (optional) and metrics.jsonl of one training run, on rank 0; `local` is where both are
    written, `models` the model folder they belong in (the same folder unless it is on S3)."""

    def __init__(self, run, local: str, models: RunRoot, step: int = 0):
        self.run, self.local, self.models = run, local, models
        self.remote = "://" in models.uri
        self.metrics_path = os.path.join(local, RunLayout.TRAIN_METRICS)
        logged = b""
        if step and models.exists(RunLayout.TRAIN_METRICS):
            logged = models.read_bytes(RunLayout.TRAIN_METRICS)
        # A resumed run continues the curve of its checkpoint (`step`): the steps the lost attempt logged
        # after that checkpoint are logged again, so they are dropped here rather than repeated.
        kept = [line for line in logged.decode().splitlines() if line and json.loads(line)["step"] <= step]
        with open(self.metrics_path, "w") as f:
            f.writelines(line + "\n" for line in kept)

    def log(self, metrics: dict, step: int) -> None:
        if self.run is not None:
            self.run.log(metrics, step=step)
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(metrics) + "\n")
        if self.remote:
            with open(self.metrics_path, "rb") as f:
                self.models.write_bytes(RunLayout.TRAIN_METRICS, f.read())

    def finish(self, summary: dict) -> None:
        if self.run is not None:
            self.run.summary.update({k: v for k, v in summary.items() if v is not None})
            self.run.finish()
        if self.remote:
            wandb_dir = os.path.join(self.local, RunLayout.TRAIN_WANDB)  # where wandb.init(dir=local) writes
            if os.path.isdir(wandb_dir):
                self.models.put_dir(wandb_dir, RunLayout.TRAIN_WANDB)
            shutil.rmtree(self.local, ignore_errors=True)


def init_tracking(cfg: TrainConfig, storage: StorageConfig, rank: int, state: dict, extra: dict) -> Tracker | None:
    """The tracker on rank 0 (None on other ranks); resumes the W&B run of a restarted job."""
    if rank != 0:
        return None
    models = RunRoot(cfg.output_dir, storage)
    local = tempfile.mkdtemp(prefix="humanllm-tracking-") if "://" in cfg.output_dir else models.path()
    os.makedirs(local, exist_ok=True)
    run = None
    if cfg.wandb.enabled and wandb_mode(cfg) != "disabled":
        import wandb

        state["wandb_id"] = state.get("wandb_id") or run_id(cfg)
        run = wandb.init(project=cfg.wandb.project, entity=cfg.wandb.entity, name=cfg.name, id=state["wandb_id"],
                         resume="allow", mode=wandb_mode(cfg), dir=local,
                         config={**cfg.model_dump(mode="json"), **extra})  # the API key stays in the environment
        log.info("W&B run %s (%s)", run.id, wandb_mode(cfg))
    return Tracker(run, local, models, step=state.get("step", 0))
