"""The compiled XXH64 over Arrow string buffers equals the xxhash package's, on every length class
(under 4, 4-7, 8-31, 32 and more bytes), multi-byte UTF-8, slices and chunked arrays."""
from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import xxhash

from processing.string_hash import xxh64


def test_xxh64_equals_the_xxhash_package():
    rng = random.Random(0)
    alphabet = "abcxyz0123:_-é漢😀"
    strings = ["", "a", "abcd", "abcdefgh", "x" * 31, "y" * 32, "z" * 33] + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 90))) for _ in range(3000)]
    want = np.array([xxhash.xxh64_intdigest(s.encode()) for s in strings], np.uint64)
    arr = pa.array(strings)
    assert (xxh64(arr) == want).all()
    assert (xxh64(arr.slice(5, 100)) == want[5:105]).all()
    assert (xxh64(pa.chunked_array([arr.slice(0, 10), arr.slice(10, 20)])) == want[:30]).all()
    assert (xxh64(arr.cast(pa.large_string())) == want).all() and len(xxh64(pa.array([], pa.string()))) == 0
