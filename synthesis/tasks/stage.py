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

import pyarrow as pa
import pyarrow.compute as pc

from processing import schema as S
from processing.config import PipelineConfig
from processing.stage import MARKERS, StageMarkers, fingerprint, merge_stats, run_shards
from processing.storage import RunRoot
from synthesis.stage import list_shards
from synthesis.tasks.build import build_examples, cap_and_split, cap_thresholds, item_names
from synthesis.tasks.card import dataset_card, split_sizes, split_summary
from synthesis.tasks.export import write_exports
from synthesis.tasks.leakage import NgramIndex
from synthesis.tasks.splits import test_users
from synthesis.tasks.tokens import load_tokenizer

log = logging.getLogger(__name__)
WORK = "sft/_work"
INDEX = f"{WORK}/leakage_index.npz"
PLAN = f"{WORK}/plan.json"
STEPS = ("build-sft-examples", "build-sft-split")


def _read(root: RunRoot, rel: str, schema: pa.Schema) -> pa.Table:
    return root.read_parquet(rel, schema=schema) if root.exists(rel) else schema.empty_table()


def _platform_items(root: RunRoot, shards: list[str]) -> dict[str, dict[str, str]]:
    """Per platform with reviews, item id -> name over every shard (item selection draws negatives here)."""
    out: dict[str, dict[str, str]] = {}
    for shard in shards:
        platform = shard.split("/")[0]
        if platform == S.AMAZON:
            events = root.read_parquet(f"events/{shard}.parquet", columns=[S.CONTEXT, S.META])
            out.setdefault(platform, {}).update(item_names(events))
    return {p: dict(sorted(items.items())) for p, items in out.items()}


class _BuildShard:
    """Build one shard's examples (a picklable callable for Ray Data)."""

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg

    def __call__(self, task: dict) -> dict:
        cfg, shard = self.cfg, task["shard"]
        root = RunRoot(cfg.run_root, cfg.storage)
        index = NgramIndex.from_bytes(root.read_bytes(INDEX)) if root.exists(INDEX) else None
        items = root.read_json(f"{WORK}/items.json").get(shard.split("/")[0], {})
        result = build_examples(
            root.read_parquet(f"events/{shard}.parquet", schema=S.EVENT_SCHEMA),
            _read(root, f"annotations/tags/{shard}.parquet", S.ANNOTATION_SCHEMA),
            _read(root, f"annotations/user/{shard}.parquet", S.ANNOTATION_SCHEMA),
            _read(root, f"annotations/post/{shard}.parquet", S.ANNOTATION_SCHEMA),
            _read(root, f"judgements/{shard}.parquet", S.JUDGEMENT_SCHEMA),
            cfg.sft, load_tokenizer(cfg.sft.tokenizer), index, items)
        root.write_parquet(f"{WORK}/examples/{shard}.parquet", result.examples)
        root.write_parquet(f"sft/rejects/{shard}.parquet", result.rejects)
        return result.stats


class _SplitShard:
    """Apply the caps and the split plan to one shard's examples (a picklable callable for Ray Data)."""

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg

    def __call__(self, task: dict) -> dict:
        cfg, shard = self.cfg, task["shard"]
        root = RunRoot(cfg.run_root, cfg.storage)
        plan = root.read_json(PLAN)
        held_out = {u for users in plan["test_users"].values() for u in users}
        examples = root.read_parquet(f"{WORK}/examples/{shard}.parquet", schema=S.SFT_SCHEMA)
        kept, capped = cap_and_split(examples, plan["thresholds"], held_out, cfg.sft)
        for split in (S.TRAIN, S.TEST):
            part = kept.filter(pc.equal(kept[S.SPLIT], split))
            root.write_parquet(f"sft/{split}/{shard}.parquet", part)
        return {"capped": {shard.split("/")[0]: capped}}


def _plan(root: RunRoot, cfg: PipelineConfig, shards: list[str]) -> dict:
    keys = pa.concat_tables([
        root.read_parquet(f"{WORK}/examples/{s}.parquet", columns=[S.PLATFORM, S.TASK, S.USER_ID, S.RANK])
        for s in shards]) if shards else pa.table({S.PLATFORM: [], S.TASK: [], S.USER_ID: [], S.RANK: []})
    users: dict[str, list[str]] = {}
    for platform, user in set(zip(keys[S.PLATFORM].to_pylist(), keys[S.USER_ID].to_pylist())):
        users.setdefault(platform, []).append(user)
    held = test_users(users, cfg.sft.split.test_fraction, cfg.sft.seed) if cfg.sft.split.mode == "user" else {}
    return {"thresholds": cap_thresholds(keys, cfg.sft), "test_users": held}


def run_build_sft(cfg: PipelineConfig, use_ray: bool = True, restart: bool = False) -> dict:
    """Build sft/ from the curated events and the synthesis outputs of a run root; return the stage stats."""
    root = RunRoot(cfg.run_root, cfg.storage)
    if restart:
        root.delete("sft")
        for step in STEPS:
            root.delete(f"{MARKERS}/{step}")
    shards = list_shards(root, list(cfg.synthesis.platforms))
    if not shards:
        raise FileNotFoundError(f"no curated events under {root.uri_of('events')}: run `humanllm curate` first")
    StageMarkers(root, STEPS[0]).check_config(fingerprint(cfg.sft.model_dump(mode="json")))
    load_tokenizer(cfg.sft.tokenizer)  # a bad tokenizer fails here, before any worker starts
    if not root.exists(f"{WORK}/items.json"):
        root.write_json(f"{WORK}/items.json", _platform_items(root, shards))
    if not root.exists(INDEX):
        index = NgramIndex.build(cfg.sft.leakage.benchmarks, cfg.sft.leakage.ngram)
        if not index.files:
            log.warning("leakage check off: no benchmark file matches %s", cfg.sft.leakage.benchmarks)
        root.write_bytes(INDEX, index.to_bytes())
    tasks = [{"shard": s} for s in shards]
    stats: dict = {}
    for s in run_shards(root, STEPS[0], tasks, _BuildShard(cfg), use_ray=use_ray).values():
        merge_stats(stats, s)
    if not root.exists(PLAN):
        root.write_json(PLAN, _plan(root, cfg, shards))
    for s in run_shards(root, STEPS[1], tasks, _SplitShard(cfg), use_ray=use_ray).values():
        merge_stats(stats, s)
    index = NgramIndex.from_bytes(root.read_bytes(INDEX))
    stats["leakage"] = {"benchmark_files": len(index.files), "ngrams": int(len(index.hashes)), "n": index.n}
    stats["splits"] = split_summary(root)
    stats["exports"] = write_exports(root)
    stats["config"] = cfg.sft.model_dump(mode="json")
    root.write_json("sft/stats.json", stats)
    root.write_bytes("sft/README.md", dataset_card(stats).encode())
    log.info("SFT dataset: %s (card: %s)\n%s", root.uri_of("sft"), root.uri_of("sft/README.md"),
             "\n".join(split_sizes(stats)))
    return stats
