"""The curate stage, step 1 (one shard per input file): read → rules on raw fields → cleaning + PII →
rules on text → language ID. Kept rows go to per-user-bucket Parquet files for the timeline step;
every dropped row goes to rejects/ with its stage and reason.
"""
from __future__ import annotations

import logging
import posixpath
import re
import time
from contextlib import contextmanager
from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from core import schema as S
from core.config import StorageConfig
from core.layout import RunLayout
from core.storage import file_size, ParquetShardWriter, RunRoot
from processing.cleaning import clean_column, CleaningOptions
from processing.dedup_stage import dedup_rows, DedupRowWriter, member_rows, MEMBER_SCHEMA, members_path
from processing.langid import identify
from processing.quality import score_events
from processing.readers import detect_format, read_file, READERS, UnknownFormat
from processing.readers.base import Event, Item, Profile, ReadContext, Reject
from processing.rules import apply_rules, meta_rules, text_rules
from processing.settings import CurateConfig

log = logging.getLogger(__name__)
WORK = RunLayout.CURATE_WORK
STAGE1 = f"{WORK}/stage1"
PROFILES = f"{WORK}/profiles"
ITEMS = f"{WORK}/items"
EVENT_WORK_SCHEMA = pa.schema(list(S.EVENT_SCHEMA))
SIDE_FORMATS = {"amazon_meta", "twitter100m_users"}  # files of profiles/items, not of events


def shard_id(uri: str) -> str:
    """A stable shard name for an input file: its sanitised name plus a hash of the full URI."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", posixpath.basename(uri))[:60]
    return f"{name}-{xxhash.xxh64_hexdigest(uri.encode())[:8]}"


def user_bucket(user_ids: pa.Array | pa.ChunkedArray, n_buckets: int) -> pa.Array:
    """Bucket of each user id (hex): users are spread evenly and always land in the same bucket."""
    return pa.array([int(u[:8], 16) % n_buckets for u in user_ids.to_pylist()], pa.int32())


class StepTimer:
    """Accumulates rows, bytes and seconds per step for the funnel's per-step breakdown."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, float]] = {}

    @contextmanager
    def step(self, name: str, rows: int = 0, nbytes: int = 0) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        s = self.steps.setdefault(name, {"rows": 0, "bytes": 0, "seconds": 0.0})
        s["rows"] += rows
        s["bytes"] += nbytes
        s["seconds"] += time.perf_counter() - t0


def to_rejects(rejected: pa.Table, stage: str, detail: pa.Array | None = None) -> pa.Table:
    """Turn rejected event rows (with a `reason` column) into REJECT_SCHEMA rows."""
    n = rejected.num_rows
    text = pc.fill_null(rejected.column(S.TEXT), "")
    title = pc.fill_null(rejected.column(S.TITLE), "")
    excerpt = pc.utf8_slice_codeunits(pc.if_else(pc.equal(text, ""), title, text), 0, S.EXCERPT_CHARS)
    return pa.table({
        S.EVENT_ID: rejected.column(S.EVENT_ID), S.PLATFORM: rejected.column(S.PLATFORM),
        S.USER_ID: rejected.column(S.USER_ID), S.SOURCE_URI: rejected.column(S.SOURCE_URI),
        S.SOURCE_ROW: rejected.column(S.SOURCE_ROW), S.STAGE: pa.array([stage] * n, pa.string()),
        S.REASON: rejected.column(S.REASON), S.DETAIL: detail if detail is not None else pa.nulls(n, pa.string()),
        S.EXCERPT: excerpt,
    }, schema=S.REJECT_SCHEMA)


def cleaning_options(cfg: CurateConfig) -> CleaningOptions:
    c = cfg.cleaning
    return CleaningOptions(remove_urls=c.remove_urls, remove_html=c.remove_html, remove_emoji=c.remove_emoji,
                           remove_escapes=c.remove_escapes, remove_mentions=c.remove_mentions,
                           max_removed_fraction=c.max_removed_fraction, scrub_pii=c.scrub_pii)


def process_batch(batch: pa.Table, platform: str, cfg: CurateConfig, timer: StepTimer | None = None,
                  storage: StorageConfig | None = None, pii_counts: dict[str, int] | None = None
                  ) -> tuple[pa.Table, list[pa.Table]]:
    """Rules, cleaning + PII, language ID and quality score on one batch of READ_BATCH_SCHEMA rows of one platform.

    Returns (kept rows in EVENT_SCHEMA plus the rule columns, reject tables); placeholders per PII
    kind (text and title) are added to ``pii_counts`` when given. No I/O, no Ray.
    """
    timer = timer or StepTimer()
    rejects: list[pa.Table] = []
    with timer.step("rules_meta", batch.num_rows):
        kept, dropped = apply_rules(batch, meta_rules(platform, cfg))
        rejects.append(to_rejects(dropped, "rules"))
    with timer.step("clean_pii", kept.num_rows, pc.sum(pc.utf8_length(pc.fill_null(kept[S.TEXT], ""))).as_py() or 0):
        opts = cleaning_options(cfg)
        text, removed_frac, dropped_mask, pii = clean_column(kept.column(S.TEXT), opts, pii_counts)
        title, _, title_dropped, title_pii = clean_column(kept.column(S.TITLE), opts, pii_counts)
        title = pc.if_else(title_dropped, "", title)
        kept = (kept.set_column(kept.schema.get_field_index(S.TEXT), S.TEXT, text)
                .set_column(kept.schema.get_field_index(S.TITLE), S.TITLE, pc.if_else(pc.is_null(kept[S.TITLE]), None, title))
                .append_column(S.REMOVED_FRACTION, removed_frac)
                .append_column(S.PII_COUNT, pc.cast(pc.add(pii, title_pii), pa.int32())))
        dirty = kept.filter(dropped_mask).append_column(
            S.REASON, pa.array(["cleaning_removed_most"] * pc.sum(dropped_mask).as_py() if kept.num_rows else [], pa.string()))
        rejects.append(to_rejects(dirty, "clean", pc.cast(dirty[S.REMOVED_FRACTION], pa.string())))
        kept = kept.filter(pc.invert(dropped_mask))
    with timer.step("rules_text", kept.num_rows):
        kept, dropped = apply_rules(kept, text_rules(platform, cfg))
        rejects.append(to_rejects(dropped, "rules"))
    with timer.step("language_id", kept.num_rows):
        lang_cfg = cfg.language
        if lang_cfg.enabled:
            both = pc.binary_join_element_wise(pc.fill_null(kept[S.TITLE], ""), pc.fill_null(kept[S.TEXT], ""), "\n")
            lang, score = identify(both, lang_cfg.model_path, lang_cfg.max_chars)
        else:
            lang, score = pa.nulls(kept.num_rows, pa.string()), pa.nulls(kept.num_rows, pa.float32())
        kept = kept.append_column(S.LANG, lang).append_column(S.LANG_SCORE, score)
        if lang_cfg.enabled:
            ok = pc.and_(pc.is_in(lang, pa.array(list(lang_cfg.keep), pa.string())),
                         pc.greater_equal(score, lang_cfg.min_score))
            bad = kept.filter(pc.invert(ok))
            detail = pc.binary_join_element_wise("lang=", bad[S.LANG], " score=",
                                                 pc.cast(pc.round(bad[S.LANG_SCORE], 3), pa.string()), "")
            rejects.append(to_rejects(bad.append_column(S.REASON, pa.array(["non_english"] * bad.num_rows, pa.string())),
                                      "language", detail))
            kept = kept.filter(ok)
    with timer.step("quality", kept.num_rows):
        quality, keep = score_events(kept, cfg.quality, storage)
        kept = kept.append_column(S.QUALITY, quality)
        low = kept.filter(pc.invert(keep))
        rejects.append(to_rejects(low.append_column(S.REASON, pa.array(["low_quality"] * low.num_rows, pa.string())),
                                  "quality", pc.cast(pc.round(low[S.QUALITY], 3), pa.string())))
        kept = kept.filter(keep)
        n = kept.num_rows
        kept = (kept.append_column(S.DUP_CLUSTER, pa.nulls(n, pa.string()))
                .append_column(S.DUP_CLUSTER_SIZE, pa.nulls(n, pa.int32())))
    return kept, rejects


def _records_to_tables(records: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(records, schema=schema)


class _WriterSet:
    """The Parquet files one shard writes, each opened on its first write and keyed by its path.

    The shard's read rejects file always exists (empty when nothing was rejected). close() publishes
    every file (rejects first, the dedup rows last); abort() drops the ones not yet published. As a
    context manager it closes on success and aborts when an exception escapes.
    """

    def __init__(self, root: RunRoot, shard: str):
        self.root, self.shard = root, shard
        self.rejects = RunLayout.rejects("read", shard)
        self._files: dict[str, ParquetShardWriter] = {}
        self.dedup: DedupRowWriter | None = None
        self.open(self.rejects, S.REJECT_SCHEMA)

    def open(self, rel: str, schema: pa.Schema) -> ParquetShardWriter:
        """The writer of `rel` under the run root, created on first use."""
        if rel not in self._files:
            self._files[rel] = ParquetShardWriter(self.root, rel, schema)
        return self._files[rel]

    def write(self, rel: str, schema: pa.Schema, table: pa.Table) -> None:
        self.open(rel, schema).write(table)

    def reject(self, table: pa.Table) -> None:
        """Append REJECT_SCHEMA rows to the shard's rejects file."""
        self._files[self.rejects].write(table)

    def open_dedup(self, platform: str) -> None:
        """Open `dedup`, the writer of the shard's dedup band rows (one file per hash partition)."""
        self.dedup = DedupRowWriter(self.root, platform, self.shard)

    def _writers(self) -> list[ParquetShardWriter]:
        return [*self._files.values(), *(self.dedup.writers.values() if self.dedup else ())]

    def close(self) -> None:
        try:
            for w in self._writers():
                w.close()
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        for w in self._writers():
            w.abort()

    def __enter__(self) -> _WriterSet:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _BatchAccumulator:
    """Collects one file's records by type and, every `cfg.batch_rows` records, runs the events through
    process_batch and dedup signatures and hands every table to the writer set.

    Counts what it wrote: `kept` events, `rejected` rows, `side_rows` (profiles and items) and the
    rejects per (stage, reason) in the platform's stats. Call start() with the file's format before consume().
    """

    def __init__(self, writers: _WriterSet, cfg: CurateConfig, storage: StorageConfig, n_buckets: int,
                 timer: StepTimer):
        self.writers, self.cfg, self.storage, self.n_buckets, self.timer = writers, cfg, storage, n_buckets, timer
        self.platform: str | None = None
        self.pstats: dict = {}  # stats["platforms"][platform]
        self.counts: dict = {}  # where read rejects are tallied: pstats, or pstats["side"] for side files
        self.events: list[dict] = []
        self.reads: list[dict] = []
        self.profiles: list[dict] = []
        self.items: list[dict] = []
        self.kept = self.rejected = self.side_rows = 0

    def start(self, fmt: str, platforms: dict) -> None:
        """Set the file's platform and open its stats in `platforms` (stats["platforms"])."""
        self.platform = READERS[fmt][0]
        self.writers.open_dedup(self.platform)
        self.pstats = platforms.setdefault(self.platform, {"read": 0, "rejected": {}})
        # Rows of side files (item metadata, user profiles) are accounted apart from event rows.
        side = fmt in SIDE_FORMATS
        self.counts = self.pstats.setdefault("side", {"read": 0, "rejected": {}}) if side else self.pstats

    def consume(self, records: Iterable[dict]) -> None:
        """Add every record, flushing each full batch; the time spent reading (not processing) goes to step "read"."""
        t_read = time.perf_counter()
        for rec in records:
            self.add(rec)
            if len(self) >= self.cfg.batch_rows:
                t_read += self._timed_flush()  # exclude processing from read time
        t_read += self._timed_flush()
        self.timer.steps.setdefault("read", {"rows": 0, "bytes": 0, "seconds": 0.0})
        self.timer.steps["read"]["seconds"] += time.perf_counter() - t_read

    def __len__(self) -> int:
        """Records collected since the last flush."""
        return len(self.events) + len(self.reads) + len(self.profiles) + len(self.items)

    def add(self, rec: dict) -> None:
        if isinstance(rec, Event):
            self.events.append(rec)
        elif isinstance(rec, Reject):
            self.reads.append(rec)
        elif isinstance(rec, Profile):
            self.profiles.append(rec)
            self.side_rows += 1
        elif isinstance(rec, Item):
            self.items.append(rec)
            self.side_rows += 1

    def _timed_flush(self) -> float:
        t0 = time.perf_counter()
        self.flush()
        return time.perf_counter() - t0

    def flush(self) -> None:
        """Process and write what was collected, then empty the lists."""
        shard, platform = self.writers.shard, self.platform
        if self.events:
            self._write_events()
            self.events.clear()
        if self.reads:
            t = _records_to_tables(self.reads, S.REJECT_SCHEMA)
            self.writers.reject(t)
            tally(self.counts, t)
            self.rejected += t.num_rows
            self.reads.clear()
        if self.profiles:
            self.writers.write(f"{PROFILES}/{platform}/{shard}.parquet", S.PROFILE_SCHEMA,
                               _records_to_tables(self.profiles, S.PROFILE_SCHEMA))
            self.profiles.clear()
        if self.items:
            self.writers.write(f"{ITEMS}/{platform}/{shard}.parquet", S.ITEM_SCHEMA,
                               _records_to_tables(self.items, S.ITEM_SCHEMA))
            self.items.clear()

    def _write_events(self) -> None:
        """The collected events through process_batch; kept rows to one file per user bucket."""
        timer, cfg = self.timer, self.cfg
        with timer.step("read", 0):
            batch = _records_to_tables(self.events, S.READ_BATCH_SCHEMA)
        kept, rejected = process_batch(batch, self.platform, cfg, timer, self.storage,
                                       self.pstats.setdefault("pii", {}))
        if cfg.dedup.exact or cfg.dedup.near:
            with timer.step("dedup_signatures", kept.num_rows):
                rows = dedup_rows(kept, cfg.dedup)
                self.writers.dedup.write(rows)
                for part, members in member_rows(kept, rows, cfg.dedup.num_partitions).items():
                    self.writers.write(members_path(self.platform, part, self.writers.shard), MEMBER_SCHEMA, members)
        with timer.step("write", kept.num_rows):
            buckets = user_bucket(kept[S.USER_ID], self.n_buckets)
            kept = kept.append_column(S.USER_BUCKET, buckets)
            for b in sorted(set(buckets.to_pylist())):
                self.writers.write(f"{STAGE1}/{self.platform}/b={b:04d}/{self.writers.shard}.parquet",
                                   EVENT_WORK_SCHEMA, kept.filter(pc.equal(buckets, b)))
            for r in rejected:
                self.writers.reject(r)
                tally(self.pstats, r)
        self.kept += kept.num_rows
        self.rejected += sum(r.num_rows for r in rejected)


def _file_error(exc: Exception, uri: str, ctx: ReadContext, platform: str | None) -> tuple[dict, pa.Table]:
    """A file that failed mid-read: its entry in stats["file_errors"] and its one reject row."""
    if isinstance(exc, UnknownFormat):
        reason, detail = "unknown_format", str(exc)
    else:
        reason = "unreadable_file"
        detail = f"{type(exc).__name__}: {exc} (after {ctx.row} records)"
    log.error("%s: %s", uri, detail)
    error = {"uri": uri, "reason": reason, "error": detail, "after_rows": ctx.row}
    return error, _records_to_tables([ctx.reject(-1, reason, detail, "", platform)], S.REJECT_SCHEMA)


def curate_file(task: dict, cfg: CurateConfig, layout: RunLayout, salt: str) -> dict:
    """Step-1 shard: stream one input file through process_batch into bucketed Parquet files.

    Outputs (deterministic names): `_work/curate/stage1/<platform>/b=<bucket>/<shard>.parquet`,
    `rejects/read/<shard>.parquet`, and side tables of profiles and items. Returns the shard's stats.
    """
    uri, fmt, nbytes, storage = task["uri"], task["format"], 0, layout.storage
    timer = StepTimer()
    stats: dict = {"platforms": {}, "files": {}, "file_errors": []}
    ctx = ReadContext(uri, salt, max_record_bytes=cfg.max_record_bytes)
    with _WriterSet(layout.root, task["shard"]) as writers:
        batches = _BatchAccumulator(writers, cfg, storage, task["n_buckets"], timer)
        try:
            nbytes = file_size(uri, storage)
            fmt = detect_format(uri, storage) if fmt == "auto" else fmt
            batches.start(fmt, stats["platforms"])
            batches.consume(read_file(uri, fmt, ctx, storage, cfg.blogger.date_format))
        except Exception as exc:  # noqa: BLE001 - a bad file is reported, never fatal to the run
            # Records before the failure stay (they were counted); the file itself gets one reject row.
            error, reject = _file_error(exc, uri, ctx, batches.platform)
            stats["file_errors"].append(error)
            writers.reject(reject)
    timer.steps["read"] = {**timer.steps.get("read", {"seconds": 0.0}), "rows": ctx.row, "bytes": nbytes}
    if batches.platform:
        batches.counts["read"] = ctx.row
    stats["files"][uri] = {"format": fmt, "read": ctx.row, "rejected": batches.rejected, "events": batches.kept,
                           "side_rows": batches.side_rows, "bytes": nbytes}
    stats["steps"] = timer.steps
    log.info("read %s (%s): %d records, %d kept for timelines, %d rejected", uri, fmt, ctx.row,
             batches.kept, batches.rejected)
    return stats


def tally(platform_stats: dict, rejects: pa.Table) -> None:
    """Add a reject table's counts per (stage, reason) to platform_stats["rejected"]."""
    if rejects.num_rows == 0:
        return
    g = rejects.group_by([S.STAGE, S.REASON]).aggregate([([], "count_all")])
    for stage, reason, n in zip(g[S.STAGE].to_pylist(), g[S.REASON].to_pylist(), g["count_all"].to_pylist()):
        step = platform_stats.setdefault("rejected", {}).setdefault(stage, {})
        step[reason] = step.get(reason, 0) + n
