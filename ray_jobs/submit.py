"""`humanllm submit`: the pipeline (or some of its stages) as one job on a Ray cluster, through Ray's Job
Submission API. It packages this working directory (without virtualenvs, runs, samples and caches),
forwards the secrets set in the submitter's environment into the job's runtime environment (never into
a config, the job's metadata or a log line), streams the job's logs and prints its id and dashboard
URL; `--follow JOB_ID` reattaches to a running job.

The plain equivalent (README, "On a cluster"):
  ray job submit --address http://HEAD:8265 --working-dir . \\
      --runtime-env-json '{"env_vars": {"HUMANLLM_SALT": "...", "WANDB_API_KEY": "..."}, "excludes": [...]}' \\
      -- python -m ray_jobs.cli pipeline --config configs/cluster.yaml --set ray.address=auto
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import sys
import time
from collections.abc import Sequence

from core.layout import RunLayout

log = logging.getLogger("humanllm")

# What each secret is for; forwarded when set in the submitter's environment.
SECRETS = {
    "HUMANLLM_SALT": "the user-id salt (curate hashes user ids with it)",
    "WANDB_API_KEY": "W&B online tracking of training (offline without it)",
    "HF_TOKEN": "gated hub models (e.g. Llama-3.3-70B-Instruct)",
    "AWS_ACCESS_KEY_ID": "S3 credentials of the run root, inputs and models",
    "AWS_SECRET_ACCESS_KEY": "S3 credentials",
    "AWS_SESSION_TOKEN": "S3 temporary credentials",
}
# Never shipped: environments, local runs and samples, run artefacts written beside the code, caches.
EXCLUDES = [".venv", "venv", ".git", "runs", "sample_data", RunLayout.LOGS, RunLayout.TRAIN_WANDB, "__pycache__",
            "*.pyc", ".pytest_cache", ".ruff_cache", "*.egg-info", "build", "dist"]
STAGES = ("curate", "synthesize", "build-sft", "train", "evaluate")


def forwarded_secrets(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The secrets set in the environment, by name (their values go only into the job's runtime env)."""
    environ = os.environ if environ is None else environ
    return {name: environ[name] for name in SECRETS if environ.get(name)}


def entrypoint(config: str, stages: list[str] | None, overrides: list[str]) -> str:
    """The job's command: the pipeline (or the named stages) joining the job's cluster."""
    cmd = ["python", "-m", "ray_jobs.cli", "pipeline", "--config", config, "--set", "ray.address=auto"]
    for pair in overrides:
        cmd += ["--set", pair]
    if stages:
        cmd += ["--stages", ",".join(stages)]
    return shlex.join(cmd)


def runtime_env(working_dir: str, secrets: dict[str, str]) -> dict:
    return {"working_dir": working_dir, "excludes": EXCLUDES, "env_vars": secrets}


def parse_stages(value: str | None) -> list[str] | None:
    if not value:
        return None
    stages = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise SystemExit(f"--stages: unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    return stages


async def _stream(client, job_id: str) -> None:
    async for lines in client.tail_job_logs(job_id):
        sys.stdout.write(lines)
        sys.stdout.flush()


def follow(client, job_id: str) -> int:
    """Stream a job's logs until it ends; 0 when it succeeded."""
    from ray.job_submission import JobStatus

    asyncio.run(_stream(client, job_id))
    status = client.get_job_status(job_id)
    log.info("job %s: %s", job_id, status.value)
    return 0 if status == JobStatus.SUCCEEDED else 1


def _submit(client, wait_s: float = 60.0, **job) -> str:
    """Submit, waiting while a freshly started head's job agent is not ready yet (it answers 500)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return client.submit_job(**job)
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise
            log.info("the cluster's job agent is not ready yet; retrying")
            time.sleep(3.0)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS", "http://127.0.0.1:8265"),
                   help="the cluster's dashboard (job server), e.g. http://HEAD:8265 (default: $RAY_ADDRESS)")
    p.add_argument("--config", help="pipeline YAML, relative to this working directory (configs/cluster.yaml)")
    p.add_argument("--stages", help=f"comma-separated subset of {','.join(STAGES)} (default: all, in order)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for the job")
    p.add_argument("--working-dir", default=".", help="the project folder to ship (default: .)")
    p.add_argument("--no-wait", action="store_true", help="submit and return without streaming the logs")
    p.add_argument("--follow", metavar="JOB_ID", help="reattach to a submitted job: stream its logs to the end")


def submit_job(client, config: str, stages: list[str] | None = None, overrides: Sequence[str] = (),
               working_dir: str = ".") -> str:
    """Submit the pipeline (or `stages`) as one job with the submitter's secrets; return its id."""
    secrets = forwarded_secrets()
    job_id = _submit(client, entrypoint=entrypoint(config, stages, list(overrides)),
                     runtime_env=runtime_env(working_dir, secrets),
                     metadata={"humanllm_config": config, "humanllm_stages": ",".join(stages) if stages else "all"})
    log.info("submitted job %s (secrets forwarded: %s)", job_id, ", ".join(sorted(secrets)) or "none")
    return job_id


def run(args: argparse.Namespace) -> int:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(args.address)
    if args.follow:
        return follow(client, args.follow)
    if not args.config:
        raise SystemExit("humanllm submit: --config is required (or --follow JOB_ID)")
    job_id = submit_job(client, args.config, parse_stages(args.stages), args.set, args.working_dir)
    log.info("dashboard: %s/#/jobs/%s", args.address.rstrip("/"), job_id)
    log.info("reattach with: humanllm submit --address %s --follow %s", args.address, job_id)
    return 0 if args.no_wait else follow(client, job_id)
