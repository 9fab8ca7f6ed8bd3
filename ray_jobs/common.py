"""Shared edge code of the entry points: logging, config loading and Ray start-up."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable

from ray_jobs.config import PipelineConfig, load_config

log = logging.getLogger("humanllm")


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def parse_overrides(pairs: list[str] | None) -> dict:
    """`--set curate.num_user_buckets=4` pairs into a dict (values parsed as YAML scalars)."""
    import yaml

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def load(path: str, overrides: list[str] | None = None) -> PipelineConfig:
    return load_config(path, parse_overrides(overrides))


def init_ray(cfg: PipelineConfig) -> None:
    """Start an embedded local cluster (address: local) or join one (auto / ray://...); no-op if connected."""
    import ray

    if ray.is_initialized():
        return
    logging_config = ray.LoggingConfig(encoding="TEXT", log_level="INFO")
    if cfg.ray.address == "local":
        # Workers of an embedded cluster import the project from this checkout.
        ray.init(address="local", num_cpus=cfg.ray.num_cpus, include_dashboard=False,
                 object_store_memory=cfg.ray.object_store_memory, logging_config=logging_config,
                 runtime_env={"env_vars": {"PYTHONPATH": os.getcwd()}})
    else:  # under `ray job submit --working-dir .` the job's runtime env already ships the code
        ray.init(address=cfg.ray.address, logging_config=logging_config)
    # Ray's logging config adds its own handler to the driver's root logger: keep only that one.
    root = logging.getLogger()
    if len(root.handlers) > 1:
        root.removeHandler(root.handlers[0])
    log.info("Ray: %s", ray.cluster_resources())


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags every stage takes."""
    p.add_argument("--config", required=True, help="pipeline YAML (see configs/local.yaml)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. run_root=s3://b/run")
    p.add_argument("--restart", action="store_true", help="discard this stage's outputs and markers first")
    p.add_argument("--no-ray", action="store_true", help="run in this process without Ray (debugging; not for training)")


def run_stage(args: argparse.Namespace, stage: Callable[..., dict]) -> dict:
    """Load the config (with --set overrides), start Ray unless --no-ray, run
    `stage(cfg, layout, use_ray=..., restart=...)` (every stage's contract)."""
    cfg = load(args.config, args.set)
    if not args.no_ray:
        init_ray(cfg)
    return stage(cfg, cfg.layout(), use_ray=not args.no_ray, restart=args.restart)


def entry_point(doc: str | None, add_arguments: Callable[[argparse.ArgumentParser], None],
                run: Callable[[argparse.Namespace], int], argv: list[str] | None) -> int:
    """The `main` of a ray_jobs script: parse arguments, set up logging, run."""
    p = argparse.ArgumentParser(description=doc)
    add_arguments(p)
    setup_logging()
    return run(p.parse_args(argv))
