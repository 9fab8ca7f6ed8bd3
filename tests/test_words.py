"""The compiled word split equals Arrow's lower + regex replace + whitespace split (the definition it
replaced) on every real post of the shared samples and on random text over many scripts, and its word
hashes equal the xxhash package's XXH32; the compiled word count equals the non-empty pieces of Arrow's whitespace split."""
from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from processing.readers import read_file
from processing.readers.base import Event, ReadContext
from processing.words import space_chars, word_counts, words

SOURCES = (("reddit_pushshift/*.zst", "reddit_pushshift"), ("twitter_sentiment140/*.csv", "sentiment140"),
           ("blog_authorship/*.xml", "blogger_xml"), ("amazon_reviews_2018/*.json", "amazon_2018"))


def arrow_words(texts: pa.Array) -> list[list[str]]:
    """The definition: lower-case, every run of other than letters, digits, "_" and spaces to a space, split."""
    t = pc.replace_substring_regex(pc.utf8_lower(pc.fill_null(texts, "")), r"[^\p{L}\p{N}_\s]+", " ")
    return [[w for w in ws if w] for ws in pc.utf8_split_whitespace(t).to_pylist()]


def check(texts: pa.Array) -> int:
    pieces = pc.utf8_split_whitespace(pc.fill_null(texts, "")).to_pylist()
    assert word_counts(texts).tolist() == [sum(1 for w in ws if w) for ws in pieces]
    got = words(texts)
    want = arrow_words(texts)
    assert got.to_pylist() == want
    assert got.text.to_pylist() == [" ".join(ws) for ws in want]
    assert got.counts.tolist() == [len(ws) for ws in want]
    flat = [w for ws in want for w in ws]
    assert np.array_equal(got.hashes, np.array([xxhash.xxh32_intdigest(w.encode()) for w in flat], np.uint64))
    return len(flat)


def test_words_of_every_real_post_equal_arrows(shared_data):
    texts = []
    for pattern, fmt in SOURCES:
        for path in sorted(shared_data.glob(pattern)):
            for r in read_file(str(path), fmt, ReadContext(str(path), "test")):
                if isinstance(r, Event):
                    texts += [r.get("title"), r.get("text")]
    assert len(texts) > 8000
    assert check(pa.array(texts)) > 500_000


def test_words_of_random_text_in_many_scripts_equal_arrows():
    rng = random.Random(0)
    alphabet = ("aZ_09 \t\n\r\f\v-.,'’é\u0301ßİΣσς ǅﬁ東京한국어Привет\u00a0\u3000\u200b\u2028١٢३𝐀𝟙😀\U00020000"
                "ﾊﾟ½²Ⅻ\u0000")
    texts = [None, "", " ", "x" * 15, "y" * 16, "z" * 17, "w" * 33, "é" * 40] + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120))) for _ in range(4000)]
    arr = pa.array(texts)
    assert check(arr) > 10_000
    assert check(arr.slice(7, 500)) > 0
    chunked = pa.chunked_array([arr.slice(0, 100), arr.slice(100, 200)])
    assert words(chunked).to_pylist() == arrow_words(arr.slice(0, 300))
    assert len(words(pa.array([], pa.string()))) == 0


def test_the_whitespace_table_is_arrows_over_every_code_point():
    cps = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    probes = pa.array([f"a{chr(c)}b" for c in cps])
    split = pc.list_value_length(pc.utf8_split_whitespace(probes)).to_numpy(zero_copy_only=False) == 2
    assert np.array_equal(space_chars()[cps].astype(bool), split) and split.sum() > 20
