"""`humanllm plan`: the capacity planner against a hand computation (no Ray, no models).

The stats files below have the key layout the stages write (checked against a real run of
configs/local.yaml: stats.json of curate, synth/stats.json, sft/stats.json); only the numbers are small
and round. Every expected figure is computed by hand in the test, from the same numbers.
"""
from __future__ import annotations

import json
import math

import pytest
import yaml

from core.layout import RunLayout
from core.plan import PAPER_USERS, PlanInputError, PlanSettings, load_stats, load_table, parse_users, plan
from core.storage import RunRoot

CURATE = {
    "platforms": {
        "reddit": {"read": 900, "kept": 300, "users": 30, "pii": {"email": 1},
                   "rejected": {"rules": {"too_short": 500}, "timeline": {"min_history": 100}}},
        "twitter": {"read": 300, "kept": 100, "users": 10, "side": {"read": 100, "rejected": {}},
                    "rejected": {"rules": {"ad": 200}}},
    },
    "steps": {"read": {"rows": 1300, "bytes": 1, "seconds": 1.0}}, "dedup": {}, "files": {}, "file_errors": [],
    "decide": {}, "peak_rss_mb": {"curate-read": [270]}, "wall_seconds": 16.0, "accounting_errors": [],
}


def _pass(answers: int, prompt: int, completion: int, **finalised: int) -> dict:
    return {"rounds": 1, "answers": answers, "prompt_tokens": prompt, "completion_tokens": completion,
            "seconds": 10.0, "pii": {}, **finalised}


SYNTH = {
    "passes": {"tags": _pass(20, 10_000, 1_000, annotations=20, failures=0),
               "user": _pass(10, 50_000, 5_000, annotations=10, failures=0),
               "post": _pass(30, 30_000, 6_000, annotations=30, failures=0),
               "judge": _pass(25, 40_000, 2_500, judged=25, accepted=10)},
    "engine_starts": 2, "pii": {},
    "kinds": {"persona": {"requests": 10, "valid": 10, "judged": 10, "accepted": 4, "tokens": 1, "completion_tokens": 1,
                          "acceptance_rate": 0.4, "tokens_per_accepted": 1.0},
              "sqa": {"requests": 15, "valid": 15, "judged": 15, "accepted": 6, "tokens": 1, "completion_tokens": 1,
                      "acceptance_rate": 0.4, "tokens_per_accepted": 1.0},
              "tag_v1": {"requests": 20, "valid": 20, "accepted": 18, "tokens": 1, "completion_tokens": 1,
                         "acceptance_rate": 0.9, "tokens_per_accepted": 1.0}},
    "pass_summary": {p: {"requests": n, "answers": n, "rounds": 1, "prompt_tokens": 0, "completion_tokens": 0,
                         "seconds": 10.0, "tokens_per_s": None, "completion_tokens_per_s": None, "accepted": 0,
                         "acceptance_rate": None, "tokens_per_accepted": None}
                     for p, n in (("tags", 20), ("user", 10), ("post", 30), ("judge", 25))},
}


def _tokens(examples: int, total: int) -> dict:
    return {"examples": examples, "total": total, "mean": total / examples, "p50": 0, "p95": 0, "max": 0}


SFT = {
    "splits": {
        "train": {"examples": 46, "by_platform_task": {"reddit": {"task_a": 16, "item_selection": 24}, "twitter": {"task_a": 6}},
                  "users": {"reddit": 4, "twitter": 2}, "tokens": _tokens(46, 46_000), "target_tokens": _tokens(46, 9_200)},
        "test": {"examples": 12, "by_platform_task": {"reddit": {"task_a": 4, "item_selection": 6}, "twitter": {"task_a": 2}},
                 "users": {"reddit": 1, "twitter": 1}, "tokens": _tokens(12, 14_400), "target_tokens": _tokens(12, 3_600)},
        "users_in_both": 0},
    "leakage": {"benchmark_files": 0, "ngrams": 0, "n": 13}, "exports": {}, "config": {}, "leaked_from": {},
    "built": {"reddit": {"task_a": 20, "item_selection": 30}, "twitter": {"task_a": 8}}, "capped": {"reddit": 0, "twitter": 0},
    "rejected": {}, "skipped": {}, "seconds": {"build-sft-examples": 5.0, "build-sft-split": 0.1},
    "peak_rss_mb": {"build-sft-examples": [700.0]},
}

TABLE = {
    "node_types": {
        "head": {"instance": "h.large", "cpus": 8, "gpus": 0, "price_per_hour": 0.5, "max_workers": 1},
        "cpu_worker": {"instance": "c.8xl", "cpus": 32, "gpus": 0, "price_per_hour": 2.0, "max_workers": 10},
        "gpu_a": {"instance": "a.48xl", "cpus": 192, "gpus": 8, "gpu": "A", "price_per_hour": 50.0, "max_workers": 20},
        "gpu_b": {"instance": "b.12xl", "cpus": 48, "gpus": 4, "gpu": "B", "price_per_hour": 10.0, "max_workers": 4},
    },
    "stages": {
        "curate": {"node_type": "cpu_worker", "events_per_s_per_cpu": 100},
        "synthesize": {"node_type": "gpu_a", "engine": "writer"},
        "judge": {"node_type": "gpu_b", "engine": "judge"},
        "build-sft": {"node_type": "cpu_worker", "tokens_per_s_per_cpu": 10_000},
        "train": {"node_type": "gpu_a", "training": "trainer"},
        "evaluate": {"node_type": "gpu_b", "engine": "small"},
        "evaluate-judge": {"node_type": "gpu_b", "engine": "judge"},
    },
    "engines": {
        "writer": {"model": "org/Writer-70B", "gpu": "A", "tensor_parallel": 8,
                   "prompt_tokens_per_s_per_gpu": 2000, "output_tokens_per_s_per_gpu": 500},
        "judge": {"model": "org/Judge-72B", "gpu": "B", "tensor_parallel": 4,
                  "prompt_tokens_per_s_per_gpu": 800, "output_tokens_per_s_per_gpu": 200},
        "small": {"model": "org/Small-7B", "gpu": "B", "tensor_parallel": 1,
                  "prompt_tokens_per_s_per_gpu": 5000, "output_tokens_per_s_per_gpu": 1000},
    },
    "training": {"trainer": {"model": "org/Small-7B", "gpu": "A", "tokens_per_s_per_gpu": 4000,
                             "packing_efficiency": 0.9, "max_nodes": 8}},
}

SETTINGS = PlanSettings(synth_platforms=("reddit", "twitter"), synth_max_users=5, test_fraction=0.1,
                        caps={"reddit": {"task_a": None, "item_selection": 400_000}, "twitter": {"task_a": None}},
                        epochs=2.0, eval_examples_per_task=500, eval_models=3, eval_judge_pairs=2,
                        eval_judge_max_tokens=256, eval_max_new_tokens=512)
USERS, HOURS = 4_000_000, 4.0


def _write_run(root: RunRoot, skip: str | None = None) -> None:
    for rel, obj in ((RunLayout.STATS, CURATE), (RunLayout.synth_stats(), SYNTH), (RunLayout.sft_stats(), SFT)):
        if rel != skip:
            root.write_json(rel, obj)


@pytest.fixture()
def table_file(tmp_path):
    path = tmp_path / "throughputs.yaml"
    path.write_text(yaml.safe_dump(TABLE))
    return str(path)


def _sized(node_hours: float, max_nodes: int) -> tuple[int, float]:
    """nodes = ceil(node-hours / HOURS), capped; wall hours = node-hours / nodes (as the module docstring says)."""
    nodes = min(math.ceil(node_hours / HOURS), max_nodes)
    return nodes, node_hours / nodes


def test_plan_matches_hand_computation(tmp_path, table_file):
    root = RunRoot(str(tmp_path / "run"))
    _write_run(root)
    p = plan(load_stats(RunLayout(str(tmp_path / "run"))), SETTINGS, load_table(table_file), USERS, HOURS)
    rows = {r["stage"]: r for r in p["stages"]}

    # curate: (900 + 300 + 100 side) events read by 30 + 10 curated users; 100 events/s per vCPU, 32 vCPUs
    events = USERS * 1300 / 40                                   # 130M events
    node_h = events / 100 / 3600 / 32                            # 11.28 node-hours
    nodes, hours = _sized(node_h, 10)                            # 3 nodes, 3.76 h
    assert rows["curate"]["work"]["events"] == pytest.approx(130_000_000)
    assert (rows["curate"]["nodes"], rows["curate"]["hours"]) == (nodes, pytest.approx(hours))
    assert rows["curate"]["gpu_hours"] == 0
    assert rows["curate"]["cost"] == pytest.approx(node_h * 2.0)

    # synthesize: 5 annotated users per platform (max_users 5) = 10; writer passes tags + user + post
    scale = USERS / 10
    prompt, output = (10_000 + 50_000 + 30_000) * scale, (1_000 + 5_000 + 6_000) * scale   # 3.6e10, 4.8e9
    gpu_h = (prompt / 2000 + output / 500) / 3600                # 7,666.7 GPU-hours
    nodes, hours = _sized(gpu_h / 8, 20)                         # wants 240 nodes: capped at 20
    r = rows["synthesize"]
    assert r["work"]["requests"] == pytest.approx(60 * scale)
    assert r["gpu_hours"] == pytest.approx(gpu_h) and r["gpu_hours"] == pytest.approx(7666.67, rel=1e-4)
    assert (r["nodes"], r["hours"], r["capped"]) == (20, pytest.approx(hours), True)
    assert r["cost"] == pytest.approx(gpu_h / 8 * 50.0)

    # judge pass: 40,000 prompt + 2,500 output tokens in the sample, on 4-GPU nodes at 800 / 200 per GPU
    gpu_h = (40_000 * scale / 800 + 2_500 * scale / 200) / 3600  # 6,944.4 GPU-hours
    r = rows["judge"]
    assert r["gpu_hours"] == pytest.approx(gpu_h)
    assert (r["nodes"], r["hours"]) == (4, pytest.approx(gpu_h / 4 / 4))
    assert r["cost"] == pytest.approx(gpu_h / 4 * 10.0)

    # build-sft: per (platform, task), examples per SFT user x that platform's users x the share of
    # annotated users with examples, then the caps
    reddit_users, twitter_users = USERS * 30 / 40, USERS * 10 / 40
    reddit_a = (16 + 4) / 5 * reddit_users * min(1, 5 / 5)                   # 12M
    reddit_item = min((24 + 6) / 5 * reddit_users, 400_000)                   # capped at 400K
    twitter_a = (6 + 2) / 3 * twitter_users * min(1, 3 / 5)                   # 1.6M
    examples = reddit_a + reddit_item + twitter_a                             # 14M
    tokens = examples * 46_000 / 46                                           # 1,000 tokens per example
    node_h = tokens / 10_000 / 3600 / 32
    nodes, hours = _sized(node_h, 10)
    r = rows["build-sft"]
    assert r["work"]["examples"] == pytest.approx(14_000_000)
    assert (r["nodes"], r["hours"]) == (nodes, pytest.approx(hours))
    assert r["cost"] == pytest.approx(node_h * 2.0)

    # train: 90% of the examples, 2 epochs, packing efficiency 0.9, 4,000 tokens/s per GPU, at most 8 nodes
    train_tokens = examples * 0.9 * 1000 * 2 / 0.9
    gpu_h = train_tokens / 4000 / 3600                                        # 1,944.4 GPU-hours
    r = rows["train"]
    assert r["gpu_hours"] == pytest.approx(gpu_h)
    assert (r["nodes"], r["hours"], r["capped"]) == (8, pytest.approx(gpu_h / 8 / 8), True)
    assert r["cost"] == pytest.approx(gpu_h / 8 * 50.0)

    # evaluate: min(10% of each task, 500) held-out examples x 3 models; prompt = test tokens/example
    # (14,400 / 12 = 1,200) - target mean (300); output = the target mean (300 < max_new_tokens 512)
    gens = (500 + 500) * 3
    gpu_h = (gens * 900 / 5000 + gens * 300 / 1000) / 3600
    r = rows["evaluate"]
    assert r["gpu_hours"] == pytest.approx(gpu_h)
    assert (r["nodes"], r["hours"]) == (1, pytest.approx(gpu_h / 4))

    # evaluation judge: task_a only (item_selection is exact match): 3 pointwise + 2 pairs x 2 orders
    judged = 500
    requests = judged * (3 + 2 * 2)
    prompt = judged * (3 * (900 + 300 + 300) + 4 * (900 + 300 + 2 * 300))
    gpu_h = (prompt / 800 + requests * 256 / 200) / 3600
    r = rows["evaluate-judge"]
    assert r["work"]["requests"] == requests
    assert r["gpu_hours"] == pytest.approx(gpu_h)
    assert r["cost"] == pytest.approx(gpu_h / 4 * 10.0)

    # totals: stages run one after another; the head node is billed for the whole wall time
    stages = [rows[s] for s in ("curate", "synthesize", "judge", "build-sft", "train", "evaluate", "evaluate-judge")]
    wall = sum(s["hours"] for s in stages)
    assert rows["head"]["hours"] == pytest.approx(wall) and rows["head"]["cost"] == pytest.approx(wall * 0.5)
    assert p["totals"]["cost"] == pytest.approx(sum(s["cost"] for s in stages) + wall * 0.5)
    assert p["totals"]["gpu_hours"] == pytest.approx(sum(s["gpu_hours"] for s in stages))
    assert p["cluster"]["max_workers"] == {"cpu_worker": max(rows["curate"]["nodes"], rows["build-sft"]["nodes"]),
                                           "gpu_a": 20, "gpu_b": 4}
    assert any("reddit.item_selection" in n for n in p["notes"])


def test_cli_prints_table_and_writes_json(tmp_path, table_file, capsys):
    from ray_jobs.cli import main

    _write_run(RunRoot(str(tmp_path / "run")))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "run_root": str(tmp_path / "run"),
        "synthesis": {"platforms": ["reddit", "twitter"], "max_users": 5},
        "sft": {"caps": {"reddit": {"item_selection": 400_000}}, "split": {"test_fraction": 0.1}},
        "train": {"epochs": 2}}))
    out = tmp_path / "plan.json"
    assert main(["plan", "--config", str(cfg), "--users", "4M", "--hours-per-stage", "4",
                 "--throughputs", table_file, "--json", str(out)]) == 0
    text = capsys.readouterr().err  # the console logs to the terminal (stderr)
    assert "capacity plan for 4,000,000 users" in text and "gpu_a=20" in text and "capped" in text
    written = json.loads(out.read_text())
    expected = plan(load_stats(RunLayout(str(tmp_path / "run"))), SETTINGS, load_table(table_file), USERS, HOURS)
    assert [r["cost"] for r in written["stages"]] == pytest.approx([r["cost"] for r in expected["stages"]])


def test_missing_stats_file_says_which_stage_to_run(tmp_path, table_file, capsys):
    from ray_jobs.cli import main

    run = tmp_path / "run"
    _write_run(RunRoot(str(run)), skip=RunLayout.synth_stats())
    with pytest.raises(PlanInputError, match=r"no synth/stats.json under .*run the synthesize stage on a sample first"):
        load_stats(RunLayout(str(run)))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"run_root": str(run)}))
    assert main(["plan", "--config", str(cfg), "--users", "10", "--throughputs", table_file]) == 2
    assert "no synth/stats.json" in capsys.readouterr().err


def test_resumed_synthesis_stats_are_refused(tmp_path, table_file):
    resumed = json.loads(json.dumps(SYNTH))
    resumed["passes"]["post"] = _pass(0, 0, 0)
    root = RunRoot(str(tmp_path / "run"))
    _write_run(root)
    root.write_json(RunLayout.synth_stats(), resumed)
    with pytest.raises(PlanInputError, match="post pass sent no requests.*--restart"):
        plan(load_stats(RunLayout(str(tmp_path / "run"))), SETTINGS, load_table(table_file), 100)


def test_users_shorthands_and_shipped_table():
    assert parse_users("paper") == PAPER_USERS == 282_000
    assert parse_users("282k") == 282_000 and parse_users("1.5M") == 1_500_000 and parse_users("1,000") == 1000
    with pytest.raises(ValueError):
        parse_users("many")
    table = load_table()  # cluster/throughputs.yaml: every stage's node type, engine and rates resolve
    assert table["stages"]["synthesize"]["node_type"] == "gpu_h100x8"
    assert table["stages"]["judge"]["node_type"] == "gpu_l40sx4"


def test_stats_read_from_s3(s3_endpoint):
    import boto3

    from core.config import StorageConfig

    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket="runs")
    storage = StorageConfig(endpoint_url=s3_endpoint, region="us-east-1")
    layout = RunLayout("s3://runs/sample", storage)
    _write_run(layout.root)
    stats = load_stats(layout)
    assert stats.synth["passes"]["judge"]["answers"] == 25 and stats.source == "s3://runs/sample"
