"""Multiple-choice scoring two ways (PAPER.md 7, out of domain):

- **log-likelihood**: the question with its lettered options in the user turn (the model's chat
  template, generation prompt added), then each option's text as the assistant's answer; the score of
  an option is the mean log-probability of its tokens (length-normalised); the prediction is the best.
- **generation**: the same prompt asking for the letter; the answer letter is parsed from the text.

Prompts are data (`prompts/mcq.yaml`). Accuracy comes with a 95% bootstrap interval and the chance level.
"""
from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

from core import schema as S
from evaluation.items import items_from_table, LETTERS, MCQItem

PROMPTS = Path(__file__).with_name("prompts") / "mcq.yaml"
LOGLIK, GENERATE = "loglik", "generate"


@lru_cache(maxsize=1)
def templates() -> dict[str, dict[str, str]]:
    return yaml.safe_load(PROMPTS.read_text())


def is_cot(item: MCQItem) -> bool:
    """Hi-ToM's chain-of-thought prompt style reasons before answering."""
    return item.subset.startswith("CoTP")


def options_block(choices: tuple[str, ...] | list[str]) -> str:
    return "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))


def mcq_prompt(item: MCQItem, method: str) -> str:
    """The user turn for one item: `loglik`, or `generate` (the CoT wording for CoT-style items)."""
    lang = item.lang if item.lang in templates() else "en"
    kind = "cot" if method == GENERATE and is_cot(item) else method
    return templates()[lang][kind].format(context=item.context.strip(), question=item.question.strip(),
                                          options=options_block(item.choices)).strip()


_ANSWER_IS = re.compile(rf"(?:answer|答案)\s*(?:is|:|：|是)?\s*[:：]?\s*\**\(?([{LETTERS}])\b", re.IGNORECASE)
_LEADING = re.compile(rf"^\W*([{LETTERS}])(?:$|[\s.):：,])")


def parse_letter(text: str, choices: tuple[str, ...] | list[str]) -> int | None:
    """The option a generated answer picks: "Answer: X" (the last one), else a leading letter, else the
    one option whose text the answer contains; None when the answer names no option unambiguously."""
    n = len(choices)
    found = [m.group(1).upper() for m in _ANSWER_IS.finditer(text)]
    found = [f for f in found if LETTERS.index(f) < n]
    if found:
        return LETTERS.index(found[-1])
    m = _LEADING.match(text.strip())
    if m and LETTERS.index(m.group(1)) < n:
        return LETTERS.index(m.group(1))
    low = text.lower()
    hits = [i for i, c in enumerate(choices) if c.strip() and c.strip().lower() in low]
    # an option found only as part of another found option ("full" in "more full") does not count
    hits = [i for i in hits if not any(j != i and choices[i].strip().lower() in choices[j].strip().lower() for j in hits)]
    return hits[0] if len(hits) == 1 else None


def sample_items(items: list[MCQItem], limit: int | None, seed: int) -> list[MCQItem]:
    """At most `limit` items of one benchmark, spread evenly over its (subset, lang) groups: each group
    in a seeded order, then taken round-robin. Deterministic; None keeps every item."""
    if limit is None or len(items) <= limit:
        return list(items)
    groups: dict[tuple[str, str], list[MCQItem]] = {}
    for it in items:
        groups.setdefault((it.subset, it.lang), []).append(it)
    key = lambda it: hashlib.sha1(f"{seed}:{it.item_id}".encode()).hexdigest()  # noqa: E731
    queues = [sorted(g, key=key) for _, g in sorted(groups.items())]
    out: list[MCQItem] = []
    depth = 0
    while len(out) < limit:
        for q in queues:
            if depth < len(q) and len(out) < limit:
                out.append(q[depth])
        depth += 1
    return sorted(out, key=lambda it: it.item_id)


def bootstrap_ci(correct: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of 0/1 outcomes."""
    if len(correct) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = rng.choice(correct, size=(resamples, len(correct)), replace=True).mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


MCQ_RESULT_SCHEMA = pa.schema(
    [pa.field(S.ITEM_ID, pa.string(), nullable=False), pa.field(S.BENCHMARK, pa.string(), nullable=False),
     pa.field(S.SUBSET, pa.string(), nullable=False), pa.field(S.LANG, pa.string(), nullable=False),
     pa.field("model", pa.string(), nullable=False), pa.field("method", pa.string(), nullable=False),
     pa.field(S.ANSWER, pa.int32(), nullable=False), pa.field("n_choices", pa.int32(), nullable=False),
     pa.field("pred", pa.int32()), pa.field("correct", pa.bool_(), nullable=False),
     pa.field("scores", pa.list_(pa.float64())), pa.field("output", pa.string())])


def result_rows(items: list[MCQItem], model: str, method: str, preds: list[int | None],
                scores: list[list[float] | None], outputs: list[str | None]) -> pa.Table:
    """Per-item results (an unparsed answer is wrong, `pred` null)."""
    rows = [{S.ITEM_ID: it.item_id, S.BENCHMARK: it.benchmark, S.SUBSET: it.subset, S.LANG: it.lang, "model": model,
             "method": method, S.ANSWER: it.answer, "n_choices": len(it.choices), "pred": p,
             "correct": p == it.answer, "scores": s, "output": o}
            for it, p, s, o in zip(items, preds, scores, outputs)]
    return pa.Table.from_pylist(rows, schema=MCQ_RESULT_SCHEMA)


def accuracy_table(results: pa.Table, resamples: int, seed: int) -> list[dict]:
    """Accuracy with a 95% bootstrap interval and the chance level, per (model, method, benchmark) with
    subset "*" and per subset; also the unparsed-answer rate of generation scoring."""
    rows = results.to_pylist()
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        for subset in ("*", r[S.SUBSET]):
            groups.setdefault((r["model"], r["method"], r[S.BENCHMARK], subset), []).append(r)
    out = []
    for (model, method, bench, subset), rs in sorted(groups.items()):
        correct = np.array([r["correct"] for r in rs], dtype=float)
        lo, hi = bootstrap_ci(correct, resamples, seed)
        out.append({"model": model, "method": method, "benchmark": bench, "subset": subset, "n": len(rs),
                    "accuracy": float(correct.mean()), "ci_low": lo, "ci_high": hi,
                    "chance": float(np.mean([1.0 / r["n_choices"] for r in rs])),
                    "unparsed": float(np.mean([r["pred"] is None for r in rs]))})
    return out


class LoglikScorer:
    """Length-normalised log-likelihood of each option with a transformers causal LM (an actor of a Ray
    Data pool, or called in-process). The prompt runs once; the options continue from its KV cache."""

    def __init__(self, model: str, model_name: str, max_context_tokens: int = 2048, dtype: str = "auto",
                 storage: dict | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from core.config import StorageConfig
        from llm.models import resolve_model, torch_dtype

        path = resolve_model(model, StorageConfig.model_validate(storage or {}))  # on this actor's node
        self.torch, self.name, self.max_context = torch, model_name, max_context_tokens
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch_dtype(dtype, self.device == "cuda")).eval().to(self.device)

    def prompt_ids(self, item: MCQItem) -> list[int]:
        messages = [{"role": "user", "content": mcq_prompt(item, LOGLIK)}]
        ids = self.tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        return list(ids[-self.max_context:])

    def option_scores(self, prompt: list[int], options: list[list[int]]) -> list[float]:
        """Mean log-probability of each option's tokens after `prompt`."""
        torch = self.torch
        with torch.no_grad():
            dev = self.device
            out = self.model(torch.tensor([prompt[:-1]], device=dev), use_cache=True) if len(prompt) > 1 else None
            k, width = len(options), 1 + max(len(o) for o in options)
            ids = torch.full((k, width), self.tok.pad_token_id or 0, dtype=torch.long)
            mask = torch.zeros((k, len(prompt) - 1 + width), dtype=torch.long)
            mask[:, : len(prompt) - 1] = 1
            for i, o in enumerate(options):
                ids[i, : 1 + len(o)] = torch.tensor([prompt[-1], *o])
                mask[i, len(prompt) - 1: len(prompt) + len(o)] = 1
            cache = None
            if out is not None:
                cache = out.past_key_values
                cache.batch_repeat_interleave(k)
            logits = self.model(ids.to(dev), attention_mask=mask.to(dev), past_key_values=cache,
                                use_cache=cache is not None).logits
            logp = torch.log_softmax(logits.float(), dim=-1).cpu()
        scores = []
        for i, o in enumerate(options):
            tok_lp = logp[i, torch.arange(len(o)), torch.tensor(o)]
            scores.append(float(tok_lp.mean()))
        return scores

    def score(self, item: MCQItem) -> list[float]:
        options = [self.tok(c.strip(), add_special_tokens=False).input_ids for c in item.choices]
        if not all(options):
            raise ValueError(f"{item.item_id}: an option is empty after tokenisation: {item.choices!r}")
        return self.option_scores(self.prompt_ids(item), options)

    def __call__(self, batch: pa.Table) -> pa.Table:
        items = items_from_table(batch)
        scores = [self.score(it) for it in items]
        preds = [int(np.argmax(s)) for s in scores]
        return result_rows(items, self.name, LOGLIK, preds, scores, [None] * len(items))
