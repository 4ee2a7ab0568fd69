#!/usr/bin/env bash
# Install facegate as a systemd service on Raspberry Pi OS bookworm (64-bit).
#
#   sudo deploy/install-pi.sh [--bundle DIR] [--no-start]
#
# Idempotent: re-running upgrades the code and the unit, and keeps the config, gallery and models.
#
# Models: the Pi only runs them. Build a bundle on a workstation (x86_64 or arm64 with the
# [convert] extra: pip install '.[convert]' && facegate models build) and pass its folder, e.g.
# --bundle ~/.local/share/facegate/models/default copied over with scp. `facegate models build`
# also works on the Pi once the [convert] extra is installed, but that pulls TensorFlow
# (over 1 GB, slow to convert on a Pi), which is why it is not the default here.
set -euo pipefail

PREFIX=/opt/facegate
STATE=/var/lib/facegate
CONF=/etc/facegate
UNIT=/etc/systemd/system/facegate.service
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUNDLE=""
START=1

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit "${1:-0}"
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --bundle) BUNDLE=${2:?--bundle needs a folder}; shift 2 ;;
        --no-start) START=0; shift ;;
        -h|--help) usage ;;
        *) echo "unknown option: $1" >&2; usage 2 ;;
    esac
done

[[ $EUID -eq 0 ]] || { echo "run as root: sudo $0" >&2; exit 1; }
if [[ $(dpkg --print-architecture) != arm64 ]]; then
    echo "facegate needs 64-bit Raspberry Pi OS (arm64): onnxruntime and LiteRT have no" \
         "32-bit ARM wheels" >&2
    exit 1
fi
if [[ -n $BUNDLE && ! -f $BUNDLE/manifest.json ]]; then
    echo "$BUNDLE is not a model bundle (no manifest.json)" >&2
    exit 1
fi

echo "== packages"
apt-get update
# python3-picamera2 comes from apt (it needs the matching libcamera); the venv sees it through
# --system-site-packages. rpicam-apps-lite gives rpicam-hello to test the camera.
apt-get install -y --no-install-recommends \
    python3 python3-venv python3-pip python3-picamera2 python3-libcamera rpicam-apps-lite

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
[[ -x $PREFIX/.venv/bin/python ]] || python3 -m venv --system-site-packages "$PREFIX/.venv"
# Debian's picamera2 stack (simplejpeg, pidng) is built against numpy 1.x; numpy 2 in the venv
# would shadow it and break those modules, and OpenCV >= 4.12 requires numpy 2.
cat > "$PREFIX/constraints-pi.txt" <<'EOF'
numpy<2
opencv-python-headless<4.12
EOF
"$PREFIX/.venv/bin/pip" install --quiet --upgrade pip
"$PREFIX/.venv/bin/pip" install --quiet -c "$PREFIX/constraints-pi.txt" "${PREFIX}[litert]"

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
    echo "wrote $CONF/config.toml: set [camera] source (e.g. \"picamera2\")"
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
  HTTP token:    install -d -m 0700 /etc/credstore &&
                 openssl rand -hex 32 | install -m 0600 /dev/stdin /etc/credstore/facegate-http-token
EOF
