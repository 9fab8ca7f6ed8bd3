"""Distil the LLM's quality tags (PAPER.md 3.2) into a fastText classifier, so later runs pre-filter
posts cheaply in the curate stage before spending LLM tokens on them."""
from __future__ import annotations

import json
import logging
from typing import Any, TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from core import schema as S
from core.layout import RunLayout
from processing.quality import LABEL, train_from_config

if TYPE_CHECKING:  # the composed config imports every stage's settings
    from ray_jobs.config import PipelineConfig

log = logging.getLogger(__name__)

HARMFUL = "low"  # a harmful post is never wanted downstream: it trains as low quality


def quality_labels(layout: RunLayout) -> pa.Table:
    """(text, title, platform, label) of every tagged event: its v1 quality, or `low` when not harmless."""
    root = layout.root
    ann = root.read_parquet(layout.annotations("tags"), schema=S.ANNOTATION_SCHEMA)
    ann = ann.filter(pc.and_(pc.is_in(ann[S.ANNOTATION_KIND], pa.array(["tag_v1", "tag_v1_comment"])),
                             pc.invert(ann[S.IS_NULL])))
    label_of = {}
    for eid, fields in zip(ann[S.SUBJECT_ID].to_pylist(), ann[S.FIELDS].to_pylist()):
        f = json.loads(fields or "{}")
        label_of[eid] = f.get("quality") if f.get("harmless") else HARMFUL
    events = root.read_parquet(layout.events(), columns=[S.EVENT_ID, S.PLATFORM, S.TITLE, S.TEXT], schema=S.EVENT_SCHEMA)
    events = events.filter(pc.is_in(events[S.EVENT_ID], pa.array(list(label_of), pa.string())))
    labels = pa.array([label_of[e] for e in events[S.EVENT_ID].to_pylist()], pa.string())
    return pa.table({S.TEXT: events[S.TEXT], S.TITLE: events[S.TITLE], S.PLATFORM: events[S.PLATFORM], LABEL: labels})


def distill(cfg: PipelineConfig, layout: RunLayout | None = None) -> dict[str, Any]:
    """Write the labels under synth/ and train `train_quality` on them; returns the training report."""
    layout = layout or cfg.layout()
    root = layout.root
    if not root.exists(layout.annotations("tags")):
        raise FileNotFoundError(f"no quality tags under {root.uri_of(layout.annotations('tags'))}: "
                                "run `humanllm synthesize` first")
    table = quality_labels(layout)
    counts = {k: v for k, v in zip(*pc.value_counts(table[LABEL]).flatten())} if table.num_rows else {}
    log.info("%d tagged events as training data: %s", table.num_rows, {str(k): int(v.as_py()) for k, v in counts.items()})
    root.write_parquet(layout.quality_labels(), table)
    tq = cfg.train_quality.model_copy(update={"data": root.uri_of(layout.quality_labels())})
    return train_from_config(cfg.model_copy(update={"train_quality": tq}))
