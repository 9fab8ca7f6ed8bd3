"""What every reader shares: the record types it yields, streaming line splitting with decompression,
user-id hashing and timestamp parsing.

A reader is a generator `read(stream, ctx) -> Iterator[Record]`: it never loads a whole file, and
every input record becomes exactly one event or one reject (or a side row: a profile or an item).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import posixpath
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, BinaryIO, Callable, Iterator

import orjson
import zstandard

from core import schema as S

CHUNK = 1 << 20
ZSTD_MAX_WINDOW = 2**31  # Pushshift dumps are compressed with --long=31


class Event(dict):
    """One event row: RAW_EVENT_SCHEMA columns plus transient rule inputs (RULE_COLUMNS)."""


class Reject(dict):
    """One reject row (REJECT_SCHEMA)."""


class Profile(dict):
    """One user-profile side row (PROFILE_SCHEMA)."""


class Item(dict):
    """One item-metadata side row (ITEM_SCHEMA)."""


Record = Event | Reject | Profile | Item


@dataclass
class ReadContext:
    """Per-file state a reader needs: provenance, the user-id salt and the record counter."""

    source_uri: str
    salt: str
    max_record_bytes: int = 4 * 1024 * 1024
    row: int = field(default=0)  # running record index within the file

    @property
    def basename(self) -> str:
        return posixpath.basename(self.source_uri)

    def next_row(self) -> int:
        r = self.row
        self.row += 1
        return r

    def user_id(self, platform: str, author: str) -> str:
        """Keyed hash of platform + author: stable for a salt, irreversible without it."""
        h = hashlib.blake2b(f"{platform}\x00{author}".encode(), key=self.salt.encode()[:64], digest_size=10)
        return h.hexdigest()

    def row_event_id(self, platform: str, row: int) -> str:
        """Event id for records with no native id: a hash of the file name and the record index."""
        h = hashlib.blake2b(f"{self.basename}\x00{row}".encode(), digest_size=8).hexdigest()
        return f"{platform}:{h}"

    def reject(self, row: int, reason: str, detail: str = "", excerpt: Any = "", platform: str | None = None,
               event_id: str | None = None, user_id: str | None = None) -> Reject:
        if isinstance(excerpt, (bytes, bytearray)):
            excerpt = bytes(excerpt[: S.EXCERPT_CHARS * 4]).decode("utf-8", "replace")
        return Reject({
            S.EVENT_ID: event_id, S.PLATFORM: platform, S.USER_ID: user_id, S.SOURCE_URI: self.source_uri,
            S.SOURCE_ROW: row, S.STAGE: "read", S.REASON: reason, S.DETAIL: detail[:500],
            S.EXCERPT: str(excerpt)[: S.EXCERPT_CHARS],
        })


def decompressed(stream: BinaryIO, uri: str) -> BinaryIO:
    """Wrap a raw stream in the decompressor its suffix names (.zst with a 2 GiB window, .gz)."""
    if uri.endswith(".zst") or uri.endswith(".zstd"):
        return zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).stream_reader(stream, read_size=CHUNK)
    if uri.endswith(".gz"):
        return gzip.GzipFile(fileobj=stream, mode="rb")
    return stream


class TooLarge(bytes):
    """Marker for a line longer than the limit: holds its first bytes; the rest was skipped."""


def iter_lines(stream: BinaryIO, max_bytes: int) -> Iterator[bytes]:
    """Yield lines (without the newline) from a byte stream in bounded memory.

    A line over max_bytes is yielded as a TooLarge prefix and its remainder skipped, so one 10 GB
    line costs max_bytes of memory, not 10 GB.
    """
    carry = b""
    skipping: TooLarge | None = None
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                rest = chunk[start:]
                if skipping is None:
                    carry += rest
                    if len(carry) > max_bytes:
                        skipping = TooLarge(carry[:1024])
                        carry = b""
                break
            piece = chunk[start:nl]
            if skipping is not None:
                yield skipping
                skipping = None
            else:
                line = carry + piece
                carry = b""
                yield TooLarge(line[:1024]) if len(line) > max_bytes else line
            start = nl + 1
    if skipping is not None:
        yield skipping
    elif carry:
        yield carry


def iter_json_lines(stream: BinaryIO, ctx: ReadContext, platform: str) -> Iterator[tuple[int, dict] | Reject]:
    """Parse NDJSON into (row, object) pairs; bad lines become rejects. Blank lines are not records."""
    for line in iter_lines(stream, ctx.max_record_bytes):
        if isinstance(line, TooLarge):
            yield ctx.reject(ctx.next_row(), "record_too_large", f"line over {ctx.max_record_bytes} bytes",
                             line, platform)
            continue
        if not line.strip():
            continue
        row = ctx.next_row()
        try:  # orjson first; a line it refuses (invalid UTF-8, NaN, integers over 64 bits ...) goes json's way
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield ctx.reject(row, "invalid_utf8", str(exc), line, platform)
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield ctx.reject(row, "bad_json", f"{exc.msg} at column {exc.colno}", text, platform)
                continue
        if not isinstance(obj, dict):
            yield ctx.reject(row, "bad_json", f"expected a JSON object, got {type(obj).__name__}",
                             line.decode("utf-8", "replace"), platform)
            continue
        yield row, obj


class FieldError(ValueError):
    """A required field is missing or has the wrong type; reason is missing_field or bad_field."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def get_str(obj: dict, key: str, required: bool = False, default: str | None = None) -> str | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise FieldError("missing_field", f"field `{key}` is missing")
        return default
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    if not isinstance(v, str):
        raise FieldError("bad_field", f"field `{key}` should be a string, got {type(v).__name__}")
    return v


INT64_LIMIT = 2**63


def get_num(obj: dict, key: str, default: float | None = None) -> float | None:
    v = obj.get(key)
    if v is None or v == "":
        return default
    if isinstance(v, bool):
        raise FieldError("bad_field", f"field `{key}` should be a number, got bool")
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            raise FieldError("bad_field", f"field `{key}` should be a number, got {v[:40]!r}") from None
    if isinstance(v, (int, float)):  # NaN, Infinity and numbers past int64 (columns' type) are no count
        if not -INT64_LIMIT < v < INT64_LIMIT:
            raise FieldError("bad_field", f"field `{key}` should be a finite number within int64, got {str(v)[:40]}")
        return v
    raise FieldError("bad_field", f"field `{key}` should be a number, got {type(v).__name__}")


MIN_TS = datetime(1995, 1, 1, tzinfo=timezone.utc).timestamp()
MAX_TS = datetime(2100, 1, 1, tzinfo=timezone.utc).timestamp()


def epoch_us(obj: dict, key: str, unit: str = "s") -> int:
    """A required epoch timestamp (int, float or numeric string; seconds or milliseconds) in microseconds."""
    v = get_num(obj, key)
    if v is None:
        raise FieldError("missing_field", f"field `{key}` is missing")
    secs = float(v) / (1000.0 if unit == "ms" else 1.0)
    if not MIN_TS <= secs < MAX_TS:
        raise FieldError("bad_field", f"field `{key}`={v!r} is not a plausible {unit} timestamp")
    return int(round(secs * 1_000_000))


def parse_time_us(value: Any, formats: tuple[str, ...], key: str) -> int:
    """Parse a date string with the first matching strptime format (naive = UTC) into microseconds."""
    if value is None or value == "":
        raise FieldError("missing_field", f"field `{key}` is missing")
    if not isinstance(value, str):
        raise FieldError("bad_field", f"field `{key}` should be a date string, got {type(value).__name__}")
    for fmt in formats:
        try:
            dt = datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return int(dt.timestamp() * 1_000_000)
    raise FieldError("bad_field", f"field `{key}`={value[:40]!r} matches none of {formats}")


_META = json.JSONEncoder(sort_keys=True, ensure_ascii=False)  # json.dumps would build one a call
_STR = json.encoder.encode_basestring  # json's own string quoting (ensure_ascii=False)


def _scalar(v: Any) -> str | None:
    """v as json writes it, for the values readers put in meta (None for anything else)."""
    if isinstance(v, str):
        return _STR(v)
    if v is True or v is False:
        return "true" if v else "false"
    if type(v) is int:
        return int.__repr__(v)
    if type(v) is float and v - v == 0:  # finite
        return float.__repr__(v)
    return None


def json_meta(**kw: Any) -> str:
    """A key-sorted JSON object of the non-null values, as `_META` writes it (strings, numbers and
    booleans formatted here: json's encoder costs ~3 µs a call; anything else goes through it)."""
    parts = []
    for k in sorted(kw):
        v = kw[k]
        if v is not None:
            s = _scalar(v)
            if s is None:
                return _META.encode({k: v for k, v in kw.items() if v is not None})
            parts.append(f"{_STR(k)}: {s}")
    return "{" + ", ".join(parts) + "}"


def guarded(ctx: ReadContext, platform: str, row: int, excerpt: Any,
            build: Callable[[], Record]) -> Record:
    """Run a record builder; a FieldError becomes a reject with its reason."""
    try:
        return build()
    except FieldError as exc:
        return ctx.reject(row, exc.reason, str(exc), excerpt, platform)


def make_event(ctx: ReadContext, platform: str, row: int, *, kind: str, author: str, ts_us: int,
               text: str | None, native_id: str | None = None, title: str | None = None,
               context: str | None = None, meta: str | None = None, parent_id: str | None = None,
               **rules: Any) -> Event:
    """Build one event row; rule inputs (schema.RULE_SCHEMA names) go in as keyword arguments."""
    ev = Event({
        S.EVENT_ID: f"{platform}:{native_id}" if native_id else ctx.row_event_id(platform, row),
        S.PLATFORM: platform, S.USER_ID: ctx.user_id(platform, author), S.TS: ts_us, S.KIND: kind,
        S.TEXT: text, S.TITLE: title, S.CONTEXT: context, S.META: meta, S.NATIVE_ID: native_id,
        S.PARENT_ID: parent_id, S.SOURCE_URI: ctx.source_uri, S.SOURCE_ROW: row,
        S.AUTHOR: author.lower(),
    })
    ev.update(rules)
    return ev


def json_records(stream: BinaryIO, ctx: ReadContext, platform: str,
                 build: Callable[[int, dict], Record]) -> Iterator[Record]:
    """One record per NDJSON object via build(row, obj); bad lines and FieldErrors become rejects."""
    for item in iter_json_lines(stream, ctx, platform):
        if isinstance(item, dict):
            yield item
        else:
            row, obj = item
            yield guarded(ctx, platform, row, obj, lambda: build(row, obj))
