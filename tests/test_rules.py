"""Every platform rule, cleaning and language ID on hand-written rows through process_batch."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from core import schema as S
from processing.curate import process_batch
from processing.rules import is_corporate_bio
from processing.settings import CurateConfig

LONG = ("I spent the whole weekend repainting the kitchen with my sister, and we argued about the colour "
        "for an hour before settling on a pale green that reminds us of our grandmother's house. ") * 3


def batch(platform: str, rows: list[dict]) -> pa.Table:
    base = {S.PLATFORM: platform, S.USER_ID: "u", S.TS: 0, S.SOURCE_URI: "f", S.AUTHOR: "someone",
            S.TEXT: LONG, S.KIND: {"reddit": S.SUBMISSION, "twitter": S.TWEET, "blogger": S.BLOG_POST,
                                   "amazon": S.REVIEW}[platform]}
    return pa.Table.from_pylist([{**base, S.EVENT_ID: f"e{i}", S.SOURCE_ROW: i, **r} for i, r in enumerate(rows)],
                                schema=S.READ_BATCH_SCHEMA)


def reasons(platform: str, rows: list[dict], cfg: CurateConfig = CurateConfig()) -> list[str | None]:
    kept, rejects = process_batch(batch(platform, rows), platform, cfg)
    by_id = {e: None for e in kept[S.EVENT_ID].to_pylist()}
    for r in rejects:
        by_id.update(zip(r[S.EVENT_ID].to_pylist(), r[S.REASON].to_pylist()))
    return [by_id[f"e{i}"] for i in range(len(rows))]


def test_reddit_submission_rules():
    ok = {S.IS_SELF: True, S.SCORE: 10, S.NUM_COMMENTS: 4, S.TITLE: "Kitchen"}
    rows = [
        ok,
        {**ok, S.AUTHOR: ""},
        {**ok, S.AUTHOR: "[deleted]"},
        {**ok, S.AUTHOR: "automoderator"},
        {**ok, S.AUTHOR: "autotldr"},
        {**ok, S.IS_SELF: False},
        {**ok, S.DISTINGUISHED: "moderator"},
        {**ok, S.SCORE: 1, S.NUM_COMMENTS: 1},
        {**ok, S.SCORE: 1, S.NUM_COMMENTS: 5},  # low score but discussed: kept
        {**ok, S.TEXT: "", S.REMOVED: True},
        {**ok, S.TEXT: "Too short a post."},
        {**ok, S.TEXT: "So what should I do now?", S.TITLE: LONG},  # bare question under a long title
        {**ok, S.TEXT: "http://a.example/x http://b.example/y http://c.example/z ok"},
    ]
    assert reasons("reddit", rows) == [None, "missing_author", "deleted_author", "bot_author", "bot_author",
                                       "link_post", "distinguished", "low_score", None, "removed_content",
                                       "too_short", "bare_question", "cleaning_removed_most"]


def test_reddit_comment_rules():
    c = {S.KIND: S.COMMENT, S.IS_TOP_LEVEL: True, S.PARENT_ID: "t3_a"}
    rows = [c, {**c, S.IS_TOP_LEVEL: False}, {**c, S.TEXT: "x" * 199}, {**c, S.TEXT: LONG[:200]}]
    assert reasons("reddit", rows) == [None, "not_top_level", "too_short", None]


def test_twitter_rules():
    rows = [{}, {S.IS_RETWEET: True}, {S.TEXT: "Buy now and get a 20% discount! " + LONG},
            {S.TEXT: "A short tweet about lunch."}, {S.TEXT: "The wholesale market was busy today. " + LONG}]
    assert reasons("twitter", rows) == [None, "retweet", "ad", "too_short", None]  # "wholesale" is not "sale"


def test_blogger_and_amazon_rules():
    assert reasons("blogger", [{}, {S.TEXT: "x " * 150}, {S.TEXT: "   "}]) == [None, "too_short", "empty_text"]
    assert reasons("amazon", [{S.TEXT: "Great shoes, very comfy and warm."}, {S.TEXT: "Great shoes, comfy and warm."}]) == \
        [None, "too_short"]  # six words kept, five dropped


def test_language_id_and_scores():
    german = ("Ich habe das ganze Wochenende mit meiner Schwester die Küche gestrichen und wir haben eine Stunde "
              "lang über die Farbe gestritten, bevor wir uns für ein blasses Grün entschieden haben. ") * 2
    kept, rejects = process_batch(batch("blogger", [{}, {S.TEXT: german}]), "blogger", CurateConfig())
    assert kept[S.LANG].to_pylist() == ["en"] and kept[S.LANG_SCORE][0].as_py() > 0.9
    lang = [r for r in rejects if r.num_rows and r[S.STAGE][0].as_py() == "language"][0]
    assert lang[S.REASON].to_pylist() == ["non_english"] and lang[S.DETAIL][0].as_py().startswith("lang=de")
    # Only the first curate.language.max_chars characters are read: a German text behind an English one.
    english = LONG[:600]
    text = english + " " + german * 3
    assert len(english) >= CurateConfig().language.max_chars and len(german * 3) > len(english)
    kept, _ = process_batch(batch("blogger", [{S.TEXT: text}]), "blogger", CurateConfig())
    assert kept[S.LANG].to_pylist() == ["en"]
    whole = CurateConfig.model_validate({"language": {"max_chars": None}})
    kept, rejects = process_batch(batch("blogger", [{S.TEXT: text}]), "blogger", whole)
    assert kept.num_rows == 0 and [r for r in rejects if r.num_rows][0][S.REASON].to_pylist() == ["non_english"]


def test_pii_scrubbed_and_counted():
    text = LONG + " Mail me at jane.doe@example.com or call (555) 123-4567, says @janedoe."
    kept, _ = process_batch(batch("blogger", [{S.TEXT: text}]), "blogger", CurateConfig())
    out = kept[S.TEXT][0].as_py()
    assert "jane.doe@example.com" not in out and "[EMAIL]" in out and "[PHONE]" in out and "[USER]" in out
    assert kept[S.PII_COUNT][0].as_py() == 3


def test_rules_are_configurable():
    cfg = CurateConfig.model_validate({"twitter": {"min_chars": 90, "drop_retweets": False}})
    tweet = "We finally took the kids to the lake this afternoon and they would not stop laughing at the ducks."
    assert reasons("twitter", [{S.TEXT: tweet}, {S.IS_RETWEET: True}], cfg) == [None, None]


def test_reject_rows_are_complete():
    _, rejects = process_batch(batch("reddit", [{S.AUTHOR: "[deleted]", S.TEXT: "hello"}]), "reddit", CurateConfig())
    r = pa.concat_tables(rejects)
    assert r.schema == S.REJECT_SCHEMA and r.num_rows == 1
    assert r[S.EXCERPT][0].as_py() == "hello" and pc.all(pc.is_valid(r[S.SOURCE_URI])).as_py()


def test_corporate_bio():
    words = ("official", "store", "inc.", "llc")
    assert is_corporate_bio("Official store of ACME Inc.", words)
    assert is_corporate_bio("Widgets LLC", words)
    assert not is_corporate_bio("I officiate weddings", words)
    assert not is_corporate_bio(None, words)
