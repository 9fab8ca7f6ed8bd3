"""The SFT dataset stage: per curated shard (each holds whole users, so it is the per-user grouping),
build every task's examples on Ray Data; then caps and the split per shard; then the exports.

Writes under the run root:
  sft/train/<platform>/part-NNNN.parquet, sft/test/...   examples (SFT_SCHEMA) sorted by example id
  sft/rejects/<platform>/part-NNNN.parquet                examples dropped, with the reason
  sft/export/{train,test}.jsonl, dataset_info.json        `messages` only (no user ids): LLaMA-Factory, TRL, axolotl
  sft/README.md, sft/stats.json                            the dataset card
Each step has completion markers, so a killed run resumes and a rerun gives the same files.
"""
from __future__ import annotations

import logging
import os
from typing import Iterator, TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from core import schema as S
from core.layout import RunLayout
from core.shards import fingerprint, merge_stats, run_shards, StageMarkers
from core.storage import RunRoot
from llm.models import load_counting_tokenizer
from sft.build import build_examples, cap_and_split, cap_thresholds, item_names
from sft.bundle import build_bundles, UserBundle
from sft.card import dataset_card, split_sizes, split_summary
from sft.export import write_exports
from sft.leakage import NgramIndex
from sft.splits import test_users

if TYPE_CHECKING:  # the composed config imports every stage's settings
    from ray_jobs.config import PipelineConfig

log = logging.getLogger(__name__)
STEPS = ("build-sft-examples", "build-sft-split")
ITEMS, PLAN, LEAKAGE_INDEX = "items.json", "plan.json", "leakage_index.npz"  # under the stage's work folder


def _examples(layout: RunLayout, shard: str) -> str:
    return layout.sft_work("examples", f"{shard}.parquet")


def _read(root: RunRoot, rel: str, schema: pa.Schema) -> pa.Table:
    return root.read_parquet(rel, schema=schema) if root.exists(rel) else schema.empty_table()


def curated_shards(cfg: PipelineConfig, layout: RunLayout) -> list[str]:
    """The curated shards build-sft reads (`<platform>/<part>` of the synthesis platforms, in the inputs root)."""
    shards = layout.event_shards(list(cfg.synthesis.platforms), layout.inputs)
    if not shards:
        raise FileNotFoundError(f"no curated events under {layout.inputs.uri_of(layout.events())}: "
                                "run `humanllm curate` first")
    return shards


def shard_inputs(layout: RunLayout, shard: str) -> tuple[pa.Table, pa.Table, pa.Table, pa.Table, pa.Table]:
    """What build-sft reads of one curated shard: its events, tags, user and post annotations, judgements
    (an absent synthesis output is an empty table)."""
    inputs = layout.inputs
    return (inputs.read_parquet(layout.events(shard), schema=S.EVENT_SCHEMA),
            _read(inputs, layout.annotations("tags", shard), S.ANNOTATION_SCHEMA),
            _read(inputs, layout.annotations("user", shard), S.ANNOTATION_SCHEMA),
            _read(inputs, layout.annotations("post", shard), S.ANNOTATION_SCHEMA),
            _read(inputs, layout.judgements(shard), S.JUDGEMENT_SCHEMA))


def load_bundles(cfg: PipelineConfig, layout: RunLayout | None = None) -> Iterator[UserBundle]:
    """Every user's bundle of a run, shard by shard, from the inputs build-sft reads (the simulate
    service's people; the build itself goes through the same `shard_inputs`)."""
    layout = layout or cfg.layout()
    for shard in curated_shards(cfg, layout):
        yield from build_bundles(*shard_inputs(layout, shard))


def _platform_items(layout: RunLayout, shards: list[str]) -> dict[str, dict[str, str]]:
    """Per platform with reviews, item id -> name over every shard (item selection draws negatives here)."""
    out: dict[str, dict[str, str]] = {}
    for shard in shards:
        platform = shard.split("/")[0]
        if platform == S.AMAZON:
            events = layout.inputs.read_parquet(layout.events(shard), columns=[S.CONTEXT, S.META])
            out.setdefault(platform, {}).update(item_names(events))
    return {p: dict(sorted(items.items())) for p, items in out.items()}


class _BuildShard:
    """Build one shard's examples (a picklable callable for Ray Data)."""

    def __init__(self, cfg: PipelineConfig, layout: RunLayout):
        self.cfg, self.layout = cfg, layout

    def __call__(self, task: dict) -> dict:
        cfg, layout, shard = self.cfg, self.layout, task["shard"]
        root, index_rel = layout.root, layout.sft_work(LEAKAGE_INDEX)
        index = NgramIndex.from_bytes(root.read_bytes(index_rel)) if root.exists(index_rel) else None
        items = root.read_json(layout.sft_work(ITEMS)).get(shard.split("/")[0], {})
        result = build_examples(*shard_inputs(layout, shard), cfg.sft,
                                load_counting_tokenizer(cfg.sft.tokenizer, "sft.tokenizer", cfg.storage), index, items)
        root.write_parquet(_examples(layout, shard), result.examples)
        root.write_parquet(layout.sft_rejects(shard), result.rejects)
        return result.stats


class _SplitShard:
    """Apply the caps and the split plan to one shard's examples (a picklable callable for Ray Data)."""

    def __init__(self, cfg: PipelineConfig, layout: RunLayout):
        self.cfg, self.layout = cfg, layout

    def __call__(self, task: dict) -> dict:
        cfg, layout, shard = self.cfg, self.layout, task["shard"]
        root = layout.root
        plan = root.read_json(layout.sft_work(PLAN))
        held_out = {u for users in plan["test_users"].values() for u in users}
        examples = root.read_parquet(_examples(layout, shard), schema=S.SFT_SCHEMA)
        kept, capped = cap_and_split(examples, plan["thresholds"], held_out, cfg.sft)
        for split in (S.TRAIN, S.TEST):
            part = kept.filter(pc.equal(kept[S.SPLIT], split))
            root.write_parquet(layout.sft_split(split, shard), part)
        return {"capped": {shard.split("/")[0]: capped}}


def _plan(layout: RunLayout, cfg: PipelineConfig, shards: list[str]) -> dict:
    keys = pa.concat_tables([
        layout.root.read_parquet(_examples(layout, s), columns=[S.PLATFORM, S.TASK, S.USER_ID, S.RANK])
        for s in shards]) if shards else pa.table({S.PLATFORM: [], S.TASK: [], S.USER_ID: [], S.RANK: []})
    users: dict[str, list[str]] = {}
    for platform, user in set(zip(keys[S.PLATFORM].to_pylist(), keys[S.USER_ID].to_pylist())):
        users.setdefault(platform, []).append(user)
    held = test_users(users, cfg.sft.split.test_fraction, cfg.sft.seed) if cfg.sft.split.mode == "user" else {}
    return {"thresholds": cap_thresholds(keys, cfg.sft), "test_users": held}


def run(cfg: PipelineConfig, layout: RunLayout | None = None, *, use_ray: bool = True, restart: bool = False) -> dict:
    """Build sft/ from the curated events and the synthesis outputs of a run root; return the stage stats."""
    layout = layout or cfg.layout()
    root = layout.root
    if restart:
        root.delete(layout.SFT)
        for step in STEPS:
            root.delete(RunLayout.markers(step))
    shards = curated_shards(cfg, layout)
    StageMarkers(root, STEPS[0]).check_config(fingerprint(cfg.sft.model_dump(mode="json")))
    load_counting_tokenizer(cfg.sft.tokenizer, "sft.tokenizer", cfg.storage)  # a bad tokenizer fails here, before any worker starts
    if not root.exists(layout.sft_work(ITEMS)):
        root.write_json(layout.sft_work(ITEMS), _platform_items(layout, shards))
    if not root.exists(layout.sft_work(LEAKAGE_INDEX)):
        patterns = cfg.sft.leakage.benchmarks
        if patterns is None:
            patterns = [os.path.join(cfg.benchmark_dir(), "bench_*")]
        index = NgramIndex.build(patterns, cfg.sft.leakage.ngram)
        if not index.files:
            log.warning("leakage check off: no benchmark file matches %s", patterns)
        root.write_bytes(layout.sft_work(LEAKAGE_INDEX), index.to_bytes())
    tasks = [{"shard": s} for s in shards]
    stats: dict = {}
    for s in run_shards(root, STEPS[0], tasks, _BuildShard(cfg, layout), use_ray=use_ray).values():
        merge_stats(stats, s)
    if not root.exists(layout.sft_work(PLAN)):
        root.write_json(layout.sft_work(PLAN), _plan(layout, cfg, shards))
    for s in run_shards(root, STEPS[1], tasks, _SplitShard(cfg, layout), use_ray=use_ray).values():
        merge_stats(stats, s)
    index = NgramIndex.from_bytes(root.read_bytes(layout.sft_work(LEAKAGE_INDEX)))
    stats["leakage"] = {"benchmark_files": len(index.files), "ngrams": int(len(index.hashes)), "n": index.n}
    stats["splits"] = split_summary(layout)
    stats["exports"] = write_exports(layout)
    stats["config"] = cfg.sft.model_dump(mode="json")
    root.write_json(layout.sft_stats(), stats)
    root.write_bytes(layout.sft_card(), dataset_card(stats).encode())
    log.info("SFT dataset: %s (card: %s)\n%s", root.uri_of(layout.SFT), root.uri_of(layout.sft_card()),
             "\n".join(split_sizes(stats)))
    return stats
