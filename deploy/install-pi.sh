#!/usr/bin/env bash
# Install facegate as a systemd service on Raspberry Pi OS bookworm (64-bit).
#
#   sudo deploy/install-pi.sh --bundle default.tar.gz [--no-start]
#
# Idempotent: re-running upgrades the code and the unit, and keeps the config, gallery and models.
#
# Models: the Pi only runs them. Build and pack a bundle on a workstation with the [convert] extra
# (pip install '.[convert]' && facegate models build && facegate models pack -o default.tar.gz),
# copy the archive over, and pass it with --bundle: it is installed with `facegate models install`,
# which checks every file's sha256. Without a bundle (none given, none installed) the service is
# not enabled: it would only restart in a loop.
#
# FACEGATE_ROOT=DIR installs under DIR instead of / (for tests; commands still come from PATH).
set -euo pipefail

ROOT=${FACEGATE_ROOT:-}
PREFIX=$ROOT/opt/facegate
STATE=$ROOT/var/lib/facegate
CONF=$ROOT/etc/facegate
UNIT=$ROOT/etc/systemd/system/facegate.service
TEMPLATE=$ROOT/etc/systemd/system/facegate@.service  # one daemon per /etc/facegate/NAME.toml
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUNDLE=""
START=1

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit "${1:-0}"
}

die() {
    echo "install-pi.sh: $*" >&2
    exit 1
}

has_bundle() {
    compgen -G "$STATE/models/*/manifest.json" >/dev/null
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --bundle) BUNDLE=${2:?--bundle needs a .tar.gz from facegate models pack}; shift 2 ;;
        --no-start) START=0; shift ;;
        -h|--help) usage ;;
        *) echo "unknown option: $1" >&2; usage 2 ;;
    esac
done

CODENAME=$({ sed -n 's/^VERSION_CODENAME=//p' "$ROOT/etc/os-release" 2>/dev/null || true; } | tr -d '"')
CONSTRAINTS=$REPO/deploy/constraints-pi-${CODENAME:-bookworm}.txt
if [[ ! -f $CONSTRAINTS ]]; then
    echo "Raspberry Pi OS '${CODENAME}' is not supported: bookworm or trixie (64-bit)" >&2
    exit 1
fi

[[ $EUID -eq 0 ]] || die "run as root: sudo $0"
if [[ $(dpkg --print-architecture) != arm64 ]]; then
    die "facegate needs 64-bit Raspberry Pi OS (arm64): onnxruntime and LiteRT have no" \
        "32-bit ARM wheels"
fi
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
# pip constraints that match the release's own picamera2 stack (numpy 1.x on bookworm, numpy 2
# on trixie): deploy/constraints-pi-<codename>.txt says why for each.
"$PREFIX/.venv/bin/pip" install --quiet --upgrade pip
"$PREFIX/.venv/bin/pip" install --quiet -c "$CONSTRAINTS" "${PREFIX}[litert]"

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
    echo "wrote $CONF/config.toml: set [camera] source (e.g. \"picamera2\")"
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
  HTTP token:    install -d -m 0700 /etc/credstore &&
                 openssl rand -hex 32 | install -m 0600 /dev/stdin /etc/credstore/facegate-http-token
EOF
