"""`humanllm submit` against a real Ray cluster with a job server (Ray's own `cluster_utils.Cluster`: a
head with no task CPUs and one worker node, started and stopped here): a stage as a submitted job, the
salt reaching the job only through the submitter's environment, the logs streamed back, and no planted
secret in any file the run wrote, the job's logs or its metadata."""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path

import pytest

from ray_jobs import submit
from tests.conftest import REPO, sample_inputs, upload_folder

pytestmark = pytest.mark.slow  # a second Ray cluster with a dashboard, and a job on it

PLANTED = {name: f"planted-{name.lower()}-7f3a91c2" for name in ("HUMANLLM_SALT", "WANDB_API_KEY", "HF_TOKEN")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def job_server():
    """A two-node cluster (the head runs no tasks) with its job server; the job's `python` is this venv's."""
    from ray.cluster_utils import Cluster

    saved = {k: os.environ.pop(k, None) for k in PLANTED}  # the cluster itself never sees the secrets
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{path}"
    port = _free_port()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "gcs_server_port": _free_port(), "include_dashboard": True, "dashboard_host": "127.0.0.1",
        "dashboard_port": port, "dashboard_agent_listen_port": _free_port()})  # the session cluster holds the default
    # Each node unpacks the job's working directory in its own folder, as separate machines do (on one
    # machine the nodes share a session folder, and one node's clean-up would delete the other's copy).
    cluster.add_node(num_cpus=4, runtime_env_dir_name="runtime_resources_worker")
    try:
        yield f"http://127.0.0.1:{port}", Path(cluster.head_node.get_session_dir_path())
    finally:
        cluster.shutdown()
        os.environ["PATH"] = path
        os.environ.update({k: v for k, v in saved.items() if v is not None})


def test_secrets_are_forwarded_by_name_only():
    assert submit.forwarded_secrets({"HF_TOKEN": "x", "HOME": "/root", "WANDB_API_KEY": ""}) == {"HF_TOKEN": "x"}
    env = submit.runtime_env(".", {"HF_TOKEN": "x"})
    assert env["env_vars"] == {"HF_TOKEN": "x"} and ".venv" in env["excludes"] and "runs" in env["excludes"]
    assert "x" not in submit.entrypoint("configs/cluster.yaml", ["curate"], [])
    with pytest.raises(SystemExit, match="unknown stage"):
        submit.parse_stages("curate,tokenize")


def _keys(s3, bucket: str, prefix: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def _tensors(folder: str) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


def test_the_pipeline_as_a_submitted_job_on_s3_leaks_no_secret(job_server, s3_endpoint, sample_dir, tiny_model,
                                                              shared_data, tmp_path, monkeypatch, capfd):
    """Every stage as one submitted job, S3 (moto) the only storage: raw inputs, the base model, the run
    root and the benchmarks; the salt and S3 keys only in the submitter's environment."""
    import boto3
    import torch
    from ray.job_submission import JobSubmissionClient

    from core.config import StorageConfig
    from llm.model_cache import local_copy
    from tests.synth_fixtures import answers
    from train.merge import average_state_dicts

    secrets = {**PLANTED, "AWS_ACCESS_KEY_ID": "AKIAPLANTED7F3A91C2", "AWS_SECRET_ACCESS_KEY": "planted-aws-7f3a91c2"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)  # moto takes any key; the job gets them only by forwarding
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for bucket in ("raw", "models", "runs"):
        s3.create_bucket(Bucket=bucket)
    upload_folder(s3, sample_dir, "raw", "sample")
    upload_folder(s3, Path(tiny_model), "models", "tiny")
    for name in ("bench_socialiqa",):
        upload_folder(s3, shared_data / name, "runs", f"benchmarks/{name}")
    table = tmp_path / "answers.json"
    table.write_text(json.dumps(answers()))
    inputs = [{**i, "path": i["path"].replace(str(sample_dir), "s3://raw/sample")} for i in sample_inputs(sample_dir)]
    overrides = {
        "run_root": "s3://runs/job", "salt": None, "storage": {"endpoint_url": s3_endpoint, "region": "us-east-1"},
        "benchmark_data": "s3://runs/benchmarks", "curate.inputs": inputs,
        "synthesis.engine": {"backend": "table", "table": str(table), "batch_size": 8},
        "train.model": "s3://models/tiny", "train.name": "job", "train.max_steps": 2, "train.eval_every": 2,
        "train.save_every": 2, "train.max_seq_len": 512, "train.eval_examples": 2,
        "evaluate.engine": {"backend": "transformers", "max_model_len": 1024, "temperature": 0.7},
        "evaluate.benchmarks": ["socialiqa"], "evaluate.items_per_benchmark": 2,
        "evaluate.examples_per_task": 1, "evaluate.max_new_tokens": 8, "evaluate.cot_max_tokens": 16,
        "evaluate.judge.max_tokens": 8}
    address, session = job_server
    args = argparse.Namespace(address=address, config="configs/local.yaml", stages=None, working_dir=str(REPO),
                              no_wait=False, follow=None, set=[f"{k}={json.dumps(v)}" for k, v in overrides.items()])
    assert submit.run(args) == 0  # submitted, logs streamed to the end, SUCCEEDED
    streamed = capfd.readouterr().out
    for stage in ("curate", "synthesize", "build-sft", "train", "evaluate"):
        assert f"=== {stage}: done" in streamed, streamed[-3000:]

    keys = _keys(s3, "runs", "job/")
    assert {"job/synth/stats.json", "job/sft/export/train.jsonl",
            "job/model/tuned/config.json", "job/model/merged/model.safetensors", "job/model/metrics.jsonl",
            "job/eval/summary.json", "job/eval/report.html", "job/logs/driver.log"} <= keys, sorted(keys)
    assert any(k.startswith("job/events/") for k in keys) and any(k.startswith("job/train/job/") for k in keys)
    assert any(k.startswith("job/model/wandb/offline-run-") for k in keys)
    logged = s3.get_object(Bucket="runs", Key="job/model/metrics.jsonl")["Body"].read().decode().splitlines()
    assert [row["step"] for row in map(json.loads, logged) if "loss" in row] == [1, 2]  # uploaded at every step
    summary = json.loads(s3.get_object(Bucket="runs", Key="job/eval/summary.json")["Body"].read())
    assert summary["generation_errors_in_domain"] == {"base": 0, "tuned": 0, "merged": 0}
    assert {b: c.get("scored") for b, c in summary["benchmarks"].items()} == {"socialiqa": 2}
    # The merge is the average of the tuned model and the s3:// base, as the node cache holds them.
    where = StorageConfig(endpoint_url=s3_endpoint)
    expected = average_state_dicts(_tensors(local_copy("s3://runs/job/model/tuned", where)),
                                   _tensors(local_copy("s3://models/tiny", where)), (0.5, 0.5))
    merged = _tensors(local_copy("s3://runs/job/model/merged", where))
    assert merged.keys() == expected.keys() and all(torch.equal(merged[k], expected[k]) for k in expected)

    # Nothing landed on a node's disk but in its temporary and cache folders: the job's working directory
    # copies (one per node) hold only what was shipped.
    copies = sorted(session.glob("runtime_resources*/working_dir_files/*"))
    assert copies and all(not (c / d).exists() for c in copies for d in ("runs", "logs", "wandb", "model", "eval"))

    # No secret value in any object the run wrote (outputs, W&B files, logs), the job's logs or metadata.
    client = JobSubmissionClient(address)
    job = [j for j in client.list_jobs() if j.entrypoint == submit.entrypoint(args.config, None, args.set)][-1]
    assert job.metadata == {"humanllm_config": "configs/local.yaml", "humanllm_stages": "all"}
    texts = {"job logs": client.get_job_logs(job.submission_id), "job metadata": json.dumps(job.metadata)}
    for key in keys:
        texts[key] = s3.get_object(Bucket="runs", Key=key)["Body"].read().decode("utf-8", errors="replace")
    leaks = [(where, name) for where, text in texts.items() for name, value in secrets.items() if value in text]
    assert leaks == []
