#!/usr/bin/env bash
# Install facegate as a systemd service on an NVIDIA Jetson with JetPack 6 (L4T R36, Ubuntu 22.04).
#
#   sudo deploy/install-jetson.sh --bundle default.tar.gz [--gpu-wheel FILE] [--no-start]
#
# Idempotent: re-running upgrades the code and the unit, and keeps the config, gallery and models.
#
# The JetPack release is checked first: JetPack 6 is supported; JetPack 5 (L4T R35) ships
# Python 3.8 and facegate needs Python >= 3.10, so it is refused before anything is installed.
# facegate runs on JetPack's own python3 (3.10). By default it runs on the CPU with onnxruntime
# from PyPI. --gpu-wheel installs an onnxruntime-gpu wheel built for JetPack 6 and that Python
# (cp310, aarch64; NVIDIA's Jetson builds), sets [runtime] providers = ["cuda", "cpu"] in a new
# config, and adds a drop-in that opens the device policy to the GPU nodes. GPU inference has not
# been measured on a Jetson. Models: pack a bundle on a workstation (facegate models build &&
# facegate models pack -o default.tar.gz) and pass it with --bundle; without a bundle (none given,
# none installed) the service is not enabled. Cameras: USB/V4L2 and RTSP work; CSI cameras need
# nvarguscamerasrc (GStreamer), which the pip OpenCV does not include.
#
# FACEGATE_ROOT=DIR installs under DIR instead of / (for tests; commands still come from PATH).
set -euo pipefail

ROOT=${FACEGATE_ROOT:-}
PREFIX=$ROOT/opt/facegate
STATE=$ROOT/var/lib/facegate
CONF=$ROOT/etc/facegate
UNIT=$ROOT/etc/systemd/system/facegate.service
TEMPLATE=$ROOT/etc/systemd/system/facegate@.service  # one daemon per /etc/facegate/NAME.toml
DROPIN=$ROOT/etc/systemd/system/facegate.service.d/jetson-gpu.conf
TEMPLATE_DROPIN=$ROOT/etc/systemd/system/facegate@.service.d/jetson-gpu.conf
NV_RELEASE=$ROOT/etc/nv_tegra_release
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=python3  # JetPack's own: 3.10 on JetPack 6
MIN_PYTHON=3.10
BUNDLE=""
GPU_WHEEL=""
START=1

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit "${1:-0}"
}

die() {
    echo "install-jetson.sh: $*" >&2
    exit 1
}

has_bundle() {
    compgen -G "$STATE/models/*/manifest.json" >/dev/null
}

# The L4T major release: "36" from "# R36 (release), REVISION: 3.0, ..." in /etc/nv_tegra_release,
# else from the nvidia-l4t-core package version ("36.3.0-2024..."); empty when neither exists.
l4t_release() {
    if [[ -f $NV_RELEASE ]]; then
        sed -n 's/^# R\([0-9]\+\) (release).*/\1/p' "$NV_RELEASE" | head -n 1
    else
        dpkg-query -W -f='${Version}' nvidia-l4t-core 2>/dev/null | cut -d. -f1 || true
    fi
}

check_jetpack() {
    local release
    release=$(l4t_release)
    case $release in
        36) ;;
        35) die "JetPack 5 (L4T R35) ships Python 3.8, and facegate needs Python >= $MIN_PYTHON:" \
                "upgrade to JetPack 6 (L4T R36)" ;;
        "") die "this is not a JetPack system (no $NV_RELEASE, no nvidia-l4t-core package)" ;;
        *) die "L4T R$release is not supported: facegate's Jetson install needs JetPack 6" \
               "(L4T R36)" ;;
    esac
}

check_python() {
    local version
    version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])') ||
        die "JetPack's $PYTHON does not run"
    if [[ $(printf '%s\n' "$MIN_PYTHON" "$version" | sort -V | head -n 1) != "$MIN_PYTHON" ]]; then
        die "JetPack's $PYTHON is $version; facegate needs Python >= $MIN_PYTHON"
    fi
    PY_TAG=cp${version/./}
}

check_gpu_wheel() {
    [[ -f $GPU_WHEEL ]] || die "no such wheel: $GPU_WHEEL"
    local name
    name=$(basename "$GPU_WHEEL")
    [[ $name == onnxruntime_gpu-*.whl ]] || die "$name is not an onnxruntime-gpu wheel"
    [[ $name == *-"$PY_TAG"-*aarch64.whl ]] ||
        die "$name does not match JetPack's Python ($PY_TAG, aarch64): get the build for it"
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --bundle) BUNDLE=${2:?--bundle needs a .tar.gz from facegate models pack}; shift 2 ;;
        --gpu-wheel) GPU_WHEEL=${2:?--gpu-wheel needs a .whl file}; shift 2 ;;
        --no-start) START=0; shift ;;
        -h|--help) usage ;;
        *) echo "unknown option: $1" >&2; usage 2 ;;
    esac
done

[[ $EUID -eq 0 ]] || die "run as root: sudo $0"
check_jetpack
check_python
[[ -z $GPU_WHEEL ]] || check_gpu_wheel
if [[ -n $BUNDLE && ! -f $BUNDLE ]]; then
    die "no such bundle archive: $BUNDLE (make one with: facegate models pack -o FILE)"
fi
if [[ -z $BUNDLE ]] && ! has_bundle; then
    die "no model bundle: pass --bundle FILE.tar.gz (from \`facegate models pack\` on a" \
        "machine that built it); the service is not enabled without one"
fi
BUNDLE=${BUNDLE:+$(realpath "$BUNDLE")}

echo "== packages"
apt-get update
apt-get install -y --no-install-recommends python3-venv python3-pip v4l-utils

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
# Written by install-jetson.sh --gpu-wheel. CUDA on Jetson opens /dev/nvmap, /dev/nvhost-* and
# /dev/nvgpu/*, whose device groups vary by JetPack release, so this drop-in lifts the device
# allow-list instead of naming them. Remove it (and --gpu-wheel) to go back to cameras only.
[Service]
DevicePolicy=auto
DeviceAllow=
EOF
    install -d -m 0755 "$(dirname "$TEMPLATE_DROPIN")"
    install -m 0644 "$DROPIN" "$TEMPLATE_DROPIN"  # the same for every facegate@NAME
elif [[ -f $DROPIN ]]; then
    rm -f "$DROPIN" "$TEMPLATE_DROPIN"
fi

echo "== models in $STATE/models"
install -d -m 0700 -o facegate -g facegate "$STATE" "$STATE/models"
if [[ -n $BUNDLE ]]; then
    FACEGATE_HOME=$STATE "$PREFIX/.venv/bin/facegate" models install "$BUNDLE" --force
    chown -R facegate:facegate "$STATE/models"
fi
has_bundle || die "no model bundle in $STATE/models: the service is not enabled"

echo "== config in $CONF"
install -d -m 0750 -o root -g facegate "$CONF"
if [[ ! -f $CONF/config.toml ]]; then
    install -m 0640 -o root -g facegate "$REPO/deploy/config.example.toml" "$CONF/config.toml"
    if [[ -n $GPU_WHEEL ]]; then
        printf '\n[runtime]\nproviders = ["cuda", "cpu"]\n' >> "$CONF/config.toml"
    fi
    echo "wrote $CONF/config.toml: set [camera] source (e.g. \"/dev/video0\")"
fi
# The daemon's own start-up checks, as the service will run them: a config that cannot start
# (no camera at that source yet, say) leaves the service installed but not enabled.
CONFIG_OK=1
FACEGATE_HOME=$STATE "$PREFIX/.venv/bin/facegate" check-config "$CONF/config.toml" || CONFIG_OK=0

echo "== service"
install -d -m 0755 "$(dirname "$UNIT")"
install -m 0644 "$REPO/deploy/facegate.service" "$UNIT"
# installed, not enabled: `systemctl enable --now facegate@NAME` runs /etc/facegate/NAME.toml
install -m 0644 "$REPO/deploy/facegate@.service" "$TEMPLATE"
systemctl daemon-reload
if [[ $CONFIG_OK -eq 0 ]]; then
    die "the service is installed but not enabled: fix $CONF/config.toml (check-config above" \
        "says what), then: systemctl enable --now facegate"
fi
systemctl enable facegate.service
if [[ $START -eq 1 ]]; then
    systemctl restart facegate.service
    systemctl --no-pager status facegate.service || true
fi

cat <<EOF

facegate is installed. Next:
  enrol people:  sudo -u facegate FACEGATE_HOME=/var/lib/facegate $PREFIX/.venv/bin/facegate \\
                     gallery enroll NAME photo1.jpg photo2.jpg
  watch events:  journalctl -u facegate -f
  more daemons:  write /etc/facegate/NAME.toml (its own [http] port), then
                 systemctl enable --now facegate@NAME   (docs/cameras.md)
EOF
