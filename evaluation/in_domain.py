"""In-domain evaluation on the user-disjoint test split (sft/test): per task, up to N examples (the
lowest seeded draws); the prompt is every turn before the last, the reference is the person's real
answer (the last assistant turn). Metrics per example: item selection hit (the gold title appears in
the output, as in the reference code); for generative tasks ROUGE-L, embedding similarity, and for
writing tasks style similarity and authorship attribution; the judge score is joined later."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core import schema as S
from core.layout import RunLayout
from evaluation import text_metrics as T

ITEM_SELECTION = "item_selection"
WRITING = ("writing_imitation", "review_imitation", "personalized_comment")
REFERENCE, OUTPUT = "reference", "output"

IN_DOMAIN_SCHEMA = pa.schema(
    [pa.field(S.EXAMPLE_ID, pa.string(), nullable=False), pa.field(S.TASK, pa.string(), nullable=False),
     pa.field(S.PLATFORM, pa.string(), nullable=False), pa.field(S.USER_ID, pa.string(), nullable=False),
     pa.field("model", pa.string(), nullable=False), pa.field(REFERENCE, pa.string()), pa.field(OUTPUT, pa.string()),
     pa.field("item_hit", pa.bool_()), pa.field("rouge_l", pa.float64()), pa.field("embedding_sim", pa.float64()),
     pa.field("style_sim", pa.float64()), pa.field("attributed", pa.bool_()), pa.field("judge_score", pa.float64())])


def is_writing(task: str) -> bool:
    return task.startswith(WRITING)


def test_examples(layout: RunLayout, tasks: list[str] | None, per_task: int) -> list[dict]:
    """Up to `per_task` test examples per task (lowest rank first): {example_id, task, platform,
    user_id, prompt (messages before the answer), reference}."""
    t = layout.root.read_parquet(layout.sft_split(S.TEST), schema=S.SFT_SCHEMA)
    if tasks is not None:
        t = t.filter(pc.is_in(t[S.TASK], pa.array(tasks)))
    out: list[dict] = []
    counts: dict[str, int] = {}
    for r in sorted(t.to_pylist(), key=lambda r: (r[S.TASK], r[S.RANK] or 0, r[S.EXAMPLE_ID])):
        if counts.get(r[S.TASK], 0) >= per_task:
            continue
        msgs = r[S.MESSAGES]
        if not msgs or msgs[-1]["role"] != "assistant":
            raise ValueError(f"{layout.sft_split(S.TEST)} example {r[S.EXAMPLE_ID]}: the last message is not the assistant's answer")
        counts[r[S.TASK]] = counts.get(r[S.TASK], 0) + 1
        out.append({S.EXAMPLE_ID: r[S.EXAMPLE_ID], S.TASK: r[S.TASK], S.PLATFORM: r[S.PLATFORM],
                    S.USER_ID: r[S.USER_ID], "prompt": msgs[:-1], REFERENCE: msgs[-1]["content"]})
    return out


def item_hit(output: str, gold: str) -> bool:
    """The reference code's item-selection accuracy: the gold title is a substring of the answer."""
    return gold.strip().lower() in output.lower()


def example_metrics(examples: list[dict], outputs: dict[str, str], model: str, embedding_model: str,
                    seed: int) -> pa.Table:
    """Per-example metrics of one model's outputs (IN_DOMAIN_SCHEMA; judge_score left null)."""
    rows = [{S.EXAMPLE_ID: e[S.EXAMPLE_ID], S.TASK: e[S.TASK], S.PLATFORM: e[S.PLATFORM], S.USER_ID: e[S.USER_ID],
             "model": model, REFERENCE: e[REFERENCE], OUTPUT: outputs.get(e[S.EXAMPLE_ID], "")} for e in examples]
    gen = [r for r in rows if r[S.TASK] != ITEM_SELECTION]
    for r in rows:
        if r[S.TASK] == ITEM_SELECTION:
            r["item_hit"] = item_hit(r[OUTPUT], r[REFERENCE])
    for r, sim in zip(gen, T.embedding_similarity([r[OUTPUT] or " " for r in gen], [r[REFERENCE] for r in gen],
                                                  embedding_model)):
        r["rouge_l"], r["embedding_sim"] = T.rouge_l(r[OUTPUT], r[REFERENCE]), sim
    for task in sorted({r[S.TASK] for r in gen if is_writing(r[S.TASK])}):
        group = [r for r in gen if r[S.TASK] == task]
        preds, refs, users = [r[OUTPUT] for r in group], [r[REFERENCE] for r in group], [r[S.USER_ID] for r in group]
        for r, s, a in zip(group, T.style_similarity(preds, refs, users), T.attribution(preds, refs, users, seed=seed)):
            r["style_sim"], r["attributed"] = (None if np.isnan(s) else s), a
    return pa.Table.from_pylist(rows, schema=IN_DOMAIN_SCHEMA)


METRICS = ("item_hit", "judge_score", "rouge_l", "embedding_sim", "style_sim", "attributed")


def task_summary(table: pa.Table, resamples: int, seed: int) -> list[dict]:
    """Mean of each metric per (model, task) with a 95% bootstrap interval (nulls left out)."""
    from evaluation.mcq import bootstrap_ci

    out = []
    rows = table.to_pylist()
    for model, task in sorted({(r["model"], r[S.TASK]) for r in rows}):
        group = [r for r in rows if r["model"] == model and r[S.TASK] == task]
        for metric in METRICS:
            vals = np.array([float(r[metric]) for r in group if r[metric] is not None], dtype=float)
            if len(vals) == 0:
                continue
            lo, hi = bootstrap_ci(vals, resamples, seed)
            out.append({"model": model, "task": task, "metric": metric, "n": int(len(vals)),
                        "mean": float(vals.mean()), "ci_low": lo, "ci_high": hi})
    return out
