"""LLM engines behind one interface: a Ray Data transform over request rows (REQUEST_SCHEMA) that adds
`generated_text`, `prompt_tokens`, `completion_tokens` and `engine_error` and passes the other columns on.

- `vllm`: one vLLM engine per model per stage, served by Ray Serve LLM (`llm.serving`), reached by
  ray.data.llm's `ServeDeploymentProcessorConfig` (GPU on clusters, the vLLM CPU build here). Rows
  carry the prompt already rendered with the model's chat template (the request builder needs the
  tokenizer anyway for token budgets), sent as a completion.
- `transformers`: a `generate` actor pool (fallback where vLLM is absent; no structured outputs).
- `openai`: ray.data.llm `HttpRequestProcessorConfig` against an OpenAI-compatible endpoint.
- `table`: answers from a fixed JSON table {kind: answer} (unit tests and dry runs).

Per-row failures never fail the job: they come back with `engine_error` set and are retried by the
pass runner. A vLLM engine that dies is replaced by Serve; the caller resends the unanswered rows.
"""
from __future__ import annotations

import json
import logging
import os

import pyarrow as pa

from core import schema as S
from core.config import StorageConfig
from llm.models import resolve_model, torch_dtype
from llm.serving import EngineSet
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


def _served(ds, cfg: EngineConfig, app: str):
    """Rows -> completions from the stage's running engine (`llm.serving`); the prompt is already rendered
    with the chat template, so the tokenizer adds no special tokens of its own."""
    from ray.data.llm import build_processor, ServeDeploymentProcessorConfig
    from ray.serve.llm.openai_api_models import CompletionRequest

    from llm.serving import DEPLOYMENT, MODEL_ID

    config = ServeDeploymentProcessorConfig(
        deployment_name=DEPLOYMENT, app_name=app, dtype_mapping={"CompletionRequest": CompletionRequest},
        batch_size=cfg.batch_size, concurrency=cfg.concurrency, should_continue_on_error=True)
    structured = cfg.structured_outputs

    def pre(row: dict) -> dict:
        params = vllm_sampling(json.loads(row[S.SAMPLING]), structured)
        return {"method": "completions", "dtype": "CompletionRequest", **_pack(row),
                "request_kwargs": {"model": MODEL_ID, "prompt": row[S.PROMPT], "add_special_tokens": False,
                                   "stream": False, **params}}

    def post(row: dict) -> dict:
        choices, usage = row.get("choices") or [{}], row.get("usage") or {}
        return _result(_unpack(row), choices[0].get("text"), usage.get("prompt_tokens"),
                       usage.get("completion_tokens"), row.get("__inference_error__"))

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

    def __init__(self, model: str, tokenizer: str | None = None, dtype: str = "auto", storage: dict | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        where = StorageConfig.model_validate(storage or {})
        path = resolve_model(model, where)  # an s3:// model: this actor's node's cached copy
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(resolve_model(tokenizer, where) if tokenizer else path)
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


def engine_died(exc: BaseException) -> bool:
    """Whether a failed Ray Data execution failed because an engine replica died (Serve replaces it)."""
    from ray.exceptions import RayActorError
    from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError

    dead = (RayActorError, DeploymentUnavailableError, ReplicaUnavailableError)
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, dead):
            return True
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    return False


def generate(ds, cfg: EngineConfig, engines: EngineSet | None = None):
    """Apply the configured engine to a Ray Dataset of request rows; `vllm` sends them to the stage's
    running engine in `engines` (started on first use)."""
    if cfg.backend == "vllm":
        if engines is None:
            raise ValueError("the vllm backend serves one engine per stage: pass the stage's EngineSet")
        return _served(ds, cfg, engines.app(cfg))
    if cfg.backend == "openai":
        return _openai(ds, cfg)
    if cfg.backend == "transformers":
        from ray.data import ActorPoolStrategy

        storage = engines.storage.model_dump(mode="json") if engines is not None and engines.storage else None
        return ds.map_batches(TransformersGenerator, fn_constructor_kwargs={
            "model": cfg.model, "tokenizer": cfg.tokenizer, "dtype": cfg.dtype, "storage": storage},
            batch_size=cfg.batch_size, batch_format="pyarrow", compute=ActorPoolStrategy(size=cfg.concurrency),
            num_cpus=1, num_gpus=1 if cfg.use_gpu else 0)
    if cfg.backend == "table":
        if not cfg.table:
            raise ValueError("synthesis engine backend `table` needs `table:` (a JSON file {kind: answer})")
        engine = TableEngine.from_file(cfg.table)
        return ds.map_batches(lambda batch: engine(batch), batch_size=cfg.batch_size, batch_format="pyarrow")
    raise ValueError(f"unknown engine backend {cfg.backend!r}")
