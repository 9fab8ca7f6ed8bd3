"""The evaluation stage: every model of `evaluate.models` on the out-of-domain benchmarks (MCQ by
log-likelihood and by generation) and on the in-domain test split, the judge, the summary and the report.

Layout under `evaluate.output_dir` (default <run_root>/eval):
  items.parquet                          the benchmark items scored (seeded sample per benchmark)
  mcq/<model>/{loglik,generate}.parquet  one row per item: prediction, option scores or the raw answer
  generations/<model>.parquet            in-domain outputs per test example
  judge.parquet                          judge verdicts (pointwise scores, pairwise in both orders)
  in_domain.parquet                      per-example metrics of every model
  summary.json, report.html, figures/    accuracies with 95% intervals, task metrics, win rates

Each file is written atomically once its step is done; a rerun skips finished steps (a killed run
resumes) and another configuration in the same folder is refused unless --restart.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from core import schema as S
from core.console import progress
from core.layout import RunLayout
from core.shards import fingerprint
from core.storage import RunRoot
from evaluation import in_domain as D
from evaluation import judge as J
from evaluation import mcq as M
from evaluation.benchmarks import BENCHMARKS, load_benchmark
from evaluation.items import items_from_table, items_table, MCQItem
from llm.engines import answer_row, generate, local_engine
from llm.ids import seed_for, stable_id
from llm.render import renderer_for
from llm.serving import engine_key, EngineSet
from llm.settings import EngineConfig
from synthesis.prompts import prompt_hash

if TYPE_CHECKING:  # the composed config imports every stage's settings
    from ray_jobs.config import PipelineConfig

log = logging.getLogger(__name__)
MCQ_KIND, GEN_KIND = "eval_mcq", "eval_generate"
JUDGE_SCHEMA = pa.schema(
    [pa.field("kind", pa.string(), nullable=False), pa.field(S.EXAMPLE_ID, pa.string(), nullable=False),
     pa.field(S.TASK, pa.string(), nullable=False), pa.field("model", pa.string()), pa.field("model_b", pa.string()),
     pa.field("a_first", pa.bool_()), pa.field("verdict", pa.string()), pa.field("score", pa.float64()),
     pa.field("winner", pa.string())])


def model_paths(cfg: PipelineConfig, layout: RunLayout) -> dict[str, str]:
    """`base`, `tuned`, `merged` -> the training stage's base model and its two exports."""
    from train.launcher import resolved

    return {"base": resolved(cfg, layout).model, "tuned": layout.tuned_model(), "merged": layout.merged_model()}


def model_engines(cfg: PipelineConfig, layout: RunLayout) -> dict[str, EngineConfig]:
    """Each model's generation engine, its model path resolved; a missing local model is an error."""
    ev, paths = cfg.evaluate, model_paths(cfg, layout)
    out: dict[str, EngineConfig] = {}
    for spec in ev.models:
        if spec.name in out:
            raise ValueError(f"evaluate.models: the name {spec.name!r} is used twice")
        engine = spec.engine or ev.engine.model_copy(update={"model": paths.get(spec.model, spec.model)})
        if spec.model in ("tuned", "merged") and "://" not in engine.model and not Path(engine.model).is_dir():
            raise FileNotFoundError(f"evaluate.models {spec.name!r}: {engine.model} does not exist; run "
                                    "`humanllm train` first, or leave this model out of evaluate.models")
        out[spec.name] = engine
    return out


def load_items(cfg: PipelineConfig) -> tuple[list[MCQItem], dict]:
    """The benchmark items to score (langs filtered, seeded sample) and per-benchmark counts; a benchmark
    whose folder is absent is skipped with its reason (a fresh clone has no ../shared/data)."""
    ev = cfg.evaluate
    items: list[MCQItem] = []
    counts: dict[str, dict] = {}
    data_dir = Path(cfg.benchmark_dir(ev.data_dir))
    for name in ev.benchmarks:
        if name not in BENCHMARKS:
            raise ValueError(f"evaluate.benchmarks: unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
        try:
            loaded = load_benchmark(name, data_dir)
        except FileNotFoundError as exc:
            log.warning("benchmark %s skipped: %s", name, exc)
            counts[name] = {"skipped": str(exc)}
            continue
        kept = [i for i in loaded if i.lang in ev.langs]
        chosen = M.sample_items(kept, ev.items_per_benchmark, ev.seed)
        counts[name] = {"loaded": len(loaded), "in_langs": len(kept), "scored": len(chosen)}
        items.extend(chosen)
    return items, counts


def _request(kind: str, subject: str, model: str, messages: list[dict], renderer, max_tokens: int,
             temperature: float, top_p: float, seed: int, user: str = "", platform: str = "",
             structured: dict | None = None) -> dict:
    rid = stable_id(model, kind, subject)
    s = seed_for(rid, 0, seed)
    sampling = {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "seed": s}
    if structured:
        sampling["structured"] = structured
    return {S.REQUEST_ID: rid, S.ANNOTATION_KIND: kind, S.SUBJECT_ID: subject, S.USER_ID: user,
            S.PLATFORM: platform, S.SHARD: "eval", S.PRIORITY: 0, S.ATTEMPT: 0, S.SEED: s,
            S.MESSAGES: json.dumps(messages, ensure_ascii=False), S.PROMPT: renderer.render(messages),
            S.PROMPT_HASH: prompt_hash(messages),
            S.SAMPLING: json.dumps(sampling)}


def run_engine(requests: list[dict], engine: EngineConfig, served: EngineSet | None) -> dict[str, dict]:
    """Answers by request id (generated_text, engine_error) from the engine: on Ray Data with the stage's
    running engines, or in-process (`served` None)."""
    table = pa.Table.from_pylist(requests, schema=S.REQUEST_SCHEMA)
    if not requests:
        return {}
    if served is not None:
        import ray.data

        ds = ray.data.from_arrow(table).repartition(max(1, len(requests) // max(engine.batch_size, 1)))
        rows = []
        with progress(len(requests), f"evaluate: {requests[0][S.ANNOTATION_KIND]} requests", unit="requests") as bar:
            for b in generate(ds, engine, served).iter_batches(batch_format="pyarrow"):
                rows += [answer_row(r) for r in b.to_pylist()]
                bar.update(b.num_rows)
    else:
        rows = local_engine(engine)(table).to_pylist()
    answers = {r[S.REQUEST_ID]: r for r in rows}
    missing = [r[S.REQUEST_ID] for r in requests if r[S.REQUEST_ID] not in answers]
    if missing:
        raise RuntimeError(f"the engine returned no row for {len(missing)} request(s), e.g. {missing[0]}")
    errors = sum(bool(a[S.ENGINE_ERROR]) for a in answers.values())
    if errors:
        log.warning("%d of %d requests failed in the engine (kept as empty answers, counted in summary.json)",
                    errors, len(requests))
    return answers


def _text(answer: dict) -> str:
    return answer[S.GENERATED_TEXT] or ""


def generation_step(cfg: PipelineConfig, name: str, engine: EngineConfig, items: list[MCQItem],
                    examples: list[dict], served: EngineSet | None) -> tuple[pa.Table, pa.Table]:
    """One engine pass per model: the MCQ items (answer letter) and the in-domain prompts."""
    ev = cfg.evaluate
    renderer = renderer_for(engine.backend, engine.model, engine.tokenizer, cfg.storage)
    gen_items = items if "generate" in ev.mcq_methods else []
    reqs = [_request(MCQ_KIND, it.item_id, name, [{"role": "user", "content": M.mcq_prompt(it, M.GENERATE)}],
                     renderer, ev.cot_max_tokens if M.is_cot(it) else ev.mcq_max_tokens, 0.0, 1.0, ev.seed,
                     platform=it.benchmark) for it in gen_items]
    for e in examples:
        temp = ev.item_selection_temperature if e[S.TASK] == D.ITEM_SELECTION else engine.temperature
        reqs.append(_request(GEN_KIND, e[S.EXAMPLE_ID], name, e["prompt"], renderer, ev.max_new_tokens, temp,
                             engine.top_p, ev.seed, e[S.USER_ID], e[S.PLATFORM]))
    answers = run_engine(reqs, engine, served)
    by_subject = {(a[S.ANNOTATION_KIND], a[S.SUBJECT_ID]): a for a in answers.values()}
    texts = [_text(by_subject[(MCQ_KIND, it.item_id)]) for it in gen_items]
    mcq = M.result_rows(gen_items, name, M.GENERATE, [M.parse_letter(t, it.choices) for t, it in zip(texts, gen_items)],
                        [None] * len(gen_items), texts)
    gens = pa.Table.from_pylist([{S.EXAMPLE_ID: e[S.EXAMPLE_ID], "model": name,
                                  "output": _text(by_subject[(GEN_KIND, e[S.EXAMPLE_ID])]),
                                  S.ENGINE_ERROR: by_subject[(GEN_KIND, e[S.EXAMPLE_ID])][S.ENGINE_ERROR]}
                                 for e in examples],
                                schema=pa.schema([(S.EXAMPLE_ID, pa.string()), ("model", pa.string()),
                                                  ("output", pa.string()), (S.ENGINE_ERROR, pa.string())]))
    return mcq, gens


def loglik_step(cfg: PipelineConfig, name: str, engine: EngineConfig, items: list[MCQItem], use_ray: bool) -> pa.Table:
    """Option log-likelihoods with transformers (an actor pool on Ray)."""
    ev = cfg.evaluate
    kwargs = {"model": engine.model, "model_name": name, "max_context_tokens": ev.max_context_tokens,
              "dtype": engine.dtype, "storage": cfg.storage.model_dump(mode="json")}
    if not use_ray:
        return M.LoglikScorer(**kwargs)(items_table(items)).sort_by(S.ITEM_ID)
    import ray.data
    from ray.data import ActorPoolStrategy

    ds = ray.data.from_arrow(items_table(items)).repartition(max(1, len(items) // ev.loglik_batch_size))
    out = ds.map_batches(M.LoglikScorer, fn_constructor_kwargs=kwargs, batch_size=ev.loglik_batch_size,
                         batch_format="pyarrow", compute=ActorPoolStrategy(size=ev.loglik_concurrency),
                         num_cpus=ev.loglik_cpus, num_gpus=1 if engine.use_gpu else 0)
    batches = []
    with progress(len(items), f"evaluate: {name} log-likelihood", unit="items") as bar:
        for b in out.iter_batches(batch_format="pyarrow"):
            batches.append(b)
            bar.update(b.num_rows)
    return pa.concat_tables(batches).cast(M.MCQ_RESULT_SCHEMA).sort_by(S.ITEM_ID)


def judge_engine(cfg: PipelineConfig, layout: RunLayout) -> EngineConfig:
    """The judge's engine: its own, or the evaluation engine on the judge model at temperature 0."""
    ev, jc = cfg.evaluate, cfg.evaluate.judge
    paths = model_paths(cfg, layout)
    return jc.engine or ev.engine.model_copy(update={"model": paths.get(jc.model, jc.model), "temperature": 0.0})


def judge_step(cfg: PipelineConfig, layout: RunLayout, examples: list[dict], outputs: dict[str, dict[str, str]],
               served: EngineSet | None) -> pa.Table:
    """Pointwise scores of every model's generative outputs, and each configured pair in both orders."""
    ev, jc = cfg.evaluate, cfg.evaluate.judge
    engine = judge_engine(cfg, layout)
    renderer = renderer_for(engine.backend, engine.model, engine.tokenizer, cfg.storage)
    gen = [e for e in examples if e[S.TASK] != D.ITEM_SELECTION]
    prompt_of = {e[S.EXAMPLE_ID]: "\n\n".join(m["content"] for m in e["prompt"]) for e in gen}
    reqs, meta = [], {}

    def add(kind: str, subject: str, text: str, row: dict) -> None:
        r = _request(kind, subject, "judge", [{"role": "user", "content": text}], renderer, jc.max_tokens, 0.0, 1.0,
                     ev.seed, structured={"regex": J.VERDICT_REGEX[kind]} if engine.structured_outputs else None)
        reqs.append(r)
        meta[r[S.REQUEST_ID]] = row

    for model, outs in sorted(outputs.items()):
        for e in gen:
            eid = e[S.EXAMPLE_ID]
            add(J.POINTWISE, f"{model}|{eid}", J.pointwise_prompt(e[S.TASK], prompt_of[eid], e[D.REFERENCE], outs[eid]),
                {"kind": J.POINTWISE, S.EXAMPLE_ID: eid, S.TASK: e[S.TASK], "model": model})
    for a, b in jc.pairs:
        if a not in outputs or b not in outputs:
            continue
        for e in gen:
            eid = e[S.EXAMPLE_ID]
            for a_first in (True, False):
                first, second = (outputs[a][eid], outputs[b][eid]) if a_first else (outputs[b][eid], outputs[a][eid])
                add(J.PAIRWISE, f"{a}|{b}|{int(a_first)}|{eid}",
                    J.pairwise_prompt(e[S.TASK], prompt_of[eid], e[D.REFERENCE], first, second),
                    {"kind": J.PAIRWISE, S.EXAMPLE_ID: eid, S.TASK: e[S.TASK], "model": a, "model_b": b,
                     "a_first": a_first})
    answers = run_engine(reqs, engine, served)
    rows = []
    for rid, row in meta.items():
        text = _text(answers[rid])
        if row["kind"] == J.POINTWISE:
            row = {**row, "score": J.parse_score(text)}
        else:
            row = {**row, "winner": J.parse_winner(text)}
        rows.append({**row, "verdict": text})
    return pa.Table.from_pylist(rows, schema=JUDGE_SCHEMA)


def pairwise_summary(judge: pa.Table) -> list[dict]:
    """Win rate of A against B per task and over all tasks, from the two orders of each example."""
    rows = [r for r in judge.to_pylist() if r["kind"] == J.PAIRWISE]
    verdicts: dict[tuple, dict[bool, str | None]] = {}
    for r in rows:
        verdicts.setdefault((r["model"], r["model_b"], r[S.TASK], r[S.EXAMPLE_ID]), {})[r["a_first"]] = r["winner"]
    out = []
    for a, b in sorted({(k[0], k[1]) for k in verdicts}):
        for task in ["*", *sorted({k[2] for k in verdicts if k[:2] == (a, b)})]:
            outcomes = [J.swap_outcome(v.get(True), v.get(False)) for k, v in sorted(verdicts.items())
                        if k[:2] == (a, b) and task in ("*", k[2])]
            out.append({"model_a": a, "model_b": b, "task": task, **J.win_rate(outcomes)})
    return out


def _step(root: RunRoot, rel: str, build) -> pa.Table:
    """Read a finished step's file, or build and write it."""
    if root.exists(rel):
        log.info("evaluate: %s done, reused", root.uri_of(rel))
        return root.read_parquet(rel)
    t0 = time.time()
    table = build()
    root.write_parquet(rel, table)
    log.info("evaluate: wrote %s (%d rows, %.0f s)", root.uri_of(rel), table.num_rows, time.time() - t0)
    return table


def score_model(cfg: PipelineConfig, layout: RunLayout, name: str, engine: EngineConfig, items: list[MCQItem],
                examples: list[dict], served: EngineSet | None) -> None:
    """One model's benchmark answers (log-likelihood and/or generated letter) and in-domain generations,
    written under eval/ (a finished step is kept)."""
    ev, out = cfg.evaluate, layout.eval_root
    if items and "loglik" in ev.mcq_methods:
        if engine.backend in ("vllm", "transformers", "table"):
            _step(out, layout.eval_mcq(name, "loglik"), lambda: loglik_step(cfg, name, engine, items, served is not None))
        else:
            log.warning("evaluate: %s is served over HTTP: no log-likelihood scoring", name)
    if not out.exists(layout.eval_generations(name)):
        mcq, gens = generation_step(cfg, name, engine, items, examples, served)
        out.write_parquet(layout.eval_mcq(name, "generate"), mcq)
        out.write_parquet(layout.eval_generations(name), gens)


def run(cfg: PipelineConfig, layout: RunLayout | None = None, *, use_ray: bool = True, restart: bool = False) -> dict:
    """Score every configured model; write per-item results, summary.json and the report."""
    ev = cfg.evaluate
    layout = layout or cfg.layout()
    out = layout.eval_root
    if restart:
        out.delete("")
    engines = model_engines(cfg, layout)
    # the opt-in simulation step keeps its own fingerprint (evaluation/simulation.py): turning it on reuses the rest
    fp = fingerprint({"evaluate": ev.model_dump(mode="json", exclude={"simulation"}), "engines": {k: e.model_dump(mode="json") for k, e in engines.items()}})
    if out.exists(layout.EVAL_CONFIG) and out.read_json(layout.EVAL_CONFIG)["fingerprint"] != fp:
        raise RuntimeError(f"{out.uri_of(layout.EVAL_CONFIG)}: this folder holds an evaluation with another configuration; "
                           "use another evaluate.output_dir, or rerun with --restart")
    out.write_json(layout.EVAL_CONFIG, {"fingerprint": fp})
    items, counts = load_items(cfg)
    items = items_from_table(_step(out, layout.EVAL_ITEMS, lambda: items_table(items)))
    examples = D.test_examples(layout, ev.tasks, ev.examples_per_task) if ev.in_domain else []
    log.info("evaluate: %d benchmark items, %d in-domain test examples, models %s", len(items), len(examples),
             ", ".join(engines))
    judge_on = ev.judge.enabled and any(e[S.TASK] != D.ITEM_SELECTION for e in examples)
    with EngineSet("evaluate", cfg.storage) as served:
        # The judge's model goes last, so its engine (started for its own answers) also judges.
        judge_key = engine_key(judge_engine(cfg, layout)) if judge_on else None
        for name in sorted(engines, key=lambda n: engine_key(engines[n]) == judge_key):
            score_model(cfg, layout, name, engines[name], items, examples, served if use_ray else None)
        mcq_tables, metrics, errors = [], [], {}
        outputs: dict[str, dict[str, str]] = {}
        for name in engines:
            for method in ("loglik", "generate"):
                if items and method in ev.mcq_methods and out.exists(layout.eval_mcq(name, method)):
                    mcq_tables.append(out.read_parquet(layout.eval_mcq(name, method)))
            gens = out.read_parquet(layout.eval_generations(name)).to_pylist()
            outputs[name] = {g[S.EXAMPLE_ID]: g["output"] for g in gens}
            errors[name] = sum(bool(g[S.ENGINE_ERROR]) for g in gens)
            metrics.append(D.example_metrics(examples, outputs[name], name, ev.embedding_model, ev.seed))
        judge = JUDGE_SCHEMA.empty_table()
        if judge_on:
            judge = _step(out, layout.EVAL_JUDGE, lambda: judge_step(cfg, layout, examples, outputs,
                                                                      served if use_ray else None))
        if ev.simulation.enabled:
            from evaluation.simulation import run_simulation

            summary_simulation = run_simulation(cfg, layout, engines, served if use_ray else None)
    in_domain = D.IN_DOMAIN_SCHEMA.empty_table() if not metrics else join_judge(pa.concat_tables(metrics), judge)
    out.write_parquet(layout.EVAL_IN_DOMAIN, in_domain)
    results = pa.concat_tables(mcq_tables) if mcq_tables else M.MCQ_RESULT_SCHEMA.empty_table()
    summary = {"models": {k: {"backend": e.backend, "model": e.model} for k, e in engines.items()},
               "benchmarks": counts, "mcq": M.accuracy_table(results, ev.bootstrap, ev.seed),
               "in_domain": D.task_summary(in_domain, ev.bootstrap, ev.seed), "pairwise": pairwise_summary(judge),
               "in_domain_examples": len(examples), "generation_errors_in_domain": errors,
               "judge_unparsed": sum((r["score"] is None and r["winner"] is None) for r in judge.to_pylist())}
    if ev.simulation.enabled:
        summary["simulation"] = summary_simulation
    out.write_json(layout.EVAL_SUMMARY, summary)
    if ev.report:
        from evaluation.report import write_report

        write_report(cfg, layout, summary)
    return summary


def join_judge(metrics: pa.Table, judge: pa.Table) -> pa.Table:
    """Put each example's pointwise judge score beside its metrics."""
    scores = {(r["model"], r[S.EXAMPLE_ID]): r["score"] for r in judge.to_pylist() if r["kind"] == J.POINTWISE}
    rows = [{**r, "judge_score": scores.get((r["model"], r[S.EXAMPLE_ID]))} for r in metrics.to_pylist()]
    return pa.Table.from_pylist(rows, schema=D.IN_DOMAIN_SCHEMA)
