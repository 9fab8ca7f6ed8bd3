"""The synthesis stage: tags -> user level -> post level -> judge over the curated events/, each pass a
Ray Data job reading the previous pass's Parquet; writes annotations/, judgements/, failures/ and
synth/stats.json with requests, tokens, tokens/s, acceptance and tokens per accepted sample per kind."""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from core import schema as S
from core.layout import RunLayout
from core.shards import fingerprint, merge_stats, StageMarkers
from core.storage import RunRoot
from llm.serving import EngineSet
from synthesis.passes import PASSES, run_pass
from synthesis.requests import AMAZON_USER_KINDS, POST_KINDS, TAG_KINDS, USER_KINDS

if TYPE_CHECKING:  # the composed config imports every stage's settings
    from ray_jobs.config import PipelineConfig

log = logging.getLogger(__name__)

def select_users(layout: RunLayout, cfg: PipelineConfig, shards: list[str]) -> dict[str, list[str] | None]:
    """Per shard, the users to annotate: all, or the first `max_users` per platform by (random) user id."""
    cap = cfg.synthesis.max_users
    if cap is None:
        return {s: None for s in shards}
    by_platform: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for s in shards:
        ids = layout.root.read_parquet(layout.events(s), columns=[S.USER_ID])[S.USER_ID]
        by_platform[s.split("/")[0]] += [(u, s) for u in pc.unique(ids).to_pylist()]
    out: dict[str, list[str] | None] = {s: [] for s in shards}
    for pairs in by_platform.values():
        for user, shard in sorted(pairs)[:cap]:
            out[shard].append(user)
    return out


def _read_all(root: RunRoot, rel: str, schema: pa.Schema) -> pa.Table:
    return root.read_parquet(rel, schema=schema) if root.exists(rel) else schema.empty_table()


def kind_summary(layout: RunLayout) -> dict[str, dict]:
    """Per kind: requests, valid, NULL, failed, judged, accepted, tokens and tokens per accepted sample."""
    out: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    root = layout.root
    judgements = _read_all(root, layout.judgements(), S.JUDGEMENT_SCHEMA)
    verdicts = {r[S.ANNOTATION_ID]: r for r in judgements.to_pylist()}
    for p in ("tags", "user", "post"):
        for row in _read_all(root, layout.annotations(p), S.ANNOTATION_SCHEMA).to_pylist():
            k = out[row[S.ANNOTATION_KIND]]
            k["requests"] += 1
            k["tokens"] += row[S.PROMPT_TOKENS] + row[S.COMPLETION_TOKENS]
            k["completion_tokens"] += row[S.COMPLETION_TOKENS]
            if row[S.IS_NULL]:
                k["null"] += 1
                continue
            k["valid"] += 1
            fields = json.loads(row[S.FIELDS] or "{}")
            v = verdicts.get(row[S.ANNOTATION_ID])
            if v is not None:
                k["judged"] += 1
                k["tokens"] += (v[S.PROMPT_TOKENS] or 0) + (v[S.COMPLETION_TOKENS] or 0)
                k["accepted"] += int(bool(v[S.ACCEPTED]))
            elif row[S.ANNOTATION_KIND] in ("tag_v1", "tag_v1_comment"):
                k["accepted"] += int(fields.get("quality") in ("high", "medium") and bool(fields.get("harmless")))
            elif row[S.ANNOTATION_KIND] == "tag_v2":
                k["accepted"] += int(bool(fields.get("social")) and not fields.get("unsafe"))
            else:
                k["accepted"] += 1
        for row in _read_all(root, layout.failures(p), S.FAILURE_SCHEMA).to_pylist():
            k = out[row[S.ANNOTATION_KIND]]
            k["requests"] += 1
            k["failed"] += 1
            k["tokens"] += row[S.PROMPT_TOKENS] + row[S.COMPLETION_TOKENS]
            k["completion_tokens"] += row[S.COMPLETION_TOKENS]
    result = {}
    for kind, k in sorted(out.items()):
        k = dict(k)
        k["acceptance_rate"] = round(k.get("accepted", 0) / k["requests"], 4) if k["requests"] else 0.0
        k["tokens_per_accepted"] = round(k["tokens"] / k["accepted"], 1) if k.get("accepted") else None
        result[kind] = k
    return result


PASS_OF_KIND = {**{k: "tags" for k in (*TAG_KINDS, "tag_v1_comment")}, **{k: "user" for k in (*USER_KINDS, *AMAZON_USER_KINDS)},
                **{k: "post" for k in POST_KINDS}}


def pass_summary(stats: dict) -> dict[str, dict]:
    """Per pass: requests, answers (with retries), tokens, seconds, tokens/s, accepted samples, the
    acceptance rate and the tokens spent per accepted sample (judge tokens count for the judged kinds)."""
    out = {}
    for p in PASSES:
        s = stats["passes"].get(p, {})
        kinds = [k for kind, k in stats["kinds"].items() if PASS_OF_KIND.get(kind) == p]
        if p == "judge":
            requests = sum(k.get("judged", 0) for k in stats["kinds"].values())
            accepted = sum(k.get("accepted", 0) for kind, k in stats["kinds"].items() if k.get("judged"))
        else:
            requests = sum(k["requests"] for k in kinds)
            accepted = sum(k.get("accepted", 0) for k in kinds)
        tokens = s.get("prompt_tokens", 0) + s.get("completion_tokens", 0)
        secs = s.get("seconds", 0.0)
        out[p] = {"requests": requests, "answers": s.get("answers", 0), "rounds": s.get("rounds", 0),
                  "prompt_tokens": s.get("prompt_tokens", 0), "completion_tokens": s.get("completion_tokens", 0),
                  "seconds": round(secs, 1), "tokens_per_s": round(tokens / secs, 1) if secs else None,
                  "completion_tokens_per_s": round(s.get("completion_tokens", 0) / secs, 1) if secs else None,
                  "accepted": accepted, "acceptance_rate": round(accepted / requests, 4) if requests else None,
                  "tokens_per_accepted": round(tokens / accepted, 1) if accepted else None}
    return out


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def summary_table(stats: dict) -> str:
    """Per-pass throughput and acceptance, and per-kind acceptance, as fixed-width text (this run's
    spending: passes resumed from earlier runs count only what this run sent)."""
    lines = [f"{'pass':<6} {'requests':>8} {'answers':>8} {'rounds':>6} {'prompt tok':>10} {'compl tok':>9} "
             f"{'seconds':>8} {'tok/s':>8} {'gen tok/s':>9} {'accepted':>8} {'rate':>6} {'tok/accepted':>12}"]
    for p, s in stats["pass_summary"].items():
        lines.append(f"{p:<6} {s['requests']:>8} {s['answers']:>8} {s['rounds']:>6} {s['prompt_tokens']:>10} "
                     f"{s['completion_tokens']:>9} {s['seconds']:>8.1f} {_fmt(s['tokens_per_s'], '.1f'):>8} "
                     f"{_fmt(s['completion_tokens_per_s'], '.1f'):>9} {s['accepted']:>8} "
                     f"{_fmt(s['acceptance_rate'], '.2f'):>6} {_fmt(s['tokens_per_accepted'], '.0f'):>12}")
    lines.append("")
    lines.append(f"{'kind':<16} {'requests':>8} {'valid':>6} {'NULL':>5} {'failed':>6} {'judged':>6} {'accepted':>8} "
                 f"{'rate':>6} {'tok/accepted':>12}")
    for kind, k in stats["kinds"].items():
        tpa = k.get("tokens_per_accepted")
        lines.append(f"{kind:<16} {k['requests']:>8} {k.get('valid', 0):>6} {k.get('null', 0):>5} {k.get('failed', 0):>6} "
                     f"{k.get('judged', 0):>6} {k.get('accepted', 0):>8} {k['acceptance_rate']:>6.2f} "
                     f"{(f'{tpa:.0f}' if tpa is not None else '-'):>12}")
    return "\n".join(lines)


def run(cfg: PipelineConfig, layout: RunLayout | None = None, *, use_ray: bool = True, restart: bool = False) -> dict:
    """Run every pass in order (finished passes and shards are skipped); return the stage stats."""
    layout = layout or cfg.layout()
    root = layout.root
    if restart:
        for rel in layout.synthesis_outputs():
            root.delete(rel)
        for p in (*PASSES, "config"):
            root.delete(RunLayout.markers(f"synthesize-{p}"))
        root.delete(RunLayout.markers("synthesize"))
    shards = layout.event_shards(list(cfg.synthesis.platforms))
    if not shards:
        raise FileNotFoundError(f"no curated events under {root.uri_of(layout.events())}: run `humanllm curate` first")
    StageMarkers(root, "synthesize").check_config(fingerprint(cfg.synthesis.model_dump(mode="json")))
    users = select_users(layout, cfg, shards)
    stats: dict = {"passes": {}}
    with EngineSet("synthesize", cfg.storage) as engines:
        for p in PASSES:
            log.info("synthesis: %s pass over %d shards", p, len(shards))
            stats["passes"][p] = run_pass(cfg, layout, p, shards, users, engines if use_ray else None)
    stats["engine_starts"] = engines.starts
    stats["pii"] = {}
    for p in stats["passes"].values():
        merge_stats(stats["pii"], p.get("pii", {}))
    stats["kinds"] = kind_summary(layout)
    stats["pass_summary"] = pass_summary(stats)
    root.write_json(layout.synth_stats(), stats)
    log.info("synthesis done: %s\n%s", root.uri_of(layout.synth_stats()), summary_table(stats))
    log.info("identifiers scrubbed from generated text: %s", stats["pii"] or "none")
    return stats
