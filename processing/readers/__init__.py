"""Readers per input format, chosen by config (or sniffed with format: auto)."""
from __future__ import annotations

import json
import posixpath
from typing import BinaryIO, Callable, Iterator

from core import schema as S
from core.config import StorageConfig
from core.storage import open_input, resolve
from processing.readers.amazon import read_amazon_meta, read_amazon_reviews
from processing.readers.base import decompressed, ReadContext, Record
from processing.readers.blogger import read_blogger
from processing.readers.reddit import read_reddit
from processing.readers.twitter import read_sentiment140, read_twitter100m_tweets, read_twitter100m_users, read_twitter_v1, read_twitter_v2

Reader = Callable[[BinaryIO, ReadContext], Iterator[Record]]

READERS: dict[str, tuple[str, Reader]] = {
    "reddit_pushshift": (S.REDDIT, read_reddit),
    "twitter_v1": (S.TWITTER, read_twitter_v1),
    "twitter_v2": (S.TWITTER, read_twitter_v2),
    "sentiment140": (S.TWITTER, read_sentiment140),
    "twitter100m_tweets": (S.TWITTER, read_twitter100m_tweets),
    "twitter100m_users": (S.TWITTER, read_twitter100m_users),
    "blogger_xml": (S.BLOGGER, read_blogger),
    "amazon_2018": (S.AMAZON, read_amazon_reviews),
    "amazon_2023": (S.AMAZON, read_amazon_reviews),
    "amazon_meta": (S.AMAZON, read_amazon_meta),
}
RANDOM_ACCESS = {"twitter100m_tweets", "twitter100m_users"}  # parquet needs a seekable file


class UnknownFormat(ValueError):
    """No reader recognises a file; the message names the file and the formats to choose from."""


def _sniff_keys(uri: str, storage: StorageConfig | None) -> set[str]:
    with open_input(uri, storage) as raw:
        head = decompressed(raw, uri).read(1 << 16)
    line = head.split(b"\n", 1)[0]
    try:
        obj = json.loads(line)
    except ValueError:
        return set()
    return set(obj) if isinstance(obj, dict) else set()


def detect_format(uri: str, storage: StorageConfig | None = None) -> str:
    """Guess a file's format from its name, then from the keys of its first JSON record."""
    name = posixpath.basename(uri)
    stem = name.lower()
    if name.startswith(("RS_", "RC_")) or stem.endswith((".zst", ".zstd")):
        return "reddit_pushshift"
    if stem.endswith(".xml"):
        return "blogger_xml"
    if stem.endswith(".csv"):
        return "sentiment140"
    if stem.endswith(".parquet"):
        return "twitter100m_users" if "user" in stem else "twitter100m_tweets"
    if stem.endswith((".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz")):
        keys = _sniff_keys(uri, storage)
        if "reviewerID" in keys:
            return "amazon_2018"
        if {"user_id", "rating"} <= keys:
            return "amazon_2023"
        if keys & {"parent_asin", "asin"} and "title" in keys:
            return "amazon_meta"
        if "data" in keys:
            return "twitter_v2"
        if "user" in keys and keys & {"text", "full_text"}:
            return "twitter_v1"
        if "created_utc" in keys:
            return "reddit_pushshift"
    raise UnknownFormat(f"{uri}: cannot tell the format; set `format:` on its input to one of {sorted(READERS)}")


def platform_of(fmt: str) -> str:
    return READERS[fmt][0]


def read_file(uri: str, fmt: str, ctx: ReadContext, storage: StorageConfig | None = None,
              blogger_date_format: str = "%d,%B,%Y") -> Iterator[Record]:
    """Stream the records of one file with the reader of its format."""
    _, reader = READERS[fmt]
    if fmt in RANDOM_ACCESS:
        fs, path = resolve(uri, storage)
        with fs.open_input_file(path) as f:
            yield from reader(f, ctx)
        return
    with open_input(uri, storage) as raw:
        stream = decompressed(raw, uri)
        if fmt == "blogger_xml":
            yield from read_blogger(stream, ctx, blogger_date_format)
        else:
            yield from reader(stream, ctx)
