"""Settings of the simulation service (`humanllm serve`): which model, its engine, replica autoscaling,
where it listens, and the sampling of each simulate task."""
from __future__ import annotations

from pydantic import Field, field_validator

from core.config import Model
from llm.settings import EngineConfig
from simulate.tasks import TASKS

# Generated tokens per task: the text tasks ask for a post-sized answer (think 100 words, explain 50);
# `rate` and `choose` answer in JSON ({"rating": n}, {"choice": a candidate title}).
TASK_MAX_TOKENS = dict(zip(TASKS, (320, 256, 24, 128, 224, 160)))


class ReplicaAutoscaling(Model):
    """Ray Serve autoscaling of the engine replicas (each replica holds one copy of the model)."""

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(1, ge=1)
    target_ongoing_requests: int = Field(16, ge=1)  # requests per replica before Serve adds one


class ServeConfig(Model):
    """`model`: `merged` (default), `tuned` or `base` (the training stage's exports and base model), or
    a local folder, an s3:// folder or a hub id. `engine` holds the engine-level settings (vLLM; GPU on
    a cluster, the CPU build here); its own `model` is replaced by the resolved `model`."""

    model: str = "merged"
    engine: EngineConfig = EngineConfig()
    autoscaling: ReplicaAutoscaling = ReplicaAutoscaling()
    host: str = "127.0.0.1"  # 0.0.0.0 to listen on every interface (a cluster's head)
    port: int = Field(8000, ge=1, le=65535)
    temperature: float = Field(0.7, ge=0.0)
    max_tokens: dict[str, int] = TASK_MAX_TOKENS  # per simulate task

    @field_validator("engine")
    @classmethod
    def _served_by_vllm(cls, engine: EngineConfig) -> EngineConfig:
        if engine.backend != "vllm":
            raise ValueError("the service runs on Ray Serve LLM's vLLM engine: set serve.engine.backend to vllm")
        return engine

    @field_validator("max_tokens")
    @classmethod
    def _known_tasks(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = set(value) - set(TASK_MAX_TOKENS)
        if unknown:
            raise ValueError(f"unknown task(s) {sorted(unknown)}; the tasks are {', '.join(TASK_MAX_TOKENS)}")
        return {**TASK_MAX_TOKENS, **value}
