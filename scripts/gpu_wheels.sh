#!/usr/bin/env bash
# Build and download into gpu_wheels/ what the GPU check (scripts/gpu_check.sh) installs on the device
# machine, which has torch, transformers, accelerate, peft and pyarrow but no DeepSpeed nor pydantic and
# no network: DeepSpeed built here as a pure-Python wheel (DS_BUILD_OPS=0: its ops JIT-compile there when
# used; this path uses none), its dependencies and pydantic's, for Linux x86_64 and each of PY_VERSIONS
# (the device's python3 is 3.12). EXTRA adds name==version specs (e.g. EXTRA=pyarrow==26.0.1, 55 MB).
# Fails when the wheels and the working tree that travels with them exceed the device's 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DIR=${WHEELS:-gpu_wheels}
PY_VERSIONS=${PY_VERSIONS:-"3.11 3.12"}
LIMIT=$((64 * 1024 * 1024))
PURE="hjson==3.1.0 py-cpuinfo==9.0.0 einops==0.8.2 pydantic==2.14.4 annotated-types==0.8.0
typing-inspection==0.4.5 typing-extensions==4.16.0 ninja==1.13.2"
BINARY="pydantic-core==2.50.5 msgpack==1.2.4 ${EXTRA:-}"

rm -rf "$DIR" && mkdir -p "$DIR"
DS_BUILD_OPS=0 "$PY" -m pip wheel -q --no-deps --no-cache-dir --no-binary deepspeed -w "$DIR" deepspeed==0.19.8
for v in $PY_VERSIONS; do
  # shellcheck disable=SC2086
  "$PY" -m pip download -q --no-deps --only-binary=:all: --implementation cp --python-version "$v" \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DIR" $PURE $BINARY
done
ls -l "$DIR"
wheels=$(du -cb "$DIR"/*.whl | tail -1 | cut -f1)
tree=$( (git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null || true) | tail -1 | cut -f1)
echo "gpu_wheels: $(ls "$DIR" | wc -l) wheels, $((wheels / 1024)) KiB; with the working tree: $(((wheels + tree) / 1024)) KiB of $((LIMIT / 1024))"
if [ $((wheels + tree)) -gt "$LIMIT" ]; then
  echo "over the device's 64 MiB for the working tree and carried paths" >&2
  exit 1
fi
