#!/usr/bin/env bash
# Check facegate on arm64: a Debian bookworm arm64 root run under qemu-user emulation.
#
#   sudo deploy/check-arm64.sh [--bundle FILE [--sha256 HEX] | --bundle-dir DIR] [--wheel FILE]
#                              [--backend auto|onnxruntime|litert] [--start FRAME] [--frames N]
#                              [--shared DIR] [--cache DIR] [--mirror URL] [--timeout SECONDS]
#
# Builds an arm64 Debian bookworm root with debootstrap (once; cached in --cache, default
# ~/.cache/facegate/arm64-root), installs this checkout's wheel there with the Raspberry Pi
# constraints and the [litert] extra, exactly as deploy/install-pi.sh does, installs a model bundle,
# enrols Lin-Manuel Miranda from one photo (../shared/faces) and runs `facegate run` over 60 frames
# of the Hamilton clip (../shared/video), cut on the host with ffmpeg. Passes (exit 0) only when the
# run emits exactly one `recognized` event, naming lin_manuel_miranda.
#
# Frames: --start 60 --frames 60 by default. Frames 0-59 hold him only ~45 px wide, under
# [recognition] min_face_size = 60, then the pianist in profile: on x86-64 too they give one
# `unknown` and no `recognized`. Frames 60-119 hold his close-up (named at frame 85 on x86-64).
#
# Model bundle: --bundle FILE installs an archive from `facegate models pack` with
# `facegate models install`; --bundle-dir DIR copies a built bundle folder (default:
# ${FACEGATE_HOME:-~/.local/share/facegate}/models/default).
#
# Idempotent: a rerun reuses the root, the venv and pip's cache, reinstalls the wheel and starts
# from an empty gallery. Progress goes to stderr; the last line is a summary with the result and
# the seconds each stage took. Needs root (debootstrap, chroot, mounts), debootstrap,
# qemu-user-static, binfmt-support and ffmpeg (apt install debootstrap qemu-user-static
# binfmt-support ffmpeg). Emulation is slow: minutes, not seconds.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=$REPO/../shared
CACHE=${HOME}/.cache/facegate/arm64-root
BUNDLE_FILE=""
BUNDLE_SHA=""
BUNDLE_DIR=${FACEGATE_HOME:-$HOME/.local/share/facegate}/models/default
WHEEL=""
BACKEND=auto
START=60
FRAMES=60
MIRROR=http://deb.debian.org/debian
RUN_TIMEOUT=3600
SUITE=bookworm
PERSON=lin_manuel_miranda
PREFIX=/opt/facegate             # where install-pi.sh puts the venv; the same here
STATE=/var/lib/facegate-check    # FACEGATE_HOME inside the root
WORK=/root/facegate-check        # clip, config, events and logs inside the root
STAGES=()

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit "${1:-0}"
}

log() { printf 'check-arm64: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

parse_args() {
    while [[ $# -gt 0 ]]; do
        case $1 in
            --shared) SHARED=${2:?--shared needs a folder}; shift 2 ;;
            --cache) CACHE=${2:?--cache needs a folder}; shift 2 ;;
            --bundle) BUNDLE_FILE=${2:?--bundle needs a .tar.gz}; shift 2 ;;
            --sha256) BUNDLE_SHA=${2:?--sha256 needs a hex digest}; shift 2 ;;
            --bundle-dir) BUNDLE_DIR=${2:?--bundle-dir needs a folder}; shift 2 ;;
            --wheel) WHEEL=${2:?--wheel needs a file}; shift 2 ;;
            --backend) BACKEND=${2:?--backend needs a name}; shift 2 ;;
            --start) START=${2:?--start needs a frame number}; shift 2 ;;
            --frames) FRAMES=${2:?--frames needs a count}; shift 2 ;;
            --mirror) MIRROR=${2:?--mirror needs a URL}; shift 2 ;;
            --timeout) RUN_TIMEOUT=${2:?--timeout needs seconds}; shift 2 ;;
            -h|--help) usage ;;
            *) echo "unknown option: $1" >&2; usage 2 ;;
        esac
    done
    [[ $START =~ ^[0-9]+$ && $FRAMES =~ ^[1-9][0-9]*$ && $RUN_TIMEOUT =~ ^[1-9][0-9]*$ ]] ||
        die "--start, --frames and --timeout take whole numbers"
    [[ $BACKEND =~ ^(auto|onnxruntime|litert)$ ]] || die "--backend: auto, onnxruntime or litert"
    ROOT=$CACHE/rootfs
}

# Run STAGE-NAME COMMAND...: time a stage and remember its seconds for the summary.
stage() {
    local name=$1 t0=$SECONDS
    shift
    log "== $name"
    "$@"
    STAGES+=("$name $((SECONDS - t0))s")
}

check_host() {
    [[ $EUID -eq 0 ]] || die "run as root: debootstrap, chroot and mounts need it"
    local tool
    for tool in debootstrap chroot ffmpeg update-binfmts; do
        command -v "$tool" >/dev/null ||
            die "$tool is missing: apt install debootstrap qemu-user-static binfmt-support ffmpeg"
    done
    [[ -f $SHARED/video/face_recognition_short_hamilton_clip.mp4 ]] ||
        die "$SHARED/video/face_recognition_short_hamilton_clip.mp4 is missing"
    [[ -d $SHARED/faces/face_recognition/$PERSON ]] ||
        die "$SHARED/faces/face_recognition/$PERSON is missing"
    if [[ -n $BUNDLE_FILE ]]; then
        [[ -f $BUNDLE_FILE ]] || die "--bundle $BUNDLE_FILE: no such file"
    else
        [[ -f $BUNDLE_DIR/manifest.json ]] ||
            die "$BUNDLE_DIR is not a model bundle (no manifest.json): see --bundle-dir, --bundle"
    fi
}

# qemu-aarch64 through binfmt_misc: the kernel hands every arm64 ELF to qemu, so debootstrap's
# second stage, dpkg's maintainer scripts and pip's subprocesses all run. Flag F (fix binary:
# qemu-user-static registers with it) opens the interpreter at registration, so the root needs no
# copy of it; without F the interpreter is copied into the root at the registered path.
ensure_binfmt() {
    local entry=/proc/sys/fs/binfmt_misc/qemu-aarch64
    if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
            die "cannot mount binfmt_misc on /proc/sys/fs/binfmt_misc: arm64 programs cannot run"
    fi
    [[ -e $entry ]] || update-binfmts --enable qemu-aarch64 ||
        die "update-binfmts --enable qemu-aarch64 failed: is qemu-user-static installed?"
    grep -qx enabled "$entry" || die "$entry is registered but disabled"
    BINFMT_INTERP=$(awk '$1 == "interpreter" { print $2 }' "$entry")
    BINFMT_FLAGS=$(awk '$1 == "flags:" { print $2 }' "$entry")
    log "binfmt: qemu-aarch64 -> $BINFMT_INTERP (flags ${BINFMT_FLAGS:-none})"
}

copy_interpreter_if_needed() {
    if [[ $BINFMT_FLAGS != *F* ]]; then
        install -D -m 0755 "$BINFMT_INTERP" "$ROOT$BINFMT_INTERP"
        log "binfmt without flag F: copied $BINFMT_INTERP into the root"
    fi
}

mount_root() {
    mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
    # No /sys: with sysfs mounted, `facegate identify --backend onnxruntime` (onnxruntime 1.32)
    # dies of SIGSEGV under qemu-aarch64 7.2; without it, it works and cpuinfo only prints
    # "Error in cpuinfo: failed to parse the list of possible processors".
    if ! mountpoint -q "$ROOT/dev"; then
        mount --rbind /dev "$ROOT/dev"
        mount --make-rslave "$ROOT/dev"
    fi
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
}

unmount_root() {
    [[ -n ${ROOT:-} && -d $ROOT ]] || return 0
    if mountpoint -q "$ROOT/dev"; then umount -R "$ROOT/dev" || umount -lR "$ROOT/dev"; fi
    if mountpoint -q "$ROOT/proc"; then umount "$ROOT/proc" || umount -l "$ROOT/proc"; fi
}

# in_root COMMAND...: run a command in the arm64 root with a clean environment.
in_root() {
    chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
        PATH=$PREFIX/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        FACEGATE_HOME=$STATE PIP_DISABLE_PIP_VERSION_CHECK=1 "$@"
}

# The host's own extra CAs (a TLS-inspecting proxy, a company CA) go into the root too, so pip
# inside it trusts what the host trusts.
trust_host_cas() {
    local crt target copied=0
    for crt in /usr/local/share/ca-certificates/*.crt; do
        target=$ROOT/usr/local/share/ca-certificates/$(basename "$crt")
        if [[ ! -f $crt ]] || cmp -s "$crt" "$target"; then continue; fi
        install -D -m 0644 "$crt" "$target"
        copied=1
    done
    if [[ $copied -eq 1 ]]; then in_root update-ca-certificates >/dev/null; fi
}

build_root() {
    local marker=$ROOT/.facegate-root-ok
    if [[ -f $marker ]]; then
        log "root: reusing $ROOT"
    else
        unmount_root
        # --one-file-system: never into a /dev, /proc or /sys still bound into the root.
        rm -rf --one-file-system "${ROOT:?}"
        mkdir -p "$CACHE"
        log "root: debootstrap $SUITE arm64 from $MIRROR into $ROOT (log: $CACHE/debootstrap.log)"
        debootstrap --arch=arm64 --variant=minbase \
            --include=python3,python3-venv,ca-certificates \
            "$SUITE" "$ROOT" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
            die "debootstrap failed: see $CACHE/debootstrap.log"
        touch "$marker"
    fi
    copy_interpreter_if_needed
    mount_root
    [[ $(in_root uname -m) == aarch64 ]] || die "the root does not run as aarch64"
    trust_host_cas
}

# The Pi constraints, read from deploy/install-pi.sh (its constraints-pi.txt here-document), so
# this check installs what a Pi installs.
pi_constraints() {
    # The file install-pi.sh uses on bookworm, the release this root is: requirement lines only.
    grep -v '^[[:space:]]*\(#\|$\)' "$REPO/deploy/constraints-pi-bookworm.txt"
}

build_wheel() {
    local out=$CACHE/wheel python=$REPO/.venv/bin/python
    if [[ -n $WHEEL ]]; then
        [[ -f $WHEEL ]] || die "--wheel $WHEEL: no such file"
        return 0
    fi
    [[ -x $python ]] || python=python3
    rm -rf "$out" && mkdir -p "$out"
    # With build isolation: pip fetches the setuptools pyproject.toml asks for.
    "$python" -m pip wheel --quiet --no-deps -w "$out" "$REPO" >&2 ||
        die "building the wheel failed"
    WHEEL=$(echo "$out"/facegate-*.whl)
    [[ -f $WHEEL ]] || die "no facegate wheel in $out"
    log "wheel: $(basename "$WHEEL")"
}

install_facegate() {
    local wheel_in_root constraints
    constraints=$(pi_constraints)
    [[ -n $constraints ]] || die "no Pi constraints found in deploy/constraints-pi-bookworm.txt"
    log "Pi constraints: $(echo "$constraints" | paste -sd ' ')"
    mkdir -p "$ROOT$PREFIX/wheels"
    rm -f "$ROOT$PREFIX"/wheels/*.whl
    cp "$WHEEL" "$ROOT$PREFIX/wheels/"
    wheel_in_root=$PREFIX/wheels/$(basename "$WHEEL")
    printf '%s\n' "$constraints" >"$ROOT$PREFIX/constraints-pi.txt"
    [[ -x $ROOT$PREFIX/.venv/bin/python ]] || in_root python3 -m venv "$PREFIX/.venv"
    in_root pip install --quiet --upgrade pip
    in_root pip install --quiet -c "$PREFIX/constraints-pi.txt" "${wheel_in_root}[litert]"
    # Same version number, new code: replace the package itself on every run.
    in_root pip install --quiet --force-reinstall --no-deps "$wheel_in_root"
    log "versions: $(in_root python3 -c 'import sys; print("python", sys.version.split()[0])')" \
        "$(in_root pip list 2>/dev/null |
            awk '$1 ~ /^(numpy|onnxruntime|opencv-python-headless|ai-edge-litert|facegate)$/ {
                printf "%s %s  ", $1, $2 }')"
}

# One way in for models: `facegate models install FILE` when an archive is given (and the command
# exists), else a copy of a built bundle folder.
install_bundle() {
    rm -rf "${ROOT:?}$STATE"
    install -d -m 0700 "$ROOT$STATE" "$ROOT$STATE/models"
    if [[ -n $BUNDLE_FILE ]]; then
        in_root facegate models install --help >/dev/null 2>&1 ||
            die "this facegate has no \`models install\`: use --bundle-dir DIR"
        cp "$BUNDLE_FILE" "$ROOT$WORK.bundle.tar.gz"
        in_root facegate models install "$WORK.bundle.tar.gz" ${BUNDLE_SHA:+--sha256 "$BUNDLE_SHA"}
        rm -f "$ROOT$WORK.bundle.tar.gz"
    else
        cp -rL "$BUNDLE_DIR" "$ROOT$STATE/models/default"
        chmod -R go= "$ROOT$STATE/models"
        log "bundle: copied $BUNDLE_DIR"
    fi
}

cut_clip() {
    rm -rf "${ROOT:?}$WORK" && mkdir -p "$ROOT$WORK"
    # Lossless H.264 keeps the decoded frames identical to the source's.
    ffmpeg -v error -nostdin -y -i "$SHARED/video/face_recognition_short_hamilton_clip.mp4" \
        -vf "trim=start_frame=$START:end_frame=$((START + FRAMES)),setpts=PTS-STARTPTS" -an \
        -c:v libx264 -qp 0 -pix_fmt yuv420p "$ROOT$WORK/clip.mp4"
    mkdir -p "$ROOT$WORK/photos"
    cp "$SHARED/faces/face_recognition/$PERSON"/* "$ROOT$WORK/photos/"
    cat >"$ROOT$WORK/config.toml" <<EOF
[camera]
name = "hamilton"
source = "$WORK/clip.mp4"

[models]
backend = "$BACKEND"

[[sinks]]
type = "jsonl"
path = "$WORK/events.jsonl"

[http]
enabled = false
EOF
}

enrol() {
    local photos=() photo
    for photo in "$ROOT$WORK"/photos/*; do
        [[ -f $photo ]] && photos+=("$WORK/photos/$(basename "$photo")")
    done
    [[ ${#photos[@]} -gt 0 ]] || die "no photo of $PERSON"
    in_root facegate gallery enroll --backend "$BACKEND" "$PERSON" "${photos[@]}" >&2
}

run_clip() {
    RUN_T0=$SECONDS
    in_root timeout "$RUN_TIMEOUT" facegate run --config "$WORK/config.toml" 2>&1 |
        tee "$CACHE/run.log" >&2 || die "facegate run failed: see $CACHE/run.log"
    RUN_SECONDS=$((SECONDS - RUN_T0))
}

# Sets RESULT and RECOGNIZED from the events file.
judge() {
    local events=$ROOT$WORK/events.jsonl
    [[ -f $events ]] || die "no events file: see $CACHE/run.log"
    RECOGNIZED=$(in_root python3 -c '
import json, sys
events = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print(",".join(str(e["person"]) for e in events if e["event"] == "recognized") or "none")
' "$WORK/events.jsonl")
    log "events: $(tr '\n' ' ' <"$events" | cut -c1-2000)"
    if [[ $RECOGNIZED == "$PERSON" ]]; then RESULT=PASS; else RESULT=FAIL; fi
}

main() {
    parse_args "$@"
    local t0=$SECONDS
    check_host
    trap unmount_root EXIT
    ensure_binfmt
    stage root build_root
    stage wheel build_wheel
    stage venv install_facegate
    stage bundle install_bundle
    stage clip cut_clip
    stage enrol enrol
    stage run run_clip
    judge
    local fps
    fps=$(awk -v f="$FRAMES" -v s="$RUN_SECONDS" 'BEGIN { printf "%.2f", f / (s > 0 ? s : 1) }')
    echo "check-arm64: $RESULT recognized=$RECOGNIZED frames=$START+$FRAMES backend=$BACKEND" \
        "run_fps=$fps stages: ${STAGES[*]} total $((SECONDS - t0))s" >&2
    [[ $RESULT == PASS ]]
}

# Sourced (by the tests), only the functions are defined.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
