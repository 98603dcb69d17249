#!/usr/bin/env bash
# The test suite: lint (ruff) and types (mypy), unit tests on tiny models, then the marked tests on the real smollm2
# model and real data (../shared/data, or $SOFTPROMPT_DATA_DIR).
#
#     bash scripts/test.sh            everything (what CI runs)
#     bash scripts/test.sh --fast     unit tests only: no real model, no extra processes (~1-2 min)
#
# Other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--fast" ]; then
    shift
    exec .venv/bin/python -m pytest -q -ra -m "not real_model and not slow" "$@"
fi
.venv/bin/ruff check src tests scripts benchmarks examples
.venv/bin/mypy src
exec .venv/bin/python -m pytest -q -ra "$@"
