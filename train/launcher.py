"""The Ray Train launcher: `TorchTrainer` (Train V2) over `train_loop` with the scaling, run,
checkpoint and failure settings of the train config; rerunning with the same name resumes."""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from core.layout import RunLayout
from core.storage import resolve
from train.settings import TrainConfig

if TYPE_CHECKING:  # the composed config imports every stage's settings
    from ray_jobs.config import PipelineConfig

log = logging.getLogger(__name__)


def _absolute(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


def resolved(cfg: PipelineConfig, layout: RunLayout) -> TrainConfig:
    """The train config with its paths filled from the run layout and made absolute (workers do not
    share the driver's working directory)."""
    t = cfg.train
    updates = {"data": layout.train_data(), "output_dir": layout.model_dir(),
               "storage_path": layout.train_storage(), "deepspeed": t.deepspeed}
    updates = {k: _absolute(v) for k, v in updates.items()}
    if os.path.isdir(t.model):
        updates["model"] = _absolute(t.model)
    return t.model_copy(update=updates)


def run_training(cfg: PipelineConfig, layout: RunLayout | None = None) -> dict:
    """Fit on Ray Train; return the final metrics and the checkpoint path."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from train.loop import train_loop

    layout = layout or cfg.layout()
    t = resolved(cfg, layout)
    # Ray Train writes checkpoints through this filesystem: an s3:// storage path reaches the configured
    # endpoint (MinIO, an on-premises store), not AWS's default one.
    storage_fs, storage_path = resolve(t.storage_path, cfg.storage)
    env = {"DS_ACCELERATOR": "cpu"} if not t.use_gpu else {}
    if t.wandb.mode:
        env["WANDB_MODE"] = t.wandb.mode
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"train": t.model_dump(mode="json"), "storage": cfg.storage.model_dump(mode="json")},
        scaling_config=ScalingConfig(num_workers=t.num_workers, use_gpu=t.use_gpu,
                                     resources_per_worker=dict(t.resources_per_worker),
                                     placement_strategy=t.placement_strategy),
        torch_config=TorchConfig(backend="nccl" if t.use_gpu else "gloo"),
        run_config=RunConfig(name=t.name, storage_path=storage_path, storage_filesystem=storage_fs,
                             checkpoint_config=CheckpointConfig(num_to_keep=t.num_to_keep),
                             failure_config=FailureConfig(max_failures=t.max_failures),
                             worker_runtime_env={"env_vars": env}),
    )
    log.info("training %s on %d worker(s) (%s), run %s under %s", t.model, t.num_workers,
             "GPU" if t.use_gpu else "CPU", t.name, t.storage_path)
    result = trainer.fit()
    metrics = dict(result.metrics or {})
    metrics["checkpoint"] = result.checkpoint.path if result.checkpoint else None
    metrics["tuned"] = layout.tuned_model()
    return metrics


def ray_resources(resources: dict[str, float]) -> dict:
    """A config's {"CPU": n, "GPU": n, "memory": bytes, custom: n} as Ray task options."""
    named = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "memory"}
    opts: dict = {named[k]: v for k, v in resources.items() if k in named}
    custom = {k: v for k, v in resources.items() if k not in named}
    return {**opts, "resources": custom} if custom else opts


def run(cfg: PipelineConfig, layout: RunLayout | None = None, *, use_ray: bool = True, restart: bool = False) -> dict:
    """The training stage: SFT on Ray Train (resuming run `train.name` unless restart), then the merge
    with the base model; returns the final metrics with the tuned and merged model folders."""
    import ray

    from train.merge import merge_models

    if not use_ray:
        raise ValueError("training runs on Ray Train: drop --no-ray")
    layout = layout or cfg.layout()
    if restart:
        layout.at(layout.train_storage()).delete(cfg.train.name)
        models = layout.at(layout.model_dir())
        for name in (layout.TUNED, layout.MERGED, layout.TRAIN_METRICS, layout.TRAIN_WANDB):
            models.delete(name)
    metrics = run_training(cfg, layout)
    t = resolved(cfg, layout)
    merge = ray.remote(merge_models).options(**ray_resources(t.merge_resources))
    ray.get(merge.remote(metrics["tuned"], t.model, layout.merged_model(), tuple(t.merge_weights), cfg.storage))
    metrics["merged"] = layout.merged_model()
    return metrics
