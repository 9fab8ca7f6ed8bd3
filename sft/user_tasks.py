"""User-level SFT tasks (PAPER.md 5): persona2profile and the four story-continuation tasks."""
from __future__ import annotations

from typing import Iterator

from sft.bundle import UserBundle
from sft.common import about, BuildContext, choose_person, Example, person_values, stories_json
from sft.wording import render


def persona2profile(b: UserBundle, ctx: BuildContext) -> Iterator[Example]:
    """Short persona -> detailed third-person profile (Amazon: from the purchase-history persona)."""
    task = "persona2profile"
    if not (b.persona and b.profile):
        if b.persona or b.profile:
            ctx.skip(task, "needs an accepted persona and profile")
        return
    eid = ctx.example_id(task, b, b.user_id)
    yield ctx.example(eid, task, b, b.user_id, None,
                      render(task, eid, persona=b.persona, words=about(b.profile)), b.profile)


def _split_stories(b: UserBundle, ctx: BuildContext, task: str) -> tuple[str, list[dict], list[dict]] | None:
    stories = [s for s in (b.stories or []) if isinstance(s, dict) and s.get("content")]
    if len(stories) < 3:
        if stories:
            ctx.skip(task, "needs 3+ accepted stories")
        return None
    eid = ctx.example_id(task, b, b.user_id)
    k = ctx.rng(eid).randint(2, len(stories) - 1)  # PAPER.md 5: split point in [2, n-1]
    return eid, stories[:k], stories[k:]


def _person(b: UserBundle, ctx: BuildContext, task: str, eid: str) -> dict | None:
    chosen = choose_person(b, ctx.rng(eid + ":person"))
    if chosen is None:
        ctx.skip(task, "needs an accepted persona or profile")
        return None
    return person_values(*chosen)


def half2half_stories(b: UserBundle, ctx: BuildContext) -> Iterator[Example]:
    """The first k stories -> the remaining ones (JSON)."""
    task = "half2half_stories"
    if (split := _split_stories(b, ctx, task)) is None:
        return
    eid, past, future = split
    target = stories_json(future)
    words = about(" ".join(s["content"] for s in future))
    yield ctx.example(eid, task, b, b.user_id, None,
                      render(task, eid, past=stories_json(past), count=len(future), words=words), target)


def half_persona2half_stories(b: UserBundle, ctx: BuildContext) -> Iterator[Example]:
    """Persona or profile + the first k stories -> the remaining ones (JSON)."""
    task = "half_persona2half_stories"
    if (split := _split_stories(b, ctx, task)) is None:
        return
    eid, past, future = split
    if (person := _person(b, ctx, task, eid)) is None:
        return
    words = about(" ".join(s["content"] for s in future))
    yield ctx.example(eid, task, b, b.user_id, None,
                      render(task, eid, past=stories_json(past), count=len(future), words=words, **person),
                      stories_json(future))


def half_theme2target_story(b: UserBundle, ctx: BuildContext) -> Iterator[Example]:
    """The first k stories + the next story's summary -> that story."""
    task = "half_theme2target_story"
    if (split := _split_stories(b, ctx, task)) is None:
        return
    eid, past, future = split
    target = future[0]
    yield ctx.example(eid, task, b, b.user_id, None,
                      render(task, eid, past=stories_json(past), theme=target.get("summary", ""),
                             words=about(target["content"])), target["content"])


def half_theme_persona2target_story(b: UserBundle, ctx: BuildContext) -> Iterator[Example]:
    """Persona or profile + the first k stories + the next story's summary -> that story."""
    task = "half_theme_persona2target_story"
    if (split := _split_stories(b, ctx, task)) is None:
        return
    eid, past, future = split
    if (person := _person(b, ctx, task, eid)) is None:
        return
    target = future[0]
    yield ctx.example(eid, task, b, b.user_id, None,
                      render(task, eid, past=stories_json(past), theme=target.get("summary", ""),
                             words=about(target["content"]), **person), target["content"])
