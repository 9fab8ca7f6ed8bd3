"""XXH64 (seed 0) of every string of an Arrow array in one compiled loop over its buffers: the values of
`xxhash.xxh64_intdigest(s.encode())` (a test checks it) without a Python call per string."""
from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

P1 = np.uint64(0x9E3779B185EBCA87)
P2 = np.uint64(0xC2B2AE3D27D4EB4F)
P3 = np.uint64(0x165667B19E3779F9)
P4 = np.uint64(0x85EBCA77C2B2AE63)
P5 = np.uint64(0x27D4EB2F165667C5)


def xxh64(strings: pa.Array) -> np.ndarray:
    """uint64 XXH64 of each UTF-8 string (a null hashes as the empty string)."""
    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks()
    if len(strings) == 0:
        return np.zeros(0, np.uint64)
    if strings.type != pa.large_string():
        strings = strings.cast(pa.large_string())
    _, offsets, data = strings.buffers()
    offsets = np.frombuffer(offsets, np.int64)[strings.offset:strings.offset + len(strings) + 1]
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    out = np.empty(len(strings), np.uint64)
    _xxh64_all(data, offsets, out)
    return out


@numba.njit(inline="always")
def _read64(d: np.ndarray, p: int) -> np.uint64:
    v = np.uint64(0)
    for i in range(8):
        v |= np.uint64(d[p + i]) << np.uint64(8 * i)
    return v


@numba.njit(inline="always")
def _rotl(x: np.uint64, r: int) -> np.uint64:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@numba.njit(inline="always")
def _round(acc: np.uint64, lane: np.uint64) -> np.uint64:
    return _rotl(acc + lane * P2, 31) * P1


@numba.njit(cache=True, nogil=True)
def _xxh64_all(d: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:
    for s in range(len(out)):
        p, end = offsets[s], offsets[s + 1]
        n = end - p
        if n >= 32:
            v1, v2, v3, v4 = P1 + P2, P2, np.uint64(0), np.uint64(0) - P1
            while p + 32 <= end:
                v1 = _round(v1, _read64(d, p))
                v2 = _round(v2, _read64(d, p + 8))
                v3 = _round(v3, _read64(d, p + 16))
                v4 = _round(v4, _read64(d, p + 24))
                p += 32
            h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
            for v in (v1, v2, v3, v4):
                h = (h ^ _round(np.uint64(0), v)) * P1 + P4
        else:
            h = P5
        h += np.uint64(n)
        while p + 8 <= end:
            h = _rotl(h ^ _round(np.uint64(0), _read64(d, p)), 27) * P1 + P4
            p += 8
        if p + 4 <= end:
            k = np.uint64(d[p]) | (np.uint64(d[p + 1]) << np.uint64(8)) | (np.uint64(d[p + 2]) << np.uint64(16)) \
                | (np.uint64(d[p + 3]) << np.uint64(24))
            h = _rotl(h ^ (k * P1), 23) * P2 + P3
            p += 4
        while p < end:
            h = _rotl(h ^ (np.uint64(d[p]) * P5), 11) * P1
            p += 1
        h ^= h >> np.uint64(33)
        h *= P2
        h ^= h >> np.uint64(29)
        h *= P3
        h ^= h >> np.uint64(32)
        out[s] = h
