"""The cluster files as a user meets them, checked without Docker or a cloud: the images' Dockerfiles
against the pins of pyproject.toml, and the AWS launcher YAML through Ray's own schema and config
preparation and against what configs/cluster.yaml asks of the nodes."""
from __future__ import annotations

import copy
import re
import shlex
import tomllib

import pytest
import yaml

from tests.conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
IMAGES = PYPROJECT["tool"]["humanllm"]["images"]
VERSION = PYPROJECT["project"]["version"]
RAY_PIN = next(re.search(r"==([\w.]+)", d).group(1) for d in PYPROJECT["project"]["dependencies"]
               if d.startswith("ray["))
DOCKERFILES = {"cpu": REPO / "cluster" / "Dockerfile.cpu", "gpu": REPO / "cluster" / "Dockerfile.gpu"}
LAUNCHER = REPO / "cluster" / "ray-cluster-aws.yaml"


def _name(requirement: str) -> str:
    return re.split(r"[\[=<>!~ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _instructions(path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")))
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^\s*(\w+)\s+(.*)$", text, re.M)]


def _build_args(path) -> dict[str, str]:
    return dict(a.split("=", 1) for i, a in _instructions(path) if i == "ARG" and "=" in a)


def _pip_installs(path) -> list[list[str]]:
    """The arguments of every `pip install` in the file's RUN lines."""
    out = []
    for instr, args in _instructions(path):
        if instr != "RUN":
            continue
        for command in re.split(r"&&|;", args):
            words = shlex.split(command)
            while words and "=" in words[0] and not words[0].startswith("-"):  # VAR=value prefixes
                words = words[1:]
            if words[:2] == ["pip", "install"]:
                out.append(words[2:])
    return out


def _constraints() -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in (REPO / "cluster" / "constraints.txt").read_text().splitlines()]
    return {_name(line): line.split("==")[1] for line in lines if line}


@pytest.mark.parametrize("kind", ["cpu", "gpu"])
def test_image_bases_are_the_official_ray_images_of_the_pinned_ray_and_python(kind):
    args = _build_args(DOCKERFILES[kind])
    (base,) = [a for i, a in _instructions(DOCKERFILES[kind]) if i == "FROM"]
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
    python = "py" + IMAGES["python"].replace(".", "")
    platform = "cpu" if kind == "cpu" else IMAGES["cuda"]
    assert base == f"rayproject/ray:{RAY_PIN}-{python}-{platform}"
    assert args["PROJECT_VERSION"] == VERSION


def test_both_images_install_this_project_under_the_same_pins():
    extras = {}
    for kind, path in DOCKERFILES.items():
        installs = _pip_installs(path)
        project = [w for w in installs if any(a.startswith(".[") for a in w)]
        assert len(project) == 1, f"{path.name}: one pip install of the project, found {project}"
        assert "-c" in project[0] and project[0][project[0].index("-c") + 1] == "cluster/constraints.txt"
        extras[kind] = re.search(r"\.\[([\w,-]+)\]", " ".join(project[0])).group(1)
        for words in installs:
            if words is project[0]:
                continue
            requirements = [w for w in words if not w.startswith("-") and "://" not in w]
            assert requirements, f"{path.name}: pip install {words}"
            for req in requirements:
                assert re.fullmatch(r"[\w.-]+==[\w.+]+", req), f"{path.name}: `{req}` is not pinned"
        copies = [a for i, a in _instructions(path) if i == "COPY"]
        assert any(c.split()[-2:] == [".", "."] for c in copies), f"{path.name} copies the project"
    assert extras == {"cpu": "node-cpu", "gpu": "gpu"}
    # Every requirement of those extras (and of the core) is pinned, in pyproject or in the constraints.
    opt = PYPROJECT["project"]["optional-dependencies"]
    pinned = _constraints()
    torch = {}
    for kind, extra in extras.items():
        reqs = list(PYPROJECT["project"]["dependencies"])
        for item in opt[extra]:
            reqs += opt["ml"] if item.startswith("humanllm-ray[") else [item]
        for req in reqs:
            assert "==" in req or _name(req) in pinned, f"{extra}: {req} has no pin"
        torch[kind] = next(r for r in opt[extra] if r.startswith("torch=="))
    assert torch["cpu"] == torch["gpu"]  # the same torch on every node (CPU wheel vs CUDA wheel)
    # The torch each Dockerfile installs first is the extra's.
    for kind, path in DOCKERFILES.items():
        assert any(torch[kind] in words for words in _pip_installs(path)), path.name


def test_the_build_context_leaves_out_environments_runs_and_samples():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".venv", ".git", "runs", "sample_data", "gpu_wheels"} <= ignored


def _launcher() -> dict:
    return yaml.safe_load(LAUNCHER.read_text())


def test_launcher_yaml_passes_rays_schema_and_config_preparation():
    from ray.autoscaler._private.aws.config import _check_ami
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(_launcher()))
    validate_config(prepared)
    _check_ami(prepared)  # an ImageId given by name is kept (Ray's fallback is an Ubuntu 18.04 DLAMI)
    for name, node in prepared["available_node_types"].items():
        assert node["node_config"]["ImageId"].startswith("resolve:ssm:/aws/service/deeplearning/ami/"), name
    assert prepared["docker"]["image"].startswith(IMAGES["registry"])


def test_launcher_node_types_fit_the_cluster_config():
    from ray_jobs.config import load_config

    launcher = _launcher()
    types = launcher["available_node_types"]
    head = types[launcher["head_node_type"]]
    assert head["resources"] == {"CPU": 0}
    workers = {n: t for n, t in types.items() if n != launcher["head_node_type"]}
    assert all(t["min_workers"] == 0 for t in workers.values())
    assert launcher["idle_timeout_minutes"] > 0
    for name, t in types.items():
        disk = t["node_config"]["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"]
        assert disk >= (1000 if t["resources"].get("GPU", 0) >= 8 else 200), name
    cpu = [n for n, t in workers.items() if "GPU" not in t["resources"]]
    assert cpu and types[cpu[0]]["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    for name, t in workers.items():
        if "GPU" in t["resources"]:
            opts = " ".join(t["docker"]["worker_run_options"])
            assert "--gpus all" in opts and "--shm-size" in opts, name
            assert t["docker"]["worker_image"] == f"{IMAGES['registry']}:{VERSION}-gpu", name
    assert launcher["docker"]["image"] == f"{IMAGES['registry']}:{VERSION}-cpu"
    # Token auth: every node starts Ray with it and gets the launching machine's token.
    starts = launcher["head_start_ray_commands"] + launcher["worker_start_ray_commands"]
    assert all("RAY_AUTH_MODE=token" in c for c in starts if "ray start" in c)
    assert "/home/ray/.ray/auth_token" in launcher["file_mounts"]

    def gpu_type(accelerator: str, gpus: int) -> str:
        found = [n for n, t in workers.items() if t["resources"].get(f"accelerator_type:{accelerator}")
                 and t["resources"].get("GPU", 0) >= gpus]
        assert found, f"no node type with {gpus} {accelerator} GPUs"
        return found[0]

    cfg = load_config(str(REPO / "configs" / "cluster.yaml"))
    engines = [cfg.synthesis.engine, cfg.synthesis.judge.engine, cfg.evaluate.engine, cfg.evaluate.judge.engine]
    assert gpu_type(engines[0].accelerator_type, 8) == "gpu_h100x8"  # the 70B writer at tensor parallel 8
    assert gpu_type(engines[1].accelerator_type, 4) == "gpu_l40sx4"  # the 72B judge at tensor parallel 4
    for engine in engines:
        gpu_type(engine.accelerator_type, engine.tensor_parallel_size)
    per_worker = cfg.train.resources_per_worker
    accelerator = next(k.split(":", 1)[1] for k in per_worker if k.startswith("accelerator_type:"))
    train_type = types[gpu_type(accelerator, int(per_worker["GPU"] * cfg.train.num_workers))]
    assert per_worker["CPU"] * cfg.train.num_workers <= train_type["resources"]["CPU"]
