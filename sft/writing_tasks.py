"""Writing SFT tasks (PAPER.md 5): writing imitation types 1-4 (Reddit, Twitter, Blogger), Amazon review
imitation types 1-4, and the personalised Reddit comment. Targets are the user's own curated words
(cleaned and PII-scrubbed by curation), never an LLM rewrite: the style to learn is the person's.

Each task's prompt is rendered by one function from its chosen inputs (`imitation_prompt`,
`comment_prompt`); the builders choose the inputs from a held-out post, the simulate service
(simulate/tasks.py) from a live request, so both prompts are the same text for the same inputs."""
from __future__ import annotations

from typing import Callable, Iterator

from sft.bundle import Post, UserBundle, writable
from sft.common import about, BuildContext, choose_person, cut_words, date_of, Example, numbered, person_values, post_body, recent, split_words
from sft.settings import SFTConfig
from sft.wording import render

PLATFORM_NAMES = {"reddit": "Reddit", "twitter": "Twitter", "blogger": "blog", "amazon": "Amazon"}
# type -> (past posts or style description, topic or the post's beginning)
TYPES = {1: ("history", "topic"), 2: ("history", "prefix"), 3: ("style", "topic"), 4: ("style", "prefix")}


def _review_block(post: Post, words: int) -> str:
    rating = post.meta.get("rating")
    stars = f", rated {rating:g}/5" if isinstance(rating, (int, float)) else ""
    return f"{post.item_name}{stars} ({date_of(post)}):\n{cut_words(post.text, words)}"


def _post_block(post: Post, words: int) -> str:
    return f"({date_of(post)}) {cut_words(post_body(post), words)}"


def history_block(posts: list[Post], reviews: bool, words: int) -> str:
    """Past posts (or reviews) as the numbered block the writing prompts show, each cut to `words` words."""
    block: Callable[[Post, int], str] = _review_block if reviews else _post_block
    return numbered([block(p, words) for p in posts])


def imitation_prompt(task: str, eid: str, cfg: SFTConfig, platform: str, words: int, *,
                     history: list[Post] | None = None, style: str | None = None, item: str | None = None,
                     topic: str | None = None, prefix: str | None = None) -> str:
    """The prompt of writing (or review) imitation `task` from its chosen inputs: the past posts shown
    (types 1-2) or the style (3-4), the item reviewed (reviews), the topic (1, 3) or the post's beginning
    (2, 4). The SFT builder and the simulate service (next_post, rate) both render through here."""
    reviews = task.startswith("review_")
    source, cue = TYPES[int(task[-1])]
    values: dict[str, object] = {"platform": PLATFORM_NAMES[platform]}
    if reviews:
        values["item"] = item
    if source == "history":
        values["history"] = history_block(history or [], reviews, cfg.history_words)
    else:
        values["style"] = style
    values[cue] = topic if cue == "topic" else prefix
    key = task if cfg.person_context else f"{'review' if reviews else 'writing'}_imitation_no_person_{cue}"
    return render(key, eid, words=words, **values)


def imitation_posts(b: UserBundle, cfg: SFTConfig, reviews: bool) -> list[Post]:
    """The posts (or reviews) of a user that writing imitation learns from and shows, oldest first."""
    kinds = {"review"} if reviews else {"submission", "tweet", "blog_post"}
    return [p for p in b.posts if p.kind in kinds and writable(p, cfg.untagged_posts == "include")]


def imitation(task: str, number: int, reviews: bool):
    """The builder of writing (or review) imitation type `number` (PAPER.md 5)."""
    source, cue = TYPES[number]

    def build(b: UserBundle, ctx: BuildContext) -> Iterator[Example]:
        cfg = ctx.cfg
        posts = imitation_posts(b, cfg, reviews)
        if source == "style" and not b.writing_style:
            if posts:
                ctx.skip(task, "needs an accepted writing style")
            return
        for i, post in enumerate(posts):
            eid = ctx.example_id(task, b, post.event_id)
            rng = ctx.rng(eid)
            body = post.text.strip() if reviews else post_body(post)
            past = None
            if source == "history":
                past = recent(posts[:i], rng, cfg.history_posts)
                if not past:
                    ctx.skip(task, "no earlier post")
                    continue
            topic = prefix = None
            if cue == "topic":
                if not post.summary:
                    ctx.skip(task, "needs an accepted summary of the post")
                    continue
                topic, target = post.summary, body
            else:
                parts = split_words(body, rng.uniform(*cfg.prefix_fraction))
                if parts is None:
                    ctx.skip(task, "post too short to split")
                    continue
                prefix, target = parts
            prompt = imitation_prompt(task, eid, cfg, b.platform, about(target), history=past, style=b.writing_style,
                                      item=post.item_name if reviews else None, topic=topic, prefix=prefix)
            yield ctx.example(eid, task, b, post.event_id, post.ts, prompt, target)

    build.__name__ = build.__qualname__ = task
    build.__doc__ = f"{task}: {'past reviews' if source == 'history' and reviews else source} + {cue} -> the text."
    return build


def parent_post(post: Post) -> str:
    """The post a Reddit comment answers (its title and text), as the comment prompts show it."""
    parts = [p for p in (post.context.get("parent_title"), post.context.get("parent_text")) if p]
    return "\n\n".join(parts)


def comment_posts(b: UserBundle, cfg: SFTConfig) -> list[Post]:
    """The comments of a user that the comment task learns from and shows, oldest first."""
    return [p for p in b.posts if p.kind == "comment" and writable(p, cfg.untagged_posts == "include")]


def comment_prompt(eid: str, cfg: SFTConfig, person: tuple[str, str], history: list[Post], post: str,
                   words: int) -> str:
    """The personalised-comment prompt from its chosen inputs: the persona or profile shown, the past
    comments shown, the post answered. The SFT builder and the simulate service (comment) render here."""
    task = "personalized_comment"
    return render(task if cfg.person_context else f"{task}_no_person", eid,
                  history=history_block(history, False, cfg.history_words),
                  post=cut_words(post, cfg.history_words * 3), words=words, **person_values(*person))


def personalized_comment(b: UserBundle, ctx: BuildContext) -> Iterator[Example]:
    """Reddit: persona or profile + 1-5 earlier comments + another user's post -> the user's comment."""
    task = "personalized_comment"
    cfg = ctx.cfg
    comments = comment_posts(b, cfg)
    for i, post in enumerate(comments):
        eid = ctx.example_id(task, b, post.event_id)
        rng = ctx.rng(eid)
        chosen = choose_person(b, rng)
        if chosen is None:
            ctx.skip(task, "needs an accepted persona or profile")
            continue
        parent = parent_post(post)
        if not parent:
            ctx.skip(task, "the parent post is not available")
            continue
        past = recent(comments[:i], rng, cfg.history_posts)
        if not past:
            ctx.skip(task, "no earlier comment")
            continue
        yield ctx.example(eid, task, b, post.event_id, post.ts,
                          comment_prompt(eid, cfg, chosen, past, parent, about(post.text)), post.text)
