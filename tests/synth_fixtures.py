"""Hand-made curated run roots and engine answer tables for the synthesis tests."""
from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa

from core import schema as S
from core.storage import RunRoot
from ray_jobs.config import parse_config

SENTENCES = [
    "I finally told my manager that I wanted to move to the design team, and she listened.",
    "My sister and I drove six hours to see our grandmother, who turned ninety this spring.",
    "After the layoffs I spent three weeks rewriting my resume and calling old colleagues.",
    "We adopted a shy rescue dog named Pepper and she hid under the bed for two days.",
    "I volunteered at the food bank on Saturday because I wanted to give something back.",
    "The marathon training is brutal, but running at dawn clears my head before work.",
    "I argued with my roommate about the dishes again and we agreed on a weekly chart.",
    "Moving to a new city alone was scary, so I joined a climbing gym to meet people.",
]


def event(platform: str, user: str, i: int, kind: str, text: str, **extra) -> dict:
    return {S.EVENT_ID: f"{platform}:{user}:{i}", S.PLATFORM: platform, S.USER_ID: user,
            S.TS: dt.datetime(2020, 1, 1 + i, tzinfo=dt.timezone.utc), S.KIND: kind, S.TEXT: text,
            S.TITLE: extra.get("title"), S.CONTEXT: extra.get("context"), S.META: extra.get("meta"),
            S.SOURCE_URI: f"mem://{platform}", S.SOURCE_ROW: i}


def hand_made_events() -> dict[str, pa.Table]:
    """Two Reddit users (6 submissions + 1 comment; 2 submissions + 2 comments), one Amazon shopper (3 reviews)."""
    reddit = []
    for i in range(6):
        reddit.append(event("reddit", "u_alice", i, S.SUBMISSION, SENTENCES[i] + " " + SENTENCES[(i + 1) % 8],
                            title=f"Post {i}", context=json.dumps({"subreddit": "life"})))
    reddit.append(event("reddit", "u_alice", 6, S.COMMENT, SENTENCES[7],
                        context=json.dumps({"subreddit": "life", "parent_title": "Tips for a new city?",
                                            "parent_text": "I just moved."})))
    reddit += [event("reddit", "u_bob", i, S.SUBMISSION, SENTENCES[i], title="Hi") for i in range(2)]
    reddit += [event("reddit", "u_bob", i, S.COMMENT, SENTENCES[i] + " Same here, honestly.") for i in range(2, 4)]
    amazon = [event("amazon", "u_carol", i, S.REVIEW, f"Review {i}: sturdy kettle, boils fast, lid is stiff.",
                    title="Good kettle", meta=json.dumps({"item_id": f"B{i}", "rating": 4.0}),
                    context=json.dumps({"item_title": f"Kettle model {i}", "item": {"main_category": "Kitchen"}}))
              for i in range(3)]
    return {"reddit/part-0000": pa.Table.from_pylist(reddit), "amazon/part-0000": pa.Table.from_pylist(amazon)}


def write_run_root(path: str) -> RunRoot:
    root = RunRoot(path)
    for shard, table in hand_made_events().items():
        rows = [{**{f.name: None for f in S.EVENT_SCHEMA}, **r} for r in table.to_pylist()]
        root.write_parquet(f"events/{shard}.parquet", pa.Table.from_pylist(rows, schema=S.EVENT_SCHEMA))
    return root


SQA = ("<data><scenario>The user starts a new job and meets the team.</scenario>"
       "<question>What will the user do next?</question><answer>Ask a colleague for help.</answer></data>")
STORY = "<background>A move</background><characters>I am a teacher.</characters><plots>" + \
    " ".join(["I moved to a new city and slowly made friends at work."] * 30) + "</plots>"
SCORES = {"hallucination": 9, "coverage": 9, "fidelity": 9, "novelty": 9, "leakage": 9, "overall": 9,
          "conciseness": 9, "relevance": 9, "fluency": 9, "informativeness": 9}


def judge_answer(dims: list[str], **low: int) -> str:
    return json.dumps({"explanation": "grounded in the post", **{d: low.get(d, SCORES[d]) for d in dims}})


def answers() -> dict:
    """A table of answers: valid, NULL, retried-then-valid, always-invalid and judged-low kinds."""
    return {
        "tag_v1": "<rewrite>Clean text.</rewrite><quality>high</quality><harmless>yes</harmless>",
        "tag_v1_comment": "<rewrite>Clean comment.</rewrite><quality>low</quality><harmless>yes</harmless>",
        "tag_v2": json.dumps({"unsafe content": "NO", "social event": "YES", "rewritten text": "A tidy post."}),
        "persona": ["", "The user is a curious person who values family."],
        "persona_amazon": "The user is a practical shopper who cares about sturdy kitchen goods.",
        "profile": ("The user is a designer who moved to a new city. " * 12).strip(),
        "profile_amazon": ("The user is a careful shopper who buys kettles and notes small flaws. " * 8).strip(),
        "stories": json.dumps([{"summary": "I moved cities", "content": "I moved to a new city alone."}]),
        "writing_style": ("The user writes short plain sentences with a warm direct tone. " * 5).strip(),
        "summary": "The user describes a family visit.",
        "sqa_general": SQA, "sqa_thoughts": SQA, "sqa_reason": SQA,
        "sqa_actions": "NULL",
        "long_scenario": "<characters>Alex</characters><summary>x</summary><scenario>too short</scenario>",
        "single_story": STORY, "behavior_story": "NULL", "thoughts": "NULL",
        "judge_sqa": judge_answer(["hallucination", "coverage", "fidelity", "novelty", "leakage", "overall"]),
        "judge_scenario": judge_answer(["hallucination", "coverage", "fidelity", "novelty", "overall"], coverage=7),
        "judge_persona": judge_answer(["hallucination", "coverage", "conciseness", "relevance", "overall"]),
        "judge_profile": "I would rate it highly.",
        "judge_stories": judge_answer(["hallucination", "coverage", "informativeness", "novelty", "overall"]),
    }


def table_config(run_root: str, table_path: str, **synthesis) -> "object":
    with open(table_path, "w") as f:
        json.dump(answers(), f)
    syn = {"engine": {"backend": "table", "table": table_path, "batch_size": 4}, "max_attempts": 2,
           "min_qualified_posts": {"reddit": 3, "amazon": 1}, **synthesis}
    return parse_config({"run_root": run_root, "salt": "t", "synthesis": syn})
