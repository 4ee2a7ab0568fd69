#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install, build the bundle (cached), run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
.venv/bin/facegate models build
.venv/bin/ruff check edge converters tests benchmarks
exec .venv/bin/python -m pytest -q "$@"
