#!/usr/bin/env bash
# `make images`: build the CPU and GPU images from cluster/Dockerfile.{cpu,gpu} with the pins of
# pyproject.toml, tag them <registry>:<project version>-cpu / -gpu, and check that both hold the same
# Python, Ray and project versions (Ray refuses a worker whose Python differs from the head's).
# PUSH=1 pushes them. Needs Docker (the GPU image builds on any x86_64 host; it runs only on GPUs).
set -euo pipefail
cd "$(dirname "$0")/.."
read -r RAY PYTHON CUDA REGISTRY VERSION < <(python3 - <<'PY'
import re, tomllib
p = tomllib.load(open("pyproject.toml", "rb"))
ray = next(re.search(r"==([\w.]+)", d).group(1) for d in p["project"]["dependencies"] if d.startswith("ray["))
img = p["tool"]["humanllm"]["images"]
print(ray, "py" + img["python"].replace(".", ""), img["cuda"], img["registry"], p["project"]["version"])
PY
)
ARGS=(--build-arg RAY_VERSION="$RAY" --build-arg PYTHON_TAG="$PYTHON" --build-arg PROJECT_VERSION="$VERSION")
docker build -f cluster/Dockerfile.cpu "${ARGS[@]}" -t "$REGISTRY:$VERSION-cpu" .
docker build -f cluster/Dockerfile.gpu "${ARGS[@]}" --build-arg CUDA_TAG="$CUDA" -t "$REGISTRY:$VERSION-gpu" .
PROBE='import sys, importlib.metadata as m; print(sys.version.split()[0], m.version("ray"), m.version("humanllm-ray"), m.version("torch"))'
CPU=$(docker run --rm "$REGISTRY:$VERSION-cpu" python -c "$PROBE")
GPU=$(docker run --rm "$REGISTRY:$VERSION-gpu" python -c "$PROBE")
echo "cpu image: python ray project torch = $CPU"
echo "gpu image: python ray project torch = $GPU"
if [ "${CPU%+*}" != "${GPU%+*}" ]; then echo "the images differ in Python, Ray, project or torch version" >&2; exit 1; fi
if [ "${PUSH:-0}" = 1 ]; then docker push "$REGISTRY:$VERSION-cpu" && docker push "$REGISTRY:$VERSION-gpu"; fi
