"""The pass runner: one synthesis pass (tags, user, post or judge) as a Ray Data job over events/ shards.

Resume is an anti-join keyed on the request id: every engine answer (each attempt) is written as soon
as it streams back, under `synth/outputs/<pass>/<shard>/`; a rerun rebuilds the same requests
(deterministic ids, prompts and seeds) and sends only those with no valid answer and attempts left.
Invalid answers are retried in further rounds with a new seed; after `max_attempts` the request goes to
`failures/`. When no request is pending, each shard is finalised into `annotations/<pass>/` (or
`judgements/`) and `failures/<pass>/`, sorted, so a resumed run writes the same files.
"""
from __future__ import annotations

import functools
import json
import logging
import time
from collections import defaultdict
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from core import schema as S
from core.console import Bar, progress
from core.layout import RunLayout
from core.shards import merge_stats, run_shards, StageMarkers
from core.storage import RunRoot
from llm.engines import answer_row, engine_died, engine_label, generate, local_engine
from llm.ids import stable_id
from llm.render import engine_renderer, Renderer
from llm.serving import EngineSet
from llm.settings import EngineConfig
from processing.pii import scrub
from synthesis import requests as R
from synthesis.judge import verdict
from synthesis.parsers import parse_output
from synthesis.prompts import load_spec

if TYPE_CHECKING:  # the composed config imports every stage's settings
    from ray_jobs.config import PipelineConfig

log = logging.getLogger(__name__)

PASSES = ("tags", "user", "post", "judge")
ENGINE_RESTARTS = 3  # engine deaths survived per round (Serve replaces the engine; unanswered rows go again)


def engine_of(cfg: PipelineConfig, pass_name: str) -> EngineConfig:
    syn = cfg.synthesis
    return (syn.judge.engine or syn.engine) if pass_name == "judge" else syn.engine


def _read(root: RunRoot, rel: str, schema: pa.Schema) -> pa.Table:
    return root.read_parquet(rel, schema=schema) if root.exists(rel) else schema.empty_table()


def _events(layout: RunLayout, shard: str, users: list[str] | None) -> pa.Table:
    events = layout.root.read_parquet(layout.events(shard), schema=S.EVENT_SCHEMA)
    return events.filter(pc.is_in(events[S.USER_ID], pa.array(users, pa.string()))) if users is not None else events


def _tags(layout: RunLayout, shard: str) -> R.Tags:
    return R.Tags.from_annotations(_read(layout.root, layout.annotations("tags", shard), S.ANNOTATION_SCHEMA))


def _user_and_post_annotations(layout: RunLayout, shard: str) -> pa.Table:
    return pa.concat_tables([_read(layout.root, layout.annotations(p, shard), S.ANNOTATION_SCHEMA)
                             for p in ("user", "post")])


def build_requests(cfg: PipelineConfig, layout: RunLayout, pass_name: str, shard: str, users: list[str] | None,
                   renderer: Renderer) -> list[R.Request]:
    """Every request of one pass over one shard (finished or not), in prefix order (user by user)."""
    syn = cfg.synthesis
    events = _events(layout, shard, users)
    if pass_name == "tags":
        return R.tag_requests(events, syn, renderer)
    tags = _tags(layout, shard)
    if pass_name == "user":
        return R.user_requests(events, tags, syn, renderer)
    if pass_name == "post":
        return R.post_requests(events, tags, syn, renderer)
    return R.judge_requests(_user_and_post_annotations(layout, shard), events, tags, syn, renderer)


def attempts_so_far(layout: RunLayout, pass_name: str, shard: str) -> tuple[set[str], dict[str, int]]:
    """(request ids with a valid answer, attempts made per request id) from the written outputs."""
    out = _read(layout.root, layout.synth_outputs(pass_name, shard), S.OUTPUT_SCHEMA).select([S.REQUEST_ID, S.OK])
    done = set(out.filter(out[S.OK])[S.REQUEST_ID].to_pylist())
    made: dict[str, int] = defaultdict(int)
    for rid in out[S.REQUEST_ID].to_pylist():
        made[rid] += 1
    return done, made


def pending_requests(cfg: PipelineConfig, layout: RunLayout, pass_name: str, shard: str, users: list[str] | None,
                     render: bool) -> pa.Table:
    """The shard's requests with no valid answer yet and attempts left (the anti-join)."""
    syn, engine = cfg.synthesis, engine_of(cfg, pass_name)
    renderer = engine_renderer(engine, cfg.storage)
    done, made = attempts_so_far(layout, pass_name, shard)
    todo = [r for r in build_requests(cfg, layout, pass_name, shard, users, renderer)
            if r.request_id not in done and made.get(r.request_id, 0) < syn.max_attempts]
    return R.to_table(todo, shard, renderer if render else None, syn, engine, made)


def parse_batch(batch: pa.Table, engine: str, model: str, scrub_pii: bool = True) -> pa.Table:
    """Engine answers -> OUTPUT_SCHEMA rows with the parse verdict and typed fields; the generated text
    is scrubbed of PII and secrets first (so neither the raw answer nor its fields keep them)."""
    rows = []
    for row in map(answer_row, batch.to_pylist()):
        found: dict[str, int] = {}
        if scrub_pii and row[S.GENERATED_TEXT]:
            row[S.GENERATED_TEXT], found = scrub(row[S.GENERATED_TEXT])
        if row[S.ENGINE_ERROR]:
            ok, null, fields, error = False, False, None, f"engine error: {row[S.ENGINE_ERROR][:500]}"
        else:
            parsed = parse_output(load_spec(row[S.ANNOTATION_KIND]), row[S.GENERATED_TEXT] or "")
            ok, null, error = parsed.ok, parsed.null, parsed.error
            fields = json.dumps(parsed.fields, ensure_ascii=False, sort_keys=True) if parsed.ok else None
        rows.append({**{k: row[k] for k in S.OUTPUT_SCHEMA.names if k in row}, S.OK: ok, S.IS_NULL: null,
                     S.FIELDS: fields, S.ERROR: error, S.ENGINE: engine, S.MODEL: model,
                     S.PII_FOUND: json.dumps(found, sort_keys=True) if found else None})
    return pa.Table.from_pylist(rows, schema=S.OUTPUT_SCHEMA)


def write_outputs(layout: RunLayout, pass_name: str, table: pa.Table) -> int:
    """Write streamed answers, one file per (shard, batch) named by its request ids and attempts."""
    for shard in sorted(set(table[S.SHARD].to_pylist())):
        part = table.filter(pc.equal(table[S.SHARD], shard)).sort_by([(S.REQUEST_ID, "ascending"), (S.ATTEMPT, "ascending")])
        name = stable_id(*(f"{r}:{a}" for r, a in zip(part[S.REQUEST_ID].to_pylist(), part[S.ATTEMPT].to_pylist())))
        layout.root.write_parquet(layout.synth_outputs(pass_name, shard, name), part)
    return table.num_rows


def _round(cfg: PipelineConfig, layout: RunLayout, pass_name: str, shards: list[str],
           users: dict[str, list[str] | None], engines: EngineSet | None, bar: Bar) -> dict:
    """Send every pending request of `shards` once; write answers as they arrive (and move `bar`).
    Without `engines` the run is in-process (no Ray)."""
    engine = engine_of(cfg, pass_name)
    label = engine_label(engine)
    stats: dict = {"answers": 0, "prompt_tokens": 0, "completion_tokens": 0, "pii": {}}
    scrubbing = {"scrub_pii": cfg.synthesis.scrub_pii}

    def account(table: pa.Table) -> None:
        write_outputs(layout, pass_name, table)
        stats["answers"] += table.num_rows
        for found in table[S.PII_FOUND].drop_null().to_pylist():
            merge_stats(stats["pii"], json.loads(found))
        stats["prompt_tokens"] += pc.sum(table[S.PROMPT_TOKENS]).as_py() or 0
        stats["completion_tokens"] += pc.sum(table[S.COMPLETION_TOKENS]).as_py() or 0
        bar.update(table.num_rows)

    if engines is None:
        gen = local_engine(engine)
        for shard in shards:
            reqs = pending_requests(cfg, layout, pass_name, shard, users[shard], render=True)
            for start in range(0, reqs.num_rows, engine.batch_size):
                account(parse_batch(gen(reqs.slice(start, engine.batch_size)), *label, **scrubbing))
        return stats

    import ray.data

    def build(batch: pa.Table) -> pa.Table:
        shard = batch[S.SHARD][0].as_py()
        return pending_requests(cfg, layout, pass_name, shard, users[shard], render=True)

    for restart in range(ENGINE_RESTARTS + 1):
        # Each execution builds the shards' pending requests anew: after an engine death only the
        # requests with no answer written yet are sent again.
        ds = ray.data.from_items([{S.SHARD: s} for s in shards], override_num_blocks=len(shards))
        ds = ds.map_batches(build, batch_size=1, batch_format="pyarrow")
        ds = generate(ds, engine, engines)
        ds = ds.map_batches(parse_batch, fn_kwargs={"engine": label[0], "model": label[1], **scrubbing},
                            batch_format="pyarrow")
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                if batch.num_rows:
                    account(batch.cast(S.OUTPUT_SCHEMA))
            return stats
        except Exception as exc:
            if restart == ENGINE_RESTARTS or not engine_died(exc):
                raise
            log.warning("the %s engine died mid-round (%s); resending the unanswered requests once Serve has "
                        "replaced it", pass_name, type(exc).__name__)
            engines.wait_healthy(engines.app(engine))
    return stats


def _finalize_annotations(pass_name: str, shard: str, outputs: pa.Table) -> dict:
    ann, fail = [], []
    grouped: dict[str, list[dict]] = defaultdict(list)
    for row in outputs.to_pylist():
        grouped[row[S.REQUEST_ID]].append(row)
    for rid in sorted(grouped):
        tries = sorted(grouped[rid], key=lambda r: r[S.ATTEMPT])
        good = next((t for t in tries if t[S.OK]), None)
        spent = {S.PROMPT_TOKENS: sum(t[S.PROMPT_TOKENS] or 0 for t in tries),
                 S.COMPLETION_TOKENS: sum(t[S.COMPLETION_TOKENS] or 0 for t in tries)}
        base = {k: tries[0][k] for k in (S.ANNOTATION_KIND, S.SUBJECT_ID, S.USER_ID, S.PLATFORM)}
        if good is not None:
            ann.append({S.ANNOTATION_ID: rid, **base, S.IS_NULL: good[S.IS_NULL], S.FIELDS: good[S.FIELDS],
                        S.GENERATED_TEXT: good[S.GENERATED_TEXT], S.PROMPT_HASH: good[S.PROMPT_HASH],
                        S.ENGINE: good[S.ENGINE], S.MODEL: good[S.MODEL], **spent, S.ATTEMPT: good[S.ATTEMPT] + 1})
        else:
            last = tries[-1]
            fail.append({S.REQUEST_ID: rid, **base, S.ATTEMPT: len(tries), S.REASON: last[S.ERROR],
                         S.GENERATED_TEXT: last[S.GENERATED_TEXT], **spent})
    return {"annotations": pa.Table.from_pylist(ann, schema=S.ANNOTATION_SCHEMA),
            "failures": pa.Table.from_pylist(fail, schema=S.FAILURE_SCHEMA)}


def _judgements(cfg: PipelineConfig, layout: RunLayout, shard: str, judged: pa.Table) -> pa.Table:
    """One judgement per judged-kind annotation: scores + verdict, unparseable = rejected, exempt = accepted."""
    jcfg = cfg.synthesis.judge
    engine, model = engine_label(engine_of(cfg, "judge"))
    annotations = _user_and_post_annotations(layout, shard)
    by_ann = {r[S.SUBJECT_ID]: r for r in judged.to_pylist()}
    failures = {r[S.SUBJECT_ID]: r for r in _read(layout.root, layout.failures("judge", shard), S.FAILURE_SCHEMA).to_pylist()}
    rows = []
    for ann in annotations.to_pylist():
        spec = load_spec(ann[S.ANNOTATION_KIND])
        if spec.judge is None or ann[S.IS_NULL]:
            continue
        base = {S.ANNOTATION_ID: ann[S.ANNOTATION_ID], S.ANNOTATION_KIND: spec.kind, S.JUDGE_KIND: spec.judge,
                S.SUBJECT_ID: ann[S.SUBJECT_ID], S.USER_ID: ann[S.USER_ID], S.PLATFORM: ann[S.PLATFORM],
                S.ENGINE: engine, S.MODEL: model}
        if ann[S.PLATFORM] in jcfg.exempt_platforms:
            rows.append({**base, S.ACCEPTED: True, S.REASON: "exempt platform (not judged, as in the reference code)",
                         S.ENGINE: None, S.MODEL: None, S.PROMPT_TOKENS: 0, S.COMPLETION_TOKENS: 0})
            continue
        j = by_ann.get(ann[S.ANNOTATION_ID])
        if j is None:
            f = failures.get(ann[S.ANNOTATION_ID])
            reason = f"unparseable judge output ({f[S.REASON]})" if f else "not judged (no judge request was built)"
            spent = {S.PROMPT_TOKENS: f[S.PROMPT_TOKENS] if f else 0, S.COMPLETION_TOKENS: f[S.COMPLETION_TOKENS] if f else 0}
            rows.append({**base, S.ACCEPTED: False, S.REASON: reason, **spent})
            continue
        fields = json.loads(j[S.FIELDS] or "{}")
        scores = fields.get("scores", {})
        ok, reason = verdict(spec.kind, ann[S.PLATFORM], scores, load_spec(spec.judge).dims, jcfg)
        rows.append({**base, S.SCORES: json.dumps(scores, sort_keys=True), S.OVERALL: scores.get("overall"),
                     S.EXPLANATION: fields.get("explanation"), S.ACCEPTED: ok, S.REASON: reason,
                     S.PROMPT_TOKENS: j[S.PROMPT_TOKENS], S.COMPLETION_TOKENS: j[S.COMPLETION_TOKENS]})
    table = pa.Table.from_pylist(rows, schema=S.JUDGEMENT_SCHEMA)
    return table.sort_by([(S.ANNOTATION_ID, "ascending")])


def finalize_shard(cfg: PipelineConfig, layout: RunLayout, task: dict) -> dict:
    """Collapse a shard's answers into annotations/ (or judgements/) and failures/."""
    root, pass_name, shard = layout.root, task["pass"], task["shard"]
    outputs = _read(root, layout.synth_outputs(pass_name, shard), S.OUTPUT_SCHEMA)
    out = _finalize_annotations(pass_name, shard, outputs)
    root.write_parquet(layout.failures(pass_name, shard), out["failures"])
    if pass_name == "judge":
        judgements = _judgements(cfg, layout, shard, out["annotations"])
        root.write_parquet(layout.judgements(shard), judgements)
        return {"judged": judgements.num_rows, "accepted": int(pc.sum(judgements[S.ACCEPTED]).as_py() or 0)}
    root.write_parquet(layout.annotations(pass_name, shard), out["annotations"])
    return {"annotations": out["annotations"].num_rows, "failures": out["failures"].num_rows}


def run_pass(cfg: PipelineConfig, layout: RunLayout, pass_name: str, shards: list[str],
             users: dict[str, list[str] | None], engines: EngineSet | None) -> dict:
    """Run one pass to completion (rounds until nothing is pending), then finalise its shards.
    `engines` holds the stage's running engines (None: in-process, no Ray)."""
    root, syn = layout.root, cfg.synthesis
    marker = f"synthesize-{pass_name}"
    tasks = [{"shard": s, "pass": pass_name} for s in shards]
    markers = StageMarkers(root, marker)
    stats: dict = {"rounds": 0, "answers": 0, "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0, "pii": {}}
    if not all(markers.done(s) for s in shards):
        for attempt in range(syn.max_attempts):
            pending = {s: pending_requests(cfg, layout, pass_name, s, users[s], render=False).num_rows for s in shards}
            todo = [s for s in shards if pending[s]]
            if not todo:
                break
            log.info("%s pass, round %d: %d pending requests in %d shards", pass_name, attempt + 1,
                     sum(pending.values()), len(todo))
            t0 = time.perf_counter()
            with progress(sum(pending.values()), f"{pass_name} pass, round {attempt + 1}", unit="requests") as bar:
                r = _round(cfg, layout, pass_name, todo, users, engines, bar)
            stats["seconds"] += time.perf_counter() - t0
            stats["rounds"] += 1
            for k in ("answers", "prompt_tokens", "completion_tokens"):
                stats[k] += r[k]
            merge_stats(stats.setdefault("pii", {}), r["pii"])
    done = run_shards(root, marker, tasks, functools.partial(finalize_shard, cfg, layout), use_ray=False)
    for s in done.values():
        for k, v in s.items():
            if isinstance(v, int):
                stats[k] = stats.get(k, 0) + v
    return stats
