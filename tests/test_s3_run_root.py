"""Training, merge and evaluation on an s3:// run root served by moto's S3 server on 127.0.0.1: Ray Train
checkpoints through the configured endpoint, workers reading the SFT export from S3, the tuned and merged
models, metrics.jsonl and the W&B files uploaded, models read back from the node-local cache, and
nothing written to the working directory."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.config import StorageConfig
from llm.model_cache import cache_root, local_copy
from ray_jobs.config import parse_config
from sft.stage import run as run_build_sft
from tests.conftest import REPO
from tests.sft_fixtures import write_sft_run_root

PLATFORMS = ["reddit", "blogger", "amazon"]


def _upload(s3, local: Path, bucket: str, prefix: str) -> None:
    for f in sorted(local.rglob("*")):
        if f.is_file():
            s3.upload_file(str(f), bucket, f"{prefix}/{f.relative_to(local)}")


def _keys(s3, bucket: str, prefix: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def _tensors(folder: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


@pytest.mark.slow  # Ray Train, DeepSpeed and transformers actors on the session cluster
def test_train_merge_and_evaluate_on_an_s3_run_root(ray_cluster, tiny_model, s3_endpoint, tmp_path, monkeypatch):
    import boto3

    from evaluation.stage import run as run_evaluate
    from train.launcher import run as run_train
    from train.merge import average_state_dicts

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="runs")
    local = tmp_path / "sft-run"
    write_sft_run_root(str(local))
    run_build_sft(parse_config({"run_root": str(local), "salt": "t", "synthesis": {"platforms": PLATFORMS},
                                "sft": {"leakage": {"benchmarks": []}}}), use_ray=False)
    _upload(s3, local, "runs", "e2e")  # the earlier stages' outputs, as a cluster run leaves them
    storage = {"endpoint_url": s3_endpoint, "region": "us-east-1"}
    cfg = parse_config({
        "run_root": "s3://runs/e2e", "salt": "t", "storage": storage, "synthesis": {"platforms": PLATFORMS},
        "train": {"model": tiny_model, "name": "s3run", "max_seq_len": 512, "grad_accum": 1, "lr": 2e-3,
                  "max_steps": 2, "eval_every": 2, "save_every": 2, "eval_examples": 4,
                  "deepspeed": str(REPO / "configs/deepspeed/zero2.yaml"), "wandb": {"mode": "offline"}},
        "evaluate": {"engine": {"backend": "transformers", "model": tiny_model, "max_model_len": 1024},
                     "data_dir": str(tmp_path / "no-benchmarks"), "examples_per_task": 1, "max_new_tokens": 8,
                     "mcq_methods": ["loglik"], "judge": {"max_tokens": 8}, "bootstrap": 10}})
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)

    metrics = run_train(cfg)
    assert metrics["tuned"] == "s3://runs/e2e/model/tuned" and metrics["merged"] == "s3://runs/e2e/model/merged"
    keys = _keys(s3, "runs", "e2e/")
    assert {"e2e/model/tuned/config.json", "e2e/model/tuned/model.safetensors", "e2e/model/merged/model.safetensors",
            "e2e/model/merged/tokenizer.json", "e2e/model/metrics.jsonl"} <= keys
    assert any(k.startswith("e2e/model/wandb/offline-run-") and k.endswith(".wandb") for k in keys)
    assert any(k.startswith("e2e/train/s3run/") for k in keys)  # Ray Train's checkpoints reached the endpoint
    logged = s3.get_object(Bucket="runs", Key="e2e/model/metrics.jsonl")["Body"].read().decode().splitlines()
    assert [json.loads(line)["step"] for line in logged] == [0, 1, 2]

    # The merged model is the average of the tuned one (as the node cache holds it) and the base.
    where = StorageConfig(**storage)
    tuned = local_copy("s3://runs/e2e/model/tuned", where)
    assert tuned.startswith(cache_root()) and local_copy("s3://runs/e2e/model/tuned", where) == tuned  # fetched once
    expected = average_state_dicts(_tensors(tuned), _tensors(tiny_model), (0.5, 0.5))
    merged = _tensors(local_copy("s3://runs/e2e/model/merged", where))
    assert merged.keys() == expected.keys() and all(torch.equal(merged[k], expected[k]) for k in expected)

    summary = run_evaluate(cfg)
    assert set(summary["models"]) == {"base", "tuned", "merged"} and summary["in_domain_examples"] > 0
    assert summary["generation_errors_in_domain"] == {"base": 0, "tuned": 0, "merged": 0}
    assert {"e2e/eval/summary.json", "e2e/eval/in_domain.parquet", "e2e/eval/report.html"} <= _keys(s3, "runs", "e2e/eval/")
    assert list(work.iterdir()) == []  # every output went to S3


def test_a_changed_model_is_fetched_again_and_a_missing_one_is_named(s3_endpoint, tiny_model, monkeypatch, tmp_path):
    import boto3

    monkeypatch.setenv("HUMANLLM_MODEL_CACHE", str(tmp_path / "cache"))
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="models")
    _upload(s3, Path(tiny_model), "models", "tiny")
    where = StorageConfig(endpoint_url=s3_endpoint)
    first = local_copy("s3://models/tiny", where)
    assert sorted(p.name for p in Path(first).iterdir()) == sorted(p.name for p in Path(tiny_model).iterdir())
    no_weights = local_copy("s3://models/tiny", where, weights=False)
    assert (Path(no_weights) / "tokenizer.json").is_file() and not (Path(no_weights) / "model.safetensors").exists()
    s3.put_object(Bucket="models", Key="tiny/generation_config.json", Body=b'{"max_new_tokens": 7}')
    second = local_copy("s3://models/tiny", where)
    assert second != first and not Path(first).exists()  # the changed folder replaced the old copy
    assert json.loads((Path(second) / "generation_config.json").read_text()) == {"max_new_tokens": 7}
    with pytest.raises(FileNotFoundError, match="s3://models/absent: no objects"):
        local_copy("s3://models/absent", where)
