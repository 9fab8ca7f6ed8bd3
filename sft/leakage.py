"""Benchmark leakage check: word n-grams (13 by default) of every out-of-domain benchmark item, hashed
into one sorted array; an SFT example sharing any of them is dropped (ToMBench and OpenToM forbid
training on their items). Format-agnostic: every string in the benchmark files counts."""
from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import logging
import os
import re
import zipfile
from typing import Iterator

import numpy as np

log = logging.getLogger(__name__)
TOKEN = re.compile(r"\w+")
TEXT_SUFFIXES = (".json", ".jsonl", ".csv", ".tsv", ".txt", ".lst")
_MULT = np.uint64(0x100000001B3)
_token_hashes: dict[str, int] = {}


def _strings(obj) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _texts_of(name: str, data: bytes) -> Iterator[str]:
    text = data.decode("utf-8", errors="replace")
    if name.endswith(".json"):
        try:
            yield from _strings(json.loads(text))
            return
        except json.JSONDecodeError:
            pass  # JSON lines under a .json name
    if name.endswith((".json", ".jsonl")):
        for line in text.splitlines():
            try:
                yield from _strings(json.loads(line))
            except json.JSONDecodeError:
                yield line
    elif name.endswith((".csv", ".tsv")):
        for row in csv.reader(io.StringIO(text), delimiter="\t" if name.endswith(".tsv") else ","):
            yield from row
    else:
        yield from text.splitlines()


def benchmark_files(patterns: list[str]) -> list[str]:
    """Files named by the globs (folders are searched recursively), sorted; SOURCE.md and the like skipped."""
    out = set()
    for pattern in patterns:
        for path in glob.glob(os.path.expanduser(pattern)):
            if os.path.isdir(path):
                for dirpath, _, names in os.walk(path):
                    out.update(os.path.join(dirpath, n) for n in names if n.endswith((*TEXT_SUFFIXES, ".zip")))
            elif path.endswith((*TEXT_SUFFIXES, ".zip")):
                out.add(path)
    return sorted(out)


def file_texts(path: str) -> Iterator[str]:
    """Every string in one benchmark file (zip members included)."""
    if path.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            for member in sorted(z.namelist()):
                if member.endswith(TEXT_SUFFIXES):
                    yield from _texts_of(member, z.read(member))
        return
    with open(path, "rb") as f:
        yield from _texts_of(path, f.read())


def _token_hash(token: str) -> int:
    h = _token_hashes.get(token)
    if h is None:
        h = _token_hashes[token] = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
    return h


def ngram_hashes(text: str, n: int) -> np.ndarray:
    """Hashes (uint64) of the text's lower-cased word n-grams; empty when it has fewer than n words."""
    tokens = TOKEN.findall(text.lower())
    if len(tokens) < n:
        return np.empty(0, dtype=np.uint64)
    th = np.fromiter((_token_hash(t) for t in tokens), dtype=np.uint64, count=len(tokens))
    width = len(tokens) - n + 1
    acc = np.zeros(width, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            acc = acc * _MULT + th[j:j + width]
    return acc


class NgramIndex:
    """The sorted, unique n-gram hashes of a set of benchmark files, with the file each first came from."""

    def __init__(self, hashes: np.ndarray, sources: np.ndarray, n: int, files: list[str]):
        self.hashes, self.sources, self.n, self.files = hashes, sources, n, files

    @classmethod
    def build(cls, patterns: list[str], n: int) -> "NgramIndex":
        files = benchmark_files(patterns)
        parts, owners = [], []
        for i, path in enumerate(files):
            for text in file_texts(path):
                grams = ngram_hashes(text, n)
                parts.append(grams)
                owners.append(np.full(len(grams), i, dtype=np.int32))
        if parts:
            hashes, first = np.unique(np.concatenate(parts), return_index=True)
            sources = np.concatenate(owners)[first]
        else:
            hashes, sources = np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int32)
        log.info("leakage index: %d distinct %d-grams from %d benchmark files", len(hashes), n, len(files))
        return cls(hashes, sources, n, files)

    def matches(self, text: str) -> tuple[int, str | None]:
        """How many of the text's n-grams occur in a benchmark, and the file of the first one."""
        grams = ngram_hashes(text, self.n) if len(self.hashes) else np.empty(0, dtype=np.uint64)
        if not len(grams):
            return 0, None
        pos = np.minimum(np.searchsorted(self.hashes, grams), len(self.hashes) - 1)  # hashes: sorted, unique
        hit = self.hashes[pos] == grams
        if not hit.any():
            return 0, None
        return int(hit.sum()), self.files[int(self.sources[pos[hit][0]])]

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, hashes=self.hashes, sources=self.sources, n=np.array(self.n), files=np.array(self.files))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "NgramIndex":
        z = np.load(io.BytesIO(data))
        return cls(z["hashes"], z["sources"], int(z["n"]), [str(f) for f in z["files"]])
