"""Per-platform row rules of the paper (PAPER.md 3.1), vectorised over pyarrow tables.

Each rule is (reason, mask): the mask marks rows to drop. Rules run in order and a row is
rejected with the reason of the first rule that drops it. `meta_rules` run on raw fields before
cleaning; `text_rules` run on the cleaned text.
"""
from __future__ import annotations

import re
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

from core import schema as S
from processing.settings import CurateConfig
from processing.words import word_counts

Rule = tuple[str, Callable[[pa.Table], pa.Array]]


def _false(t: pa.Table) -> pa.Array:
    return pa.array([False] * t.num_rows, pa.bool_())


def _fill(mask) -> pa.Array:
    return pc.fill_null(mask, False)


def _col(t: pa.Table, name: str):
    return t.column(name)


def _kind(t: pa.Table, kind: str):
    return pc.equal(_col(t, S.KIND), kind)


def _chars(t: pa.Table, *, with_title: bool = False):
    text = pc.fill_null(_col(t, S.TEXT), "")
    if with_title:
        text = pc.binary_join_element_wise(pc.fill_null(_col(t, S.TITLE), ""), text, "\n")
    return pc.utf8_length(pc.utf8_trim_whitespace(text))


def _words(t: pa.Table):
    """Words of the text: its runs of non-whitespace (compiled, no lists built)."""
    return pa.array(word_counts(_col(t, S.TEXT)))


def _once(fn: Callable[[pa.Table], pa.Array]) -> Callable[[pa.Table], pa.Array]:
    """fn computed once per table object (apply_rules passes every rule the same table)."""
    last: list = [None, None]

    def cached(t: pa.Table) -> pa.Array:
        if last[0] is not t:
            last[:] = [t, fn(t)]
        return last[1]
    return cached


def _phrase_regex(phrases: tuple[str, ...]) -> str:
    return r"(?i)\b(?:" + "|".join(re.escape(p) for p in phrases) + r")\b"


def meta_rules(platform: str, cfg: CurateConfig) -> list[Rule]:
    """Rules on raw fields (authors, flags, scores): they need no text cleaning."""
    author_rules: list[Rule] = [
        ("missing_author", lambda t: _fill(pc.equal(pc.fill_null(_col(t, S.AUTHOR), ""), ""))),
        ("deleted_author", lambda t: _fill(pc.equal(_col(t, S.AUTHOR), "[deleted]"))),
    ]
    if platform == S.REDDIT:
        r = cfg.reddit
        sub = lambda t: _kind(t, S.SUBMISSION)  # noqa: E731
        com = lambda t: _kind(t, S.COMMENT)  # noqa: E731
        return author_rules + [
            ("bot_author", lambda t: _fill(pc.is_in(_col(t, S.AUTHOR), pa.array([b.lower() for b in r.bot_authors])))),
            ("distinguished", lambda t: _fill(pc.is_in(_col(t, S.DISTINGUISHED), pa.array(list(r.drop_distinguished), pa.string())))),
            ("link_post", lambda t: _fill(pc.and_(sub(t), pc.equal(_col(t, S.IS_SELF), False))) if r.drop_link_posts else _false(t)),
            ("low_score", lambda t: _fill(pc.and_(sub(t), pc.and_(pc.less(_col(t, S.SCORE), r.min_score),
                                                                  pc.less(_col(t, S.NUM_COMMENTS), r.min_comments))))),
            ("not_top_level", lambda t: _fill(pc.and_(com(t), pc.invert(_col(t, S.IS_TOP_LEVEL))))
             if r.top_level_comments_only else _false(t)),
        ]
    if platform == S.TWITTER:
        return author_rules + [
            ("retweet", lambda t: _fill(_col(t, S.IS_RETWEET)) if cfg.twitter.drop_retweets else _false(t)),
        ]
    return author_rules


def text_rules(platform: str, cfg: CurateConfig) -> list[Rule]:
    """Rules on cleaned text: removed content, emptiness, bare questions and ads, then lengths.

    The specific reasons come before too_short, so a short ad is counted as an ad."""
    chars = _once(lambda t: _chars(t, with_title=True))
    common: list[Rule] = [
        ("removed_content", lambda t: _fill(pc.and_(_col(t, S.REMOVED), pc.less(chars(t), _min_chars(t, platform, cfg))))),
        ("empty_text", lambda t: pc.equal(chars(t), 0)),
    ]
    if platform == S.REDDIT:
        r = cfg.reddit
        return common + [
            ("bare_question", lambda t: _fill(pc.and_(_kind(t, S.SUBMISSION), pc.and_(
                pc.less(_words(t), r.bare_question_max_words),
                pc.ends_with(pc.utf8_trim_whitespace(pc.fill_null(_col(t, S.TEXT), "")), "?"))))),
            ("too_short", lambda t: pc.less(chars(t), _min_chars(t, platform, cfg))),
        ]
    if platform == S.TWITTER:
        ads = _phrase_regex(cfg.twitter.ad_phrases)
        return common + [
            ("ad", lambda t: _fill(pc.match_substring_regex(_col(t, S.TEXT), ads))),
            ("too_short", lambda t: pc.less(_chars(t), cfg.twitter.min_chars)),
        ]
    if platform == S.BLOGGER:
        return common + [("too_short", lambda t: pc.less(_chars(t), cfg.blogger.min_chars))]
    if platform == S.AMAZON:
        return common + [("too_short", lambda t: pc.less(_words(t), cfg.amazon.min_words))]
    return common


def _min_chars(t: pa.Table, platform: str, cfg: CurateConfig):
    if platform != S.REDDIT:
        return {S.TWITTER: cfg.twitter.min_chars, S.BLOGGER: cfg.blogger.min_chars}.get(platform, 1)
    return pc.if_else(_kind(t, S.COMMENT), cfg.reddit.min_chars_comment, cfg.reddit.min_chars_submission)


def is_corporate_bio(bio: str | None, words: tuple[str, ...]) -> bool:
    """The paper's corporate-account test on a Twitter bio (whole words, case-insensitive)."""
    return bool(bio) and re.search(_phrase_regex(words), bio) is not None


def apply_rules(table: pa.Table, rules: list[Rule]) -> tuple[pa.Table, pa.Table]:
    """Evaluate rules in order; return (kept rows, rejected rows with a `reason` column appended)."""
    reason = pa.nulls(table.num_rows, pa.string())
    for name, mask_fn in rules:
        if table.num_rows == 0:
            break
        mask = _fill(mask_fn(table))
        reason = pc.if_else(pc.and_(pc.is_null(reason), mask), name, reason)
    drop = pc.is_valid(reason)
    rejected = table.filter(drop).append_column(S.REASON, reason.filter(drop))
    return table.filter(pc.invert(drop)), rejected
