"""What every SFT task builder shares: the example record, the per-user build context (deterministic
randomness, skip counts) and text helpers (target length, word cuts, history blocks)."""
from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sft.bundle import Post, UserBundle
from sft.settings import SFTConfig

WORD = re.compile(r"\S+\s*")


@dataclass
class Example:
    example_id: str
    task: str
    platform: str
    user_id: str
    subject_id: str  # the post the example is about, or the user id for user-level tasks
    subject_ts: datetime | None
    messages: list[dict]

    @property
    def target(self) -> str:
        return self.messages[-1]["content"]


@dataclass
class BuildContext:
    """Settings and shared inputs of one build, and the reasons examples could not be made."""

    cfg: SFTConfig
    items: dict[str, str] = field(default_factory=dict)  # platform item pool: item id -> name
    skipped: Counter = field(default_factory=Counter)  # (task, reason) -> count

    def skip(self, task: str, reason: str) -> None:
        self.skipped[(task, reason)] += 1

    def example_id(self, task: str, bundle: UserBundle, subject: str) -> str:
        return hashlib.sha1(f"sft\x1f{task}\x1f{bundle.user_id}\x1f{subject}".encode()).hexdigest()[:20]

    def rng(self, example_id: str) -> random.Random:
        """The example's own random stream: the same seed and id give the same choices."""
        return random.Random(int(hashlib.sha1(f"{self.cfg.seed}:{example_id}".encode()).hexdigest()[:16], 16))

    def example(self, eid: str, task: str, bundle: UserBundle, subject: str, subject_ts: datetime | None,
                prompt: str, target: str) -> Example:
        return Example(eid, task, bundle.platform, bundle.user_id, subject, subject_ts,
                       [{"role": "user", "content": prompt}, {"role": "assistant", "content": target.strip()}])


def n_words(text: str) -> int:
    return len(text.split())


def about(text: str) -> int:
    """The target length said in prompts: its word count rounded to 10 (at least 10)."""
    return max(10, int(round(n_words(text) / 10.0)) * 10)


def cut_words(text: str, limit: int) -> str:
    """The first `limit` words of a text, original spacing kept ("..." marks a cut)."""
    tokens = WORD.findall(text.strip())
    return text.strip() if len(tokens) <= limit else "".join(tokens[:limit]).rstrip() + " ..."


def split_words(text: str, fraction: float) -> tuple[str, str] | None:
    """The text split after `fraction` of its words (None when it has fewer than 2 words)."""
    tokens = WORD.findall(text.strip())
    if len(tokens) < 2:
        return None
    k = min(len(tokens) - 1, max(1, round(len(tokens) * fraction)))
    return "".join(tokens[:k]).rstrip(), "".join(tokens[k:]).strip()


def date_of(post: Post) -> str:
    return post.ts.strftime("%Y-%m-%d") if post.ts is not None else "unknown date"


def post_body(post: Post) -> str:
    """What the user wrote: a submission's title and body, otherwise the text."""
    if post.kind == "submission" and post.title:
        return f"{post.title}\n\n{post.text}".strip()
    return post.text.strip()


def numbered(blocks: list[str]) -> str:
    return "\n\n".join(f"[{i}] {b}" for i, b in enumerate(blocks, 1))


def recent(posts: list[Post], rng: random.Random, bounds: tuple[int, int]) -> list[Post]:
    """The latest k of `posts` (k drawn in bounds, at most len(posts)), oldest first."""
    k = min(len(posts), rng.randint(*bounds))
    return posts[len(posts) - k:] if k else []


def choose_person(bundle: UserBundle, rng: random.Random) -> tuple[str, str] | None:
    """(label, text): the persona or the profile, chosen at random as in the paper; None if neither."""
    options = sorted(bundle.person().items())
    return rng.choice(options) if options else None


def person_values(label: str, text: str) -> dict[str, str]:
    return {"person_label": label, "person_label_title": label.capitalize(), "person": text}


def stories_json(stories: list[dict]) -> str:
    return json.dumps([{"summary": s.get("summary", ""), "content": s.get("content", "")} for s in stories],
                      ensure_ascii=False)
