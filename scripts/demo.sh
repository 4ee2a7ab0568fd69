#!/usr/bin/env bash
# Fresh machine to first result: install, build the default model bundle (cached), run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
.venv/bin/facegate models build
.venv/bin/facegate demo
