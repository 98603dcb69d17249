#!/usr/bin/env bash
# The test suite: unit tests on tiny models, then the marked tests on the real smollm2 model
# and real data (../shared/data, or $SOFTPROMPT_DATA_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -q -ra "$@"
