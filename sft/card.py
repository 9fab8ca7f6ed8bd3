"""The SFT dataset card: per-split counts per task and platform, users, token statistics and every
example removed (missing inputs, length bounds, token limit, benchmark overlap, caps), as Markdown."""
from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from core import schema as S
from core.layout import RunLayout
from sft.settings import PAPER_CAPS

COLUMNS = [S.TASK, S.PLATFORM, S.USER_ID, S.N_TOKENS, S.TARGET_TOKENS]


def _tokens(values: list[int]) -> dict:
    if not values:
        return {"examples": 0}
    a = np.asarray(values)
    return {"examples": len(a), "total": int(a.sum()), "mean": round(float(a.mean()), 1),
            "p50": int(np.percentile(a, 50)), "p95": int(np.percentile(a, 95)), "max": int(a.max())}


def split_summary(layout: RunLayout) -> dict:
    """Per split: examples per platform and task, users per platform, token statistics; users in both."""
    out, users = {}, {}
    for split in (S.TRAIN, S.TEST):
        t = layout.root.read_parquet(layout.sft_split(split), columns=COLUMNS, schema=S.SFT_SCHEMA)
        counts: dict = defaultdict(Counter)
        for platform, task in zip(t[S.PLATFORM].to_pylist(), t[S.TASK].to_pylist()):
            counts[platform][task] += 1
        users[split] = set(zip(t[S.PLATFORM].to_pylist(), t[S.USER_ID].to_pylist()))
        out[split] = {"examples": t.num_rows, "by_platform_task": {p: dict(sorted(c.items())) for p, c in sorted(counts.items())},
                      "users": dict(sorted(Counter(p for p, _ in users[split]).items())),
                      "tokens": _tokens(t[S.N_TOKENS].to_pylist()),
                      "target_tokens": _tokens(t[S.TARGET_TOKENS].to_pylist())}
    out["users_in_both"] = len(users[S.TRAIN] & users[S.TEST])
    return out


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]


def split_sizes(stats: dict) -> list[str]:
    """The card's table of split sizes, users and tokens (also the console's summary of the card)."""
    sp, rows = stats["splits"], []
    for split in (S.TRAIN, S.TEST):
        tok, tgt = sp[split]["tokens"], sp[split]["target_tokens"]
        users = ", ".join(f"{p} {n}" for p, n in sp[split]["users"].items()) or "-"
        rows.append([split, sp[split]["examples"], users, tok.get("total", 0), tok.get("mean", "-"), tok.get("p50", "-"),
                     tok.get("p95", "-"), tok.get("max", "-"), tgt.get("mean", "-")])
    return _table(["split", "examples", "users", "tokens", "mean", "p50", "p95", "max", "target mean"], rows)


def dataset_card(stats: dict) -> str:
    """The card as Markdown (sft/README.md)."""
    sp = stats["splits"]
    cfg = stats["config"]
    lines = ["# HumanLLM SFT dataset", "",
             f"Split: **{cfg['split']['mode']}** (test fraction {cfg['split']['test_fraction']}); "
             f"token limit {cfg['max_tokens']} with the chat template of `{cfg['tokenizer']}`; seed {cfg['seed']}. "
             f"Users in both splits: **{sp['users_in_both']}**.", "",
             "## Examples per task and platform", ""]
    tasks = sorted({(p, t) for split in (S.TRAIN, S.TEST) for p, c in sp[split]["by_platform_task"].items() for t in c})
    rows = []
    for platform, task in tasks:
        tr = sp[S.TRAIN]["by_platform_task"].get(platform, {}).get(task, 0)
        te = sp[S.TEST]["by_platform_task"].get(platform, {}).get(task, 0)
        cap = {**PAPER_CAPS.get(platform, {}), **cfg["caps"].get(platform, {})}.get(task, "-")
        rows.append([platform, task, tr, te, stats.get("built", {}).get(platform, {}).get(task, 0), cap])
    lines += _table(["platform", "task", "train", "test", "built", "cap"], rows)
    lines += ["", "## Split sizes and tokens", "", *split_sizes(stats)]
    lines += ["", "## Removed", ""]
    rows = [[p, reason, n] for p, reasons in sorted(stats.get("rejected", {}).items()) for reason, n in sorted(reasons.items())]
    rows += [[p, "over the task cap", n] for p, n in sorted(stats.get("capped", {}).items()) if n]
    lines += _table(["platform", "reason", "examples"], rows) if rows else ["Nothing was removed."]
    leak = stats.get("leakage", {})
    lines += ["", f"Leakage check: {leak.get('n')}-gram overlap with {leak.get('benchmark_files', 0)} benchmark files "
              f"({leak.get('ngrams', 0)} distinct n-grams); overlapping examples are in the `benchmark overlap` rows."]
    leaked = [[p, source, n] for p, by_file in sorted(stats.get("leaked_from", {}).items())
              for source, n in sorted(by_file.items())]
    if leaked:
        lines += ["", *_table(["platform", "benchmark file", "examples dropped"], leaked)]
    skipped = [[p, t, reason, n] for p, by_task in sorted(stats.get("skipped", {}).items())
               for t, reasons in sorted(by_task.items()) for reason, n in sorted(reasons.items())]
    if skipped:
        lines += ["", "## Not built (inputs missing)", ""]
        lines += _table(["platform", "task", "reason", "candidates"], skipped)
    ex = stats.get("exports", {})
    lines += ["", "## Files", "",
              "- `train/`, `test/`: Parquet (`example_id, task, platform, user_id, subject_id, subject_ts, messages, "
              "n_tokens, target_tokens, rank, held_out_late, split`).",
              f"- `export/train.jsonl` ({ex.get('train.jsonl', 0)} lines), `export/test.jsonl` ({ex.get('test.jsonl', 0)} "
              "lines): `{\"messages\": [...]}` only, no user ids; `export/dataset_info.json` for LLaMA-Factory "
              "(sharegpt format); TRL reads `messages` directly; axolotl: `type: chat_template`, `field_messages: messages`.",
              "- `rejects/`: every removed example with its reason.", ""]
    return "\n".join(lines)
