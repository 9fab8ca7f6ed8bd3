"""Deduplication kernels: exact keys of the normalised words (`words.py`), vectorised MinHash signatures
(datasketch's permutations and affine32 scheme, so signatures equal datasketch's `MinHash`), LSH band keys,
compact (b-bit) signatures, the verification of candidate pairs and bucket chaining. Pure functions over
numpy/pyarrow; the distributed steps that use them are in `dedup_stage.py` (components: `components.py`).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from datasketch import MinHash

from processing.settings import DedupConfig
from processing.string_hash import xxh64
from processing.words import Words

MAX_HASH = np.uint64((1 << 32) - 1)
SHINGLE_MULT = np.uint64(0x9E3779B1)  # odd 32-bit multiplier of the rolling shingle hash


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads bits so `key % n` partitions evenly."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def scope_salt(user_ids: list[str] | None, n: int) -> np.ndarray:
    """Per-row salt of the keys: 0 for corpus scope, a hash of the user for user scope."""
    if user_ids is None:
        return np.zeros(n, np.uint64)
    return np.fromiter((xxhash.xxh64_intdigest(u.encode()) for u in user_ids), np.uint64, n)


def exact_keys(words: Words, salt: np.ndarray) -> np.ndarray:
    """64-bit key of each text's normalised words (0 for a text without words: never deduplicated)."""
    h = np.where(words.counts == 0, np.uint64(0), xxh64(words.text))
    keys = mix64(h ^ salt)
    keys[h == 0] = 0
    return keys


def shingle_hashes(words: Words, cfg: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
    """All shingle hashes (uint64 holding 32-bit values) and each text's offsets into them.

    Word n-gram shingles: n consecutive word hashes (XXH32, `words.hashes`) combined by a polynomial
    (a compiled loop). Texts with fewer than n words get no shingles (exact-only), or character
    n-grams when cfg.short_texts == "char_ngrams".
    """
    n = cfg.shingle_size
    lengths = words.counts
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    counts = np.maximum(lengths - n + 1, 0)
    char_docs = np.flatnonzero(counts == 0) if cfg.short_texts == "char_ngrams" else np.zeros(0, np.int64)
    grams: dict[int, np.ndarray] = {}
    if len(char_docs):
        texts = words.text.take(pa.array(char_docs)).to_pylist()
        k = cfg.char_ngram
        for d, t in zip(char_docs, texts):
            if len(t) >= k:
                grams[int(d)] = np.unique(np.fromiter(
                    (xxhash.xxh32_intdigest(t[i:i + k].encode()) for i in range(len(t) - k + 1)), np.uint64))
                counts[d] = len(grams[int(d)])
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    out = np.zeros(offsets[-1], np.uint64)
    _word_shingles(words.hashes, starts, lengths, n, offsets, out)
    for d, g in grams.items():
        out[offsets[d]:offsets[d + 1]] = g
    return out, offsets


@numba.njit(cache=True, nogil=True)
def _word_shingles(word_h: np.ndarray, starts: np.ndarray, lengths: np.ndarray, n: int, offsets: np.ndarray,
                   out: np.ndarray) -> None:
    """out[offsets[d] + p] = the rolling hash of words p..p+n-1 of text d (texts of n words or more)."""
    for d in range(len(lengths)):
        for p in range(lengths[d] - n + 1):
            h = np.uint64(0)
            for i in range(n):
                h = (h * SHINGLE_MULT + word_h[starts[d] + p + i]) & MAX_HASH
            out[offsets[d] + p] = h


def permutations(cfg: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's (a, b) permutation parameters (its default affine32 scheme) for (num_perm, seed)."""
    return _permutations(cfg.num_perm, cfg.seed)


@lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = MinHash(num_perm=num_perm, seed=seed).permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser, as datasketch applies it before its affine permutations."""
    h = h.astype(np.uint32)
    with np.errstate(over="ignore"):
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0xC2B2AE35)
        h ^= h >> np.uint32(16)
    return h


def signatures(words: Words, cfg: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
    """MinHash signatures (n_texts x num_perm, uint32) and a mask of the texts that have one.

    datasketch's affine32 scheme over all shingles of a batch: h' = fmix32(h), then for each
    permutation (a, b): a*h' + b mod 2^32, minimum per text (a compiled loop). Equal to
    datasketch.MinHash fed the same shingle hashes (a test checks it).
    """
    hv, offsets = shingle_hashes(words, cfg)
    a, b = permutations(cfg)
    sig = np.full((len(words), cfg.num_perm), np.iinfo(np.uint32).max, np.uint32)
    _min_hashes(fmix32(hv), offsets, a, b, sig)
    return sig, np.diff(offsets) > 0


@numba.njit(cache=True, nogil=True)
def _min_hashes(hv: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray, sig: np.ndarray) -> None:
    """sig[t, p] = min over text t's shingles h of (a[p] * h + b[p]) mod 2^32 (rows start at the maximum)."""
    for t in range(len(offsets) - 1):
        row = sig[t]
        for s in range(offsets[t], offsets[t + 1]):
            h = hv[s]
            for p in range(len(a)):
                v = np.uint32(a[p] * h + b[p])
                if v < row[p]:
                    row[p] = v


def band_keys(sig: np.ndarray, cfg: DedupConfig, salt: np.ndarray) -> np.ndarray:
    """One 64-bit key per (text, band): a hash of the band's `rows` signature values (n x bands)."""
    n = sig.shape[0]
    keys = np.empty((n, cfg.bands), np.uint64)
    with np.errstate(over="ignore"):
        for band in range(cfg.bands):
            h = np.full(n, np.uint64(0xCBF29CE484222325) ^ np.uint64(band), np.uint64) ^ salt
            for v in sig[:, band * cfg.rows:(band + 1) * cfg.rows].T:
                h = (h ^ v.astype(np.uint64)) * np.uint64(0x100000001B3)
            keys[:, band] = mix64(h)
    return keys


def pack_signatures(sig: np.ndarray, bits: int, rows: np.ndarray | None = None) -> pa.FixedSizeBinaryArray:
    """b-bit signatures (n x num_perm*bits/8 bytes) the index rows carry for verification; with `rows`,
    the packed signature of row rows[i] at i (null where rows[i] < 0), gathered in one copy.

    Each 32-bit value is mixed (fmix32, a bijection: equal values stay equal) and its low `bits` kept,
    so two unequal values collide with probability 2^-bits (corrected for in `estimated_jaccard`).
    Low bits of the raw values are not used: they are constant for the permutations with an even `a`.
    """
    v = fmix32(sig) if bits < 32 else sig.astype(np.uint32)
    if bits == 4:
        lo, hi = v[:, 0::2] & np.uint32(0xF), v[:, 1::2] & np.uint32(0xF)
        packed = (lo | (hi << np.uint32(4))).astype(np.uint8)
    else:
        packed = np.ascontiguousarray((v & np.uint32((1 << bits) - 1)).astype(f"<u{bits // 8}")).view(np.uint8)
    width = packed.shape[1] if packed.ndim == 2 else 0
    if rows is None:
        return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(sig), [None, pa.py_buffer(packed.tobytes())])
    valid = rows >= 0
    data = np.take(packed, np.where(valid, rows, 0), axis=0) if len(packed) else np.zeros((len(rows), width), np.uint8)
    nulls = int(len(rows) - valid.sum())
    validity = pa.array(valid).buffers()[1] if nulls else None
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(rows), [validity, pa.py_buffer(data)], nulls)


def unpack_signatures(arr: pa.Array | pa.ChunkedArray, num_perm: int, bits: int,
                      rows: np.ndarray | None = None) -> np.ndarray:
    """The b-bit values of packed signatures (no nulls): n x num_perm, uint8/uint16/uint32; with `rows`,
    only those rows', gathered from each chunk's buffer (no copy of the whole column: a near task's
    signatures are most of its memory; Arrow's take on fixed-size binary is also 20x slower)."""
    width = num_perm * bits // 8
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    if rows is None:
        raw = np.concatenate([_packed(c, width) for c in chunks]) if chunks else np.zeros((0, width), np.uint8)
    else:
        raw = np.empty((len(rows), width), np.uint8)
        starts = np.cumsum([0] + [len(c) for c in chunks])
        which = np.searchsorted(starts, rows, side="right") - 1  # the chunk of each row
        order = np.argsort(which, kind="stable")
        bounds = np.searchsorted(which[order], np.arange(len(chunks) + 1))
        for k, c in enumerate(chunks):
            at = order[bounds[k]:bounds[k + 1]]
            if len(at):
                raw[at] = np.take(_packed(c, width), rows[at] - starts[k], axis=0)
    if bits == 4:
        out = np.empty((len(raw), num_perm), np.uint8)
        out[:, 0::2], out[:, 1::2] = raw & 0xF, raw >> 4
        return out
    return raw.view(f"<u{bits // 8}").reshape(len(raw), num_perm)


def _packed(arr: pa.Array, width: int) -> np.ndarray:
    """A fixed-size binary array's values as an n x width uint8 view of its buffer (no nulls)."""
    if len(arr) == 0:
        return np.zeros((0, width), np.uint8)
    return np.frombuffer(arr.buffers()[1], np.uint8)[arr.offset * width:(arr.offset + len(arr)) * width].reshape(
        len(arr), width)


def estimated_jaccard(a: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
    """Jaccard estimates of row pairs of b-bit signatures: the share of equal values, less the chance
    2^-bits that two unequal values agree (Li and Koenig's b-bit MinHash estimator)."""
    return _corrected(np.count_nonzero(a == b, axis=1) / a.shape[1], bits)


def _corrected(share: np.ndarray, bits: int) -> np.ndarray:
    c = 2.0 ** -bits
    return (share - c) / (1.0 - c)


def min_equal_values(threshold: float, num_perm: int, bits: int) -> int:
    """The fewest equal signature values whose `estimated_jaccard` reaches `threshold` (num_perm + 1: none)."""
    ok = np.flatnonzero(_corrected(np.arange(num_perm + 1) / num_perm, bits) >= threshold - 1e-12)
    return int(ok[0]) if len(ok) else num_perm + 1


@numba.njit(cache=True, nogil=True)
def _link_to_heads(starts: np.ndarray, ends: np.ndarray, rows: np.ndarray, sigs: np.ndarray,
                   min_equal: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Within each group [starts[g], ends[g]): the first unsettled member is the head; every later
    unsettled member with at least `min_equal` signature values equal to the head's is linked to it and
    settled. Returns (head positions, member positions, pairs compared)."""
    n = len(rows)
    heads, others = np.empty(n, np.int64), np.empty(n, np.int64)
    settled = np.zeros(n, np.bool_)
    k, compared, width = 0, 0, sigs.shape[1]
    for g in range(len(starts)):
        for i in range(starts[g], ends[g]):
            if settled[i]:
                continue
            settled[i] = True
            a = sigs[rows[i]]
            for j in range(i + 1, ends[g]):
                if settled[j]:
                    continue
                b = sigs[rows[j]]
                equal = 0
                for x in range(width):
                    equal += a[x] == b[x]
                compared += 1
                if equal >= min_equal:
                    heads[k], others[k] = i, j
                    settled[j] = True
                    k += 1
    return heads[:k], others[:k], compared


def verified_edges(groups: pa.Array | np.ndarray, members: pa.Array, sigs: pa.Array | pa.ChunkedArray, threshold: float,
                   bits: int, cap: int, skip: np.ndarray | None = None) -> tuple[pa.Table, dict]:
    """Link the members of each group (LSH bucket) whose estimated Jaccard reaches `threshold`.

    `sigs` are the rows' packed b-bit signatures (`pack_signatures`); only those of rows in groups of
    two or more members are unpacked. Rows flagged in `skip` take no part (neither link nor count).

    Members are sorted by id within a group (the first `cap` count, as in `chain_edges`). In each
    group, the first unsettled member is the head, every other unsettled member is compared with it
    (its count of equal signature values against the fewest that reach the threshold), and those at
    or above the threshold are linked to it (edge head -> member) and settled; the head is settled;
    members that failed wait for the next head. So a false candidate in a bucket never links anyone,
    and true duplicates that share a bucket with it still link to each other. The pairs are compared
    in a compiled loop (numba): a bucket of k unrelated members costs k(k-1)/2 comparisons. Returns (edges a < b, counts: candidate
    pairs compared, pairs linked, members skipped over the cap).
    """
    empty = pa.table({"a": pa.array([], pa.string()), "b": pa.array([], pa.string())})
    counts = {"candidate_pairs": 0, "verified_pairs": 0, "capped_bucket_members": 0}
    if len(members) == 0:
        return empty, counts
    g_in = groups.to_numpy(zero_copy_only=False) if isinstance(groups, (pa.Array, pa.ChunkedArray)) else groups
    # Only rows of groups with two or more members can link: sort the (few) others out on the key alone
    # before the sort on (key, member id).
    by_key = np.argsort(g_in, kind="stable") if skip is None else np.flatnonzero(~skip)[
        np.argsort(g_in[~skip], kind="stable")]
    dup = g_in[by_key][1:] == g_in[by_key][:-1]
    multi = np.zeros(len(by_key), bool)
    multi[1:] |= dup
    multi[:-1] |= dup
    sel = by_key[multi]
    if len(sel) == 0:
        return empty, counts
    t = pa.table({"g": g_in[sel], "m": members.take(pa.array(sel, pa.int64())), "i": np.arange(len(sel))}).sort_by(
        [("g", "ascending"), ("m", "ascending")])
    values = unpack_signatures(sigs, sigs.type.byte_width * 8 // bits, bits, rows=sel)
    g = t["g"].to_numpy()
    m = t["m"].combine_chunks()
    perm = t["i"].to_numpy()  # sorted position -> row of values (no sorted copy of the signatures)
    same = np.concatenate([[False], g[1:] == g[:-1]])
    gid = np.cumsum(~same) - 1
    run_start = np.flatnonzero(~same)
    pos = np.arange(len(g)) - run_start[gid]
    counts["capped_bucket_members"] = int(np.sum(pos >= cap))
    active = pos < cap
    sizes = np.bincount(gid[active], minlength=len(run_start))
    active &= sizes[gid] >= 2
    rows = np.flatnonzero(active)  # the members that can link, grouped by bucket, in sorted order
    bounds = np.flatnonzero(np.diff(gid[rows])) + 1 if len(rows) else np.zeros(0, np.int64)
    starts = np.concatenate([[0], bounds]).astype(np.int64)
    ends = np.concatenate([bounds, [len(rows)]]).astype(np.int64)
    min_equal = min_equal_values(threshold, values.shape[1], bits)
    h, o, compared = _link_to_heads(starts, ends, perm[rows].astype(np.int64), values, min_equal)
    h, o = rows[h], rows[o]
    counts["candidate_pairs"], counts["verified_pairs"] = int(compared), len(h)
    edges = pa.table({"a": m.take(pa.array(h, pa.int64())), "b": m.take(pa.array(o, pa.int64()))})
    return edges.filter(pc.not_equal(edges["a"], edges["b"])), counts


def chain_edges(groups: pa.Array, members: pa.Array, cap: int) -> tuple[pa.Table, int]:
    """Link the members of each group as a chain (sorted by member id): k members give k-1 edges.

    Groups over `cap` members link only their first `cap` (returned: how many members were skipped).
    Returns (edges a < b, skipped).
    """
    if len(members) == 0:
        return pa.table({"a": pa.array([], pa.string()), "b": pa.array([], pa.string())}), 0
    t = pa.table({"g": groups, "m": members}).sort_by([("g", "ascending"), ("m", "ascending")])
    g = t["g"].to_numpy()
    m = t["m"].combine_chunks()
    same = np.concatenate([[False], g[1:] == g[:-1]])
    # Position of each row within its group.
    run_start = np.flatnonzero(~same)
    pos = np.arange(len(g)) - np.repeat(run_start, np.diff(np.concatenate([run_start, [len(g)]])))
    link = same & (pos < cap)
    skipped = int(np.sum(same & (pos >= cap)))
    idx = np.flatnonzero(link)
    a = m.take(pa.array(idx - 1))
    b = m.take(pa.array(idx))
    edges = pa.table({"a": a, "b": b})
    edges = edges.filter(pc.not_equal(edges["a"], edges["b"]))
    return edges, skipped


def s_curve(bands: int, rows: int, points=(0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)) -> list[tuple[float, float]]:
    """Probability that a pair of Jaccard similarity s becomes a candidate: 1 - (1 - s^rows)^bands."""
    return [(s, 1 - (1 - s**rows) ** bands) for s in points]


def verify_probability(s: float, cfg: DedupConfig) -> float:
    """Probability that a pair of Jaccard s passes verification: at least num_perm * (c + t(1 - c)) of its
    num_perm b-bit values agree (binomial; each agrees with probability s + (1 - s) c, c = 2^-bits)."""
    k, c = cfg.num_perm, 2.0 ** -cfg.signature_bits
    need = math.ceil(k * (c + cfg.threshold * (1 - c)) - 1e-9)
    p = s + (1 - s) * c
    return float(sum(math.comb(k, x) * p**x * (1 - p) ** (k - x) for x in range(max(need, 0), k + 1)))


def s_curve_text(cfg: DedupConfig, points=(0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)) -> str:
    """The candidate S-curve of the setting and, with verification, the chance a pair is linked (candidate
    times verified, taken as independent: the few values a shared band forces equal are ignored)."""
    threshold = (1 / cfg.bands) ** (1 / cfg.rows)
    cand = s_curve(cfg.bands, cfg.rows, points)
    text = (f"MinHash LSH {cfg.bands} bands x {cfg.rows} rows ({cfg.num_perm} perms), candidate threshold "
            f"~{threshold:.2f}: " + "  ".join(f"J={s:.2f}:{p:.3f}" for s, p in cand))
    if cfg.verify:
        text += (f"; candidates verified at estimated Jaccard >= {cfg.threshold:.2f} ({cfg.num_perm} "
                 f"{cfg.signature_bits}-bit values), linked: "
                 + "  ".join(f"J={s:.2f}:{p * verify_probability(s, cfg):.3f}" for s, p in cand))
    return text


def optimal_bands_rows(threshold: float, num_perm: int) -> tuple[int, int]:
    """datasketch's optimal (bands, rows) for a Jaccard threshold (equal false-positive/negative weights)."""
    from datasketch.lsh import _optimal_param

    b, r = _optimal_param(threshold, num_perm, 0.5, 0.5)
    return int(b), int(r)
