"""One user's bundle for the SFT task builders: the time-ordered timeline with each post's tags and
accepted post-level annotations, and the user's accepted user-level annotations.

"Accepted" follows PAPER.md 3.4: a non-NULL annotation whose kind has no judge, or whose judgement
accepted it (exempt platforms are recorded as accepted by the judge pass).
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from core import schema as S
from synthesis.prompts import load_spec
from synthesis.requests import QUALITY_RANK

PERSONA_KINDS = {"persona": "persona", "persona_amazon": "persona", "profile": "profile",
                 "profile_amazon": "profile", "stories": "stories", "writing_style": "writing_style"}


@dataclass
class Post:
    """One curated event with what synthesis learned about it."""

    event_id: str
    kind: str
    ts: datetime | None
    text: str
    title: str | None = None
    context: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    quality: str | None = None  # tag_v1 high/medium/low (None: untagged)
    harmless: bool | None = None
    social: bool | None = None  # tag_v2: social event and not unsafe (None: untagged)
    annotations: dict[str, dict] = field(default_factory=dict)  # accepted post-level kind -> fields

    @property
    def item_id(self) -> str | None:
        return self.meta.get("item_id")

    @property
    def item_name(self) -> str:
        """An Amazon item's name: its metadata title, else its id (samples without a metadata file)."""
        return self.context.get("item_title") or f"product {self.item_id or 'unknown'}"

    @property
    def summary(self) -> str | None:
        return (self.annotations.get("summary") or {}).get("text")


@dataclass
class UserBundle:
    user_id: str
    platform: str
    posts: list[Post]  # time order
    persona: str | None = None
    profile: str | None = None
    stories: list[dict] | None = None
    writing_style: str | None = None

    def person(self) -> dict[str, str]:
        """The accepted descriptions of the person ({"persona": ..., "profile": ...}, either may be absent)."""
        return {k: v for k, v in (("persona", self.persona), ("profile", self.profile)) if v}


def _json(value: str | None) -> dict:
    try:
        out = json.loads(value or "{}")
    except json.JSONDecodeError:
        return {}
    return out if isinstance(out, dict) else {}


def accepted_annotations(annotations: pa.Table, judgements: pa.Table) -> list[dict]:
    """Annotation rows that training may use: non-NULL, and accepted by the judge where the kind is judged."""
    verdict = dict(zip(judgements.column(S.ANNOTATION_ID).to_pylist(), judgements.column(S.ACCEPTED).to_pylist()))
    out = []
    for row in annotations.to_pylist():
        if row[S.IS_NULL]:
            continue
        if load_spec(row[S.ANNOTATION_KIND]).judge is not None and not verdict.get(row[S.ANNOTATION_ID]):
            continue
        out.append(row)
    return out


def _tag_posts(posts: dict[str, Post], tags: pa.Table) -> None:
    for row in tags.to_pylist():
        post = posts.get(row[S.SUBJECT_ID])
        if post is None or row[S.IS_NULL]:
            continue
        f = _json(row[S.FIELDS])
        if row[S.ANNOTATION_KIND] in ("tag_v1", "tag_v1_comment"):
            post.quality, post.harmless = f.get("quality"), bool(f.get("harmless"))
        elif row[S.ANNOTATION_KIND] == "tag_v2":
            post.social = bool(f.get("social")) and not f.get("unsafe")


def build_bundles(events: pa.Table, tags: pa.Table, user_annotations: pa.Table, post_annotations: pa.Table,
                  judgements: pa.Table) -> list[UserBundle]:
    """The bundles of every user in `events` (one curated shard and its synthesis outputs), by user id."""
    by_user: dict[str, list[Post]] = defaultdict(list)
    platform_of: dict[str, str] = {}
    posts: dict[str, Post] = {}
    for row in events.sort_by([(S.USER_ID, "ascending"), (S.TS, "ascending"), (S.EVENT_ID, "ascending")]).to_pylist():
        post = Post(row[S.EVENT_ID], row[S.KIND], row[S.TS], row[S.TEXT] or "", row[S.TITLE],
                    _json(row[S.CONTEXT]), _json(row[S.META]))
        posts[post.event_id] = post
        by_user[row[S.USER_ID]].append(post)
        platform_of[row[S.USER_ID]] = row[S.PLATFORM]
    _tag_posts(posts, tags)
    bundles = {u: UserBundle(u, platform_of[u], ps) for u, ps in by_user.items()}
    for row in accepted_annotations(post_annotations, judgements):
        post = posts.get(row[S.SUBJECT_ID])
        if post is not None:
            post.annotations[row[S.ANNOTATION_KIND]] = _json(row[S.FIELDS])
    for row in accepted_annotations(user_annotations, judgements):
        bundle = bundles.get(row[S.USER_ID])
        slot = PERSONA_KINDS.get(row[S.ANNOTATION_KIND])
        if bundle is None or slot is None:
            continue
        fields = _json(row[S.FIELDS])
        setattr(bundle, slot, fields.get("stories") if slot == "stories" else fields.get("text"))
    return [bundles[u] for u in sorted(bundles)]


def qualified(post: Post, include_untagged: bool) -> bool:
    """Tagged high/medium and harmless (PAPER.md 3.2); untagged posts count only when included."""
    if post.quality is None:
        return include_untagged
    return post.quality in QUALITY_RANK and bool(post.harmless)


def writable(post: Post, include_untagged: bool) -> bool:
    """A post the writing tasks may use: qualified, and social and safe by the v2 tag."""
    if not qualified(post, include_untagged):
        return False
    return include_untagged if post.social is None else post.social
