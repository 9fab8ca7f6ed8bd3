"""`humanllm simulate --config C --task T --people N|all [--platform P] [--situation S | --situations FILE]
[--out URI]`: the simulate service's requests in batch over many people of the run, through the serve
engine (vLLM on Ray Data with `serve.model` resolved), written as Parquet under <run_root>/simulate/<task>/
(or --out): answers.parquet, parts/ (the resume state), stats.json. A rerun sends only the requests
without an answer yet; --restart discards the folder first (simulate.batch)."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import get_args

from core import console
from ray_jobs.common import add_arguments as common_arguments, entry_point, load, start_run

log = logging.getLogger("humanllm")


def _people(value: str) -> int | None:
    if value == "all":
        return None
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or `all`, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 person, got {n}")
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    from llm.settings import EngineBackend
    from sft.registry import ALL
    from simulate.tasks import TASKS

    common_arguments(p)
    p.add_argument("--task", required=True, choices=TASKS, help="the simulate task (as POST /v1/simulate)")
    p.add_argument("--people", required=True, type=_people, metavar="N|all",
                   help="the first N people (by user id) whose data supports the task, or all of them")
    p.add_argument("--platform", choices=ALL, help="only people of this platform")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--situation", help="the situation of every request (comment: the post replied to, "
                       "rate: the item, think: the situation, explain: a past post, next_post: the topic)")
    where.add_argument("--situations", metavar="FILE", help="JSONL or Parquet (local or s3://) of {user_id, "
                       "situation?, candidates?}: the people to ask and their situations (choose: candidates)")
    p.add_argument("--out", metavar="URI", help="output folder (default <run_root>/simulate/<task>)")
    p.add_argument("--model", help="merged, tuned, base, or a model folder / s3:// / hub id (default: serve.model)")
    p.add_argument("--backend", choices=get_args(EngineBackend),
                   help="engine backend instead of serve.engine's vllm (table: set serve.engine.table for a dry "
                        "run; transformers where vLLM is absent; openai with serve.engine.url)")


def run(args: argparse.Namespace) -> int:
    from simulate.batch import read_situations, run as simulate, serve_engine

    cfg = load(args.config, args.set)
    layout = cfg.layout()
    start_run(cfg, args.verbose, use_ray=not args.no_ray)
    engine = serve_engine(cfg, args.model)
    if args.backend:
        engine = engine.model_copy(update={"backend": args.backend})
    situations = read_situations(args.situations, cfg.storage) if args.situations else None
    with console.stage(f"simulate {args.task}") as record:
        stats = simulate(cfg, args.task, people=args.people, platform=args.platform, situation=args.situation,
                         situations=situations, out=args.out, engine=engine, use_ray=not args.no_ray,
                         restart=args.restart, layout=layout)
        record.rows_in, record.rows_out, record.output = stats["requests"], stats["answered"], stats["output"]
    return 0 if stats["complete"] else 1


def main(argv: list[str] | None = None) -> int:
    return entry_point(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
