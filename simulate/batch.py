"""Batch simulation (`humanllm simulate`): the simulate service's requests for many people at once, sent
through the project's engines (`llm.engines`: vLLM on Ray Data, or any backend, `table` for tests) and
written as Parquet beside the run.

People: the run's users (or those a situations file names), sorted by user id, that are on `platform`
(when given) and whose data supports the task (`simulate.tasks.supported`); the first `people` of them.
Each gets one request per situation: the `--situation` shared by everyone, their rows of a situations
file ({user_id, situation?, candidates?}), or none (next_post's topic is optional). The prompt is the
service's (`People.build`), rendered with the engine model's chat template as synthesis renders its
requests, sampled at `serve.temperature` up to `serve.max_tokens[task]` with the prompt's own seed (the
same request, the same answer), rate and choose constrained by their JSON schema.

Output folder (default <run_root>/simulate/<task>/, any URI of the run's storage):
  parts/<id>.parquet   answers as they stream back (the resume state; a row per attempt)
  answers.parquet      one row per request, sorted by user and request id, once none is pending
  stats.json           people selected and skipped, requests, answered, rejects by reason, tokens
  _markers/simulate/   the settings' fingerprint (another configuration is refused unless restart)

A rerun rebuilds the same request ids and sends only those without an answer yet (an anti-join on
parts/), so a killed run finishes with the same answers.parquet as an uninterrupted one. A request
that cannot be answered is a row with `reject` set and its reason in `error`, never a crash:
`invalid_request` and `unsupported` (the request or the person's data, found before sending),
`unparsable` (a structured answer that does not parse), `empty` (no text), `engine_error` (resent once
in the run and again by a rerun).
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from core import schema as S
from core.config import ConfigError
from core.console import progress
from core.layout import RunLayout
from core.shards import fingerprint, StageMarkers
from core.storage import open_input, resolve, RunRoot
from llm.ids import stable_id
from llm.settings import EngineConfig
from simulate.tasks import SimPrompt, SimulateRequest, STRUCTURED, TASKS, Unsupported

if TYPE_CHECKING:
    from ray_jobs.config import PipelineConfig
    from simulate.people import People

log = logging.getLogger(__name__)

NEEDS_SITUATION = ("comment", "rate", "think", "explain")  # choose needs candidates (a situations file)
KIND_PREFIX = "simulate_"  # request kind `simulate_<task>` (the table engine's key)
SHARD = "simulate"
CHUNK = 2048  # requests built and sent per engine execution (bounds the driver's memory)
FLUSH_ROWS = 1024  # answers per parts/ file (a kill loses at most these)
FLUSH_SECONDS = 60.0  # ... or at most this long
ROUNDS = 2  # sends per run of a request whose answer was an engine error
ENGINE_RESTARTS = 3  # engine deaths survived per chunk (Serve replaces the engine)
ENGINE_ERROR = "engine_error"
SITUATION, CANDIDATES, ANSWER, REJECT = "situation", "candidates", "answer", "reject"

RESULT_SCHEMA = pa.schema([
    pa.field(S.REQUEST_ID, pa.string(), nullable=False),
    pa.field(S.USER_ID, pa.string(), nullable=False),
    pa.field(S.PLATFORM, pa.string(), nullable=False),
    pa.field(S.TASK, pa.string(), nullable=False),
    pa.field(SITUATION, pa.string()),
    pa.field(CANDIDATES, pa.list_(pa.string())),
    pa.field(ANSWER, pa.string()),  # JSON {"text"}, {"rating": 1..5} or {"choice"}; null for a reject
    pa.field(S.GENERATED_TEXT, pa.string()),  # the model's raw answer
    pa.field(S.PROMPT_TOKENS, pa.int64()),
    pa.field(S.COMPLETION_TOKENS, pa.int64()),
    pa.field(REJECT, pa.string()),  # null: answered; else invalid_request, unsupported, unparsable, empty, engine_error
    pa.field(S.ERROR, pa.string()),  # the reason of a reject
    pa.field(S.SEED, pa.int64()),
    pa.field(S.MODEL, pa.string()),
])
PART_SCHEMA = RESULT_SCHEMA.append(pa.field(S.ATTEMPT, pa.int32()))
SITUATIONS_SCHEMA = pa.schema([pa.field(S.USER_ID, pa.string(), nullable=False), pa.field(SITUATION, pa.string()),
                               pa.field(CANDIDATES, pa.list_(pa.string()))])


class BatchInputError(ConfigError):
    """The command's inputs cannot make the requests (shown as one line, like a config error)."""


@dataclass(frozen=True)
class Item:
    """One request of the batch, before its prompt is built."""

    request_id: str
    user_id: str
    platform: str
    situation: str | None
    candidates: tuple[str, ...] | None


def request_id(task: str, user_id: str, situation: str | None, candidates: Iterable[str] | None) -> str:
    return stable_id("simulate", task, user_id, situation or "",
                     json.dumps(list(candidates) if candidates is not None else None, ensure_ascii=False))


# ---- inputs -----------------------------------------------------------------------------------

def read_situations(uri: str, storage=None) -> pa.Table:
    """A situations file (JSONL, or Parquet: a file or folder) as SITUATIONS_SCHEMA rows; a row without
    a user id, or with a situation or candidates of the wrong type, is an error naming it."""
    if uri.rstrip("/").endswith(".jsonl") or uri.rstrip("/").endswith(".json"):
        with open_input(uri, storage) as f:
            lines = f.read().decode("utf-8").splitlines()
        rows = []
        for n, line in enumerate(lines, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise BatchInputError(f"{uri}:{n}: not JSON ({exc.msg})") from None
    else:
        import pyarrow.parquet as pq

        fs, path = resolve(uri, storage)
        rows = pq.read_table(path, filesystem=fs).to_pylist()
    out = []
    for n, row in enumerate(rows, 1):
        where = f"{uri}: row {n}"
        if not isinstance(row, dict) or not isinstance(row.get(S.USER_ID), str) or not row[S.USER_ID]:
            raise BatchInputError(f"{where}: needs a non-empty string `user_id`")
        situation, candidates = row.get(SITUATION), row.get(CANDIDATES)
        if situation is not None and not isinstance(situation, str):
            raise BatchInputError(f"{where}: `situation` must be a string")
        if candidates is not None and (not isinstance(candidates, list) or not all(isinstance(c, str) for c in candidates)):
            raise BatchInputError(f"{where}: `candidates` must be a list of strings")
        unknown = set(row) - set(SITUATIONS_SCHEMA.names)
        if unknown:
            raise BatchInputError(f"{where}: unknown field(s) {sorted(unknown)}; a row is {{user_id, situation?, candidates?}}")
        out.append({S.USER_ID: row[S.USER_ID], SITUATION: situation, CANDIDATES: candidates})
    return pa.Table.from_pylist(out, schema=SITUATIONS_SCHEMA)


def check_inputs(task: str, situation: str | None, situations: pa.Table | None) -> None:
    """The task's situation or candidates are given where it needs them (BatchInputError otherwise)."""
    if task not in TASKS:
        raise BatchInputError(f"unknown task {task!r}; the tasks are {', '.join(TASKS)}")
    if situation is not None and situations is not None:
        raise BatchInputError("give --situation (the same for everyone) or --situations (a file), not both")
    if task == "choose":
        if situations is None:
            raise BatchInputError("choose needs --situations: a JSONL or Parquet of {user_id, candidates}")
        if situation is not None:
            raise BatchInputError("choose takes no --situation (the item-selection prompt has no place for one)")
    elif task in NEEDS_SITUATION and situation is None and situations is None:
        raise BatchInputError(f"{task} needs --situation (the same for everyone) or --situations "
                              "(a JSONL or Parquet of {user_id, situation})")


def select_people(people: People, task: str, platform: str | None = None, limit: int | None = None,
                  named: Iterable[str] | None = None) -> tuple[list[dict], dict]:
    """The people to simulate: sorted user ids (of `named`, else every user of the run) on `platform`
    whose data supports `task`, the first `limit` of them (None: all); and the counts of those left out
    (`unsupported` per platform, `unknown`: named but not in the run, `over_limit`)."""
    entries = people.list(platform, limit=len(people))
    counts: dict = {"in_run": len(people), "unsupported": {}, "unknown": 0, "over_limit": 0}
    if named is not None:
        wanted = set(named)
        counts["unknown"] = sum(1 for u in wanted if u not in people)
        entries = [e for e in entries if e[S.USER_ID] in wanted]
    unsupported = Counter(e[S.PLATFORM] for e in entries if task not in e["tasks"])
    counts["unsupported"] = dict(sorted(unsupported.items()))
    chosen = [e for e in entries if task in e["tasks"]]
    if limit is not None:
        counts["over_limit"] = max(0, len(chosen) - limit)
        chosen = chosen[:limit]
    counts["selected"] = len(chosen)
    return chosen, counts


def request_items(task: str, chosen: list[dict], situation: str | None, situations: pa.Table | None) -> list[Item]:
    """One item per chosen person and situation (a file's rows of that person, in file order; exact
    duplicates once), in user-id order."""
    by_user: dict[str, list[tuple[str | None, tuple[str, ...] | None]]] = defaultdict(list)
    if situations is not None:
        for row in situations.to_pylist():
            cand = tuple(row[CANDIDATES]) if row[CANDIDATES] is not None else None
            pair = (row[SITUATION], cand)
            if pair not in by_user[row[S.USER_ID]]:
                by_user[row[S.USER_ID]].append(pair)
    items = []
    for e in chosen:
        uid = e[S.USER_ID]
        for sit, cand in (by_user[uid] if situations is not None else [(situation, None)]):
            items.append(Item(request_id(task, uid, sit, cand), uid, e[S.PLATFORM], sit, cand))
    return items


# ---- requests and answers -----------------------------------------------------------------------

def _row(item: Item, task: str, model: str, **values) -> dict:
    row = {S.REQUEST_ID: item.request_id, S.USER_ID: item.user_id, S.PLATFORM: item.platform, S.TASK: task,
           SITUATION: item.situation, CANDIDATES: list(item.candidates) if item.candidates is not None else None,
           ANSWER: None, S.GENERATED_TEXT: None, S.PROMPT_TOKENS: 0, S.COMPLETION_TOKENS: 0, REJECT: None,
           S.ERROR: None, S.SEED: None, S.MODEL: model, S.ATTEMPT: 0}
    row.update(values)
    return row


def prepare(people: People, task: str, item: Item) -> SimPrompt | tuple[str, str]:
    """The item's prompt, or (reject, reason) when the request or the person's data cannot make one."""
    try:
        req = SimulateRequest(user_id=item.user_id, platform=item.platform, task=task, situation=item.situation,
                              candidates=list(item.candidates) if item.candidates is not None else None)
    except ValidationError as exc:
        first = exc.errors()[0]
        return "invalid_request", f"{'.'.join(map(str, first['loc'])) or 'request'}: {first['msg']}"
    try:
        return people.build(req)
    except Unsupported as exc:
        return "unsupported", str(exc)


def request_row(task: str, item: Item, prompt: SimPrompt, attempt: int, renderer, cfg: PipelineConfig) -> dict:
    """The engine request (REQUEST_SCHEMA) of a built prompt: rendered with the engine model's chat
    template, the serve sampling settings, the prompt's seed, rate/choose's JSON schema."""
    from synthesis.prompts import prompt_hash

    s = cfg.serve
    sampling: dict = {"max_tokens": s.max_tokens.get(task, 256), "temperature": s.temperature, "seed": prompt.seed}
    if prompt.response_format is not None:
        sampling["structured"] = {"json": prompt.response_format["json_schema"]["schema"]}
    return {S.REQUEST_ID: item.request_id, S.ANNOTATION_KIND: KIND_PREFIX + task, S.SUBJECT_ID: item.request_id,
            S.USER_ID: item.user_id, S.PLATFORM: item.platform, S.SHARD: SHARD, S.PRIORITY: 0, S.ATTEMPT: attempt,
            S.SEED: prompt.seed, S.MESSAGES: json.dumps(prompt.messages, ensure_ascii=False),
            S.PROMPT: renderer.render(prompt.messages), S.PROMPT_HASH: prompt_hash(prompt.messages),
            S.SAMPLING: json.dumps(sampling)}


def answer_result(answer: dict, task: str, item: Item, prompt: SimPrompt, model: str) -> dict:
    """One engine answer (request columns + generated_text, tokens, engine_error) as a PART_SCHEMA row:
    the parsed answer as JSON, or a reject with its reason."""
    text = answer.get(S.GENERATED_TEXT) or ""
    common = {S.GENERATED_TEXT: text, S.PROMPT_TOKENS: int(answer.get(S.PROMPT_TOKENS) or 0),
              S.COMPLETION_TOKENS: int(answer.get(S.COMPLETION_TOKENS) or 0), S.SEED: prompt.seed,
              S.ATTEMPT: int(answer.get(S.ATTEMPT) or 0)}
    if answer.get(S.ENGINE_ERROR):
        return _row(item, task, model, **common, **{REJECT: ENGINE_ERROR, S.ERROR: str(answer[S.ENGINE_ERROR])[:500]})
    try:
        parsed = prompt.parse(text)
    except ValueError as exc:
        return _row(item, task, model, **common, **{REJECT: "unparsable", S.ERROR: str(exc)[:500]})
    if task not in STRUCTURED and not parsed.get("text"):
        return _row(item, task, model, **common, **{REJECT: "empty", S.ERROR: "the answer is empty"})
    return _row(item, task, model, **common, **{ANSWER: json.dumps(parsed, ensure_ascii=False, sort_keys=True)})


def final_table(parts: pa.Table, items: list[Item]) -> tuple[pa.Table, list[str]]:
    """One row per item from the written attempts (the first that is not an engine error, else the
    last), sorted by user and request id; and the request ids with no row yet."""
    by_rid: dict[str, list[dict]] = defaultdict(list)
    wanted = {it.request_id for it in items}
    for row in parts.to_pylist():
        if row[S.REQUEST_ID] in wanted:
            by_rid[row[S.REQUEST_ID]].append(row)
    rows, missing = [], []
    for it in items:
        tries = sorted(by_rid.get(it.request_id, []), key=lambda r: r[S.ATTEMPT])
        if not tries:
            missing.append(it.request_id)
            continue
        rows.append(next((t for t in tries if t[REJECT] != ENGINE_ERROR), tries[-1]))
    rows.sort(key=lambda r: (r[S.USER_ID], r[S.REQUEST_ID]))
    table = pa.Table.from_pylist([{k: r[k] for k in RESULT_SCHEMA.names} for r in rows], schema=RESULT_SCHEMA)
    return table, missing


def summarize(final: pa.Table) -> dict:
    """requests, answered, rejects by reason and tokens of a final table."""
    rejects = Counter(r for r in final[REJECT].to_pylist() if r is not None)
    return {"requests": final.num_rows, "answered": final.num_rows - sum(rejects.values()),
            "rejects": dict(sorted(rejects.items())),
            "prompt_tokens": int(pc.sum(final[S.PROMPT_TOKENS]).as_py() or 0),
            "completion_tokens": int(pc.sum(final[S.COMPLETION_TOKENS]).as_py() or 0)}


# ---- the engine ---------------------------------------------------------------------------------

class _PartWriter:
    """Buffers answers and writes them under parts/, one file per FLUSH_ROWS rows or FLUSH_SECONDS,
    named by its request ids and attempts (a rerun that writes the same answers writes the same name)."""

    def __init__(self, out: RunRoot, flush_rows: int):
        self.out, self.flush_rows = out, flush_rows
        self.rows: list[dict] = []
        self.last = time.monotonic()
        self.files = 0

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.flush_rows or time.monotonic() - self.last >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.last = time.monotonic()
        if not self.rows:
            return
        rows = sorted(self.rows, key=lambda r: (r[S.REQUEST_ID], r[S.ATTEMPT]))
        name = stable_id(*(f"{r[S.REQUEST_ID]}:{r[S.ATTEMPT]}" for r in rows))
        self.out.write_parquet(RunLayout.simulate_part(name), pa.Table.from_pylist(rows, schema=PART_SCHEMA))
        self.rows, self.files = [], self.files + 1


def _send(requests: pa.Table, engine: EngineConfig, engines, sink: Callable[[dict], None]) -> None:
    """Every request row through the engine; each answer row to `sink` as it comes back. `engines`
    None: in this process (table, transformers), else on Ray Data with the batch's running engines."""
    from llm.engines import answer_row, engine_died, generate, local_engine

    if engines is None:
        gen = local_engine(engine)
        for start in range(0, requests.num_rows, engine.batch_size):
            for row in gen(requests.slice(start, engine.batch_size)).to_pylist():
                sink(row)
        return
    import ray.data

    sent: set[str] = set()
    for restart in range(ENGINE_RESTARTS + 1):
        todo = requests.filter(pc.invert(pc.is_in(requests[S.REQUEST_ID], pa.array(sorted(sent), pa.string()))))
        if not todo.num_rows:
            return
        ds = ray.data.from_arrow(todo).repartition(max(1, todo.num_rows // engine.batch_size))
        try:
            for batch in generate(ds, engine, engines).iter_batches(batch_size=None, batch_format="pyarrow"):
                for row in map(answer_row, batch.to_pylist()):
                    sent.add(row[S.REQUEST_ID])
                    sink(row)
            return
        except Exception as exc:
            if restart == ENGINE_RESTARTS or not engine_died(exc):
                raise
            log.warning("the simulate engine died (%s); resending the %d unanswered requests once Serve has "
                        "replaced it", type(exc).__name__, todo.num_rows - len(sent))
            engines.wait_healthy(engines.app(engine))


def serve_engine(cfg: PipelineConfig, model: str | None = None) -> EngineConfig:
    """`serve.engine` with `serve.model` (or `model`) resolved: merged, tuned, base, or as given."""
    from ray_jobs.serve import model_path

    return cfg.serve.engine.model_copy(update={"model": model_path(cfg, model or cfg.serve.model)})


def _check_engine(engine: EngineConfig, layout: RunLayout, use_ray: bool) -> None:
    """A table engine without its table, an engine that runs on Ray only without Ray, or a tuned or merged
    model that training has not written yet, is an error now, not an engine failure later."""
    if not use_ray and engine.backend not in ("table", "transformers"):
        raise BatchInputError(f"the {engine.backend} engine runs on Ray: drop --no-ray (or use --backend "
                              "table or transformers)")
    if engine.backend == "table" and not engine.table:
        raise BatchInputError("the table engine needs its answers file: set serve.engine.table (a JSON file "
                              f"{{{KIND_PREFIX}<task>: answer}})")
    if engine.backend in ("vllm", "transformers") and "://" not in engine.model:
        if engine.model in (layout.tuned_model(), layout.merged_model()) and not Path(engine.model).is_dir():
            raise FileNotFoundError(f"the model {engine.model} does not exist: run `humanllm train` first, "
                                    "or choose another with --model (or serve.model)")


def settings_fingerprint(cfg: PipelineConfig, task: str, engine: EngineConfig) -> str:
    """What the answers depend on besides the requests: the engine and model, the sampling, the prompts'
    SFT settings (the people and situations are in the request ids)."""
    return fingerprint({"task": task, "temperature": cfg.serve.temperature, "max_tokens": cfg.serve.max_tokens[task],
                        "engine": engine.model_dump(mode="json", include={"backend", "model", "tokenizer", "dtype",
                                                                          "structured_outputs", "table", "url"}),
                        "sft": cfg.sft.model_dump(mode="json")})


# ---- the batch ----------------------------------------------------------------------------------

def run(cfg: PipelineConfig, task: str, *, people: int | None = None, platform: str | None = None,
        situation: str | None = None, situations: pa.Table | None = None, out: str | None = None,
        engine: EngineConfig | None = None, use_ray: bool = True, restart: bool = False, limit: int | None = None,
        flush_rows: int = FLUSH_ROWS, layout: RunLayout | None = None) -> dict:
    """Simulate `task` for the first `people` supporting people (None: all) of the run, write the answers
    under `out` (default <run_root>/simulate/<task>) and return the stats (also in stats.json).

    `engine`: default `serve.engine` with the resolved `serve.model`; `use_ray` False runs it in this
    process (table, transformers). `limit` sends at most that many requests (a partial run, as a killed
    one leaves: answers.parquet is written by the run that leaves none pending). `restart` discards the
    output folder first."""
    from llm.render import engine_renderer
    from llm.serving import EngineSet
    from simulate.people import People

    t0 = time.perf_counter()
    check_inputs(task, situation, situations)
    layout = layout or cfg.layout()
    engine = engine or serve_engine(cfg)
    _check_engine(engine, layout, use_ray)
    root = RunRoot(out or layout.simulate_dir(task), cfg.storage)
    if restart:
        root.delete("")
    StageMarkers(root, "simulate").check_config(settings_fingerprint(cfg, task, engine))
    log.info("simulate %s: loading the people of %s", task, layout.inputs.uri_of())
    index = People.load(cfg, layout)
    named = situations[S.USER_ID].to_pylist() if situations is not None else None
    chosen, counts = select_people(index, task, platform, people, named)
    items = request_items(task, chosen, situation, situations)
    log.info("simulate %s: %d people selected (%s), %d requests", task, counts["selected"],
             ", ".join(f"{k}: {v}" for k, v in counts.items() if k != "selected"), len(items))
    model = engine.model
    item_of = {it.request_id: it for it in items}
    writer = _PartWriter(root, flush_rows)
    this_run = {"sent": 0, "rounds": 0, "prompt_tokens": 0, "completion_tokens": 0}
    renderer = None
    with EngineSet("simulate", cfg.storage) as engines:
        for rnd in range(ROUNDS):
            parts = root.read_parquet(RunLayout.SIMULATE_PARTS, columns=[S.REQUEST_ID, REJECT], schema=PART_SCHEMA)
            made = Counter(parts[S.REQUEST_ID].to_pylist())
            done = {r for r, rej in zip(parts[S.REQUEST_ID].to_pylist(), parts[REJECT].to_pylist()) if rej != ENGINE_ERROR}
            pending = [it for it in items if it.request_id not in done]
            if rnd and pending:
                pending = [it for it in pending if made[it.request_id]]  # later rounds: this run's engine errors
            if limit is not None:
                pending = pending[:max(0, limit - this_run["sent"])]
            if not pending:
                break
            if rnd == 0 and len(pending) < len(items):
                log.info("simulate %s: %d of %d requests already answered, sending the other %d", task,
                         len(items) - len(pending), len(items), len(pending))
            elif rnd:
                log.info("simulate %s: resending %d requests that met an engine error", task, len(pending))
            renderer = renderer or engine_renderer(engine, cfg.storage)
            this_run["rounds"] += 1
            with progress(len(pending), f"simulate {task}" + (f", round {rnd + 1}" if rnd else ""),
                          unit="requests") as bar:
                for start in range(0, len(pending), CHUNK):
                    prompts: dict[str, SimPrompt] = {}
                    rows = []
                    for it in pending[start:start + CHUNK]:
                        built = prepare(index, task, it)
                        if isinstance(built, tuple):
                            writer.add(_row(it, task, model, **{REJECT: built[0], S.ERROR: built[1]}))
                            bar.update()
                            continue
                        prompts[it.request_id] = built
                        rows.append(request_row(task, it, built, made[it.request_id], renderer, cfg))

                    def sink(answer: dict) -> None:
                        rid = answer[S.REQUEST_ID]
                        writer.add(answer_result(answer, task, item_of[rid], prompts[rid], model))
                        this_run["sent"] += 1
                        this_run["prompt_tokens"] += int(answer.get(S.PROMPT_TOKENS) or 0)
                        this_run["completion_tokens"] += int(answer.get(S.COMPLETION_TOKENS) or 0)
                        bar.update()

                    if rows:
                        _send(pa.Table.from_pylist(rows, schema=S.REQUEST_SCHEMA), engine,
                              engines if use_ray else None, sink)
            writer.flush()
    parts = root.read_parquet(RunLayout.SIMULATE_PARTS, schema=PART_SCHEMA)
    final, missing = final_table(parts, items)
    seconds = time.perf_counter() - t0
    tokens = this_run["prompt_tokens"] + this_run["completion_tokens"]
    this_run.update(seconds=round(seconds, 2), parts_written=writer.files,
                    tokens_per_s=round(tokens / seconds, 1) if seconds else None)
    stats = {"task": task, "output": root.uri_of(), "engine": {"backend": engine.backend, "model": model},
             "people": counts, **summarize(final), "pending": len(missing), "complete": not missing,
             "this_run": this_run}
    if missing:
        root.delete(RunLayout.SIMULATE_ANSWERS)  # a stale one would not match these people
        log.warning("simulate %s: %d of %d requests still pending (rerun to send them)", task, len(missing), len(items))
    else:
        root.write_parquet(RunLayout.SIMULATE_ANSWERS, final)
        log.info("simulate %s: wrote %s (%d requests, %d answered)", task, root.uri_of(RunLayout.SIMULATE_ANSWERS),
                 stats["requests"], stats["answered"])
    if stats["rejects"]:
        example: dict[str, str] = {}
        for r, e in zip(final[REJECT].to_pylist(), final[S.ERROR].to_pylist()):
            if r is not None:
                example.setdefault(r, e)
        log.warning("simulate %s: rejects %s, e.g. %s", task, stats["rejects"],
                    "; ".join(f"{r}: {e}" for r, e in sorted(example.items())))
    root.write_json(RunLayout.SIMULATE_STATS, stats)
    return stats
