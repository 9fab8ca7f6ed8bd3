"""Twitter: API v1.1 tweet JSON lines, API v2 response pages, Sentiment140 CSV, and the parquet
layout of the public twitter100m dumps (tweets: user, id, tweet, date, ...; users: user, description, ...).

A user is keyed by the lower-cased screen name, the one identifier every format carries.
"""
from __future__ import annotations

import csv
import re
from datetime import datetime, timezone
from typing import Any, BinaryIO, Iterator

import pyarrow.parquet as pq

from core import schema as S
from processing.readers.base import FieldError, get_num, get_str, guarded, iter_json_lines, iter_lines, json_meta, make_event, parse_time_us, Profile, ReadContext, Record, TooLarge

V1_TIME = ("%a %b %d %H:%M:%S %z %Y",)
S140_TIME = ("%a %b %d %H:%M:%S UTC %Y", "%a %b %d %H:%M:%S %Z %Y")
RT_RE = re.compile(r"^\s*RT @\w+", re.I)
PARQUET_BATCH = 8192


def _iso_us(value: Any, key: str) -> int:
    """ISO-8601 (with Z or offset) or a v1.1 date string, in microseconds."""
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return int(dt.timestamp() * 1_000_000)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return int((dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp() * 1_000_000)
        except ValueError:
            pass
    return parse_time_us(value, V1_TIME + S140_TIME, key)


def _profile(ctx: ReadContext, screen_name: str, **meta: Any) -> Profile:
    return Profile({S.USER_ID: ctx.user_id(S.TWITTER, screen_name.lower()), S.PLATFORM: S.TWITTER,
                    S.META: json_meta(**meta), S.SOURCE_URI: ctx.source_uri, S.SOURCE_ROW: -1})


def _tweet(ctx: ReadContext, row: int, *, tweet_id: str | None, screen_name: str | None, ts: int, text: str | None,
           retweet: bool = False, **meta: Any) -> Record:
    if not screen_name:
        raise FieldError("missing_field", "no user screen name")
    text = text or ""
    return make_event(ctx, S.TWITTER, row, kind=S.TWEET, author=screen_name.lower(), ts_us=ts, text=text,
                      native_id=tweet_id, meta=json_meta(**meta), is_retweet=retweet or bool(RT_RE.match(text)))


def read_twitter_v1(stream: BinaryIO, ctx: ReadContext) -> Iterator[Record]:
    """API v1.1 tweet objects, one per line (`full_text` preferred over `text`)."""
    seen: set[str] = set()
    for item in iter_json_lines(stream, ctx, S.TWITTER):
        if isinstance(item, dict):
            yield item
            continue
        row, obj = item

        def build(row=row, obj=obj) -> Record:
            user = obj.get("user")
            if not isinstance(user, dict):
                raise FieldError("missing_field" if user is None else "bad_field", "field `user` should be an object")
            name = get_str(user, "screen_name", required=True)
            return _tweet(ctx, row, tweet_id=get_str(obj, "id_str") or get_str(obj, "id"), screen_name=name,
                          ts=_iso_us(obj.get("created_at"), "created_at"),
                          text=get_str(obj, "full_text") or get_str(obj, "text"),
                          retweet="retweeted_status" in obj, likes=get_num(obj, "favorite_count"),
                          retweets=get_num(obj, "retweet_count"), lang=get_str(obj, "lang"))

        rec = guarded(ctx, S.TWITTER, row, obj, build)
        yield rec
        user = obj.get("user")
        if rec.get(S.REASON) is None and isinstance(user, dict):
            name = str(user.get("screen_name")).lower()
            if name not in seen:
                seen.add(name)
                yield _profile(ctx, name, bio=user.get("description"), followers=user.get("followers_count"),
                               location=user.get("location"), verified=user.get("verified"))


def read_twitter_v2(stream: BinaryIO, ctx: ReadContext) -> Iterator[Record]:
    """API v2 response pages, one per line: tweets in `data`, authors in `includes.users`."""
    seen: set[str] = set()
    for item in iter_json_lines(stream, ctx, S.TWITTER):
        if isinstance(item, dict):
            yield item
            continue
        page_row, page = item
        data = page.get("data")
        if isinstance(data, dict):
            data = [data]
        users = (page.get("includes") or {}).get("users") or []
        if not isinstance(data, list) or not isinstance(users, list):
            yield ctx.reject(page_row, "bad_field", "`data` should be a list of tweets and `includes.users` a list",
                             page, S.TWITTER)
            continue
        by_id = {str(u.get("id")): u for u in users if isinstance(u, dict)}
        for i, tw in enumerate(data):
            row = page_row if i == 0 else ctx.next_row()  # the page line counted as its first tweet
            if not isinstance(tw, dict):
                yield ctx.reject(row, "bad_field", "a tweet in `data` is not an object", tw, S.TWITTER)
                continue
            author = by_id.get(str(tw.get("author_id")), {})

            def build(row=row, tw=tw, author=author) -> Record:
                name = author.get("username") or (f"id:{tw['author_id']}" if tw.get("author_id") else None)
                return _tweet(ctx, row, tweet_id=get_str(tw, "id", required=True), screen_name=name,
                              ts=_iso_us(tw.get("created_at"), "created_at"), text=get_str(tw, "text"),
                              retweet=any(r.get("type") == "retweeted" for r in tw.get("referenced_tweets") or []
                                          if isinstance(r, dict)),
                              lang=get_str(tw, "lang"))

            rec = guarded(ctx, S.TWITTER, row, tw, build)
            yield rec
            name = author.get("username")
            if rec.get(S.REASON) is None and name and name.lower() not in seen:
                seen.add(name.lower())
                yield _profile(ctx, name, bio=author.get("description"), location=author.get("location"),
                               followers=(author.get("public_metrics") or {}).get("followers_count"))


def read_sentiment140(stream: BinaryIO, ctx: ReadContext) -> Iterator[Record]:
    """Sentiment140 CSV: polarity, id, date, query, user, text; an optional header line."""
    for line in iter_lines(stream, ctx.max_record_bytes):
        if isinstance(line, TooLarge):
            yield ctx.reject(ctx.next_row(), "record_too_large", "CSV line over the limit", line, S.TWITTER)
            continue
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            text = line.decode("latin-1")
        fields = next(csv.reader([text.rstrip("\r")]), [])
        if ctx.row == 0 and [f.strip().lower() for f in fields[:2]] == ["polarity", "id"]:
            continue  # header line
        row = ctx.next_row()
        if len(fields) != 6:
            yield ctx.reject(row, "bad_csv", f"expected 6 columns, got {len(fields)}", text, S.TWITTER)
            continue
        polarity, tid, date, query, user, body = fields
        yield guarded(ctx, S.TWITTER, row, text, lambda: _tweet(
            ctx, row, tweet_id=tid or None, screen_name=user, ts=parse_time_us(date, S140_TIME, "date"), text=body,
            polarity=int(polarity) if polarity.isdigit() else None, query=query if query != "NO_QUERY" else None))


def _first(cols: dict[str, list], names: tuple[str, ...]) -> list | None:
    return next((cols[n] for n in names if n in cols), None)


def read_twitter100m_tweets(file: BinaryIO, ctx: ReadContext) -> Iterator[Record]:
    """twitter100m tweets parquet (columns user, id, tweet, date, likes, retweets, replies, quotes)."""
    pf = pq.ParquetFile(file)
    for batch in pf.iter_batches(batch_size=PARQUET_BATCH):
        cols = batch.to_pydict()
        n = batch.num_rows
        users = _first(cols, ("user", "username", "screen_name")) or [None] * n
        texts = _first(cols, ("tweet", "text", "full_text")) or [None] * n
        dates = _first(cols, ("date", "created_at")) or [None] * n
        ids = _first(cols, ("id", "tweet_id")) or [None] * n
        extras = {k: cols.get(k, [None] * n) for k in ("likes", "retweets", "replies", "quotes")}
        for i in range(n):
            row = ctx.next_row()
            excerpt = texts[i]
            yield guarded(ctx, S.TWITTER, row, excerpt, lambda i=i, row=row: _tweet(
                ctx, row, tweet_id=None if ids[i] is None else str(ids[i]),
                screen_name=users[i], ts=_iso_us(dates[i], "date"), text=texts[i],
                **{k: v[i] for k, v in extras.items()}))


def read_twitter100m_users(file: BinaryIO, ctx: ReadContext) -> Iterator[Record]:
    """twitter100m users parquet: one profile side row per user (bio, followers, location)."""
    pf = pq.ParquetFile(file)
    for batch in pf.iter_batches(batch_size=PARQUET_BATCH):
        cols = batch.to_pydict()
        n = batch.num_rows
        users = _first(cols, ("user", "username", "screen_name")) or [None] * n
        bios = _first(cols, ("description", "bio")) or [None] * n
        followers = _first(cols, ("followers", "followers_count")) or [None] * n
        locations = cols.get("location", [None] * n)
        for i in range(n):
            if users[i]:
                yield _profile(ctx, users[i], bio=bios[i], followers=followers[i], location=locations[i])
