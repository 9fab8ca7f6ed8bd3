"""Reddit Pushshift NDJSON (plain or .zst): submissions (RS_*) and comments (RC_*), told apart per record."""
from __future__ import annotations

import re
from typing import BinaryIO, Iterator

from core import schema as S
from processing.readers.base import epoch_us, get_num, get_str, json_meta, json_records, make_event, ReadContext, Record

REMOVED_RE = re.compile(r"^\s*(\[removed\]|\[deleted\]|\[deleted by user\]|this (post|comment|submission) has been (removed|deleted)\b.*)\s*$",
                        re.I | re.S)


def _unless_removed(text: str | None) -> tuple[str, bool]:
    """Blank out removed/deleted bodies (the paper's rule); report whether it was removed."""
    if text and REMOVED_RE.match(text):
        return "", True
    return text or "", False


def _record(ctx: ReadContext, row: int, obj: dict) -> Record:
    author = get_str(obj, "author") or ""
    rid = get_str(obj, "id", required=True)
    ts = epoch_us(obj, "created_utc")
    subreddit = get_str(obj, "subreddit")
    score = get_num(obj, "score")
    distinguished = get_str(obj, "distinguished")
    if "body" in obj:
        body, removed = _unless_removed(get_str(obj, "body"))
        link_id = get_str(obj, "link_id")
        parent = get_str(obj, "parent_id")
        return make_event(
            ctx, S.REDDIT, row, kind=S.COMMENT, author=author, ts_us=ts, text=body, native_id=f"t1_{rid}",
            parent_id=link_id, context=json_meta(subreddit=subreddit),
            meta=json_meta(score=score, subreddit=subreddit, link_id=link_id, parent_id=parent),
            score=None if score is None else int(score), distinguished=distinguished, removed=removed,
            is_top_level=bool(link_id) and parent == link_id,
        )
    if "title" not in obj and "selftext" not in obj:
        return ctx.reject(row, "missing_field", "neither `body` (comment) nor `title` (submission)", obj, S.REDDIT)
    title, title_removed = _unless_removed(get_str(obj, "title"))
    selftext, removed = _unless_removed(get_str(obj, "selftext"))
    n_comments = get_num(obj, "num_comments")
    is_self = obj.get("is_self")
    return make_event(
        ctx, S.REDDIT, row, kind=S.SUBMISSION, author=author, ts_us=ts, text=selftext, title=title,
        native_id=f"t3_{rid}", context=json_meta(subreddit=subreddit),
        meta=json_meta(score=score, num_comments=n_comments, subreddit=subreddit),
        score=None if score is None else int(score), num_comments=None if n_comments is None else int(n_comments),
        is_self=is_self if isinstance(is_self, bool) else None, distinguished=distinguished,
        removed=removed or title_removed,
    )


def read_reddit(stream: BinaryIO, ctx: ReadContext) -> Iterator[Record]:
    """Yield one event or reject per NDJSON record."""
    return json_records(stream, ctx, S.REDDIT, lambda row, obj: _record(ctx, row, obj))
