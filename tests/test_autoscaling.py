"""Autoscaling from zero, on this machine: the launcher YAML's node types (`cluster/ray-cluster-aws.yaml`)
run by Ray's fake multi-node provider (`RAY_FAKE_CLUSTER=1`: every "node" is a raylet on this machine,
launched and terminated by the real autoscaler). The head is started here on its own ports and temp dir
with token auth on, as the launcher starts it, and only the processes it started are stopped (never
`ray stop`). A curate job submitted as `humanllm submit` does makes the autoscaler launch CPU workers from
zero and remove them once idle; a task asking for one L40S GPU launches a node of that type and no other."""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from ray_jobs import submit
from tests.conftest import REPO, sample_inputs

pytestmark = pytest.mark.slow  # a third Ray cluster, with a job server and an autoscaler

LAUNCHER = REPO / "cluster" / "ray-cluster-aws.yaml"
CPUS_PER_NODE = 4  # logical CPUs of a fake node: the real types' 32-192 would start that many workers here
IDLE_TIMEOUT_MINUTES = 0.1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_autoscaler_config(launcher: dict, gcs_address: str) -> dict:
    """The launcher's node types for the fake multi-node provider: same names, GPUs, accelerator resources
    and min/max workers; CPUs capped at CPUS_PER_NODE and a small object store per node."""
    head = launcher["head_node_type"]
    types = {}
    for name, node in launcher["available_node_types"].items():
        resources = dict(node.get("resources", {}))
        if name == head:
            types[name] = {"resources": resources, "node_config": {}, "max_workers": 0}
            continue
        resources["CPU"] = min(resources.get("CPU", CPUS_PER_NODE), CPUS_PER_NODE)
        resources["object_store_memory"] = 100 * 1024**2
        types[name] = {"resources": resources, "node_config": {}, "min_workers": node["min_workers"],
                       "max_workers": node["max_workers"]}
    empty = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
             "head_start_ray_commands", "worker_start_ray_commands", "cluster_synced_files", "rsync_exclude",
             "rsync_filter")
    return {"cluster_name": f"{launcher['cluster_name']}-fake", "max_workers": launcher["max_workers"],
            "upscaling_speed": launcher["upscaling_speed"], "idle_timeout_minutes": IDLE_TIMEOUT_MINUTES,
            "provider": {"type": "fake_multinode", "gcs_address": gcs_address, "use_node_id_as_ip": True,
                         "disable_node_updaters": True, "disable_launch_config_check": True},
            "available_node_types": types, "head_node_type": head, "auth": {}, "docker": {}, "file_mounts": {},
            "file_mounts_sync_continuously": False, **{k: [] for k in empty}}


class FakeCluster:
    """`ray start --head --block` with the fake provider, in its own process group; stop() ends every
    process it started (the ones the autoscaler's nodes started included) and nothing else."""

    def __init__(self, tmp: Path):
        launcher = yaml.safe_load(LAUNCHER.read_text())
        assert launcher["head_node_type"] == "ray.head.default"  # the fake provider's fixed head type
        self.token = secrets.token_hex(32)
        gcs_port, dash_port = _free_port(), _free_port()
        self.config = fake_autoscaler_config(launcher, f"127.0.0.1:{gcs_port}")
        (tmp / "autoscaler.yaml").write_text(yaml.safe_dump(self.config))
        self.temp_dir = Path(tempfile.mkdtemp(prefix="hl-as-"))  # Ray's socket paths must stay under 108 bytes
        bin_dir = Path(sys.executable).parent
        env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token, "RAY_FAKE_CLUSTER": "1",
               "AUTOSCALER_UPDATE_INTERVAL_S": "1", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        cmd = [str(bin_dir / "ray"), "start", "--head", "--block", f"--port={gcs_port}", f"--temp-dir={self.temp_dir}",
               "--num-cpus=0", f"--autoscaling-config={tmp / 'autoscaler.yaml'}", "--include-dashboard=true",
               "--dashboard-host=127.0.0.1", f"--dashboard-port={dash_port}", f"--ray-client-server-port={_free_port()}",
               f"--dashboard-agent-listen-port={_free_port()}", f"--object-store-memory={100 * 1024**2}"]
        self.log = open(tmp / "head.log", "w")
        self.head = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=self.log, stderr=subprocess.STDOUT)
        self.address = f"http://127.0.0.1:{dash_port}"
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def client(self, timeout: float = 120.0):
        from ray.job_submission import JobSubmissionClient

        deadline = time.monotonic() + timeout
        while True:
            try:
                return JobSubmissionClient(self.address, headers=self.headers)
            except ConnectionError:
                assert self.head.poll() is None, f"the head exited: {Path(self.log.name).read_text()[-2000:]}"
                assert time.monotonic() < deadline, f"no job server at {self.address} after {timeout:.0f} s"
                time.sleep(1.0)

    def nodes(self) -> list[dict]:
        """Every node the cluster has known (alive and dead), from the state API."""
        import requests

        reply = requests.get(f"{self.address}/api/v0/nodes", params={"detail": "1", "limit": "1000"},
                             headers=self.headers, timeout=30)
        reply.raise_for_status()
        return reply.json()["data"]["result"]["result"]

    def autoscaler_events(self) -> list[str]:
        """The autoscaler's own record of what it launched and removed (its monitor log)."""
        text = "".join(p.read_text(errors="replace") for p in self.temp_dir.glob("session_latest/logs/monitor.log"))
        return re.findall(r"(?:Adding \d+ node\(s\) of type [\w.]+|Removing \d+ nodes of type [\w.]+ \(idle\))", text)

    def stop(self) -> None:
        import psutil

        try:
            started = [psutil.Process(self.head.pid), *psutil.Process(self.head.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            started = []
        for proc in started:  # by id: workers of the fake nodes leave the head's process group
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(started, timeout=10)
        self.head.wait(10)
        self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _worker_types(cluster: FakeCluster, nodes: list[dict]) -> list[str]:
    """Each worker node's type, told by its resources (a GPU type by its accelerator resource)."""
    types = cluster.config["available_node_types"]
    out = []
    for node in nodes:
        total = node["resources_total"]
        if "node:__internal_head__" in total:
            continue
        shape = {k: v for k, v in total.items() if k in ("CPU", "GPU") or k.startswith("accelerator_type:")}
        match = [name for name, t in types.items() if name != "ray.head.default"
                 and shape == {k: v for k, v in t["resources"].items() if k != "object_store_memory"}]
        assert len(match) == 1, f"node {node['node_id']} with {total} matches {match}"
        out.append(match[0])
    return out


def _wait_job(client, job_id: str, timeout: float = 300.0) -> str:
    deadline = time.monotonic() + timeout
    while (status := client.get_job_status(job_id).value) not in {"SUCCEEDED", "FAILED", "STOPPED"}:
        assert time.monotonic() < deadline, f"job {job_id} still {status} after {timeout:.0f} s"
        time.sleep(1.0)
    return status


def _until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f} s"
        time.sleep(1.0)
    return value


def test_cpu_workers_scale_from_zero_and_back_and_a_gpu_task_gets_its_node_type(tmp_path, sample_dir):
    cluster = FakeCluster(tmp_path)
    try:
        client = cluster.client()
        assert _worker_types(cluster, cluster.nodes()) == []  # every worker type starts at zero
        reddit = [i for i in sample_inputs(sample_dir) if i["format"] == "reddit_pushshift"]  # a short job
        overrides = [f"run_root={json.dumps(str(tmp_path / 'run'))}", f"curate.inputs={json.dumps(reddit)}"]
        job = submit.submit_job(client, "configs/local.yaml", ["curate"], overrides, str(REPO))
        assert _wait_job(client, job) == "SUCCEEDED", client.get_job_logs(job)[-3000:]
        assert (tmp_path / "run" / "users").is_dir()
        launched = _worker_types(cluster, cluster.nodes())
        assert launched and set(launched) == {"cpu_worker"}, launched

        # While the idle CPU worker waits for its timeout, a task that asks for one L40S GPU.
        before = {n["node_id"] for n in cluster.nodes()}
        gpu_job = client.submit_job(entrypoint=(
            "python -c \"import ray; ray.init(); "
            "f = ray.remote(num_gpus=1, accelerator_type='L40S')(lambda: ray.get_gpu_ids()); "
            "print('gpu ids', ray.get(f.remote()))\""))
        assert _wait_job(client, gpu_job) == "SUCCEEDED", client.get_job_logs(gpu_job)[-3000:]
        new = _worker_types(cluster, [n for n in cluster.nodes() if n["node_id"] not in before])
        assert new and set(new) == {"gpu_l40sx4"}, new

        def cpu_workers_removed():  # dead in the node table, and the autoscaler's log says why
            nodes = cluster.nodes()
            dead = all(n["state"] == "DEAD" for n in nodes if n["resources_total"].get("CPU") and
                       _worker_types(cluster, [n]) == ["cpu_worker"])
            events = cluster.autoscaler_events()
            return dead and any(e.startswith("Removing") and e.endswith("cpu_worker (idle)") for e in events)

        _until(cpu_workers_removed, 90, f"CPU workers removed after the {IDLE_TIMEOUT_MINUTES} min idle timeout")
        events = cluster.autoscaler_events()
        adds = {e.rsplit(" ", 1)[-1].rstrip(".") for e in events if e.startswith("Adding")}
        assert adds == {"cpu_worker", "gpu_l40sx4"}, events
    finally:
        cluster.stop()
