"""The words dedup keys are computed on, in one compiled pass over each batch's UTF-8 buffer.

A text's words are the maximal runs of letters, digits and "_" (`[\\p{L}\\p{N}_]`, every script) of its
lower-cased text (Arrow's `utf8_lower`). The pass writes the words joined by single spaces (the exact
key's input), each text's word count and each word's XXH32 (the shingles' input), so no Python string
is built per text or per word. The code point table is RE2's own answer for every code point, so the
words equal those of Arrow's regex replace and whitespace split (a test checks both).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

WORD_CHAR = r"[\p{L}\p{N}_]"
M32 = np.uint64(0xFFFFFFFF)
Q1, Q2, Q3, Q4, Q5 = (np.uint64(v) for v in (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1))


@dataclass(frozen=True)
class Words:
    """Each text's words: `text` (joined by single spaces), `counts` (per text) and `hashes` (XXH32 of
    each word, uint64, texts one after another)."""

    text: pa.LargeStringArray
    counts: np.ndarray
    hashes: np.ndarray

    def __len__(self) -> int:
        return len(self.text)

    def to_pylist(self) -> list[list[str]]:
        """The words of each text as Python lists (tests, benchmarks)."""
        return [t.split(" ") if t else [] for t in self.text.to_pylist()]


@lru_cache(maxsize=1)
def word_chars() -> np.ndarray:
    """uint8 table over all code points: 1 where RE2 matches the code point with WORD_CHAR."""
    cps = np.arange(0x110000, dtype=np.uint32)
    cps = cps[(cps < 0xD800) | (cps >= 0xE000)]  # surrogates are not characters
    data = cps.astype("<u4").tobytes().decode("utf-32-le").encode("utf-8")
    sizes = 1 + (cps >= 0x80) + (cps >= 0x800) + (cps >= 0x10000)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    chars = pa.StringArray.from_buffers(len(cps), pa.py_buffer(offsets), pa.py_buffer(data))
    table = np.zeros(0x110000, np.uint8)
    table[cps] = pc.match_substring_regex(chars, f"^{WORD_CHAR}$").to_numpy(zero_copy_only=False)
    return table


@lru_cache(maxsize=1)
def space_chars() -> np.ndarray:
    """uint8 table over all code points: 1 where Arrow's utf8_split_whitespace splits "a<c>b" (all
    in the BMP: a test checks every code point)."""
    cps = np.arange(0x10000, dtype=np.uint32)
    cps = cps[(cps < 0xD800) | (cps >= 0xE000)]
    data = "".join(f"a{c}b" for c in cps.astype("<u4").tobytes().decode("utf-32-le")).encode("utf-8")
    sizes = 3 + (cps >= 0x80) + (cps >= 0x800)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    probes = pa.StringArray.from_buffers(len(cps), pa.py_buffer(offsets), pa.py_buffer(data))
    table = np.zeros(0x110000, np.uint8)
    table[cps] = pc.list_value_length(pc.utf8_split_whitespace(probes)).to_numpy(zero_copy_only=False) == 2
    return table


def word_counts(texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Each text's runs of non-whitespace (Arrow's Unicode whitespace; null: 0), without building lists:
    the non-empty pieces of utf8_split_whitespace."""
    arr = pc.fill_null(texts, "").cast(pa.large_string())
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if len(arr) == 0:
        return np.zeros(0, np.int64)
    _, offsets, data = arr.buffers()
    offsets = np.frombuffer(offsets, np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    out = np.empty(len(arr), np.int64)
    _word_runs(data, offsets, space_chars(), out)
    return out


def words(texts: pa.Array | pa.ChunkedArray) -> Words:
    """The words of each text (null: none)."""
    low = pc.utf8_lower(pc.fill_null(texts, "")).cast(pa.large_string())
    low = low.combine_chunks() if isinstance(low, pa.ChunkedArray) else low
    n = len(low)
    if n == 0:
        return Words(pa.array([], pa.large_string()), np.zeros(0, np.int64), np.zeros(0, np.uint64))
    _, offsets, data = low.buffers()
    offsets = np.frombuffer(offsets, np.int64)[low.offset:low.offset + n + 1]
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    size = int(offsets[-1] - offsets[0])
    out = np.empty(size, np.uint8)
    out_offsets = np.empty(n + 1, np.int64)
    counts = np.empty(n, np.int64)
    hashes = np.empty(size // 2 + 1, np.uint64)  # a word and its separator take two bytes or more
    used = _split(data, offsets, word_chars(), out, out_offsets, counts, hashes)
    text = pa.LargeStringArray.from_buffers(n, pa.py_buffer(out_offsets), pa.py_buffer(out[:out_offsets[-1]]))
    return Words(text, counts, hashes[:used].copy())


@numba.njit(inline="always")
def _rotl32(x: np.uint64, r: int) -> np.uint64:
    return ((x << np.uint64(r)) | (x >> np.uint64(32 - r))) & M32


@numba.njit(cache=True, nogil=True)
def _xxh32(d: np.ndarray, p: int, end: int) -> np.uint64:
    """XXH32 (seed 0) of d[p:end], in 64-bit arithmetic masked to 32 bits."""
    n = end - p
    if n >= 16:
        v1, v2, v3, v4 = (Q1 + Q2) & M32, Q2, np.uint64(0), (np.uint64(1 << 32) - Q1) & M32
        while p + 16 <= end:
            for k in range(4):
                q = p + 4 * k
                lane = np.uint64(d[q]) | (np.uint64(d[q + 1]) << np.uint64(8)) \
                    | (np.uint64(d[q + 2]) << np.uint64(16)) | (np.uint64(d[q + 3]) << np.uint64(24))
                if k == 0:
                    v1 = (_rotl32((v1 + lane * Q2) & M32, 13) * Q1) & M32
                elif k == 1:
                    v2 = (_rotl32((v2 + lane * Q2) & M32, 13) * Q1) & M32
                elif k == 2:
                    v3 = (_rotl32((v3 + lane * Q2) & M32, 13) * Q1) & M32
                else:
                    v4 = (_rotl32((v4 + lane * Q2) & M32, 13) * Q1) & M32
            p += 16
        h = (_rotl32(v1, 1) + _rotl32(v2, 7) + _rotl32(v3, 12) + _rotl32(v4, 18)) & M32
    else:
        h = Q5
    h = (h + np.uint64(n)) & M32
    while p + 4 <= end:
        lane = np.uint64(d[p]) | (np.uint64(d[p + 1]) << np.uint64(8)) | (np.uint64(d[p + 2]) << np.uint64(16)) \
            | (np.uint64(d[p + 3]) << np.uint64(24))
        h = (_rotl32((h + lane * Q3) & M32, 17) * Q4) & M32
        p += 4
    while p < end:
        h = (_rotl32((h + np.uint64(d[p]) * Q5) & M32, 11) * Q1) & M32
        p += 1
    h ^= h >> np.uint64(15)
    h = (h * Q2) & M32
    h ^= h >> np.uint64(13)
    h = (h * Q3) & M32
    h ^= h >> np.uint64(16)
    return h


@numba.njit(inline="always")
def _code_point(d: np.ndarray, p: int) -> tuple[int, int]:
    """The code point at byte p of valid UTF-8, and its size in bytes."""
    b = d[p]
    if b < 0x80:
        return np.int64(b), 1
    if b < 0xE0:
        return (np.int64(b & 0x1F) << 6) | np.int64(d[p + 1] & 0x3F), 2
    if b < 0xF0:
        return (np.int64(b & 0x0F) << 12) | (np.int64(d[p + 1] & 0x3F) << 6) | np.int64(d[p + 2] & 0x3F), 3
    return ((np.int64(b & 0x07) << 18) | (np.int64(d[p + 1] & 0x3F) << 12) | (np.int64(d[p + 2] & 0x3F) << 6)
            | np.int64(d[p + 3] & 0x3F)), 4


@numba.njit(cache=True, nogil=True)
def _word_runs(d: np.ndarray, offsets: np.ndarray, is_space: np.ndarray, out: np.ndarray) -> None:
    for t in range(len(out)):
        p, end, runs, prev = offsets[t], offsets[t + 1], 0, True
        while p < end:
            cp, size = _code_point(d, p)
            space = is_space[cp] != 0
            if prev and not space:
                runs += 1
            prev = space
            p += size
        out[t] = runs


@numba.njit(cache=True, nogil=True)
def _split(d: np.ndarray, offsets: np.ndarray, is_word: np.ndarray, out: np.ndarray, out_offsets: np.ndarray,
           counts: np.ndarray, hashes: np.ndarray) -> int:
    """Write each text's words joined by single spaces to `out`, count them and hash each; return the
    number of words. Code points are decoded from UTF-8 (valid: Arrow strings)."""
    o, w = 0, 0
    out_offsets[0] = 0
    for t in range(len(counts)):
        p, end = offsets[t], offsets[t + 1]
        first = o
        c = 0
        start = -1  # start in `out` of the current word
        while p < end:
            cp, size = _code_point(d, p)
            if is_word[cp]:
                if start < 0:
                    if o > first:
                        out[o] = 32
                        o += 1
                    start = o
                for k in range(size):
                    out[o + k] = d[p + k]
                o += size
            elif start >= 0:
                hashes[w] = _xxh32(out, start, o)
                w += 1
                c += 1
                start = -1
            p += size
        if start >= 0:
            hashes[w] = _xxh32(out, start, o)
            w += 1
            c += 1
        counts[t] = c
        out_offsets[t + 1] = o
    return w
