"""The SFT task registry (PAPER.md 5): every task, the platforms it is built on, and its builder."""
from __future__ import annotations

from collections import Counter
from typing import Callable, Iterator, NamedTuple

from sft import item_tasks, post_tasks, user_tasks, writing_tasks
from sft.bundle import UserBundle
from sft.common import BuildContext, Example

SOCIAL = ("reddit", "twitter", "blogger")
ALL = (*SOCIAL, "amazon")


class Task(NamedTuple):
    name: str
    platforms: tuple[str, ...]
    build: Callable[[UserBundle, BuildContext], Iterator[Example]]


TASKS: tuple[Task, ...] = (
    Task("persona2profile", ALL, user_tasks.persona2profile),
    Task("half2half_stories", SOCIAL, user_tasks.half2half_stories),
    Task("half_persona2half_stories", SOCIAL, user_tasks.half_persona2half_stories),
    Task("half_theme2target_story", SOCIAL, user_tasks.half_theme2target_story),
    Task("half_theme_persona2target_story", SOCIAL, user_tasks.half_theme_persona2target_story),
    *(Task(t, SOCIAL, post_tasks.social_qa(t)) for t in post_tasks.SQA_TASKS),
    *(Task(t, SOCIAL, post_tasks.scenario(t)) for t in post_tasks.SCENARIO_FIELDS),
    *(Task(f"writing_imitation_type{i}", SOCIAL, writing_tasks.imitation(f"writing_imitation_type{i}", i, False))
      for i in range(1, 5)),
    *(Task(f"review_imitation_type{i}", ("amazon",), writing_tasks.imitation(f"review_imitation_type{i}", i, True))
      for i in range(1, 5)),
    Task("personalized_comment", ("reddit",), writing_tasks.personalized_comment),
    Task("item_selection", ("amazon",), item_tasks.item_selection),
)
TASK_NAMES = tuple(t.name for t in TASKS)


def tasks_for(platform: str, only: list[str] | None = None) -> list[Task]:
    """The tasks built on a platform (optionally only those named)."""
    unknown = set(only or ()) - set(TASK_NAMES)
    if unknown:
        raise ValueError(f"sft.tasks: unknown task(s) {sorted(unknown)}; known: {', '.join(TASK_NAMES)}")
    return [t for t in TASKS if platform in t.platforms and (only is None or t.name in only)]


def build_user(bundle: UserBundle, ctx: BuildContext) -> list[Example]:
    """Every example of one user, task by task in registry order."""
    out: list[Example] = []
    for task in tasks_for(bundle.platform, ctx.cfg.tasks):
        out.extend(task.build(bundle, ctx))
    return out


def late_posts(bundle: UserBundle, fraction: float) -> set[str]:
    """Event ids of the user's latest `fraction` of posts (the time split's held-out side; at least one
    post when the user has two or more and fraction > 0)."""
    n = len(bundle.posts)
    k = min(n - 1, max(1, round(n * fraction))) if n >= 2 and fraction > 0 else 0
    return {p.event_id for p in bundle.posts[n - k:]} if k else set()


def skip_counts(ctx: BuildContext) -> dict[str, dict[str, int]]:
    """task -> reason -> examples not built."""
    out: dict[str, Counter] = {}
    for (task, reason), n in ctx.skipped.items():
        out.setdefault(task, Counter())[reason] += n
    return {t: dict(c) for t, c in sorted(out.items())}
