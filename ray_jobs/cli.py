"""The `humanllm` command: one subcommand per stage, and `pipeline` to run them all in order."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from ray_jobs import ablate_person, build_sft, curate, evaluate, plan, serve, simulate, submit, synthesize, train, train_quality
from ray_jobs.common import add_arguments, run_main


def _sample(args: argparse.Namespace) -> int:
    from demo.sample_data import write_sample

    manifest = write_sample(args.out, seed=args.seed, users_per_platform=args.users)
    logging.getLogger("humanllm").info("wrote %d records in %d files under %s", sum(manifest.values()), len(manifest), args.out)
    return 0


PIPELINE = {"curate": curate.run, "synthesize": synthesize.run, "build-sft": build_sft.run, "train": train.run,
            "evaluate": evaluate.run}


def _pipeline(args: argparse.Namespace) -> int:
    """Every stage in order (curate, synthesis, the SFT dataset, training + merge, evaluation), or the
    ones named by --stages; the first failure stops it."""
    for name in submit.parse_stages(args.stages) or list(PIPELINE):
        status = PIPELINE[name](args)
        if status:
            return status
    return 0


def _distill(args: argparse.Namespace) -> int:
    from processing.quality import QualityDataError
    from ray_jobs.common import load
    from ray_jobs.train_quality import format_report
    from synthesis.distill import distill

    log = logging.getLogger("humanllm")
    try:
        report = distill(load(args.config, args.set))
    except QualityDataError as exc:
        log.error("%s", exc)
        return 2
    log.info("held-out metrics:\n%s", format_report(report))
    log.info("pre-filter later runs with curate.quality.models: %s", report["curate_quality_models"])
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="humanllm", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    # Stage commands: --config, --set, --restart, --no-ray (common.add_arguments).
    stages = [("curate", "raw dumps -> cleaned, filtered per-user timelines (events/, users/, rejects/)", curate.run),
              ("synthesize", "LLM annotations of curated events: tags, user level, post level, judge", synthesize.run),
              ("build-sft", "SFT tasks from the accepted annotations: caps, token limit, split, leakage check", build_sft.run),
              ("train", "SFT on Ray Train + DeepSpeed, then the merge with the base model", train.run),
              ("evaluate", "base vs tuned vs merged: held-out users' tasks, social-intelligence benchmarks, report.html",
               evaluate.run),
              ("ablate-person", "the same SFT with and without the person part: held-out loss on unseen users",
               ablate_person.run),
              ("pipeline", "run every stage in order on one config", _pipeline)]
    for name, help_text, func in stages:
        cmd = sub.add_parser(name, help=help_text)
        add_arguments(cmd)
        cmd.set_defaults(func=func)
        if name == "pipeline":
            cmd.add_argument("--stages", help=f"comma-separated subset of {','.join(PIPELINE)} (default: all)")
    # Commands with their own flags: (name, help, add_arguments, func).
    tools = [("submit", "run the pipeline as one job on a Ray cluster (Job Submission API), secrets forwarded from "
              "this environment", submit.add_arguments, submit.run),
             ("train-quality", "train fastText quality classifiers from labelled Parquet (text, label)",
              train_quality.add_arguments, train_quality.run),
             ("distill-quality", "train the fastText quality classifier from the LLM quality tags",
              train_quality.add_arguments, _distill),
             ("merge", "LM-Cocktail weighted average of a tuned model and its base", train.add_merge_arguments,
              train.merge),
             ("serve", "the tuned model as a service: OpenAI /v1/chat/completions, /v1/simulate (what a given "
              "person would write, choose, rate or think), /v1/people", serve.add_arguments, serve.run),
             ("simulate", "the simulate requests in batch over many people, through the serve engine: Parquet "
              "under <run_root>/simulate/<task>/, resumable", simulate.add_arguments, simulate.run),
             ("plan", "capacity plan for N users: nodes, hours, GPU-hours and cost per stage", plan.add_arguments,
              plan.run)]
    for name, help_text, add, func in tools:
        cmd = sub.add_parser(name, help=help_text)
        add(cmd)
        cmd.set_defaults(func=func)
    s = sub.add_parser("sample", help="write the bundled synthetic sample (native raw formats of all platforms)")
    s.add_argument("out")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--users", type=int, default=30)
    s.set_defaults(func=_sample)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "config", None) and args.func is not submit.run:
        # Absolute before any stage runs: a job's working directory can change under the driver once it
        # joins the cluster (its runtime env is unpacked elsewhere), and later stages reread the config.
        args.config = os.path.abspath(args.config)
    return run_main(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
