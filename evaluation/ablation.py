"""The person ablation, a cheap test of the paper's core idea (B = f(P, E)): the same SFT on
behaviour-prediction examples with and without the person part of the prompt (persona, profile, past
posts, style; `sft.person_context`), trained the same way, compared by the held-out loss of the
assistant tokens on the test split (users never seen in training), before and after training.

Each arm is a run root under `ablation.output_dir` (local or s3://) that reads the curated events and
the synthesis outputs of the main run root (`sft.inputs`), builds its own sft/ and trains on Ray Train
with `ablation.train` over the main `train` settings. Both arms hold the same example ids and targets;
only prompts differ.
"""
from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from core.layout import RunLayout
from train.settings import TrainConfig

if TYPE_CHECKING:  # the composed config imports every stage's settings
    from ray_jobs.config import PipelineConfig

log = logging.getLogger(__name__)
ARMS = {"with_person": True, "without_person": False}
def arm_config(cfg: PipelineConfig, layout: RunLayout, arm: str) -> PipelineConfig:
    """The main config re-rooted at the arm's folder, with its person switch and the ablation's training."""
    train = TrainConfig.model_validate({**cfg.train.model_dump(), **cfg.ablation.train, "name": f"ablation_{arm}",
                                        "data": None, "output_dir": None, "storage_path": None})
    sft = cfg.sft.model_copy(update={"person_context": ARMS[arm], "inputs": layout.inputs.uri_of()})
    return cfg.model_copy(update={"run_root": layout.ablation_arm(arm), "sft": sft, "train": train})


def eval_losses(metrics: str) -> list[tuple[int, float]]:
    """(step, held-out loss) of every evaluation in a training run's metrics.jsonl (its text)."""
    rows = [json.loads(line) for line in metrics.splitlines() if line.strip()]
    return [(int(r["step"]), float(r["eval_loss"])) for r in rows if r.get("eval_loss") is not None]


def run(cfg: PipelineConfig, layout: RunLayout | None = None, *, use_ray: bool = True, restart: bool = False) -> dict:
    """Build and train both arms; write results.json and README.md under the ablation folder."""
    from sft.stage import run as build_sft
    from train.launcher import run_training

    layout = layout or cfg.layout()
    if not use_ray:
        raise ValueError("the person ablation trains on Ray Train: drop --no-ray")
    out = layout.ablation_root()
    if restart:
        for name in (*ARMS, RunLayout.ABLATION_RESULTS, RunLayout.ABLATION_CARD):
            out.delete(name)
    results: dict[str, dict] = {}
    for arm in ARMS:
        acfg = arm_config(cfg, layout, arm)
        alayout = acfg.layout()
        stats = build_sft(acfg, alayout, use_ray=True)
        run_training(acfg, alayout)
        losses = eval_losses(alayout.at(alayout.model_dir()).read_bytes(RunLayout.TRAIN_METRICS).decode())
        if not losses:
            raise RuntimeError(f"{alayout.train_metrics()} has no held-out loss: set train.eval_examples")
        splits = stats.get("splits", {})
        results[arm] = {"train_examples": splits.get("train", {}).get("examples"),
                        "test_examples": splits.get("test", {}).get("examples"),
                        "mean_tokens": splits.get("train", {}).get("tokens", {}).get("mean"),
                        "eval_loss": losses, "before": losses[0][1], "after": losses[-1][1]}
        log.info("ablation %s: held-out loss %.4f -> %.4f", arm, losses[0][1], losses[-1][1])
    w, wo = results["with_person"], results["without_person"]
    if (w["train_examples"], w["test_examples"]) != (wo["train_examples"], wo["test_examples"]):
        log.warning("the arms hold different example counts (%s vs %s): the token filters differ",
                    (w["train_examples"], w["test_examples"]), (wo["train_examples"], wo["test_examples"]))
    summary = {"arms": results, "train": cfg.ablation.train,
               "gain_from_person_before": wo["before"] - w["before"], "gain_from_person_after": wo["after"] - w["after"]}
    out.write_bytes(RunLayout.ABLATION_RESULTS, (json.dumps(summary, indent=2) + "\n").encode())
    out.write_bytes(RunLayout.ABLATION_CARD, ablation_markdown(summary).encode())
    log.info("person ablation:\n%s", ablation_markdown(summary))
    return summary


def ablation_markdown(summary: dict) -> str:
    """The ablation's result as a Markdown table (also shown in the evaluation report)."""
    lines = ["| arm | train examples | test examples | mean tokens per example | held-out loss before | after |",
             "|---|---|---|---|---|---|"]
    for arm, r in summary["arms"].items():
        lines.append(f"| {arm} | {r['train_examples']} | {r['test_examples']} | {r['mean_tokens']} | "
                     f"{r['before']:.4f} | {r['after']:.4f} |")
    lines += ["", f"Loss lower with the person part: {summary['gain_from_person_before']:+.4f} before training, "
                  f"{summary['gain_from_person_after']:+.4f} after (positive: the person part helps predict the behaviour)."]
    return "\n".join(lines) + "\n"
