"""Amazon reviews JSONL (plain or .gz): McAuley 2018 and 2023 schemas (told apart per record), and the
item-metadata JSONL of either release, joined to reviews by item id later in the stage."""
from __future__ import annotations

import json
from typing import BinaryIO, Iterator

from core import schema as S
from processing.readers.base import epoch_us, get_num, get_str, Item, json_meta, json_records, make_event, ReadContext, Record


def _review(ctx: ReadContext, row: int, obj: dict) -> Record:
    if "reviewerID" in obj:  # 2018: reviewerID, asin, overall, reviewText, summary, unixReviewTime (s)
        user, item = get_str(obj, "reviewerID", required=True), get_str(obj, "asin", required=True)
        rating, text, title = get_num(obj, "overall"), get_str(obj, "reviewText"), get_str(obj, "summary")
        ts, verified = epoch_us(obj, "unixReviewTime"), obj.get("verified")
        variant = obj.get("style")
    else:  # 2023: user_id, parent_asin, rating, text, title, timestamp (ms)
        user = get_str(obj, "user_id", required=True)
        item = get_str(obj, "parent_asin") or get_str(obj, "asin", required=True)
        rating, text, title = get_num(obj, "rating"), get_str(obj, "text"), get_str(obj, "title")
        ts, verified = epoch_us(obj, "timestamp", unit="ms"), obj.get("verified_purchase")
        variant = obj.get("asin") if obj.get("asin") != item else None
    return make_event(ctx, S.AMAZON, row, kind=S.REVIEW, author=user, ts_us=ts, text=text or "", title=title,
                      parent_id=item, meta=json_meta(rating=rating, item_id=item, verified=verified,
                                                     variant=variant if variant else None))


def read_amazon_reviews(stream: BinaryIO, ctx: ReadContext) -> Iterator[Record]:
    """One event or reject per review line."""
    return json_records(stream, ctx, S.AMAZON, lambda row, obj: _review(ctx, row, obj))


META_FIELDS = ("main_category", "categories", "category", "features", "feature", "description", "details",
               "store", "brand", "average_rating", "rating_number")


def _item(ctx: ReadContext, row: int, obj: dict) -> Record:
    item_id = obj.get("parent_asin") or obj.get("asin")
    if not isinstance(item_id, str) or not item_id:
        return ctx.reject(row, "missing_field", "item metadata without `parent_asin`/`asin`", obj, S.AMAZON)
    title = obj.get("title")
    meta = {k: obj[k] for k in META_FIELDS if obj.get(k) not in (None, "", [], {})}
    return Item({S.ITEM_ID: item_id, S.PLATFORM: S.AMAZON, S.TITLE: title.strip() if isinstance(title, str) else None,
                 S.META: json.dumps(meta, sort_keys=True, ensure_ascii=False, default=str),
                 S.SOURCE_URI: ctx.source_uri, S.SOURCE_ROW: row})


def read_amazon_meta(stream: BinaryIO, ctx: ReadContext) -> Iterator[Record]:
    """One item side row per metadata line (price removed, as in the paper); bad lines are rejects."""
    return json_records(stream, ctx, S.AMAZON, lambda row, obj: _item(ctx, row, obj))
