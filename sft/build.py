"""The SFT builder's plain functions over pyarrow tables (no Ray, no storage): examples of one curated
shard with target bounds, the token limit and the leakage check applied; caps and splits of a shard.

Filters run in that order, so a cap is filled with usable examples, then the split is drawn.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from core import schema as S
from sft.bundle import build_bundles, Post
from sft.common import BuildContext, Example
from sft.leakage import NgramIndex
from sft.registry import build_user, late_posts
from sft.settings import SFTConfig
from sft.splits import assign, draw
from sft.tokens import count_tokens

TOKEN_BATCH = 256


@dataclass
class ShardResult:
    examples: pa.Table  # SFT_SCHEMA (split unset)
    rejects: pa.Table  # SFT_REJECT_SCHEMA
    stats: dict = field(default_factory=dict)


def item_names(events: pa.Table) -> dict[str, str]:
    """item id -> the name item-selection prompts show, from Amazon review events."""
    out: dict[str, str] = {}
    for ctx, meta in zip(events[S.CONTEXT].to_pylist(), events[S.META].to_pylist()):
        post = Post("", "review", None, "", context=json.loads(ctx or "{}") or {}, meta=json.loads(meta or "{}") or {})
        if post.item_id:
            out.setdefault(post.item_id, post.item_name)
    return dict(sorted(out.items()))


def _reject(ex: Example, reason: str, detail: str) -> dict:
    return {S.EXAMPLE_ID: ex.example_id, S.TASK: ex.task, S.PLATFORM: ex.platform, S.USER_ID: ex.user_id,
            S.REASON: reason, S.DETAIL: detail}


def build_examples(events: pa.Table, tags: pa.Table, user_annotations: pa.Table, post_annotations: pa.Table,
                   judgements: pa.Table, cfg: SFTConfig, tokenizer, index: NgramIndex | None,
                   items: dict[str, str] | None = None) -> ShardResult:
    """Every example of the users in one shard that passes the target bounds, the token limit and the
    leakage check; the rest become rejects with their reason. Deterministic for the same inputs."""
    ctx = BuildContext(cfg, items or {})
    examples: list[Example] = []
    late: set[str] = set()
    for bundle in build_bundles(events, tags, user_annotations, post_annotations, judgements):
        examples += build_user(bundle, ctx)
        late |= late_posts(bundle, cfg.split.test_fraction)
    n_tokens: list[int] = []
    target_tokens: list[int] = []
    for start in range(0, len(examples), TOKEN_BATCH):
        whole, target = count_tokens(tokenizer, [e.messages for e in examples[start:start + TOKEN_BATCH]])
        n_tokens += whole
        target_tokens += target
    rows, rejects = [], []
    built: Counter = Counter()
    leaked: Counter = Counter()
    for ex, n, t in zip(examples, n_tokens, target_tokens):
        built[(ex.platform, ex.task)] += 1
        lo, hi = cfg.target_tokens.get(ex.task, (0, None))
        if t < lo or (hi is not None and t > hi):
            rejects.append(_reject(ex, "target length out of bounds", f"{t} target tokens, bounds [{lo}, {hi}]"))
            continue
        if n > cfg.max_tokens:
            rejects.append(_reject(ex, "over the token limit", f"{n} tokens > {cfg.max_tokens}"))
            continue
        hits, source = index.matches("\n".join(m["content"] for m in ex.messages)) if index is not None else (0, None)
        if hits:
            rejects.append(_reject(ex, "benchmark overlap", f"{hits} shared {index.n}-grams with {source}"))
            leaked[(ex.platform, source)] += 1
            continue
        rows.append({S.EXAMPLE_ID: ex.example_id, S.TASK: ex.task, S.PLATFORM: ex.platform, S.USER_ID: ex.user_id,
                     S.SUBJECT_ID: ex.subject_id, S.SUBJECT_TS: ex.subject_ts, S.MESSAGES: ex.messages,
                     S.N_TOKENS: n, S.TARGET_TOKENS: t, S.RANK: draw(cfg.seed, f"rank:{ex.example_id}"),
                     S.HELD_OUT_LATE: ex.subject_id in late, S.SPLIT: None})
    table = pa.Table.from_pylist(rows, schema=S.SFT_SCHEMA).sort_by(S.EXAMPLE_ID)
    rej = pa.Table.from_pylist(rejects, schema=S.SFT_REJECT_SCHEMA).sort_by(S.EXAMPLE_ID)
    stats: dict = {"built": defaultdict(dict), "rejected": defaultdict(dict), "skipped": defaultdict(dict),
                   "leaked_from": defaultdict(dict)}
    for (platform, task), n in built.items():
        stats["built"][platform][task] = n
    for (platform, source), n in leaked.items():
        stats["leaked_from"][platform][source] = n
    for r in rejects:
        by_reason = stats["rejected"][r[S.PLATFORM]]
        by_reason[r[S.REASON]] = by_reason.get(r[S.REASON], 0) + 1
    platform = events[S.PLATFORM][0].as_py() if events.num_rows else "unknown"
    for (task, reason), n in ctx.skipped.items():
        stats["skipped"][platform].setdefault(task, {})[reason] = n
    return ShardResult(table, rej, json.loads(json.dumps(stats)))


def cap_thresholds(keys: pa.Table, cfg: SFTConfig) -> dict[str, int]:
    """`platform/task` -> the largest rank kept under that task's cap (absent: no cap reached)."""
    out = {}
    for group in keys.group_by([S.PLATFORM, S.TASK]).aggregate([(S.RANK, "list")]).to_pylist():
        cap = cfg.cap(group[S.PLATFORM], group[S.TASK])
        ranks = sorted(group[f"{S.RANK}_list"])
        if cap is not None and len(ranks) > cap:
            out[f"{group[S.PLATFORM]}/{group[S.TASK]}"] = ranks[cap - 1] if cap else -1
    return out


def cap_and_split(examples: pa.Table, thresholds: dict[str, int], held_out: set[str],
                  cfg: SFTConfig) -> tuple[pa.Table, int]:
    """Drop examples over their task's cap (the highest ranks), then draw each one's split.
    Returns the kept examples with `split` set, and how many the caps removed."""
    if examples.num_rows == 0:
        return examples, 0
    keys = pc.binary_join_element_wise(examples[S.PLATFORM], examples[S.TASK], "/").to_pylist()
    ranks = examples[S.RANK].to_pylist()
    keep = [thresholds.get(k) is None or r <= thresholds[k] for k, r in zip(keys, ranks)]
    kept = examples.filter(pa.array(keep, pa.bool_()))
    kept = kept.set_column(kept.schema.get_field_index(S.SPLIT), S.SPLIT, assign(kept, cfg.split, held_out, cfg.seed))
    return kept, examples.num_rows - kept.num_rows
