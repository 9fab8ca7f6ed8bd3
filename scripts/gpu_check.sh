#!/usr/bin/env bash
# The prepared GPU check, run on the device machine with gpu_wheels/ carried (scripts/gpu_wheels.sh builds
# it here): installs DeepSpeed and the training path's missing dependencies from the wheels (no network;
# what is installed already and fits is kept), then trains each of ARCHS through the project's trainer
# (bench/gpu_check.py) while BUDGET_S seconds last. Writes gpu_check.log and gpu_check_<arch>.json to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-gpu_wheels}
ARCHS=${ARCHS:-"qwen2-0.5b qwen2.5-1.5b"}
BUDGET_S=${BUDGET_S:-330}  # the whole check; an arch starts only with MIN_RUN_S of it left
MIN_RUN_S=${MIN_RUN_S:-120}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

check() {
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  extra=()
  compgen -G "$WHEELS/pyarrow-*.whl" >/dev/null && extra+=(pyarrow)
  "$PY" -m pip install -q --no-index --no-cache-dir --find-links "$WHEELS" \
    deepspeed==0.19.8 "pydantic>=2.9,<3" "${extra[@]}" || { echo "FAILED: installing from $WHEELS"; return 1; }
  "$PY" -c "import deepspeed, pyarrow, pydantic, yaml, train.loop" || { echo "FAILED: the training path does not import"; return 1; }

  status=0
  for arch in $ARCHS; do
    left=$((BUDGET_S - SECONDS))
    if [ "$left" -lt "$MIN_RUN_S" ]; then
      echo "SKIPPED $arch: ${left}s of the ${BUDGET_S}s budget left"
      continue
    fi
    echo "=== $arch (${left}s left)"
    timeout -k 10 "$left" "$PY" bench/gpu_check.py --arch "$arch" --out "$OUT" "$@" || { status=1; echo "FAILED: $arch"; }
  done
  echo "gpu check done in ${SECONDS}s, status $status"
  return $status
}

mkdir -p "$OUT"
check "$@" 2>&1 | tee -a "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
