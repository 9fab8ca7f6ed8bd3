"""`humanllm serve --config C [--model merged|tuned|base|PATH]`: the tuned model as a Ray Serve
application on this machine's embedded Ray or on a cluster (`ray.address: auto`), an OpenAI-compatible
`/v1/chat/completions` plus `/v1/simulate` and `/v1/people` (simulate.service), listening on
`serve.host:serve.port` until interrupted (or, with --detach, left running on the cluster)."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from ray_jobs.common import entry_point, load, start_run

log = logging.getLogger("humanllm")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="pipeline YAML: its run root holds the people and the models")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. serve.port=8001")
    p.add_argument("--model", help="merged, tuned, base, or a model folder / s3:// / hub id (default: serve.model)")
    p.add_argument("--detach", action="store_true", help="return once the service is up and leave it running "
                   "(on a cluster; `serve shutdown` or `serve.delete('humanllm-serve')` stops it)")
    p.add_argument("--verbose", action="store_true", help="Ray, Serve and vLLM logs on the terminal too")


def model_path(cfg, name: str) -> str:
    """`merged`, `tuned` or `base` as the run's model paths; anything else as given."""
    from evaluation.stage import model_paths

    return model_paths(cfg, cfg.layout()).get(name, name)


def run(args: argparse.Namespace) -> int:
    from ray import serve

    from simulate.service import APP_NAME, build_app

    cfg = load(args.config, (args.set or []) + ([f"serve.model={args.model}"] if args.model else []))
    start_run(cfg, args.verbose)
    s = cfg.serve
    path = model_path(cfg, s.model)
    serve.start(http_options={"host": s.host, "port": s.port})
    log.info("starting the service: %s (%s) on http://%s:%d", s.model, path, s.host, s.port)
    serve.run(build_app(cfg, path), name=APP_NAME, route_prefix="/")
    base = f"http://{s.host}:{s.port}"
    log.info("serving %s: %s/v1/chat/completions (OpenAI), %s/v1/simulate, %s/v1/people", s.model, base, base, base)
    if args.detach:
        return 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("stopping the service")
    serve.delete(APP_NAME)
    serve.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    return entry_point(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
