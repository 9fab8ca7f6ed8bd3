"""Simulation fidelity (issue 18): on people the model never trained on (`evaluate.simulation.people`:
"untrained", every person of the run with no example in the SFT train split, the default; "test", the
split's test users), the simulate tasks predict what each person really did next, and the prediction is
scored against it, for every model of `evaluate.models`.

| task      | who                     | the truth                              | the request                           | metric                      |
|-----------|-------------------------|----------------------------------------|---------------------------------------|-----------------------------|
| choose    | Amazon                  | the item of their latest review        | its title + K distractor titles       | hit rate (chance 1/(K+1))   |
| rate      | Amazon                  | that review's rating (meta `rating`)   | the item's title                      | mean absolute error, exact  |
| next_post | Reddit, Blogger, Twitter| their latest post (submission, blog    | topic: its title, else its first      | ROUGE-L, embedding cosine   |
|           |                         | post, tweet) that writing tasks use    | TOPIC_WORDS words                     |                             |

Each person's bundle is cut before the target post (the target and everything after it are dropped), so
the prompt's history and purchases never hold the answer. The person's persona, profile and writing
style are user-level annotations written by synthesis from the whole timeline: they are kept (the
simulate prompts need them) and may reflect the target; see the report's note.

Distractors are other items of the run the person never reviewed, the K lowest seeded draws of
(seed, user, title); the truth's position among the candidates is a seeded draw too. A person whose
latest item they had also reviewed before (a repeat purchase: the history would name it) is skipped.

The requests are the simulate batch's (`simulate.batch.prepare`, `request_row`, `answer_result`: the
service's prompts, `serve.temperature`, `serve.max_tokens`, the per-request seed, the JSON schemas),
sent through the evaluation stage's engines (`evaluation.stage.run_engine`: on Ray with the stage's
EngineSet, or in-process for table/transformers). A request the person's cut data cannot support is
counted as `unsupported` and left out; an answer that does not parse counts as a miss for choose and is
left out of rate's error (both counted as `unparsable`).

Writes under the evaluation folder: simulation/cases.parquet (the cases), simulation/<model>.parquet
(per case: the answer and its scores; a finished model is reused while the settings are the same) and
simulation.json (per model and task: n, metric, value, 95% bootstrap interval, chance).
"""
from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, replace
from typing import Callable, Iterable, TYPE_CHECKING

import numpy as np
import pyarrow as pa

from core import schema as S
from core.shards import fingerprint
from evaluation.mcq import bootstrap_ci
from sft.bundle import Post, UserBundle
from sft.common import post_body
from sft.item_tasks import purchases
from sft.splits import draw
from sft.writing_tasks import imitation_posts
from simulate.batch import ANSWER, answer_result, Item, prepare, REJECT, request_id, request_row
from simulate.tasks import MAX_CANDIDATE_CHARS

if TYPE_CHECKING:
    from core.layout import RunLayout
    from core.storage import RunRoot
    from llm.serving import EngineSet
    from llm.settings import EngineConfig
    from ray_jobs.config import PipelineConfig

log = logging.getLogger(__name__)

TASKS = ("choose", "rate", "next_post")
TOPIC_WORDS = 8  # next_post: an untitled post's topic is its first words
FOLDER, RESULTS = "simulation", "simulation.json"  # under the evaluation folder
CASES = f"{FOLDER}/cases.parquet"
STEP_CONFIG = f"{FOLDER}/_config.json"
METRIC_NAMES = {"hit_rate": "hit rate", "mae": "mean absolute error", "exact": "exact rating",
                "rouge_l": "ROUGE-L", "embedding_sim": "embedding similarity"}

CASE_SCHEMA = pa.schema([
    pa.field(S.REQUEST_ID, pa.string(), nullable=False), pa.field(S.TASK, pa.string(), nullable=False),
    pa.field(S.USER_ID, pa.string(), nullable=False), pa.field(S.PLATFORM, pa.string(), nullable=False),
    pa.field("target_event_id", pa.string(), nullable=False), pa.field("situation", pa.string()),
    pa.field("candidates", pa.list_(pa.string())), pa.field("truth", pa.string(), nullable=False),
    pa.field("history_posts", pa.int64(), nullable=False)])
RESULT_SCHEMA = pa.schema([
    pa.field(S.REQUEST_ID, pa.string(), nullable=False), pa.field(S.TASK, pa.string(), nullable=False),
    pa.field(S.USER_ID, pa.string(), nullable=False), pa.field("model", pa.string(), nullable=False),
    pa.field("truth", pa.string(), nullable=False), pa.field(ANSWER, pa.string()), pa.field(REJECT, pa.string()),
    pa.field(S.ERROR, pa.string()), pa.field("hit", pa.bool_()), pa.field("abs_error", pa.float64()),
    pa.field("exact", pa.bool_()), pa.field("rouge_l", pa.float64()), pa.field("embedding_sim", pa.float64())])


@dataclass(frozen=True)
class Case:
    """One held-out person's target: the simulate request (`item`, about the cut bundle) and the truth
    (choose: the true title; rate: the real rating; next_post: the real post's text)."""

    task: str
    item: Item
    truth: str | float
    target_event_id: str
    history_posts: int  # posts left in the person's cut bundle


def held_out_users(layout: RunLayout) -> list[str]:
    """The SFT split's held-out users: the split plan's `test_users` (user-disjoint split), else the users
    of the test split's examples."""
    from sft.stage import PLAN

    root = layout.root
    plan_rel = layout.sft_work(PLAN)
    if root.exists(plan_rel):
        plan = root.read_json(plan_rel)
        if plan.get("test_users"):
            return sorted({u for users in plan["test_users"].values() for u in users})
    test = root.read_parquet(layout.sft_split(S.TEST), columns=[S.USER_ID])
    return sorted(set(test[S.USER_ID].to_pylist()))


def untrained_users(layout: RunLayout, users: Iterable[str]) -> list[str]:
    """`users` less those with an example in the SFT train split: the people the model never trained on."""
    trained = set(layout.root.read_parquet(layout.sft_split(S.TRAIN), columns=[S.USER_ID])[S.USER_ID].to_pylist())
    return sorted(set(users) - trained)


def cut_before(bundle: UserBundle, target: Post) -> UserBundle:
    """The person's bundle as it was before `target`: the target and every later post dropped."""
    i = next(k for k, p in enumerate(bundle.posts) if p.event_id == target.event_id)
    return replace(bundle, posts=list(bundle.posts[:i]))


def _rating(post: Post) -> float | None:
    value = post.meta.get("rating")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 5:
        return None
    return float(value)


def _topic(post: Post) -> str:
    title = (post.title or "").strip()
    return title or " ".join(post.text.split()[:TOPIC_WORDS])


def distractors(pool: list[str], exclude: set[str], k: int, seed: int, user: str) -> list[str] | None:
    """K titles of `pool` not in `exclude`: the lowest seeded draws per (seed, user, title); None when
    the pool has fewer."""
    names = sorted({n for n in pool if n and n not in exclude and len(n) <= MAX_CANDIDATE_CHARS},
                   key=lambda n: (draw(seed, f"distractor:{user}:{n}"), n))
    return names[:k] if len(names) >= k else None


def build_cases(bundles: Iterable[UserBundle], held_out: Iterable[str], settings, sft) -> tuple[list[Case], dict[str, UserBundle], dict]:
    """The target cases of the held-out people (`settings`: evaluate.simulation; `sft`: the run's SFT
    settings), their bundles cut before the target, and counts of people skipped by reason.
    The item pool for distractors is every Amazon item reviewed in the run (held-out or not)."""
    bundles = list(bundles)
    wanted = set(held_out)
    pool = sorted({p.item_name for b in bundles if b.platform == S.AMAZON for p in purchases(b)})
    seed, k = settings.seed, settings.distractors
    people = sorted((b for b in bundles if b.user_id in wanted), key=lambda b: (draw(seed, f"person:{b.user_id}"), b.user_id))
    cases: list[Case] = []
    cut: dict[str, UserBundle] = {}
    skipped: dict[str, Counter] = {t: Counter() for t in settings.tasks}
    taken: Counter = Counter()
    for b in people:
        if b.platform == S.AMAZON:
            bought = purchases(b)
            if not bought:
                for t in ("choose", "rate"):
                    if t in skipped:
                        skipped[t]["no_review_of_a_known_item"] += 1
                continue
            target = bought[-1]
            if target.item_name in {p.item_name for p in bought[:-1]}:
                for t in ("choose", "rate"):
                    if t in skipped:
                        skipped[t]["repeat_purchase"] += 1
                continue
            before = cut_before(b, target)
            if "choose" in settings.tasks and taken["choose"] < settings.max_people:
                others = distractors(pool, {p.item_name for p in bought}, k, seed, b.user_id)
                if others is None:
                    skipped["choose"]["too_few_items"] += 1
                else:
                    at = draw(seed, f"position:{b.user_id}") % (k + 1)
                    candidates = tuple(others[:at] + [target.item_name] + others[at:])
                    cases.append(Case("choose", Item(request_id("choose", b.user_id, None, candidates), b.user_id,
                                                     b.platform, None, candidates),
                                      target.item_name, target.event_id, len(before.posts)))
                    taken["choose"] += 1
                    cut[b.user_id] = before
            if "rate" in settings.tasks and taken["rate"] < settings.max_people:
                rating = _rating(target)
                if rating is None:
                    skipped["rate"]["no_rating"] += 1
                else:
                    cases.append(Case("rate", Item(request_id("rate", b.user_id, target.item_name, None), b.user_id,
                                                   b.platform, target.item_name, None),
                                      rating, target.event_id, len(before.posts)))
                    taken["rate"] += 1
                    cut[b.user_id] = before
        elif "next_post" in settings.tasks and taken["next_post"] < settings.max_people:
            posts = imitation_posts(b, sft, False)
            if not posts:
                skipped["next_post"]["no_post"] += 1
                continue
            target = posts[-1]
            topic = _topic(target)
            before = cut_before(b, target)
            cases.append(Case("next_post", Item(request_id("next_post", b.user_id, topic, None), b.user_id, b.platform,
                                                topic, None),
                              target.text.strip() or post_body(target), target.event_id, len(before.posts)))
            taken["next_post"] += 1
            cut[b.user_id] = before
    counts = {"held_out": len(wanted), "held_out_in_run": len(people),
              "cases": {t: taken[t] for t in settings.tasks},
              "skipped": {t: dict(sorted(c.items())) for t, c in skipped.items()}}
    return cases, cut, counts


def cases_table(cases: list[Case]) -> pa.Table:
    return pa.Table.from_pylist([
        {S.REQUEST_ID: c.item.request_id, S.TASK: c.task, S.USER_ID: c.item.user_id, S.PLATFORM: c.item.platform,
         "target_event_id": c.target_event_id, "situation": c.item.situation,
         "candidates": list(c.item.candidates) if c.item.candidates is not None else None,
         "truth": str(c.truth), "history_posts": c.history_posts} for c in cases], schema=CASE_SCHEMA)


def requests(cfg: PipelineConfig, cases: list[Case], people, renderer) -> tuple[list[dict], dict, dict]:
    """The engine request rows of the cases (simulate.batch's, built from the cut bundles in `people`),
    the prompt of each request id, and the rejects found before sending (request id -> (reject, error))."""
    rows, prompts, rejects = [], {}, {}
    for c in cases:
        built = prepare(people, c.task, c.item)
        if isinstance(built, tuple):
            rejects[c.item.request_id] = built
            continue
        prompts[c.item.request_id] = built
        rows.append(request_row(c.task, c.item, built, 0, renderer, cfg))
    return rows, prompts, rejects


def score_answers(cases: list[Case], prompts: dict, rejects: dict, answers: dict[str, dict], model: str,
                  embed: Callable[[list[str], list[str]], list[float]] | None) -> pa.Table:
    """Per case: the parsed answer (simulate.batch.answer_result) or its reject, and its scores."""
    from evaluation.text_metrics import rouge_l

    rows = []
    for c in cases:
        rid = c.item.request_id
        row = {S.REQUEST_ID: rid, S.TASK: c.task, S.USER_ID: c.item.user_id, "model": model, "truth": str(c.truth),
               ANSWER: None, REJECT: None, S.ERROR: None, "hit": None, "abs_error": None, "exact": None,
               "rouge_l": None, "embedding_sim": None}
        if rid in rejects:
            row[REJECT], row[S.ERROR] = rejects[rid]
        else:
            got = answer_result(answers[rid], c.task, c.item, prompts[rid], model)
            row[ANSWER], row[REJECT], row[S.ERROR] = got[ANSWER], got[REJECT], got[S.ERROR]
        parsed = json.loads(row[ANSWER]) if row[ANSWER] is not None else None
        if c.task == "choose" and row[REJECT] != "unsupported" and row[REJECT] != "invalid_request":
            row["hit"] = parsed is not None and parsed["choice"] == c.truth  # an unparsed answer is a miss
        elif c.task == "rate" and parsed is not None:
            row["abs_error"] = abs(float(parsed["rating"]) - float(c.truth))
            row["exact"] = parsed["rating"] == round(float(c.truth))
        elif c.task == "next_post" and parsed is not None:
            row["rouge_l"] = rouge_l(parsed["text"], str(c.truth))
        rows.append(row)
    texts = [(r, json.loads(r[ANSWER])["text"]) for r in rows if r["rouge_l"] is not None]
    if embed is not None and texts:
        for (r, _), sim in zip(texts, embed([t or " " for _, t in texts], [r["truth"] for r, _ in texts])):
            r["embedding_sim"] = float(sim)
    return pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)


def summarize(results: pa.Table, cases: list[Case], resamples: int, seed: int) -> list[dict]:
    """Per (model, task, metric): n, value (a mean), its 95% bootstrap interval, chance (choose), and the
    rejects by reason."""
    chance_of = {c.item.request_id: 1.0 / len(c.item.candidates) for c in cases if c.task == "choose"}
    metrics = {"choose": ("hit_rate",), "rate": ("mae", "exact"), "next_post": ("rouge_l", "embedding_sim")}
    column = {"hit_rate": "hit", "mae": "abs_error", "exact": "exact", "rouge_l": "rouge_l", "embedding_sim": "embedding_sim"}
    rows = results.to_pylist()
    out = []
    for model in sorted({r["model"] for r in rows}):
        for task in TASKS:
            group = [r for r in rows if r["model"] == model and r[S.TASK] == task]
            if not group:
                continue
            rejects = dict(sorted(Counter(r[REJECT] for r in group if r[REJECT] is not None).items()))
            for metric in metrics[task]:
                kept = [r for r in group if r[column[metric]] is not None]
                if not kept:
                    continue
                vals = np.array([float(r[column[metric]]) for r in kept], dtype=float)
                lo, hi = bootstrap_ci(vals, resamples, seed)
                chance = float(np.mean([chance_of[r[S.REQUEST_ID]] for r in kept])) if metric == "hit_rate" else None
                out.append({"model": model, "task": task, "metric": metric, "n": int(len(vals)), "cases": len(group),
                            "value": float(vals.mean()), "ci_low": lo, "ci_high": hi, "chance": chance,
                            "rejects": rejects})
    return out


def step_fingerprint(cfg: PipelineConfig, engines: dict[str, EngineConfig]) -> str:
    """What the per-model answers depend on: the simulation settings, the serve sampling, the SFT settings
    (the prompts) and the engines."""
    ev = cfg.evaluate
    return fingerprint({"simulation": ev.simulation.model_dump(mode="json"), "embedding_model": ev.embedding_model,
                        "temperature": cfg.serve.temperature, "max_tokens": cfg.serve.max_tokens,
                        "sft": cfg.sft.model_dump(mode="json"),
                        "engines": {k: e.model_dump(mode="json") for k, e in engines.items()}})


def run_simulation(cfg: PipelineConfig, layout: RunLayout, engines: dict[str, EngineConfig],
                   served: EngineSet | None = None, *, bundles: Iterable[UserBundle] | None = None,
                   held_out: Iterable[str] | None = None,
                   embed: Callable[[list[str], list[str]], list[float]] | None | str = "default",
                   out: RunRoot | None = None) -> dict:
    """Simulation fidelity of every model in `engines` (name -> engine) on the held-out people; writes
    simulation/ and simulation.json under `out` (default the evaluation folder) and returns the results.

    `served`: the evaluation stage's EngineSet (Ray), None to run the engines in this process (table,
    transformers). `bundles`: default every user of the run (`sft.stage.load_bundles`); `held_out`:
    default per `evaluate.simulation.people` (the people never trained on, or the split's test users). `embed(predictions, references)`: the embedding cosine of
    next_post (default evaluation.text_metrics with evaluate.embedding_model; None: not measured)."""
    from evaluation.stage import run_engine
    from evaluation.text_metrics import embedding_similarity
    from llm.render import renderer_for
    from simulate.people import People

    ev, sim = cfg.evaluate, cfg.evaluate.simulation
    out = out or layout.eval_root
    if embed == "default":
        embed = (lambda p, r: embedding_similarity(p, r, ev.embedding_model)) if sim.embedding else None
    fp = step_fingerprint(cfg, engines)
    if out.exists(STEP_CONFIG) and out.read_json(STEP_CONFIG).get("fingerprint") != fp:
        log.info("evaluate simulation: the settings changed, recomputing %s", out.uri_of(FOLDER))
        out.delete(FOLDER)
    out.write_json(STEP_CONFIG, {"fingerprint": fp})
    if bundles is None:
        from sft.stage import load_bundles

        bundles = load_bundles(cfg, layout)
    bundles = list(bundles)
    if held_out is not None:
        users = sorted(set(held_out))
    elif sim.people == "test":
        users = held_out_users(layout)
    else:
        users = untrained_users(layout, (b.user_id for b in bundles))
    cases, cut, counts = build_cases(bundles, users, sim, cfg.sft)
    out.write_parquet(CASES, cases_table(cases))
    people = People(cut.values(), cfg.sft)
    counts["people"] = "given" if held_out is not None else sim.people
    log.info("evaluate simulation: %d people (%s), cases %s, models %s", len(users), counts["people"], counts["cases"],
             ", ".join(engines))
    tables = []
    for name, engine in engines.items():
        rel = f"{FOLDER}/{name}.parquet"
        if out.exists(rel):
            tables.append(out.read_parquet(rel, schema=RESULT_SCHEMA))
            continue
        renderer = renderer_for(engine.backend, engine.model, engine.tokenizer, cfg.storage)
        rows, prompts, rejects = requests(cfg, cases, people, renderer)
        answers = run_engine(rows, engine, served)
        table = score_answers(cases, prompts, rejects, answers, name, embed)
        out.write_parquet(rel, table)
        tables.append(table)
    results = pa.concat_tables(tables) if tables else RESULT_SCHEMA.empty_table()
    report = {"held_out_people": counts, "distractors": sim.distractors, "chance_choose": 1.0 / (sim.distractors + 1),
              "models": list(engines), "results": summarize(results, cases, ev.bootstrap, ev.seed),
              "split_mode": cfg.sft.split.mode}
    out.write_json(RESULTS, report)
    return report


def _fmt(r: dict) -> str:
    return f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"


def report_section(results: dict | None) -> str:
    """The report's "Simulation fidelity" section (a table: every model, and chance for choose); "" when
    there are no results."""
    import html

    if not results or not results.get("results"):
        return ""
    rows = results["results"]
    models = [m for m in results.get("models", []) if any(r["model"] == m for r in rows)]
    models += sorted({r["model"] for r in rows} - set(models))
    got = {(r["model"], r["task"], r["metric"]): r for r in rows}
    keys = [(t, m) for t in TASKS for m in ("hit_rate", "mae", "exact", "rouge_l", "embedding_sim")
            if any((x, t, m) in got for x in models)]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["task", "metric", "n", *models, "chance"])
    body = []
    for task, metric in keys:
        here = [got[(m, task, metric)] for m in models if (m, task, metric) in got]
        chance = next((r["chance"] for r in here if r["chance"] is not None), None)
        cells = [task, METRIC_NAMES[metric], max(r["n"] for r in here),
                 *(_fmt(got[(m, task, metric)]) if (m, task, metric) in got else "" for m in models),
                 "" if chance is None or math.isnan(chance) else f"{chance:.3f}"]
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    counts = results.get("held_out_people", {})
    who = {"untrained": "people never trained on (the SFT split's test users and the people with no SFT example)",
           "test": "held-out people of the SFT split"}.get(counts.get("people"), "held-out people")
    note = (f"{counts.get('held_out', 0)} {who}; cases per task "
            f"{html.escape(json.dumps(counts.get('cases', {})))}, skipped {html.escape(json.dumps(counts.get('skipped', {})))}.")
    return (f'<h2>Simulation fidelity</h2>\n<p class="note">The simulate tasks predict what each held-out person '
            f"really did next, from their data cut before it: <b>choose</b> the item of their latest review among it "
            f"and {results.get('distractors')} other items of the run (hit rate; chance 1/(K+1)), <b>rate</b> its "
            "stars (mean absolute error, lower is better; exact-match rate), <b>next_post</b> their latest post from "
            "its title or first words (ROUGE-L; all-MiniLM-L6-v2 cosine when measured). 95% bootstrap intervals over the people. "
            "Persona, profile and writing style are synthesis annotations of the whole timeline and may reflect the "
            f"target. {note}</p>\n<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
