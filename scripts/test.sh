#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install, build the bundle (cached), run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
# Real services the tests start themselves: an MQTT broker, ffmpeg as an RTSP camera, a browser.
need=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v shellcheck >/dev/null || need+=(shellcheck)
# The web page's browser test: Debian's chromium and its driver (selenium downloads nothing).
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}" >/dev/null
fi
.venv/bin/facegate models build
.venv/bin/ruff check edge converters tests benchmarks
# A test skipped because a tool is missing fails here instead of hiding a missing install;
# one that needs the optional ../shared data set skips; -rfEs prints every failure, error and
# skip with its reason.
export FACEGATE_STRICT=1
exec .venv/bin/python -m pytest -q -rfEs "$@"
