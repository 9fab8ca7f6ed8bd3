"""The user's path on a real multi-node Ray cluster (Ray's own `cluster_utils.Cluster`: a head with no task
CPUs and two worker nodes, each started and stopped here, never `ray stop`), with moto's S3 server as the
only shared storage and the Job Submission API exactly as `humanllm submit` uses it:

- the whole pipeline as one submitted job: inputs, base model, run root and benchmarks on S3, synthesis on
  the vLLM CPU build (a Serve engine on a worker node), training on two Ray Train workers on different
  nodes; the salt and S3 keys only in the submitter's environment, and no planted secret in any file the
  run wrote, the job's logs or its metadata;
- node loss: a worker node removed in the middle of curate and in the middle of training (as a spot
  reclaim or the autoscaler would), a node added back, and the rerun of the same job finishing from the S3
  markers and checkpoint with output identical to the uninterrupted run."""
from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.layout import RunLayout
from ray_jobs import submit
from tests.conftest import REPO, HeldUploads, moto_server, sample_inputs, upload_folder

pytestmark = pytest.mark.slow  # a second Ray cluster with a job server, and jobs on it

PLANTED = {name: f"planted-{name.lower()}-7f3a91c2" for name in ("HUMANLLM_SALT", "WANDB_API_KEY", "HF_TOKEN")}
SECRETS = {**PLANTED, "AWS_ACCESS_KEY_ID": "AKIAPLANTED7F3A91C2", "AWS_SECRET_ACCESS_KEY": "planted-aws-7f3a91c2"}
CONFIG = "configs/local.yaml"
WORKER_CPUS = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class JobCluster:
    address: str
    session: Path  # the head's session folder (every node's runtime_resources* folder is in it)
    cluster: object  # ray.cluster_utils.Cluster
    added: int = 0

    def add_worker(self):
        # Each node unpacks the job's working directory in its own folder, as separate machines do (on one
        # machine the nodes share a session folder, and one node's clean-up would delete another's copy).
        self.added += 1
        return self.cluster.add_node(num_cpus=WORKER_CPUS, runtime_env_dir_name=f"runtime_resources_w{self.added}")


@pytest.fixture(scope="module")
def job_cluster():
    """A head (no task CPUs, the job server) and two worker nodes; the jobs' `python` is this venv's."""
    from ray.cluster_utils import Cluster

    saved = {k: os.environ.pop(k, None) for k in PLANTED}  # the cluster itself never sees the secrets
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{path}"
    port = _free_port()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "gcs_server_port": _free_port(), "include_dashboard": True, "dashboard_host": "127.0.0.1",
        "dashboard_port": port, "dashboard_agent_listen_port": _free_port()})  # the session cluster holds the default
    jc = JobCluster(f"http://127.0.0.1:{port}", Path(cluster.head_node.get_session_dir_path()), cluster)
    jc.add_worker()
    jc.add_worker()
    try:
        yield jc
    finally:
        cluster.shutdown()
        os.environ["PATH"] = path
        os.environ.update({k: v for k, v in saved.items() if v is not None})


@pytest.fixture(scope="module")
def held_uploads() -> HeldUploads:
    """The S3 server's gate: a test holds a job's writes under a key until it releases them."""
    return HeldUploads()


@pytest.fixture(scope="module")
def s3(sample_dir, tiny_model, shared_data, held_uploads):
    """moto's S3 server holding the raw sample, the tiny base model and one benchmark; (endpoint, client)."""
    import boto3

    with moto_server(held_uploads) as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        for bucket in ("raw", "models", "runs"):
            client.create_bucket(Bucket=bucket)
        upload_folder(client, sample_dir, "raw", "sample")
        upload_folder(client, Path(tiny_model), "models", "tiny")
        upload_folder(client, shared_data / "bench_socialiqa", "runs", "benchmarks/bench_socialiqa")
        yield endpoint, client


def overrides(endpoint: str, sample_dir: Path, run_root: str) -> list[str]:
    """The job's --set pairs: every path on S3; vLLM with the tiny model; two training workers spread
    over the nodes, checkpointing every 2 of 6 steps."""
    inputs = [{**i, "path": i["path"].replace(str(sample_dir), "s3://raw/sample")} for i in sample_inputs(sample_dir)]
    values = {
        "run_root": run_root, "salt": None, "storage": {"endpoint_url": endpoint, "region": "us-east-1"},
        "benchmark_data": "s3://runs/benchmarks", "curate.inputs": inputs,
        "synthesis.engine": {"backend": "vllm", "model": "s3://models/tiny", "dtype": "float32",
                             "max_model_len": 2048, "batch_size": 16},
        "synthesis.kinds": ["tag_v1", "tag_v1_comment", "tag_v2"],  # the tags pass: the engine's path, sized
        "train.model": "s3://models/tiny", "train.name": "job", "train.num_workers": 2,
        "train.placement_strategy": "STRICT_SPREAD", "train.max_steps": 6, "train.eval_every": 6,
        "train.save_every": 2, "train.max_seq_len": 512, "train.eval_examples": 2,
        "evaluate.engine": {"backend": "transformers", "max_model_len": 1024, "temperature": 0.7},
        "evaluate.benchmarks": ["socialiqa"], "evaluate.items_per_benchmark": 2,
        "evaluate.examples_per_task": 1, "evaluate.max_new_tokens": 8, "evaluate.cot_max_tokens": 16,
        "evaluate.judge.max_tokens": 8}
    return [f"{k}={json.dumps(v)}" for k, v in values.items()]


def _keys(s3, prefix: str) -> dict[str, str]:
    """Key -> ETag (the MD5 of the bytes) of every object under s3://runs/<prefix>."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="runs", Prefix=prefix)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


def _wait(client, job_id: str, timeout: float = 600.0):
    from ray.job_submission import JobStatus

    deadline = time.monotonic() + timeout
    while (status := client.get_job_status(job_id)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        assert time.monotonic() < deadline, f"job {job_id} still {status} after {timeout:.0f} s"
        time.sleep(1.0)
    return status


def _when_written(s3, prefix: str, timeout: float = 300.0) -> str:
    """The first object written under s3://runs/<prefix> (polled)."""
    deadline = time.monotonic() + timeout
    while not (found := sorted(_keys(s3, prefix))):
        assert time.monotonic() < deadline, f"nothing written under {prefix} in {timeout:.0f} s"
        time.sleep(0.2)
    return found[0]


def _tensors(folder: str) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


def test_secrets_are_forwarded_by_name_only():
    assert submit.forwarded_secrets({"HF_TOKEN": "x", "HOME": "/root", "WANDB_API_KEY": ""}) == {"HF_TOKEN": "x"}
    env = submit.runtime_env(".", {"HF_TOKEN": "x"})
    assert env["env_vars"] == {"HF_TOKEN": "x"} and ".venv" in env["excludes"] and "runs" in env["excludes"]
    assert "x" not in submit.entrypoint("configs/cluster.yaml", ["curate"], [])
    with pytest.raises(SystemExit, match="unknown stage"):
        submit.parse_stages("curate,tokenize")


def test_the_pipeline_as_a_submitted_job_on_s3_leaks_no_secret(job_cluster, s3, sample_dir, monkeypatch, capfd):
    """Every stage as one job (`humanllm submit`, logs streamed), S3 the only storage."""
    import argparse

    import torch
    from ray.job_submission import JobSubmissionClient

    from core.config import StorageConfig
    from llm.model_cache import local_copy
    from train.merge import average_state_dicts

    endpoint, s3c = s3
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)  # moto takes any key; the job gets them only by forwarding
    args = argparse.Namespace(address=job_cluster.address, config=CONFIG, stages=None, working_dir=str(REPO),
                              no_wait=False, follow=None, set=overrides(endpoint, sample_dir, "s3://runs/job"))
    started = time.monotonic()
    assert submit.run(args) == 0  # submitted, logs streamed to the end, SUCCEEDED
    streamed = capfd.readouterr().out
    for stage in ("curate", "synthesize", "build-sft", "train", "evaluate"):
        assert f"=== {stage}: done" in streamed, streamed[-3000:]
    print(f"whole pipeline as a job: {time.monotonic() - started:.0f} s;",
          [line[9:] for line in streamed.splitlines() if ": done in " in line])

    keys = _keys(s3c, "job/")
    assert {"job/synth/stats.json", "job/sft/export/train.jsonl",
            "job/model/tuned/config.json", "job/model/merged/model.safetensors", "job/model/metrics.jsonl",
            "job/eval/summary.json", "job/eval/report.html", "job/logs/driver.log"} <= keys.keys(), sorted(keys)
    assert any(k.startswith("job/events/") for k in keys) and any(k.startswith("job/train/job/") for k in keys)
    assert any(k.startswith("job/model/wandb/offline-run-") for k in keys)
    synth = json.loads(s3c.get_object(Bucket="runs", Key="job/synth/stats.json")["Body"].read())
    assert synth["engine_starts"] == 1 and synth["passes"]["tags"]["answers"] > 0  # the vLLM engine answered
    logged = s3c.get_object(Bucket="runs", Key="job/model/metrics.jsonl")["Body"].read().decode().splitlines()
    assert [row["step"] for row in map(json.loads, logged) if "loss" in row] == [1, 2, 3, 4, 5, 6]
    summary = json.loads(s3c.get_object(Bucket="runs", Key="job/eval/summary.json")["Body"].read())
    assert summary["generation_errors_in_domain"] == {"base": 0, "tuned": 0, "merged": 0}
    assert {b: c.get("scored") for b, c in summary["benchmarks"].items()} == {"socialiqa": 2}
    # The merge is the average of the tuned model and the s3:// base, as the node cache holds them.
    where = StorageConfig(endpoint_url=endpoint)
    expected = average_state_dicts(_tensors(local_copy("s3://runs/job/model/tuned", where)),
                                   _tensors(local_copy("s3://models/tiny", where)), (0.5, 0.5))
    merged = _tensors(local_copy("s3://runs/job/model/merged", where))
    assert merged.keys() == expected.keys() and all(torch.equal(merged[k], expected[k]) for k in expected)

    # Nothing landed on a node's disk but in its temporary and cache folders: the job's working directory
    # copies (one per node) hold only what was shipped.
    copies = sorted(job_cluster.session.glob("runtime_resources*/working_dir_files/*"))
    assert len(copies) >= 2 and all(not (c / d).exists() for c in copies for d in ("runs", "logs", "wandb", "model", "eval"))

    # No secret value in any object the run wrote (outputs, W&B files, logs), the job's logs or metadata.
    client = JobSubmissionClient(job_cluster.address)
    job = [j for j in client.list_jobs() if j.entrypoint == submit.entrypoint(CONFIG, None, args.set)][-1]
    assert job.metadata == {"humanllm_config": CONFIG, "humanllm_stages": "all"}
    texts = {"job logs": client.get_job_logs(job.submission_id), "job metadata": json.dumps(job.metadata)}
    for key in keys:
        texts[key] = s3c.get_object(Bucket="runs", Key=key)["Body"].read().decode("utf-8", errors="replace")
    leaks = [(where, name) for where, text in texts.items() for name, value in SECRETS.items() if value in text]
    assert leaks == []


def _lose_a_node_and_rerun(job_cluster, client, s3c, stages: list[str], sets: list[str], signal: str,
                           not_yet: str, held: HeldUploads | None = None,
                           hold: str | None = None) -> tuple[str, list[str]]:
    """Submit `stages`; when `signal` is first written, remove a worker node (`not_yet` must not be
    written by then: the stage is in its middle), add a node back, and rerun the job until it succeeds.
    With `hold`, the first job's writes to keys containing it wait until the job has ended (its progress
    stops there, however fast the machine). Returns the first job's status and the ids of the jobs run."""
    from ray.job_submission import JobStatus

    if hold:
        held.hold(hold)
    try:
        first = submit.submit_job(client, CONFIG, stages, sets, str(REPO))
        _when_written(s3c, signal)
        assert not _keys(s3c, not_yet), f"{stages} passed {not_yet} before the node was lost"
        job_cluster.cluster.remove_node(next(iter(job_cluster.cluster.worker_nodes)), allow_graceful=False)
        job_cluster.add_worker()
        jobs, status = [first], _wait(client, first)
    finally:
        if hold:
            held.release()
    if status != JobStatus.SUCCEEDED:
        jobs.append(submit.submit_job(client, CONFIG, stages, sets, str(REPO)))
        assert _wait(client, jobs[-1]) == JobStatus.SUCCEEDED, client.get_job_logs(jobs[-1])[-3000:]
    return status.value, jobs


def test_a_node_lost_mid_curate_and_mid_training_reruns_to_identical_output(job_cluster, s3, sample_dir,
                                                                          held_uploads, monkeypatch):
    """The pipeline's curate and train stages into a second run root, each losing a worker node halfway;
    the finished outputs are byte-identical to the uninterrupted run's (test above)."""
    from ray.job_submission import JobSubmissionClient

    endpoint, s3c = s3
    reference = _keys(s3c, "job/")
    if not reference:
        pytest.skip("the uninterrupted run (the test above) did not run")
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    client = JobSubmissionClient(job_cluster.address)
    sets = overrides(endpoint, sample_dir, "s3://runs/loss")

    started = time.monotonic()
    status, jobs = _lose_a_node_and_rerun(job_cluster, client, s3c, ["curate"], sets,
                                          signal=f"loss/{RunLayout.markers('curate-read')}/",
                                          not_yet=f"loss/{RunLayout.markers('curate-timeline')}/")
    curated = {k[len("loss/"):]: e for k, e in _keys(s3c, f"loss/{RunLayout.EVENTS}/").items()}
    assert curated and curated == {k[len("job/"):]: e for k, e in reference.items()
                                   if k.startswith(f"job/{RunLayout.EVENTS}/")}
    print(f"curate with a node lost: first job {status}, {len(jobs)} job(s), {time.monotonic() - started:.0f} s")

    for key in (k for k in reference if k.startswith("job/sft/")):  # training's input, as build-sft wrote it
        s3c.copy_object(Bucket="runs", Key="loss/" + key[len("job/"):], CopySource={"Bucket": "runs", "Key": key})
    started = time.monotonic()
    # Ray Train registers a checkpoint in its snapshot once uploaded; the step-4 checkpoint's upload is held
    # until the first job has ended, so the node is lost between steps 2 and 4 on any machine.
    status, jobs = _lose_a_node_and_rerun(
        job_cluster, client, s3c, ["train"], sets, signal="loss/train/job/checkpoint_manager_snapshot.json",
        not_yet="loss/model/tuned/", held=held_uploads, hold="/loss/train/job/step-00000004/")
    assert status == "FAILED"  # the lost worker fails the run (train.max_failures 0); the rerun resumes it
    tuned = _keys(s3c, "loss/model/tuned/")
    assert tuned["loss/model/tuned/model.safetensors"] == reference["job/model/tuned/model.safetensors"]
    assert _keys(s3c, "loss/model/merged/")["loss/model/merged/model.safetensors"] == \
        reference["job/model/merged/model.safetensors"]
    logged = s3c.get_object(Bucket="runs", Key="loss/model/metrics.jsonl")["Body"].read().decode().splitlines()
    assert [row["step"] for row in map(json.loads, logged) if "loss" in row] == [1, 2, 3, 4, 5, 6]  # one curve
    # The workers' log (uploaded with the rerun's logs): the rerun started at the checkpoint, not at step 0.
    workers = s3c.get_object(Bucket="runs", Key=f"loss/{RunLayout.LOGS}/{RunLayout.DRIVER_LOG}")["Body"].read().decode()
    assert re.search(r"world 2, resumed at step 2\b", workers), workers[-3000:]
    print(f"training with a node lost: first job {status}, {len(jobs)} job(s), {time.monotonic() - started:.0f} s")

