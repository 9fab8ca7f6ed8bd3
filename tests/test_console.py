"""The console a person reads: a stage run through the CLI prints its own story (start and end
lines, progress, the funnel, the summary table) and nothing of Ray's; library logs land in the run's
log file; a real failure still shows its error and exits non-zero."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core import console

REPO = Path(__file__).resolve().parent.parent
NOISE = ("job_id=", "worker_id=", "pid=", "Traceback", "logging_progress", "Running Dataset", "(raylet)")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A four-users-per-platform sample and a config that curates it."""
    from demo.sample_data import write_sample

    base = tmp_path_factory.mktemp("console")
    write_sample(base / "sample", seed=0, users_per_platform=4)
    cfg = yaml.safe_load((REPO / "configs" / "local.yaml").read_text())
    for spec in cfg["curate"]["inputs"]:
        spec["path"] = spec["path"].replace("sample_data", str(base / "sample"), 1)
    cfg["ray"]["num_cpus"] = 2
    (base / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    return base


def humanllm(*args: str) -> subprocess.CompletedProcess:
    """The CLI in a child process, its stdout and stderr together as a terminal would show them."""
    return subprocess.run([sys.executable, "-m", "ray_jobs.cli", *args], cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)


@pytest.mark.slow
def test_a_stage_on_ray_prints_its_story_and_nothing_of_rays(tiny):
    run_root = tiny / "run"
    proc = humanllm("curate", "--config", str(tiny / "cfg.yaml"), "--set", f"run_root={run_root}")
    out = proc.stdout
    assert proc.returncode == 0, out
    lines = out.splitlines()
    assert len(lines) < 90, out
    assert [n for n in NOISE if n in out] == [], out
    for expected in ("=== curate: start", "curate-read (Ray Data): ", "curate funnel", "=== curate: done in",
                     "summary:", str(run_root / "logs" / "driver.log")):
        assert expected in out, (expected, out)
    # The summary row: rows read in, events kept out, where they are.
    row = next(line for line in lines if line.startswith("curate "))
    _, _, rows_in, rows_out, *where = row.split()
    assert int(rows_in) > int(rows_out) > 0 and where[0] == f"{run_root}/events"
    # Ray's own lines and the workers' log lines went to the run's log file.
    log = (run_root / "logs" / "driver.log").read_text()
    assert "Started a local Ray instance" in log
    assert "kept for timelines" in log and "kept for timelines" not in out  # per-file lines of the workers


def test_a_missing_input_is_an_error_on_the_terminal(tiny, tmp_path):
    cfg = yaml.safe_load((tiny / "cfg.yaml").read_text())
    cfg["curate"]["inputs"].append({"path": str(tmp_path / "nowhere" / "*.zst"), "format": "reddit_pushshift"})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    proc = humanllm("curate", "--config", str(tmp_path / "cfg.yaml"), "--set", f"run_root={tmp_path / 'run'}",
                    "--no-ray")
    assert proc.returncode == 2
    assert f"humanllm: error: curate.inputs: `{tmp_path / 'nowhere' / '*.zst'}` matches no file" in proc.stdout


def test_a_real_failure_shows_its_traceback_and_exits_non_zero(tiny, tmp_path):
    """The stage fails after the terminal was handed to the log file: its traceback still reaches
    the terminal (and the log)."""
    run_root = tmp_path / "run"
    args = ("curate", "--config", str(tiny / "cfg.yaml"), "--set", f"run_root={run_root}", "--no-ray")
    assert humanllm(*args).returncode == 0
    proc = humanllm(*args, "--set", "curate.num_user_buckets=2")  # another config on the same run root
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stdout
    assert "RuntimeError" in proc.stdout and "rerun with --restart" in proc.stdout
    assert "=== curate: FAILED" in proc.stdout
    assert "rerun with --restart" in (run_root / "logs" / "driver.log").read_text()


def test_summary_table_and_progress_lines():
    rows = [console.StageRecord("curate", 83.0, 1374, 956, "runs/local/events/"),
            console.StageRecord("synthesize", 3725.0, 120, 97, "runs/local/annotations/"),
            console.StageRecord("train", 12.0, ok=False)]
    table = console.summary_table(rows, "runs/local/logs/driver.log").splitlines()
    assert table[0].split() == ["stage", "wall", "rows", "in", "rows", "out", "output"]
    assert table[1].split() == ["curate", "1m23s", "1374", "956", "runs/local/events/"]
    assert table[2].split() == ["synthesize", "1h02m", "120", "97", "runs/local/annotations/"]
    assert table[3].split() == ["train", "12s", "-", "-", "FAILED"]
    assert table[4].split() == ["total", "1h03m"]
    assert table[5] == "logs (Ray, Ray Data, vLLM, DeepSpeed): runs/local/logs/driver.log"
    bar = console._LogBar(200, "tags pass, round 1", "requests", interval=3600)
    bar.update(50)
    line = bar.line()
    assert line.startswith("tags pass, round 1: 50/200 requests (25%), ") and "requests/s" in line and "ETA" in line
    bar.t0 -= 3600  # an hour for 50 requests: the speed reads as time per request
    assert ", 1m12s/request, 1h00m, ETA 3h00m" in bar.line()


def test_summary_rows_of_every_stage_read_their_stats(tmp_path):
    """Each stage's summary row reads the stats that stage returns (an evaluation summary names skipped
    benchmarks with a reason and scored ones with counts)."""
    from core.layout import RunLayout
    from ray_jobs.common import STAGES

    layout = RunLayout(str(tmp_path))
    evaluation = {"benchmarks": {"tomi": {"loaded": 5994, "in_langs": 5994, "scored": 8},
                                 "hitom": {"skipped": "no folder"}}, "in_domain_examples": 12}
    assert STAGES["evaluation.stage"][1](layout, evaluation) == (20, None, [f"{tmp_path}/eval/report.html"])
    curate = {"platforms": {"reddit": {"read": 10, "kept": 4}, "amazon": {"read": 5, "kept": 1}}}
    assert STAGES["processing.curate_stage"][1](layout, curate)[:2] == (15, 5)
    synthesis = {"kinds": {"persona": {"requests": 3, "accepted": 2}, "tag_v1": {"requests": 4}}}
    assert STAGES["synthesis.stage"][1](layout, synthesis)[:2] == (7, 2)
    assert STAGES["sft.stage"][1](layout, {"splits": {"train": {"examples": 9}, "test": {"examples": 1}}})[1] == 10
    assert STAGES["ray_jobs.train"][1](layout, {})[2] == [f"{tmp_path}/model/tuned", f"{tmp_path}/model/merged"]
