"""The KubeRay manifests (cluster/kuberay/): valid against KubeRay's own CRDs (../shared/schemas/kuberay),
no key the CRDs don't know, the generated RayJobs current with render.py, and the settings the pipeline
relies on: a head that runs no tasks, worker groups from zero, GPU groups that get GPU nodes and declare
the accelerators the config pins work to, secrets only from the Secret, code from an s3:// zip, entrypoints
the `humanllm` CLI accepts, one image version (the project's) and the pinned Ray. No Ray, no Kubernetes, no network."""
from __future__ import annotations

import copy
import functools
import importlib.util
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml

from ray_jobs import submit
from ray_jobs.cli import build_parser
from tests.conftest import REPO

KUBERAY = REPO / "cluster" / "kuberay"
CRDS = REPO.parent / "shared" / "schemas" / "kuberay"
MANIFESTS = sorted(KUBERAY.glob("*.yaml"))
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SERVICE_ACCOUNT = "humanllm-ray"
SECRET = "humanllm-secrets"
GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
PLACEHOLDER = "<REPLACE_ME"


@functools.cache
def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.load_all(path.read_text(), Loader=LOADER) if d]


def _ray_docs() -> list[tuple[str, dict]]:
    return [(f"{p.name}:{d['kind']}", d) for p in MANIFESTS for d in _docs(p) if d["kind"] in ("RayCluster", "RayJob")]


RAY_DOCS = _ray_docs()
RAYJOBS = {d["metadata"]["name"].removeprefix("humanllm-"): d for _, d in RAY_DOCS if d["kind"] == "RayJob"}


def _cluster_specs() -> list[tuple[str, dict]]:
    return [(name, d["spec"] if d["kind"] == "RayCluster" else d["spec"]["rayClusterSpec"]) for name, d in RAY_DOCS]


def _pods(spec: dict) -> Iterator[tuple[str, dict]]:
    """(group, pod spec) for the head and every worker group."""
    yield "head", spec["headGroupSpec"]["template"]["spec"]
    for group in spec["workerGroupSpecs"]:
        yield group["groupName"], group["template"]["spec"]


def _gpu_groups(spec: dict) -> list[dict]:
    """Groups on the GPU image or asking for GPUs anywhere (their pods or their Ray resources)."""
    return [g for g in spec["workerGroupSpecs"]
            if "num-gpus" in g["rayStartParams"] or any(c["image"].endswith("-gpu") or "nvidia.com/gpu" in str(c)
                                                       for c in g["template"]["spec"]["containers"])]


def _custom_resources(group: dict) -> dict[str, float]:
    """A group's rayStartParams `resources`, read as Ray's KubeRay autoscaler reads it ('"{\\"R\\": 1}"')."""
    value = group["rayStartParams"].get("resources")
    return json.loads(value[1:-1].replace("\\", "")) if value else {}


def _walk(node: object) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict]:
    """Kind -> the v1 openAPIV3Schema of KubeRay's CRD (its x-kubernetes-* keys are annotations to jsonschema)."""
    if not CRDS.is_dir():
        pytest.skip(f"KubeRay CRDs not found at {CRDS} (a fresh clone has no ../shared)")
    out = {}
    for path in CRDS.glob("*.yaml"):
        crd = yaml.load(path.read_text(), Loader=LOADER)
        out[crd["spec"]["names"]["kind"]] = next(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"]
                                                 if v["name"] == "v1")
    return out


def unknown_keys(doc: object, schema: dict, path: str = "") -> list[str]:
    """Keys of `doc` its schema doesn't declare, where the schema lists `properties` but (as generated CRDs
    do) sets no additionalProperties: Kubernetes prunes such keys silently, jsonschema accepts them."""
    if isinstance(doc, list) and isinstance(schema.get("items"), dict):
        return [k for i, item in enumerate(doc) for k in unknown_keys(item, schema["items"], f"{path}[{i}]")]
    if not isinstance(doc, dict):
        return []
    props, extra = schema.get("properties"), schema.get("additionalProperties")
    open_ = extra is True or schema.get("x-kubernetes-preserve-unknown-fields")
    out = []
    for key, value in doc.items():
        if props is not None and key in props:
            out += unknown_keys(value, props[key], f"{path}.{key}")
        elif isinstance(extra, dict):
            out += unknown_keys(value, extra, f"{path}.{key}")
        elif props is not None and not open_:
            out.append(f"{path}.{key}")
    return out


@pytest.mark.parametrize("name,doc", RAY_DOCS, ids=[n for n, _ in RAY_DOCS])
def test_valid_against_crd(schemas, name, doc):
    schema = schemas[doc["kind"]]
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft4Validator(schema).iter_errors(doc)]
    assert not errors, f"{name} breaks the {doc['kind']} CRD:\n" + "\n".join(errors)
    assert not unknown_keys(doc, schema), f"{name}: keys the {doc['kind']} CRD doesn't know (typos?)"


def test_unknown_keys_are_caught(schemas):
    """The strict walk catches what jsonschema lets through: a misspelled RayJob field, a pod-spec typo."""
    job = copy.deepcopy(RAYJOBS["curate"])
    job["spec"]["shutdownAfterJobFinish"] = True
    job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["serviceAcountName"] = SERVICE_ACCOUNT
    assert not list(jsonschema.Draft4Validator(schemas["RayJob"]).iter_errors(job))
    assert unknown_keys(job, schemas["RayJob"]) == [
        ".spec.rayClusterSpec.headGroupSpec.template.spec.serviceAcountName", ".spec.shutdownAfterJobFinish"]


def test_rayjobs_up_to_date(tmp_path):
    spec = importlib.util.spec_from_file_location("kuberay_render", KUBERAY / "render.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    fresh = {p.name: p.read_text() for p in render.render(tmp_path)}
    committed = {p.name: p.read_text() for p in KUBERAY.glob("rayjob-*.yaml")}
    assert committed == fresh, "cluster/kuberay/rayjob-*.yaml are stale: run python cluster/kuberay/render.py"
    cluster = next(d for _, d in RAY_DOCS if d["kind"] == "RayCluster")
    assert all(job["spec"]["rayClusterSpec"] == cluster["spec"] for job in RAYJOBS.values())


@pytest.mark.parametrize("name,spec", _cluster_specs(), ids=[n for n, _ in _cluster_specs()])
def test_cluster_spec(name, spec):
    pin = re.search(r'"ray\[[^\]]*\]==([^"]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert spec["rayVersion"] == pin
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0", "the head must run no tasks"
    assert all(g["minReplicas"] == 0 and g.get("replicas", 0) == 0 for g in spec["workerGroupSpecs"])
    assert _gpu_groups(spec), "no GPU worker group"
    for group in _gpu_groups(spec):
        pod = group["template"]["spec"]
        gpus = int(group["rayStartParams"]["num-gpus"])
        (container,) = pod["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == gpus, group["groupName"]
        assert container["resources"]["requests"]["nvidia.com/gpu"] == gpus, group["groupName"]
        assert GPU_TAINT in pod["tolerations"], group["groupName"]
        shm = next(m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm")
        assert next(v for v in pod["volumes"] if v["name"] == shm)["emptyDir"]["medium"] == "Memory"
        assert any(r.startswith("accelerator_type:") for r in _custom_resources(group)), group["groupName"]
    for group, pod in _pods(spec):
        assert pod["serviceAccountName"] == SERVICE_ACCOUNT, group
        for container in pod["containers"]:
            refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
            assert refs["HUMANLLM_SALT"] == {"name": SECRET, "key": "HUMANLLM_SALT"}, group
            for optional in ("WANDB_API_KEY", "HF_TOKEN"):
                assert refs[optional] == {"name": SECRET, "key": optional, "optional": True}, group


def test_accelerators_of_the_config():
    """Every accelerator configs/cluster.yaml pins work to is a resource some worker group declares, so the
    autoscaler can start that group from zero."""
    wanted = set()
    for node in _walk(yaml.safe_load((REPO / "configs" / "cluster.yaml").read_text())):
        wanted |= {f"accelerator_type:{v}" for k, v in node.items() if k == "accelerator_type" and v}
        wanted |= {k for k in node if isinstance(k, str) and k.startswith("accelerator_type:")}
    for name, spec in _cluster_specs():
        declared = {r for g in spec["workerGroupSpecs"] for r in _custom_resources(g)}
        assert wanted <= declared, f"{name}: no worker group provides {sorted(wanted - declared)}"


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_no_literal_secret(path):
    """Secrets reach a pod only through a secretKeyRef; the example Secret holds placeholders only."""
    for doc in _docs(path):
        for node in _walk(doc):
            name = node.get("name")
            if isinstance(name, str) and (name in submit.SECRETS or name.startswith("AWS_")):
                assert "value" not in node and "secretKeyRef" in node.get("valueFrom", {}), f"{path.name}: {name}"
        if doc["kind"] == "Secret":
            assert doc["stringData"] and all(v.startswith(PLACEHOLDER) for v in doc["stringData"].values())
        if doc["kind"] == "RayJob":
            assert not yaml.safe_load(doc["spec"]["runtimeEnvYAML"]).get("env_vars")


def test_access():
    """The ServiceAccount every pod runs as (S3 through IRSA) and the Secret every secretKeyRef names."""
    docs = {d["kind"]: d for d in _docs(KUBERAY / "access.yaml")}
    account = docs["ServiceAccount"]
    assert account["metadata"]["name"] == SERVICE_ACCOUNT
    assert re.fullmatch(r"arn:aws:iam::(<ACCOUNT_ID>|\d{12}):role/[\w+=,.@-]+",
                        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"])
    secret = docs["Secret"]
    assert secret["metadata"]["name"] == SECRET
    required = {n["secretKeyRef"]["key"] for _, d in RAY_DOCS for n in _walk(d)
                if "secretKeyRef" in n and not n["secretKeyRef"].get("optional")}
    assert required <= set(secret["stringData"])


@pytest.mark.parametrize("command", [*submit.STAGES, "pipeline"])
def test_rayjob(command):
    job = RAYJOBS[command]["spec"]
    assert job["submissionMode"] == "K8sJobMode" and job["shutdownAfterJobFinishes"] is True
    assert job["ttlSecondsAfterFinished"] > 0 and job["backoffLimit"] >= 0 and job["activeDeadlineSeconds"] > 3600
    working_dir = yaml.safe_load(job["runtimeEnvYAML"])["working_dir"]
    assert working_dir.startswith("s3://") and working_dir.endswith(".zip")
    python, flag, module, *argv = shlex.split(job["entrypoint"])
    assert (python, flag, module) == ("python", "-m", "ray_jobs.cli")
    args = build_parser().parse_args(argv)
    assert args.command == command and "ray.address=auto" in args.set
    assert (REPO / args.config).is_file()


def test_every_command_has_a_rayjob():
    assert set(RAYJOBS) == {*submit.STAGES, "pipeline"}


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_one_image_version(path):
    images = {c["image"] for d in _docs(path) for n in _walk(d) for c in n.get("containers", [])}
    versions = {image.rsplit(":", 1)[1].rsplit("-", 1)[0] for image in images}
    assert len(versions) <= 1, f"{path.name} mixes image versions: {sorted(images)}"
    # scripts/build_images.sh tags the images <project version>-cpu / -gpu.
    project = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert versions <= {project}, f"{path.name}: images {sorted(images)}, project version {project}"
