"""Shared edge code of the entry points: the console, config loading, Ray start-up and shutdown."""
from __future__ import annotations

import argparse
import logging
import os
from typing import Callable

from core import console
from core.config import ConfigError
from core.layout import RunLayout
from ray_jobs.config import load_config, PipelineConfig

log = logging.getLogger("humanllm")
_started_ray = False  # this process started (or joined) Ray, so it shuts it down before its streams go back
_runs: dict[str, RunLayout] = {}  # the run roots of this command, whose logs are uploaded when it ends


def setup_logging(level: str = "INFO") -> None:
    """Terminal logging before a run root is known (see core.console)."""
    console.setup_console()


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


def start_run(cfg: PipelineConfig, verbose: bool, use_ray: bool = True) -> None:
    """Send this run's library logs to its log folder, then start Ray (unless `use_ray` is off)."""
    layout = cfg.layout()
    _runs[layout.run_root] = layout
    console.setup_console(layout.local_logs_dir(), verbose)
    if use_ray:
        init_ray(cfg, verbose)


def init_ray(cfg: PipelineConfig, verbose: bool = False) -> None:
    """Start an embedded local cluster (address: local) or join one (auto / ray://...); no-op if connected.

    Worker output is streamed to the driver, whose stdout and stderr are the run's log file unless
    `verbose` (core.console); Ray Data's progress tables give way to the console's bars.
    """
    global _started_ray
    import ray

    if ray.is_initialized():
        return
    logging_config = ray.LoggingConfig(encoding="TEXT", log_level="INFO")  # the workers' root logger
    if cfg.ray.address == "local":
        # Workers of an embedded cluster import the project from this checkout.
        ray.init(address="local", num_cpus=cfg.ray.num_cpus, include_dashboard=False,
                 object_store_memory=cfg.ray.object_store_memory, logging_config=logging_config,
                 runtime_env={"env_vars": {"PYTHONPATH": os.getcwd()}})
    else:  # under `ray job submit --working-dir .` the job's runtime env already ships the code
        ray.init(address=cfg.ray.address, logging_config=logging_config)
    _started_ray = True
    console.reclaim_root()  # Ray's logging config added its own handler to the driver's root logger
    if not verbose:
        console.quiet_ray_data()
    log.info("Ray: %d CPUs, %d GPUs", ray.cluster_resources().get("CPU", 0), ray.cluster_resources().get("GPU", 0))


def shutdown_ray() -> None:
    """Stop the Ray this process started, while its output still goes to the log file."""
    global _started_ray
    if _started_ray:
        import ray

        ray.shutdown()
        _started_ray = False


# Per stage module: its name in the summary, and (rows in, rows out, outputs) from its stats.
def _sum(values) -> int:
    return int(sum(values))


def _curate_rows(layout: RunLayout, s: dict) -> tuple:
    platforms = s.get("platforms", {}).values()
    return (_sum(p.get("read", 0) for p in platforms), _sum(p.get("kept", 0) for p in platforms),
            [layout.root.uri_of(layout.events()), layout.root.uri_of(layout.users())])


def _synthesis_rows(layout: RunLayout, s: dict) -> tuple:
    kinds = s.get("kinds", {}).values()
    return (_sum(k["requests"] for k in kinds), _sum(k.get("accepted", 0) for k in kinds),
            [layout.root.uri_of(layout.annotations()), layout.root.uri_of(layout.judgements())])


def _sft_rows(layout: RunLayout, s: dict) -> tuple:
    splits = s.get("splits", {})
    out = _sum(v.get("examples", 0) for v in splits.values() if isinstance(v, dict))
    return None, out or None, [layout.root.uri_of(layout.SFT)]


def _train_rows(layout: RunLayout, s: dict) -> tuple:
    return None, None, [layout.tuned_model(), layout.merged_model()]


def _evaluate_rows(layout: RunLayout, s: dict) -> tuple:
    scored = (b.get("scored", 0) for b in s.get("benchmarks", {}).values())  # {"skipped": why} scores none
    items = _sum(scored) + s.get("in_domain_examples", 0)
    return items, None, [layout.eval_root.uri_of(layout.EVAL_REPORT)]


STAGES: dict[str, tuple[str, Callable[[RunLayout, dict], tuple]]] = {
    "processing.curate_stage": ("curate", _curate_rows),
    "synthesis.stage": ("synthesize", _synthesis_rows),
    "sft.stage": ("build-sft", _sft_rows),
    "ray_jobs.train": ("train", _train_rows),
    "evaluation.stage": ("evaluate", _evaluate_rows),
    "evaluation.ablation": ("ablate-person", lambda layout, s: (None, None, [layout.ablation_dir()])),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags every stage takes."""
    p.add_argument("--config", required=True, help="pipeline YAML (see configs/local.yaml)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. run_root=s3://b/run")
    p.add_argument("--restart", action="store_true", help="discard this stage's outputs and markers first")
    p.add_argument("--no-ray", action="store_true", help="run in this process without Ray (debugging; not for training)")
    p.add_argument("--verbose", action="store_true", help="Ray, Ray Data, vLLM and DeepSpeed logs on the terminal "
                   "too (by default they go to <run_root>/logs/driver.log)")


def run_stage(args: argparse.Namespace, stage: Callable[..., dict]) -> dict:
    """Load the config (with --set overrides), start Ray unless --no-ray, run
    `stage(cfg, layout, use_ray=..., restart=...)` (every stage's contract) between a start and an end
    line, and add its row to the summary table."""
    cfg = load(args.config, args.set)
    layout = cfg.layout()
    start_run(cfg, args.verbose, use_ray=not args.no_ray)
    name, rows = STAGES.get(stage.__module__, (stage.__module__, lambda layout, s: (None, None, [])))
    with console.stage(name) as record:
        stats = stage(cfg, layout, use_ray=not args.no_ray, restart=args.restart)
        record.rows_in, record.rows_out, outputs = rows(layout, stats)
        record.output = " ".join(outputs)
    return stats


def run_main(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command with the console: errors shown on the terminal (a config or input error as one
    line, anything else with its traceback), Ray stopped, the summary table of the stages run."""
    console.setup_console(verbose=getattr(args, "verbose", False))
    try:
        return run(args)
    except (ConfigError, FileNotFoundError) as exc:
        log.error("humanllm: error: %s", exc)
        return 2
    except Exception as exc:  # noqa: BLE001 - shown with its traceback, and the exit status says so
        console.show_exception(exc)
        return 1
    finally:
        shutdown_ray()
        done = console.stages()
        if done:
            where = [layout.driver_log() for layout in _runs.values()]
            log.info("summary:\n%s", console.summary_table(done, where[0] if where else None))
        for layout in _runs.values():
            layout.upload_logs()
        _runs.clear()
        console.close_console()


def entry_point(doc: str | None, add_arguments: Callable[[argparse.ArgumentParser], None],
                run: Callable[[argparse.Namespace], int], argv: list[str] | None) -> int:
    """The `main` of a ray_jobs script: parse arguments, run with the console."""
    p = argparse.ArgumentParser(description=doc)
    add_arguments(p)
    return run_main(run, p.parse_args(argv))
