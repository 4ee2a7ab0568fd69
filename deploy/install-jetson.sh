#!/usr/bin/env bash
# Install facegate as a systemd service on an NVIDIA Jetson (JetPack 6, Ubuntu 22.04).
#
#   sudo deploy/install-jetson.sh [--bundle DIR] [--gpu-wheel FILE] [--no-start]
#
# Idempotent: re-running upgrades the code and the unit, and keeps the config, gallery and models.
#
# By default facegate runs on the CPU with onnxruntime from PyPI. GPU inference is your choice and
# UNTESTED: --gpu-wheel installs an onnxruntime-gpu wheel you downloaded from NVIDIA's Jetson
# builds (it must be built for Python 3.11 and your JetPack) and adds a drop-in that opens the
# device policy to the GPU nodes. Models: build a bundle on a workstation (facegate models build)
# and pass its folder with --bundle. Cameras: USB/V4L2 and RTSP work; CSI cameras need
# nvarguscamerasrc (GStreamer), which the pip OpenCV does not include.
set -euo pipefail

PREFIX=/opt/facegate
STATE=/var/lib/facegate
CONF=/etc/facegate
UNIT=/etc/systemd/system/facegate.service
DROPIN=/etc/systemd/system/facegate.service.d/jetson-gpu.conf
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=python3.11  # facegate needs Python >= 3.11; JetPack 6 ships 3.10
BUNDLE=""
GPU_WHEEL=""
START=1

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit "${1:-0}"
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --bundle) BUNDLE=${2:?--bundle needs a folder}; shift 2 ;;
        --gpu-wheel) GPU_WHEEL=${2:?--gpu-wheel needs a .whl file}; shift 2 ;;
        --no-start) START=0; shift ;;
        -h|--help) usage ;;
        *) echo "unknown option: $1" >&2; usage 2 ;;
    esac
done

[[ $EUID -eq 0 ]] || { echo "run as root: sudo $0" >&2; exit 1; }
if [[ -n $BUNDLE && ! -f $BUNDLE/manifest.json ]]; then
    echo "$BUNDLE is not a model bundle (no manifest.json)" >&2
    exit 1
fi
if [[ -n $GPU_WHEEL && ! -f $GPU_WHEEL ]]; then
    echo "no such wheel: $GPU_WHEEL" >&2
    exit 1
fi

echo "== packages"
apt-get update
apt-get install -y --no-install-recommends "$PYTHON" "$PYTHON-venv" v4l-utils

echo "== user"
getent group facegate >/dev/null || groupadd --system facegate
id -u facegate >/dev/null 2>&1 ||
    useradd --system --gid facegate --home-dir "$STATE" --no-create-home \
        --shell /usr/sbin/nologin facegate
usermod --append --groups video facegate

echo "== code in $PREFIX"
install -d -m 0755 "$PREFIX"
if [[ $REPO != "$PREFIX" ]]; then
    tar -C "$REPO" --exclude=./.venv --exclude=./.git --exclude='__pycache__' -cf - . |
        tar -C "$PREFIX" --no-same-owner -xf -
fi
[[ -x $PREFIX/.venv/bin/python ]] || "$PYTHON" -m venv "$PREFIX/.venv"
"$PREFIX/.venv/bin/pip" install --quiet --upgrade pip
"$PREFIX/.venv/bin/pip" install --quiet "$PREFIX"
if [[ -n $GPU_WHEEL ]]; then
    "$PREFIX/.venv/bin/pip" uninstall --quiet --yes onnxruntime || true
    "$PREFIX/.venv/bin/pip" install --quiet "$GPU_WHEEL"
    install -d -m 0755 "$(dirname "$DROPIN")"
    cat > "$DROPIN" <<'EOF'
# Written by install-jetson.sh --gpu-wheel (UNTESTED). CUDA on Jetson opens /dev/nvmap,
# /dev/nvhost-* and /dev/nvgpu/*, whose device groups vary by JetPack release, so this drop-in
# lifts the device allow-list instead of naming them. Remove it to go back to cameras only.
[Service]
DevicePolicy=auto
DeviceAllow=
EOF
elif [[ -f $DROPIN ]]; then
    rm -f "$DROPIN"
fi

echo "== state in $STATE"
install -d -m 0700 -o facegate -g facegate "$STATE" "$STATE/models"
if [[ -n $BUNDLE ]]; then
    name=$(basename "$BUNDLE")
    rm -rf "${STATE:?}/models/$name.new"
    cp -r "$BUNDLE" "$STATE/models/$name.new"
    rm -rf "${STATE:?}/models/$name"
    mv "$STATE/models/$name.new" "$STATE/models/$name"
    chown -R facegate:facegate "$STATE/models"
    chmod -R go= "$STATE/models"
elif [[ ! -f $STATE/models/default/manifest.json ]]; then
    echo "warning: no model bundle in $STATE/models/default: rerun with --bundle DIR" >&2
fi

echo "== config in $CONF"
install -d -m 0750 -o root -g facegate "$CONF"
if [[ ! -f $CONF/config.toml ]]; then
    install -m 0640 -o root -g facegate "$REPO/deploy/config.example.toml" "$CONF/config.toml"
    echo "wrote $CONF/config.toml: set [camera] source (e.g. \"/dev/video0\")"
fi
"$PREFIX/.venv/bin/facegate" check-config "$CONF/config.toml"

echo "== service"
install -m 0644 "$REPO/deploy/facegate.service" "$UNIT"
systemctl daemon-reload
systemctl enable facegate.service
if [[ $START -eq 1 ]]; then
    systemctl restart facegate.service
    systemctl --no-pager status facegate.service || true
fi

cat <<EOF

facegate is installed. Next:
  enrol people:  sudo -u facegate FACEGATE_HOME=$STATE $PREFIX/.venv/bin/facegate \\
                     gallery enroll NAME photo1.jpg photo2.jpg
  watch events:  journalctl -u facegate -f
EOF
