"""Checkpoints of the training loop: DeepSpeed engine state (model, optimizer, scheduler; sharded per
rank under ZeRO) plus the loop state (optimizer step, data position, world size, W&B run id).

Under Ray Train every rank writes its shards to a temporary folder and reports it: Ray merges them
into one checkpoint in `storage_path/name`, keeps `num_to_keep`, and a rerun with the same name hands
the latest back through `ray.train.get_checkpoint()`. Without Ray they go to `storage_path/name/`.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile

from train.settings import TrainConfig

log = logging.getLogger(__name__)
TAG = "deepspeed"
STATE = "humanllm_state.json"


class WorldSizeChanged(RuntimeError):
    pass


def _load(engine, folder: str, state: dict, world: int) -> None:
    with open(os.path.join(folder, STATE)) as f:
        saved = json.load(f)
    if saved["world_size"] != world:
        raise WorldSizeChanged(
            f"checkpoint {folder} was written by {saved['world_size']} workers, this run has {world}: DeepSpeed ZeRO "
            f"checkpoints are partitioned per rank and cannot be resharded here. Rerun with "
            f"train.num_workers={saved['world_size']}, or convert the checkpoint with DeepSpeed's ds_to_universal.py "
            f"and start a new run from the converted weights")
    path, _ = engine.load_checkpoint(folder, tag=TAG, load_optimizer_states=True, load_lr_scheduler_states=True)
    if path is None:
        raise RuntimeError(f"DeepSpeed could not load the checkpoint in {folder}")
    state.update(saved)


def _save(engine, folder: str, state: dict, rank: int) -> None:
    engine.save_checkpoint(folder, tag=TAG)
    if rank == 0:
        with open(os.path.join(folder, STATE), "w") as f:
            json.dump(state, f)


class Checkpointer:
    """restore() before training, save() at checkpoint steps, report() at evaluation steps."""

    def __init__(self, cfg: TrainConfig, rank: int):
        self.cfg, self.rank = cfg, rank

    def restore(self, engine, state: dict, world: int) -> bool:
        raise NotImplementedError

    def save(self, engine, state: dict, metrics: dict) -> None:
        raise NotImplementedError

    def report(self, metrics: dict) -> None:
        pass

    def wait_committed(self) -> None:
        """Block until the last checkpoint is registered where a restarted run finds it."""


class RayCheckpointer(Checkpointer):
    def restore(self, engine, state: dict, world: int) -> bool:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return False
        with checkpoint.as_directory() as folder:
            _load(engine, folder, state, world)
        log.info("resumed from %s at step %d", checkpoint.path, state["step"])
        return True

    def save(self, engine, state: dict, metrics: dict) -> None:
        import ray.train

        folder = tempfile.mkdtemp(prefix="humanllm-ckpt-")
        try:
            _save(engine, folder, state, self.rank)
            ray.train.report(_clean(metrics), checkpoint=ray.train.Checkpoint.from_directory(folder),
                             checkpoint_dir_name=f"step-{state['step']:08d}")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def report(self, metrics: dict) -> None:
        import ray.train

        ray.train.report(_clean(metrics))

    def wait_committed(self) -> None:
        import ray.train
        from ray.train.v2.api.report_config import CheckpointConsistencyMode

        ray.train.get_all_reported_checkpoints(consistency_mode=CheckpointConsistencyMode.COMMITTED)


class LocalCheckpointer(Checkpointer):
    """Checkpoints in `storage_path/name/step-NNNNNNNN/` (one process, no Ray)."""

    @property
    def base(self) -> str:
        return os.path.join(self.cfg.storage_path, self.cfg.name)

    def _done(self) -> list[str]:
        if not os.path.isdir(self.base):
            return []
        return sorted(d for d in os.listdir(self.base) if os.path.exists(os.path.join(self.base, d, STATE)))

    def restore(self, engine, state: dict, world: int) -> bool:
        done = self._done()
        if not done:
            return False
        _load(engine, os.path.join(self.base, done[-1]), state, world)
        log.info("resumed from %s at step %d", os.path.join(self.base, done[-1]), state["step"])
        return True

    def save(self, engine, state: dict, metrics: dict) -> None:
        _save(engine, os.path.join(self.base, f"step-{state['step']:08d}"), state, self.rank)
        if self.rank == 0:
            for old in self._done()[:-self.cfg.num_to_keep]:
                shutil.rmtree(os.path.join(self.base, old), ignore_errors=True)


def _clean(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if v is not None}


def checkpointer_for(cfg: TrainConfig, rank: int) -> Checkpointer:
    """Ray Train's checkpoints inside a Ray Train worker, local folders otherwise."""
    try:
        import ray.train

        ray.train.get_context()
        in_ray = True
    except Exception:  # not a Ray Train worker
        in_ray = False
    return RayCheckpointer(cfg, rank) if in_ray else LocalCheckpointer(cfg, rank)
