"""fastText quality classifiers: train them on labelled text, score events with them.

Training data is Parquet with `text` and `label` (and `platform` when one model is trained per
platform; an optional `title` is joined before `text`, exactly as events are scored). A model's
score for a text is the probability that it carries any of the configured positive labels
(default "high" or "medium").

Training and scoring prepare text the same way (`fasttext_line`), so a model is only meaningful
with this module's preprocessing: a model trained elsewhere on other preprocessing scores worse.
"""
from __future__ import annotations

import logging
import os
import posixpath
import re
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Iterator, TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core import schema as S
from core.config import ConfigError, StorageConfig
from core.storage import expand_glob, resolve, RunRoot
from processing.settings import QualityConfig, QualityTrainConfig

if TYPE_CHECKING:  # the composed config imports every stage's settings
    from ray_jobs.config import PipelineConfig

log = logging.getLogger(__name__)

LABEL = "label"  # column of the training data
LABEL_PREFIX = "__label__"  # fastText's label marker
SHARED = "shared"  # model name when one model serves every platform
DEFAULT = "default"  # key of QualityConfig.models / thresholds used for platforms not named
MIN_CUTOFF = 256  # fastText's product quantizer needs at least 256 rows (2^8 centroids)

_SPACE_RE = r"[\s\v\x00\x{85}\x{a0}\x{2028}\x{2029}]+"  # everything fastText or Python may split lines on
_PUNCT_RE = r"([.,!?;:()\"\[\]{}<>*])"  # split off so "story." and "story" are one word


class QualityDataError(ValueError):
    """Training data is unusable; the message names the file (or data path) and the problem."""


# ----------------------------------------------------------------------------- text preparation

def _prepare(texts: pa.Array | pa.ChunkedArray, max_chars: int) -> pa.Array:
    """Vectorised `fasttext_line` (nulls stay null)."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not pa.types.is_string(texts.type):
        texts = texts.cast(pa.string())
    t = pc.utf8_slice_codeunits(texts, 0, max_chars)
    t = pc.utf8_lower(t)
    t = pc.replace_substring(t, LABEL_PREFIX, " _label_ ")  # a text must never inject a label
    t = pc.replace_substring_regex(t, _PUNCT_RE, r" \1 ")
    t = pc.replace_substring_regex(t, _SPACE_RE, " ")
    return pc.utf8_trim_whitespace(t)


def fasttext_line(text: str, max_chars: int) -> str:
    """One fastText input line: the first max_chars characters, lower-cased, common punctuation
    split off words, every run of whitespace (newlines, tabs, NUL, Unicode line separators) one space.

    Lower-casing: fastText is case-sensitive; folding case merges "Great"/"great" and helps the
    small labelled sets quality classifiers are trained on, at the cost of shouting/CAPS signals.
    """
    return _prepare(pa.array([text], pa.string()), max_chars)[0].as_py() or ""


def _event_text(table: pa.Table) -> pa.Array:
    """`title` + newline + `text` when the table has a title column (nulls skipped), else `text`."""
    text = table[S.TEXT].cast(pa.string())
    if S.TITLE in table.column_names:
        title = table[S.TITLE].cast(pa.string())
        both = pc.binary_join_element_wise(title, text, "\n", null_handling="skip")
        # Both null -> null (not ""), so a missing text still reads as missing.
        text = pc.if_else(pc.and_(pc.is_null(title), pc.is_null(text)), pa.scalar(None, pa.string()), both)
    return text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text


def _clean_labels(labels: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Labels as fastText tokens: strings, trimmed, inner whitespace -> "_" (fastText labels cannot hold spaces)."""
    lab = labels.cast(pa.string())
    lab = pc.replace_substring_regex(pc.utf8_trim_whitespace(lab), _SPACE_RE, "_")
    return lab.combine_chunks() if isinstance(lab, pa.ChunkedArray) else lab


def _clean_label(label: str) -> str:
    return _clean_labels(pa.array([str(label)]))[0].as_py()


# ----------------------------------------------------------------------------- training

_TRAIN_LOCK = threading.Lock()
_M_PERTURB = -6  # glibc mallopt(3) parameter


@lru_cache(maxsize=1)
def _glibc():
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018 - glibc only
        return libc
    except (OSError, AttributeError):
        return None


@contextmanager
def _zeroed_allocations() -> Iterator[None]:
    """Make malloc return zero-filled memory while fastText trains (one training at a time per process).

    The installed fastText (fasttext-numpy2) initialises only thread/10 of a new model's input matrix
    and leaves the rest as uninitialised memory (upstream zero-fills it). In a fresh process that memory
    is zero pages, but after earlier frees (e.g. a previous training or quantization) it is garbage:
    training then fails with "Encountered NaN." or silently yields a different model. glibc's
    M_PERTURB=0xFF fills every allocation with 0x00, restoring upstream's deterministic start.
    """
    with _TRAIN_LOCK:
        libc = _glibc()
        ok = bool(libc is not None and libc.mallopt(_M_PERTURB, 0xFF) == 1)
        if not ok:
            log.warning("not glibc: cannot zero fastText's uninitialised matrix memory; a training after "
                        "another in this process may fail with NaN or differ run to run")
        try:
            yield
        finally:
            if ok:
                libc.mallopt(_M_PERTURB, 0)


def _split(labels: np.ndarray, test_fraction: float, seed: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: per label (sorted), round(n * test_fraction) rows, at least 1
    and at most n - 1, go to the test side. Returns (train indices shuffled, test indices sorted)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for lab in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == lab)
        if len(idx) < 2:
            raise QualityDataError(f"{source}: label {lab!r} has {len(idx)} usable row(s); at least 2 are "
                                   "needed to hold out a test split")
        idx = rng.permutation(idx)
        n_test = min(len(idx) - 1, max(1, round(len(idx) * test_fraction)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return rng.permutation(np.concatenate(train)), np.sort(np.concatenate(test))


def _metrics(truth: list[str], predicted: list[str | None], labels: list[str]) -> dict[str, Any]:
    """Per-label and micro precision/recall/F1 of single-label predictions (None: no prediction)."""
    def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}

    per, tps, fps, fns = {}, 0, 0, 0
    for lab in labels:
        tp = sum(t == lab and p == lab for t, p in zip(truth, predicted))
        fp = sum(t != lab and p == lab for t, p in zip(truth, predicted))
        fn = sum(t == lab and p != lab for t, p in zip(truth, predicted))
        per[lab] = {**prf(tp, fp, fn), "n": sum(t == lab for t in truth)}
        tps, fps, fns = tps + tp, fps + fp, fns + fn
    return {
        "per_label": per,
        "micro": prf(tps, fps, fns),
        "macro_f1": round(sum(v["f1"] for v in per.values()) / len(per), 4),
        "accuracy": round(sum(t == p for t, p in zip(truth, predicted)) / max(1, len(truth)), 4),
    }


def _put_file(local: str, uri: str, storage: StorageConfig | None) -> None:
    """Copy a local file to a local path or s3:// URI, atomically."""
    with open(local, "rb") as f:
        data = f.read()
    parent, name = posixpath.split(uri.rstrip("/"))
    RunRoot(parent or ".", storage or StorageConfig()).write_bytes(name, data)


def train_quality(rows: pa.Table, out_path: str, cfg: QualityTrainConfig, *,
                  storage: StorageConfig | None = None, source: str = "<rows>",
                  max_chars: int = 2000) -> dict[str, Any]:
    """Train one supervised fastText model on rows (`text`, `label`[, `title`]) and save it.

    cfg.test_fraction of each label is held out (deterministic by cfg.seed); the model (quantized
    when cfg.quantize, keeping cfg.cutoff words/ngrams, retrained then) is saved to out_path (local
    or s3://). Rows with a null/blank label or text are dropped. Training uses one thread (cfg has
    no `thread` field), which makes it deterministic: the same rows and seed give the same model.
    Returns the report: sizes, labels, per-label and micro precision/recall/F1 of the saved model on
    the held-out rows (computed from its predictions), model bytes and train seconds.
    """
    import fasttext

    missing = [c for c in (S.TEXT, LABEL) if c not in rows.column_names]
    if missing:
        raise QualityDataError(f"{source}: missing column(s) {missing}; training data needs `text` and `label` "
                               f"(has: {rows.column_names})")
    if cfg.quantize and 0 < cfg.cutoff < MIN_CUTOFF:
        raise ConfigError(f"train_quality.cutoff must be 0 or >= {MIN_CUTOFF} (fastText's quantizer), got {cfg.cutoff}")
    lines = pc.fill_null(_prepare(_event_text(rows), max_chars), "").to_pylist()
    labels = pc.fill_null(_clean_labels(rows[LABEL]), "").to_pylist()
    usable = [i for i, (x, y) in enumerate(zip(lines, labels)) if x and y]
    n_dropped = len(lines) - len(usable)
    if n_dropped:
        log.warning("%s: dropped %d of %d rows with a blank text or label", source, n_dropped, len(lines))
    lines = [lines[i] for i in usable]
    labels_np = np.array([labels[i] for i in usable], dtype=object)
    label_set = sorted(set(labels_np.tolist()))
    if len(label_set) < 2:
        raise QualityDataError(f"{source}: need at least 2 distinct labels in `{LABEL}`, found {label_set} "
                               f"in {len(lines)} usable row(s)")
    train_idx, test_idx = _split(labels_np, cfg.test_fraction, cfg.seed, source)
    thread = getattr(cfg, "thread", None) or 1

    with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
        train_file = os.path.join(tmp, "train.txt")
        with open(train_file, "w", encoding="utf-8") as f:
            for i in train_idx:
                f.write(f"{LABEL_PREFIX}{labels_np[i]} {lines[i]}\n")
        t0 = time.perf_counter()
        with _zeroed_allocations():
            model = fasttext.train_supervised(
                input=train_file, epoch=cfg.epoch, lr=cfg.lr, wordNgrams=cfg.word_ngrams, dim=cfg.dim,
                bucket=cfg.bucket, minCount=cfg.min_count, loss="softmax", thread=thread, seed=cfg.seed,
                verbose=0)
            if cfg.quantize:
                model.quantize(input=train_file, cutoff=cfg.cutoff, retrain=cfg.cutoff > 0, qnorm=True,
                               thread=thread, verbose=0)
        train_seconds = time.perf_counter() - t0
        model_file = os.path.join(tmp, "model.bin")
        model.save_model(model_file)
        model_bytes = os.path.getsize(model_file)
        _put_file(model_file, out_path, storage)

    test_lines = [lines[i] for i in test_idx]
    truth = [labels_np[i] for i in test_idx]
    pred_labels, _ = model.predict(test_lines, k=1)
    predicted = [p[0][len(LABEL_PREFIX):] if len(p) else None for p in pred_labels]
    counts = {lab: int((labels_np == lab).sum()) for lab in label_set}
    report = {
        "model": out_path,
        "source": source,
        "n_rows": rows.num_rows,
        "n_dropped": n_dropped,
        "n_train": len(train_idx),
        "n_test": len(test_idx),
        "labels": label_set,
        "label_counts": counts,
        **_metrics(truth, predicted, label_set),
        "quantized": cfg.quantize,
        "model_bytes": model_bytes,
        "train_seconds": round(train_seconds, 3),
        "params": {"epoch": cfg.epoch, "lr": cfg.lr, "word_ngrams": cfg.word_ngrams, "dim": cfg.dim,
                   "bucket": cfg.bucket, "min_count": cfg.min_count, "cutoff": cfg.cutoff, "seed": cfg.seed,
                   "thread": thread, "test_fraction": cfg.test_fraction, "max_chars": max_chars},
    }
    log.info("%s: trained %s on %d rows (%d held out): micro P %.3f R %.3f, %d bytes, %.1fs", source, out_path,
             len(train_idx), len(test_idx), report["micro"]["precision"], report["micro"]["recall"],
             model_bytes, train_seconds)
    return report


def _read_training_data(data: str, per_platform: bool, storage: StorageConfig) -> tuple[pa.Table, list[str]]:
    """Every Parquet file of `data` (a file, a directory or a glob) as one table of the needed columns."""
    files = expand_glob(data, storage)
    if len(files) > 1:
        files = [f for f in files if f.endswith(".parquet")]
    if not files:
        raise FileNotFoundError(f"train_quality.data: no Parquet files at {data}")
    need = [S.TEXT, LABEL] + ([S.PLATFORM] if per_platform else [])
    tables = []
    for uri in files:
        fs, path = resolve(uri, storage)
        try:
            names = pq.read_schema(path, filesystem=fs).names
        except (pa.ArrowInvalid, OSError) as exc:
            raise QualityDataError(f"{uri}: not a readable Parquet file: {exc}") from None
        missing = [c for c in need if c not in names]
        if missing:
            hint = " (per_platform needs `platform`)" if missing == [S.PLATFORM] else ""
            raise QualityDataError(f"{uri}: missing column(s) {missing}{hint}; has {names}")
        cols = need + ([S.TITLE] if S.TITLE in names else [])
        t = pq.read_table(path, columns=cols, filesystem=fs)
        tables.append(pa.table({c: t[c].cast(pa.string()) for c in cols}))
    return pa.concat_tables(tables, promote_options="default"), files


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"


def train_from_config(cfg: PipelineConfig, storage: StorageConfig | None = None) -> dict[str, Any]:
    """Train the model(s) of cfg.train_quality and write them with report.json under output_dir.

    One shared model (`quality-shared.bin`) or, with per_platform, one per platform
    (`quality-<platform>.bin`). Returns the report: the data, files, output dir, one training
    report per model under "models", and "curate_quality_models", the `curate.quality.models`
    mapping that uses them.
    """
    tq = cfg.train_quality
    storage = storage or cfg.storage
    if not tq.data:
        raise ConfigError("train_quality.data is not set: point it at Parquet with `text` and `label` columns")
    table, files = _read_training_data(tq.data, tq.per_platform, storage)
    source = files[0] if len(files) == 1 else tq.data
    root = RunRoot(tq.output_dir, storage)
    groups: dict[str, pa.Table] = {}
    if tq.per_platform:
        plat = table[S.PLATFORM]
        n_null = plat.null_count
        if n_null:
            log.warning("%s: ignoring %d rows without a platform", source, n_null)
        for p in sorted(v for v in pc.unique(plat).to_pylist() if v is not None):
            groups[p] = table.filter(pc.equal(plat, p))
        if not groups:
            raise QualityDataError(f"{source}: no rows with a platform (per_platform is set)")
    else:
        groups[SHARED] = table
    models, mapping = {}, {}
    for name, rows in groups.items():
        uri = root.uri_of(f"quality-{_safe_name(name)}.bin")
        where = source if name == SHARED else f"{source} (platform {name!r})"
        models[name] = train_quality(rows, uri, tq, storage=storage, source=where)
        mapping[DEFAULT if name == SHARED else name] = uri
    report = {"data": tq.data, "files": files, "output_dir": root.uri_of(), "per_platform": tq.per_platform,
              "models": models, "curate_quality_models": mapping}
    root.write_json("report.json", report)
    log.info("wrote %d model(s) and report.json under %s", len(models), root.uri_of())
    return report


# ----------------------------------------------------------------------------- scoring

def load_model(path: str, storage: StorageConfig | None = None):
    """Load a fastText model once per process (a Ray worker keeps it for every batch); s3:// is fetched."""
    return _load_model(path, storage)


@lru_cache(maxsize=8)
def _load_model(path: str, storage: StorageConfig | None):
    import fasttext

    fasttext.FastText.eprint = lambda *a, **k: None  # silence the load-time warning
    if path.startswith("s3://"):
        fs, key = resolve(path, storage)
        with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
            local = os.path.join(tmp, "model.bin")
            with fs.open_input_stream(key) as src, open(local, "wb") as dst:
                dst.write(src.read())
            return fasttext.load_model(local)  # read fully into memory; the file can go
    if not os.path.isfile(path):
        raise FileNotFoundError(f"quality model not found: {path}")
    return fasttext.load_model(path)


@lru_cache(maxsize=32)
def _positive_set(model_path: str, positive_labels: tuple[str, ...], storage: StorageConfig | None) -> frozenset[str]:
    have = {lab[len(LABEL_PREFIX):] for lab in load_model(model_path, storage).get_labels()}
    pos = {_clean_label(lab) for lab in positive_labels} & have
    if not pos:
        raise ValueError(f"{model_path}: none of the positive labels {list(positive_labels)} is a label of the "
                         f"model (it has {sorted(have)}); set curate.quality.positive_labels")
    return frozenset(LABEL_PREFIX + lab for lab in pos)


def score(texts: pa.Array | pa.ChunkedArray, model_path: str, positive_labels: tuple[str, ...],
          max_chars: int = 2000, storage: StorageConfig | None = None) -> pa.Array:
    """float32 probability that each text has one of the positive labels (the sum over them of
    the full distribution, k=-1); a null or blank text scores 0."""
    n = len(texts)
    if n == 0:
        return pa.array([], pa.float32())
    positives = _positive_set(model_path, tuple(positive_labels), storage)
    items = pc.fill_null(_prepare(texts, max_chars), "").to_pylist()
    out = np.zeros(n, np.float32)
    nonblank = [i for i, s in enumerate(items) if s]
    if nonblank:
        labels, probs = load_model(model_path, storage).predict([items[i] for i in nonblank], k=-1)
        for i, labs, ps in zip(nonblank, labels, probs):
            out[i] = sum(float(p) for lab, p in zip(labs, ps) if lab in positives)
    return pa.array(np.clip(out, 0.0, 1.0), pa.float32())  # fastText's softmax can exceed 1 by ~1e-5


def score_events(table: pa.Table, qcfg: QualityConfig,
                 storage: StorageConfig | None = None) -> tuple[pa.Array, pa.Array]:
    """Quality scores and a keep mask for a batch of events of any platforms.

    Each row is scored with its platform's model, else the "default" model (`title` + `text`);
    `quality` (float32) is null where neither exists. `keep` is score >= the platform's threshold,
    else the "default" threshold (compared in float32); rows with no threshold or a null score are kept.
    """
    n = table.num_rows
    values = np.zeros(n, np.float32)
    scored = np.zeros(n, bool)
    keep = np.ones(n, bool)
    if n == 0 or not qcfg.models:
        return pa.array(values, pa.float32(), mask=~scored), pa.array(keep, pa.bool_())
    texts = _event_text(table)
    plats = table[S.PLATFORM].to_pylist() if S.PLATFORM in table.column_names else [None] * n
    groups: dict[str | None, list[int]] = defaultdict(list)
    for i, p in enumerate(plats):
        groups[p].append(i)
    for p, rows in groups.items():
        model = qcfg.models.get(p) if p is not None else None
        model = model or qcfg.models.get(DEFAULT)
        if model is None:
            continue
        idx = np.array(rows, dtype=np.int64)
        s = score(texts.take(pa.array(idx)), model, qcfg.positive_labels, qcfg.max_chars, storage)
        s_np = s.to_numpy(zero_copy_only=False)
        values[idx] = s_np
        scored[idx] = True
        thr = qcfg.thresholds.get(p) if p is not None else None
        thr = thr if thr is not None else qcfg.thresholds.get(DEFAULT)
        if thr is not None:
            keep[idx] = s_np >= np.float32(thr)
    return pa.array(values, pa.float32(), mask=~scored), pa.array(keep, pa.bool_())
