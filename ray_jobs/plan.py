"""`humanllm plan --config C --users N`: how many nodes of which type, for how long and at what cost, to run
the pipeline for N users. The work per user comes from the stats of a sample run under C's run_root, and the
rates and prices from cluster/throughputs.yaml (core/plan.py does the arithmetic). Starts no Ray."""
from __future__ import annotations

import argparse
import json
import logging

from core.plan import DEFAULT_TABLE, PAPER_USERS, PlanSettings, format_plan, load_stats, load_table, parse_users, plan
from core.storage import resolve
from ray_jobs.common import load

log = logging.getLogger("humanllm")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="pipeline YAML whose run_root holds a sample run's stats")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. run_root=s3://b/sample")
    p.add_argument("--users", required=True, type=parse_users,
                   help=f"curated users to plan for: a number (282000, 282k, 1.5M) or `paper` ({PAPER_USERS:,}, "
                        "the secondary-source figure in PAPER.md)")
    p.add_argument("--hours-per-stage", type=float, default=24.0,
                   help="size node counts so that each stage ends within this wall time (default 24), up to "
                        "each node type's max_workers in the table")
    p.add_argument("--throughputs", default=DEFAULT_TABLE, help="throughput and price table (cluster/throughputs.yaml)")
    p.add_argument("--json", metavar="PATH", help="also write the plan as JSON (a local path or s3:// URI)")


def settings_from_config(cfg, pairs: list[tuple[str, str]]) -> PlanSettings:
    """The config's side of the plan; `pairs` are the sample's (platform, task) SFT keys, for their caps."""
    from evaluation.in_domain import ITEM_SELECTION

    syn, ev = cfg.synthesis, cfg.evaluate
    caps: dict[str, dict[str, int | None]] = {}
    for platform, task in pairs:
        caps.setdefault(platform, {})[task] = cfg.sft.cap(platform, task)
    judge = syn.judge.engine or syn.engine
    return PlanSettings(
        synth_platforms=tuple(syn.platforms), synth_max_users=syn.max_users, test_fraction=cfg.sft.split.test_fraction,
        caps=caps, epochs=float(cfg.train.epochs), eval_in_domain=ev.in_domain,
        eval_examples_per_task=ev.examples_per_task, eval_models=len(ev.models), eval_judge=ev.judge.enabled,
        eval_judge_pairs=len(ev.judge.pairs), eval_judge_max_tokens=ev.judge.max_tokens,
        eval_max_new_tokens=ev.max_new_tokens, judge_exempt_tasks=(ITEM_SELECTION,),
        models={"synthesize": syn.engine.model, "judge": judge.model, "train": cfg.train.model,
                "evaluate": cfg.train.model})


def run(args: argparse.Namespace) -> int:
    cfg = load(args.config, args.set)
    table = load_table(args.throughputs)
    stats = load_stats(cfg.layout())
    pairs = [(p, t) for split in ("train", "test")
             for p, tasks in stats.sft.get("splits", {}).get(split, {}).get("by_platform_task", {}).items() for t in tasks]
    result = plan(stats, settings_from_config(cfg, pairs), table, args.users, args.hours_per_stage)
    if cfg.train.max_steps:
        result["notes"].append(f"train.max_steps={cfg.train.max_steps} is set in the config; the plan trains "
                               f"train.epochs={cfg.train.epochs:g} epochs")
    log.info("%s", format_plan(result))
    if args.json:
        fs, path = resolve(args.json, cfg.storage)
        if "://" not in args.json:
            fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(path) as f:
            f.write((json.dumps(result, indent=2) + "\n").encode())
        log.info("plan written to %s", args.json)
    return 0
