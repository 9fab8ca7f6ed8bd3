"""Blog Authorship Corpus files `<id>.<gender>.<age>.<industry>.<sign>.xml`.

Most files are not well-formed XML (bare `&`, stray `<`) and some are Latin-1, so posts are found by
a tolerant tag scan, never by an XML parser. Each `<post>` takes the `<date>` before it.
"""
from __future__ import annotations

import re
from typing import BinaryIO, Iterator

from core import schema as S
from processing.readers.base import FieldError, json_meta, make_event, parse_time_us, Profile, ReadContext, Record

NAME_RE = re.compile(r"^(?P<id>\d+)\.(?P<gender>male|female)\.(?P<age>\d+)\.(?P<industry>[^.]+)\.(?P<sign>[^.]+)\.xml$", re.I)
TAG_RE = re.compile(r"<(/?)(date|post)\s*>", re.I)
END_RE = re.compile(r"</Blog>\s*$", re.I)
MAX_FILE_BYTES = 256 * 1024 * 1024


def parse_file_name(name: str) -> dict | None:
    """Blogger metadata from a corpus file name, or None when the name does not follow the pattern."""
    m = NAME_RE.match(name)
    if not m:
        return None
    d = m.groupdict()
    d["age"] = int(d["age"])
    return d


def decode(data: bytes) -> tuple[str, str]:
    """Decode as UTF-8, else as Windows-1252/Latin-1 (the corpus has both); returns (text, encoding)."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            return data.decode("latin-1"), "latin-1"


def iter_posts(text: str) -> Iterator[tuple[str | None, str]]:
    """(date, body) for every <post>; an unclosed post ends at the next <date>/<post> tag or the file end."""
    date: str | None = None
    state, start = None, 0
    for m in TAG_RE.finditer(text):
        closing, tag = m.group(1) == "/", m.group(2).lower()
        if not closing:
            if state == "post":
                yield date, text[start:m.start()]
            state, start = tag, m.end()
        elif state == tag:
            if tag == "date":
                date = text[start:m.start()].strip()
            else:
                yield date, text[start:m.start()]
            state = None
    if state == "post":
        yield date, END_RE.sub("", text[start:])


def read_blogger(stream: BinaryIO, ctx: ReadContext, date_format: str = "%d,%B,%Y") -> Iterator[Record]:
    """Yield one event per post (or a reject: bad_date, record_too_large) and one profile per file."""
    data = stream.read(MAX_FILE_BYTES + 1)
    meta = parse_file_name(ctx.basename)
    author = meta["id"] if meta else ctx.basename
    if len(data) > MAX_FILE_BYTES:
        yield ctx.reject(ctx.next_row(), "record_too_large", f"blog file over {MAX_FILE_BYTES} bytes", data, S.BLOGGER)
        return
    text, encoding = decode(data)
    uid = ctx.user_id(S.BLOGGER, author)
    yield Profile({S.USER_ID: uid, S.PLATFORM: S.BLOGGER, S.SOURCE_URI: ctx.source_uri, S.SOURCE_ROW: -1,
                   S.META: json_meta(**{k: v for k, v in (meta or {}).items() if k != "id"}, encoding=encoding)})
    for date, body in iter_posts(text):
        row = ctx.next_row()
        body = body.strip()
        try:
            ts = parse_time_us(date, (date_format,), "date")
        except FieldError as exc:
            yield ctx.reject(row, "bad_date", str(exc), body, S.BLOGGER, user_id=uid)
            continue
        yield make_event(ctx, S.BLOGGER, row, kind=S.BLOG_POST, author=author, ts_us=ts, text=body,
                         meta=json_meta(date=date))
