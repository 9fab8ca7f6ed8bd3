"""A hand-made run root with curated events and accepted synthesis outputs of every kind, for the SFT
dataset builder tests: three Reddit users (submissions and comments), three bloggers and four Amazon
shoppers with nine purchases each from a pool of 40 items."""
from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa

from core import schema as S
from core.config import StorageConfig
from core.storage import RunRoot
from tests.synth_fixtures import SENTENCES

REDDIT_USERS = ("r_ann", "r_ben", "r_cat")
BLOG_USERS = ("b_dan", "b_eve", "b_fay")
SHOPPERS = ("a_gus", "a_hal", "a_ivy", "a_jo")
ITEMS = {f"B{i:03d}": f"Item {i:02d} {kind}" for i, kind in
         enumerate(["kettle", "scarf", "boots", "lamp", "mug", "jacket", "belt", "sock"] * 5)}


def long_text(i: int, words: int = 60) -> str:
    """Distinct, readable post text of about `words` words."""
    out, k = [], i
    while sum(len(s.split()) for s in out) < words:
        out.append(SENTENCES[k % len(SENTENCES)])
        k += 3
    return f"Entry {i}. " + " ".join(out)


def _event(platform: str, user: str, i: int, kind: str, text: str, **extra) -> dict:
    row = {f.name: None for f in S.EVENT_SCHEMA}
    row.update({S.EVENT_ID: f"{platform}:{user}:{i}", S.PLATFORM: platform, S.USER_ID: user,
                S.TS: dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=i), S.KIND: kind,
                S.TEXT: text, S.SOURCE_URI: f"mem://{platform}", S.SOURCE_ROW: i, **extra})
    return row


def events() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {"reddit": [], "blogger": [], "amazon": []}
    for u, user in enumerate(REDDIT_USERS):
        for i in range(5):
            out["reddit"].append(_event("reddit", user, 10 * u + i, S.SUBMISSION, long_text(10 * u + i),
                                        title=f"Title {u}-{i}", context=json.dumps({"subreddit": "life"})))
        for i in range(5, 8):
            ctx = {"subreddit": "life", "parent_title": f"Question {u}-{i}", "parent_text": "What would you do?"}
            out["reddit"].append(_event("reddit", user, 10 * u + i, S.COMMENT, long_text(10 * u + i, 40),
                                        context=json.dumps(ctx)))
    for u, user in enumerate(BLOG_USERS):
        for i in range(6):
            out["blogger"].append(_event("blogger", user, 10 * u + i, S.BLOG_POST, long_text(100 + 10 * u + i, 80)))
    ids = sorted(ITEMS)
    for u, user in enumerate(SHOPPERS):
        for i in range(9):
            item = ids[(9 * u + i) % len(ids)]
            out["amazon"].append(_event(
                "amazon", user, 10 * u + i, S.REVIEW, long_text(200 + 10 * u + i, 40), title="Review",
                meta=json.dumps({"item_id": item, "rating": 4.0}), parent_id=item,
                context=json.dumps({"item_title": ITEMS[item]})))
    return out


def _ann(kind: str, subject: str, user: str, platform: str, fields: dict, is_null: bool = False) -> dict:
    return {S.ANNOTATION_ID: f"{kind}:{subject}", S.ANNOTATION_KIND: kind, S.SUBJECT_ID: subject, S.USER_ID: user,
            S.PLATFORM: platform, S.IS_NULL: is_null, S.FIELDS: json.dumps(fields), S.GENERATED_TEXT: "",
            S.PROMPT_HASH: "h", S.ENGINE: "table", S.MODEL: "m", S.PROMPT_TOKENS: 1, S.COMPLETION_TOKENS: 1,
            S.ATTEMPT: 1}


STORIES = [{"summary": f"Story {i} summary", "content": f"I remember story {i}. " + SENTENCES[i]} for i in range(4)]
PERSONA = "A thoughtful designer in her thirties who values family and long runs."
PROFILE = ("The user is a designer who moved to a new city, trains for marathons and volunteers on weekends. " * 3).strip()
STYLE = "Writes short, warm, plain sentences with a dry sense of humour."
SQA = {"scenario": "Mia starts a new job and meets a quiet team.", "question": "What will Mia do next?",
       "answer": "Mia will invite her new colleagues to lunch to break the ice."}
LONG = {"characters": "Mia, a designer; Tom, her manager", "summary": "Mia asks for a transfer.",
        "scenario": "Mia knocked on the door. " * 20}
STORY_FIELDS = {"background": "A move to a new city.", "characters": "I am a designer; my sister Ana.",
                "plots": "I packed my life into boxes. " * 40, "story": "I called the movers at dawn. " * 50,
                "thoughts": "I keep wondering if I chose well. " * 20}


def annotations(evs: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """tags, user and post annotations (all accepted-looking) and judgements accepting every judged one."""
    tags, user, post, judged = [], [], [], []
    for platform, rows in evs.items():
        for r in rows:
            eid, uid = r[S.EVENT_ID], r[S.USER_ID]
            v1 = "tag_v1_comment" if r[S.KIND] == S.COMMENT else "tag_v1"
            tags.append(_ann(v1, eid, uid, platform, {"rewrite": "x", "quality": "high", "harmless": True}))
            tags.append(_ann("tag_v2", eid, uid, platform, {"unsafe": False, "social": True, "rewrite_v2": "x"}))
            post.append(_ann("summary", eid, uid, platform, {"text": f"A post about entry {r[S.SOURCE_ROW]}."}))
        for uid in sorted({r[S.USER_ID] for r in rows}):
            first = next(r for r in rows if r[S.USER_ID] == uid)
            if platform == "amazon":
                user.append(_ann("persona_amazon", uid, uid, platform, {"text": PERSONA}))
                user.append(_ann("profile_amazon", uid, uid, platform, {"text": PROFILE}))
                user.append(_ann("writing_style", uid, uid, platform, {"text": STYLE}))
                continue
            user += [_ann("persona", uid, uid, platform, {"text": PERSONA}),
                     _ann("profile", uid, uid, platform, {"text": PROFILE}),
                     _ann("stories", uid, uid, platform, {"stories": STORIES}),
                     _ann("writing_style", uid, uid, platform, {"text": STYLE})]
            eid = first[S.EVENT_ID]
            for kind in ("sqa_general", "sqa_thoughts", "sqa_actions", "sqa_reason"):
                post.append(_ann(kind, eid, uid, platform, SQA))
            post.append(_ann("long_scenario", eid, uid, platform, LONG))
            for kind in ("single_story", "behavior_story", "thoughts"):
                post.append(_ann(kind, eid, uid, platform, STORY_FIELDS))
    for row in user + post:
        if row[S.ANNOTATION_KIND] not in ("summary", "writing_style"):
            judged.append({S.ANNOTATION_ID: row[S.ANNOTATION_ID], S.ANNOTATION_KIND: row[S.ANNOTATION_KIND],
                           S.JUDGE_KIND: "judge", S.SUBJECT_ID: row[S.SUBJECT_ID], S.USER_ID: row[S.USER_ID],
                           S.PLATFORM: row[S.PLATFORM], S.SCORES: "{}", S.OVERALL: 9, S.EXPLANATION: "",
                           S.ACCEPTED: True, S.REASON: None, S.ENGINE: "table", S.MODEL: "m",
                           S.PROMPT_TOKENS: 1, S.COMPLETION_TOKENS: 1})
    return {"tags": tags, "user": user, "post": post, "judgements": judged}


def tables(platform: str | None = None) -> dict[str, pa.Table]:
    """events, tags, user, post, judgements as tables (of one platform, or all)."""
    evs = events()
    if platform:
        evs = {platform: evs[platform]}
    ann = annotations(evs)
    out = {"events": pa.Table.from_pylist([r for rows in evs.values() for r in rows], schema=S.EVENT_SCHEMA)}
    for name in ("tags", "user", "post"):
        out[name] = pa.Table.from_pylist(ann[name], schema=S.ANNOTATION_SCHEMA)
    out["judgements"] = pa.Table.from_pylist(ann["judgements"], schema=S.JUDGEMENT_SCHEMA)
    return out


def write_sft_run_root(path: str, storage: StorageConfig | None = None) -> RunRoot:
    """The fixture as a run root (local or s3://) with one shard per platform (what curate and
    synthesize would write)."""
    root = RunRoot(path, storage or StorageConfig())
    for platform in ("reddit", "blogger", "amazon"):
        t = tables(platform)
        shard = f"{platform}/part-0000"
        root.write_parquet(f"events/{shard}.parquet", t["events"])
        for name in ("tags", "user", "post"):
            root.write_parquet(f"annotations/{name}/{shard}.parquet", t[name])
        root.write_parquet(f"judgements/{shard}.parquet", t["judgements"])
    return root
