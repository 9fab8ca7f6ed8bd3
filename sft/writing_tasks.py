"""Writing SFT tasks (PAPER.md 5): writing imitation types 1-4 (Reddit, Twitter, Blogger), Amazon review
imitation types 1-4, and the personalised Reddit comment. Targets are the user's own curated words
(cleaned and PII-scrubbed by curation), never an LLM rewrite: the style to learn is the person's."""
from __future__ import annotations

from typing import Callable, Iterator

from sft.bundle import Post, UserBundle, writable
from sft.common import about, BuildContext, choose_person, cut_words, date_of, Example, numbered, person_values, post_body, recent, split_words
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


def imitation(task: str, number: int, reviews: bool):
    """The builder of writing (or review) imitation type `number` (PAPER.md 5)."""
    source, cue = TYPES[number]

    def build(b: UserBundle, ctx: BuildContext) -> Iterator[Example]:
        cfg = ctx.cfg
        include = cfg.untagged_posts == "include"
        kinds = {"review"} if reviews else {"submission", "tweet", "blog_post"}
        posts = [p for p in b.posts if p.kind in kinds and writable(p, include)]
        if source == "style" and not b.writing_style:
            if posts:
                ctx.skip(task, "needs an accepted writing style")
            return
        block: Callable[[Post, int], str] = _review_block if reviews else _post_block
        for i, post in enumerate(posts):
            eid = ctx.example_id(task, b, post.event_id)
            rng = ctx.rng(eid)
            body = post.text.strip() if reviews else post_body(post)
            values: dict[str, object] = {"platform": PLATFORM_NAMES[b.platform]}
            if reviews:
                values["item"] = post.item_name
            if source == "history":
                past = recent(posts[:i], rng, cfg.history_posts)
                if not past:
                    ctx.skip(task, "no earlier post")
                    continue
                values["history"] = numbered([block(p, cfg.history_words) for p in past])
            else:
                values["style"] = b.writing_style
            if cue == "topic":
                if not post.summary:
                    ctx.skip(task, "needs an accepted summary of the post")
                    continue
                values["topic"], target = post.summary, body
            else:
                parts = split_words(body, rng.uniform(*cfg.prefix_fraction))
                if parts is None:
                    ctx.skip(task, "post too short to split")
                    continue
                values["prefix"], target = parts
            key = task if cfg.person_context else f"{'review' if reviews else 'writing'}_imitation_no_person_{cue}"
            yield ctx.example(eid, task, b, post.event_id, post.ts,
                              render(key, eid, words=about(target), **values), target)

    build.__name__ = build.__qualname__ = task
    build.__doc__ = f"{task}: {'past reviews' if source == 'history' and reviews else source} + {cue} -> the text."
    return build


def _parent(post: Post) -> str:
    parts = [p for p in (post.context.get("parent_title"), post.context.get("parent_text")) if p]
    return "\n\n".join(parts)


def personalized_comment(b: UserBundle, ctx: BuildContext) -> Iterator[Example]:
    """Reddit: persona or profile + 1-5 earlier comments + another user's post -> the user's comment."""
    task = "personalized_comment"
    cfg = ctx.cfg
    comments = [p for p in b.posts if p.kind == "comment" and writable(p, cfg.untagged_posts == "include")]
    for i, post in enumerate(comments):
        eid = ctx.example_id(task, b, post.event_id)
        rng = ctx.rng(eid)
        chosen = choose_person(b, rng)
        if chosen is None:
            ctx.skip(task, "needs an accepted persona or profile")
            continue
        parent = _parent(post)
        if not parent:
            ctx.skip(task, "the parent post is not available")
            continue
        past = recent(comments[:i], rng, cfg.history_posts)
        if not past:
            ctx.skip(task, "no earlier comment")
            continue
        history = numbered([_post_block(p, cfg.history_words) for p in past])
        text = render(task if cfg.person_context else f"{task}_no_person", eid, history=history,
                      post=cut_words(parent, cfg.history_words * 3), words=about(post.text), **person_values(*chosen))
        yield ctx.example(eid, task, b, post.event_id, post.ts, text, post.text)
