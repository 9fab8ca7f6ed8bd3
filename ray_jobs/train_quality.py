"""Train the fastText quality classifier(s): `python -m ray_jobs.train_quality --config configs/local.yaml`
(also `humanllm train-quality ...`). Reads `train_quality.data` (Parquet: text, label[, platform]) and
writes quality-<platform|shared>.bin and report.json under `train_quality.output_dir`. Runs in this
process: training is single-threaded and deterministic, no Ray cluster is started."""
from __future__ import annotations

import argparse
import logging
import sys

from ray_jobs.common import load, setup_logging

log = logging.getLogger("humanllm")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="pipeline YAML with a `train_quality:` section")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key, e.g. train_quality.data=s3://b/labels/")


def format_report(report: dict) -> str:
    """The per-model metrics as a small text table: model, label, precision, recall, f1, n."""
    head = f"{'model':<12} {'label':<12} {'precision':>9} {'recall':>7} {'f1':>7} {'n':>7}"
    lines = [head, "-" * len(head)]
    for name, r in report["models"].items():
        rows = [(lab, m["precision"], m["recall"], m["f1"], m["n"]) for lab, m in r["per_label"].items()]
        rows.append(("(micro)", r["micro"]["precision"], r["micro"]["recall"], r["micro"]["f1"], r["n_test"]))
        for lab, p, rc, f1, n in rows:
            lines.append(f"{name:<12} {lab:<12} {p:>9.3f} {rc:>7.3f} {f1:>7.3f} {n:>7d}")
        lines.append(f"{name:<12} model {r['model']} ({r['model_bytes']:,} bytes, {r['n_train']} train rows, "
                     f"{r['train_seconds']:.1f}s)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from processing.quality import QualityDataError, train_from_config

    cfg = load(args.config, args.set)
    try:
        report = train_from_config(cfg)
    except QualityDataError as exc:
        log.error("%s", exc)
        return 2
    log.info("held-out metrics:\n%s", format_report(report))
    log.info("use them with curate.quality.models: %s", report["curate_quality_models"])
    return 0


def main(argv: list[str] | None = None) -> int:
    from core.config import ConfigError

    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    setup_logging()
    try:
        return run(p.parse_args(argv))
    except (ConfigError, FileNotFoundError) as exc:  # as `humanllm` reports them
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
