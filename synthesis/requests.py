"""Request builders of the synthesis passes: plain functions from one events/ shard (and the annotations
of earlier passes) to request rows (REQUEST_SCHEMA). No Ray here.

Every request of one user shares a prefix: the system message, then the user's history (time-ordered
posts with dates, cut to a token budget). Requests are emitted user by user, so a vLLM engine serves
the prefix from its cache for every request after the first.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Iterable

import pyarrow as pa

from core import schema as S
from llm.ids import seed_for, stable_id
from llm.render import Renderer
from llm.settings import EngineConfig
from synthesis.parsers import render_sample
from synthesis.prompts import build_messages, load_spec, prompt_hash, structured_output
from synthesis.settings import SynthesisConfig

log = logging.getLogger(__name__)

TAG_KINDS = ("tag_v1", "tag_v2")  # tag_v1_comment replaces tag_v1 for Reddit comments
USER_KINDS = ("persona", "profile", "stories", "writing_style")
AMAZON_USER_KINDS = ("persona_amazon", "profile_amazon")
SQA_KINDS = ("sqa_general", "sqa_thoughts", "sqa_actions")
SCENARIO_KINDS = ("long_scenario", "single_story", "behavior_story", "thoughts")
POST_KINDS = ("summary", *SQA_KINDS, "sqa_reason", *SCENARIO_KINDS)
QUALITY_RANK = {"high": 0, "medium": 1}
PSEUDONYMS = ("Alex", "Jordan", "Sam", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn",
              "Robin", "Drew", "Charlie", "Dana", "Emery", "Kai", "Logan", "Parker", "Reese", "Sky")
TAG_SLACK_TOKENS = 160  # a rewrite echoes the post: its budget grows with the post


# ---- how posts read in prompts -------------------------------------------------------------------

def _ctx(row: dict) -> dict:
    try:
        return json.loads(row.get(S.CONTEXT) or "{}") or {}
    except json.JSONDecodeError:
        return {}


def _meta(row: dict) -> dict:
    try:
        return json.loads(row.get(S.META) or "{}") or {}
    except json.JSONDecodeError:
        return {}


def date_of(row: dict) -> str:
    ts = row.get(S.TS)
    return ts.strftime("%Y-%m-%d") if ts is not None else "unknown date"


def post_text(row: dict, text: str | None = None) -> str:
    """One post as the LLM reads it: title and body; a review with its item, rating and details."""
    body = (text if text is not None else row.get(S.TEXT)) or ""
    kind = row.get(S.KIND)
    if kind == S.REVIEW:
        ctx, meta = _ctx(row), _meta(row)
        lines = [f"Item: {ctx.get('item_title') or 'unknown item'}"]
        if meta.get("rating") is not None:
            lines.append(f"Rating: {meta['rating']:g} out of 5")
        item = ctx.get("item") or {}
        details = [f"{k}: {v}" for k, v in item.items() if k in ("main_category", "categories", "features", "description")
                   and v not in (None, "", [], {})]
        if details:
            lines.append("Item details: " + "; ".join(str(d) for d in details)[:600])
        if row.get(S.TITLE):
            lines.append(f"Review title: {row[S.TITLE]}")
        lines.append(f"Review: {body}")
        return "\n".join(lines)
    if kind == S.SUBMISSION and row.get(S.TITLE):
        return f"{row[S.TITLE]}\n\n{body}"
    if kind == S.COMMENT:
        ctx = _ctx(row)
        where = f" in r/{ctx['subreddit']}" if ctx.get("subreddit") else ""
        if ctx.get("parent_title"):
            return f"(comment{where} on the post \"{ctx['parent_title']}\")\n{body}"
        return f"(comment{where})\n{body}" if where else body
    return body


def parent_text(row: dict) -> str:
    ctx = _ctx(row)
    parts = [p for p in (ctx.get("parent_title"), ctx.get("parent_text")) if p]
    return "\n\n".join(parts) or "(the parent post is not available)"


def history_block(platform: str, rows: list[dict], texts: list[str], budget: int, renderer: Renderer,
                  per_post: int) -> str:
    """The user's posts, oldest first, each with its date; the most recent ones that fit `budget` tokens."""
    noun = "shopper" if platform == S.AMAZON else "user"
    head = (f"Below are the reviews of one {platform} {noun}, oldest first." if platform == S.AMAZON
            else f"Below are the posts of one {platform} user, oldest first.")
    lines: list[str] = []
    used = renderer.count(head)
    for row, text in zip(reversed(rows), reversed(texts)):
        line = f"[{date_of(row)}] {renderer.truncate(post_text(row, text), per_post)}"
        cost = renderer.count(line) + 1
        if used + cost > budget and lines:
            break
        lines.append(line)
        used += cost
    return head + "\n<history>\n" + "\n\n".join(reversed(lines)) + "\n</history>"


# ---- request rows ---------------------------------------------------------------------------------

@dataclass
class Request:
    kind: str
    subject_id: str
    user_id: str
    platform: str
    priority: int
    messages: list[dict]
    max_tokens: int
    request_id: str = field(default="")

    def __post_init__(self) -> None:
        if not self.request_id:
            self.request_id = stable_id(self.kind, self.subject_id)


def to_table(requests: Iterable[Request], shard: str, renderer: Renderer | None, syn: SynthesisConfig,
             engine: EngineConfig, attempts: dict[str, int] | None = None) -> pa.Table:
    """Request rows for the requests still pending. `attempts` maps request_id -> attempts already made
    (None = every request, attempt 0); `renderer` None skips rendering (counting only)."""
    rows = []
    for r in requests:
        attempt = 0 if attempts is None else attempts.get(r.request_id, 0)
        seed = seed_for(r.request_id, attempt, syn.seed)
        spec = load_spec(r.kind)
        sampling = {"max_tokens": min(r.max_tokens, syn.max_tokens.get(r.kind, r.max_tokens)), "temperature": engine.temperature, "top_p": engine.top_p, "seed": seed,
                    "structured": structured_output(spec)}
        rows.append({S.REQUEST_ID: r.request_id, S.ANNOTATION_KIND: r.kind, S.SUBJECT_ID: r.subject_id,
                     S.USER_ID: r.user_id, S.PLATFORM: r.platform, S.SHARD: shard, S.PRIORITY: r.priority,
                     S.ATTEMPT: attempt, S.SEED: seed, S.MESSAGES: json.dumps(r.messages, ensure_ascii=False),
                     S.PROMPT: renderer.render(r.messages) if renderer else "", S.PROMPT_HASH: prompt_hash(r.messages),
                     S.SAMPLING: json.dumps(sampling)})
    return pa.Table.from_pylist(rows, schema=S.REQUEST_SCHEMA)


def wanted(syn: SynthesisConfig, kind: str) -> bool:
    return syn.kinds is None or kind in syn.kinds or (kind == "tag_v1_comment" and "tag_v1" in syn.kinds)


def by_user(events: pa.Table) -> dict[str, list[dict]]:
    """Events grouped by user, each user's events in time order (the curate stage sorts them)."""
    out: dict[str, list[dict]] = {}
    for row in events.to_pylist():
        out.setdefault(row[S.USER_ID], []).append(row)
    return out


def tag_requests(events: pa.Table, syn: SynthesisConfig, renderer: Renderer) -> list[Request]:
    """PAPER.md 3.2: per post, the rewrite + quality/harmless tags (XML) and the v2 JSON tags."""
    out = []
    cap = syn.max_posts.get("tags")
    for user, rows in by_user(events).items():
        for row in (rows[-cap:] if cap else rows):  # a cap (smoke runs) keeps each user's latest posts
            body = renderer.truncate(post_text(row), syn.post_tokens)
            n = renderer.count(body)
            is_comment = row[S.KIND] == S.COMMENT
            for kind in ("tag_v1_comment" if is_comment else "tag_v1", "tag_v2"):
                if not wanted(syn, kind):
                    continue
                spec = load_spec(kind)
                msgs = build_messages(spec, platform=row[S.PLATFORM], post=body, date=date_of(row),
                                      parent=renderer.truncate(parent_text(row), syn.post_tokens) if is_comment else None)
                out.append(Request(kind, row[S.EVENT_ID], user, row[S.PLATFORM], 0, msgs,
                                   max(spec.max_tokens, n + TAG_SLACK_TOKENS)))
    return out


@dataclass
class Tags:
    """The tags pass's verdict on each event: v1 quality/harmless/rewrite and v2 social/unsafe/rewrite."""

    quality: dict[str, str] = field(default_factory=dict)
    rewrite: dict[str, str] = field(default_factory=dict)
    v2_ok: dict[str, bool] = field(default_factory=dict)
    rewrite_v2: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_annotations(cls, ann: pa.Table) -> "Tags":
        t = cls()
        for row in ann.to_pylist():
            if row[S.IS_NULL]:
                continue
            f = json.loads(row[S.FIELDS] or "{}")
            eid = row[S.SUBJECT_ID]
            if row[S.ANNOTATION_KIND] in ("tag_v1", "tag_v1_comment"):
                if f.get("harmless") and f.get("quality") in QUALITY_RANK:
                    t.quality[eid] = f["quality"]
                    t.rewrite[eid] = f.get("rewrite") or ""
            elif row[S.ANNOTATION_KIND] == "tag_v2":
                t.v2_ok[eid] = bool(f.get("social")) and not f.get("unsafe")
                t.rewrite_v2[eid] = f.get("rewrite_v2") or ""
        return t

    def qualified(self, rows: list[dict]) -> list[dict]:
        """Posts with quality high/medium and harmless, in time order."""
        return [r for r in rows if r[S.EVENT_ID] in self.quality]

    def text(self, row: dict) -> str:
        return self.rewrite.get(row[S.EVENT_ID]) or row.get(S.TEXT) or ""

    def v2_posts(self, rows: list[dict]) -> list[dict]:
        return [r for r in rows if self.v2_ok.get(r[S.EVENT_ID])]

    def by_quality(self, rows: list[dict]) -> list[dict]:
        """Qualified posts, high first, then by time."""
        q = self.qualified(rows)
        order = sorted(range(len(q)), key=lambda i: (QUALITY_RANK[self.quality[q[i][S.EVENT_ID]]], i))
        return [q[i] for i in order]


def eligible(platform: str, rows: list[dict], tags: Tags, syn: SynthesisConfig) -> list[dict]:
    """The user's qualified posts, or [] when there are fewer than the platform's minimum (PAPER.md 3.3)."""
    q = tags.qualified(rows)
    return q if len(q) >= syn.min_qualified_posts.get(platform, 1) else []


def user_requests(events: pa.Table, tags: Tags, syn: SynthesisConfig, renderer: Renderer) -> list[Request]:
    """PAPER.md 3.3 user level: persona, profile, stories, writing style (Amazon: persona and profile
    from the purchase history)."""
    out = []
    per_post = syn.post_tokens
    for user, rows in by_user(events).items():
        platform = rows[0][S.PLATFORM]
        q = eligible(platform, rows, tags, syn)
        if not q:
            continue
        history = history_block(platform, q, [tags.text(r) for r in q], syn.user_history_tokens, renderer, per_post)
        kinds = AMAZON_USER_KINDS if platform == S.AMAZON else ("persona", "profile", "stories")
        for i, kind in enumerate(kinds):
            if wanted(syn, kind):
                spec = load_spec(kind)
                out.append(Request(kind, user, user, platform, i, build_messages(spec, history=history, platform=platform),
                                   spec.max_tokens))
        # Style from the v2-kept (social, safe) posts; Amazon reviews are rarely "social events", so a
        # shopper's style comes from the qualified reviews (review imitation types 3-4 need it).
        v2 = q if platform == S.AMAZON else tags.v2_posts(rows)
        if v2 and wanted(syn, "writing_style"):
            spec = load_spec("writing_style")
            style_history = history_block(platform, v2, [tags.rewrite_v2.get(r[S.EVENT_ID]) or r[S.TEXT] for r in v2],
                                          syn.user_history_tokens, renderer, per_post)
            out.append(Request("writing_style", user, user, platform, 10,
                               build_messages(spec, history=style_history, platform=platform), spec.max_tokens))
    return out


def post_plan(platform: str, rows: list[dict], tags: Tags, syn: SynthesisConfig) -> list[tuple[str, dict]]:
    """(kind, post) pairs of one user: social QA on the best 20 (reason: 60) posts, scenarios on the
    best 40, a summary of every v2-kept post (Amazon: of every qualified review; only summaries)."""
    cap = syn.max_posts
    best = tags.by_quality(eligible(platform, rows, tags, syn))
    if not best:
        return []
    summarised = best if platform == S.AMAZON else [r for r in tags.v2_posts(rows) if r[S.EVENT_ID] in tags.quality] or []
    plan = [("summary", r) for r in summarised[:cap.get("summary", len(summarised))]]
    if platform == S.AMAZON:
        return plan
    for kind in SQA_KINDS:
        plan += [(kind, r) for r in best[:cap.get("sqa", 20)]]
    plan += [("sqa_reason", r) for r in best[:cap.get("sqa_reason", 60)]]
    for kind in SCENARIO_KINDS:
        plan += [(kind, r) for r in best[:cap.get("scenario", 40)]]
    return plan


def post_requests(events: pa.Table, tags: Tags, syn: SynthesisConfig, renderer: Renderer) -> list[Request]:
    """PAPER.md 3.3 post level, each prompt starting with the user's history (the shared prefix)."""
    out = []
    for user, rows in by_user(events).items():
        platform = rows[0][S.PLATFORM]
        plan = [(k, r) for k, r in post_plan(platform, rows, tags, syn) if wanted(syn, k)]
        if not plan:
            continue
        q = tags.qualified(rows)
        history = history_block(platform, q, [tags.text(r) for r in q], syn.post_history_tokens, renderer,
                                min(syn.post_tokens, max(64, syn.post_history_tokens // 4))) \
            if syn.post_history_tokens else None
        for i, (kind, row) in enumerate(plan):
            spec = load_spec(kind)
            eid = row[S.EVENT_ID]
            text = tags.rewrite_v2.get(eid) if kind == "summary" and platform != S.AMAZON else tags.text(row)
            pseudonym = PSEUDONYMS[int(stable_id(eid), 16) % len(PSEUDONYMS)]
            msgs = build_messages(spec, history=history, platform=platform, date=date_of(row), pseudonym=pseudonym,
                                  post=renderer.truncate(post_text(row, text or row[S.TEXT]), syn.post_tokens))
            out.append(Request(kind, eid, user, platform, i, msgs, spec.max_tokens))
    return out


def judge_requests(annotations: pa.Table, events: pa.Table, tags: Tags, syn: SynthesisConfig,
                   renderer: Renderer) -> list[Request]:
    """PAPER.md 3.4: one judge request per judged, non-NULL annotation of a non-exempt platform; the
    source is the original post (post level) or the user's qualified posts (user level)."""
    rows_of = by_user(events)
    event_of = {r[S.EVENT_ID]: r for rows in rows_of.values() for r in rows}
    source_of_user: dict[str, str] = {}
    out = []
    for ann in sorted(annotations.to_pylist(), key=lambda a: (a[S.USER_ID], a[S.ANNOTATION_KIND], a[S.SUBJECT_ID])):
        spec = load_spec(ann[S.ANNOTATION_KIND])
        if spec.judge is None or ann[S.IS_NULL] or ann[S.PLATFORM] in syn.judge.exempt_platforms:
            continue
        user = ann[S.USER_ID]
        if spec.level == "user":
            if user not in source_of_user:
                q = tags.qualified(rows_of.get(user, []))
                source_of_user[user] = history_block(ann[S.PLATFORM], q, [tags.text(r) for r in q],
                                                     syn.judge.source_tokens, renderer, syn.post_tokens)
            source = source_of_user[user]
        else:
            row = event_of.get(ann[S.SUBJECT_ID])
            if row is None:
                log.warning("annotation %s is about event %s, which is not in events/: not judged",
                            ann[S.ANNOTATION_ID], ann[S.SUBJECT_ID])
                continue
            source = renderer.truncate(post_text(row, row[S.TEXT]), syn.judge.source_tokens)
        judge = load_spec(spec.judge)
        sample = render_sample(spec, json.loads(ann[S.FIELDS] or "{}"))
        msgs = build_messages(judge, source=source, sample=sample, kind=spec.kind)
        out.append(Request(judge.kind, ann[S.ANNOTATION_ID], user, ann[S.PLATFORM], 0, msgs, judge.max_tokens,
                           request_id=stable_id("judge", ann[S.ANNOTATION_ID])))
    return out

