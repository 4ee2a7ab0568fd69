"""The Pi and Jetson install scripts, run for real against a fake root and fake system commands.

apt, systemd, user management and the venv are faked (each fake logs its call); the repository
copy, the bundle install (`facegate models install`, the real one) and check-config are real.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from facegate.bundle import Bundle
from facegate.bundle.archive import pack

REPO = Path(__file__).resolve().parents[2]
PI = REPO / "deploy" / "install-pi.sh"
JETSON = REPO / "deploy" / "install-jetson.sh"
NO_BUNDLE = "no model bundle: pass --bundle FILE.tar.gz"

# Each fake appends "NAME ARGS" to $FAKE_LOG. `install` and `chown` drop owners (the test root
# has no facegate user); python3 answers the version probe and makes a venv whose facegate is
# this checkout's and whose pip only logs.
FAKES = {
    "apt-get": "",
    "systemctl": "",
    "groupadd": "",
    "useradd": "",
    "usermod": "",
    "getent": "exit 0",
    "id": "exit 0",
    "chown": "",
    "dpkg": 'echo "${FAKE_ARCH:-arm64}"',
    "dpkg-query": '[ -n "${FAKE_L4T:-}" ] && printf %s "$FAKE_L4T" || exit 1',
    "install": """args=(); skip=0
for a in "$@"; do
  if [ $skip = 1 ]; then skip=0; continue; fi
  case $a in -o|-g) skip=1 ;; *) args+=("$a") ;; esac
done
exec /usr/bin/install "${args[@]}\"""",
    "python3": """if [ "$1" = -c ]; then echo "${FAKE_PYVER:-3.10}"; exit 0; fi
if [ "$1 $2" = "-m venv" ]; then
  for a in "$@"; do venv=$a; done
  mkdir -p "$venv/bin"
  printf '#!/bin/sh\\necho pip "$@" >> "$FAKE_LOG"\\n' > "$venv/bin/pip"
  printf '#!/bin/sh\\nexec %s -m facegate.cli "$@"\\n' "$REAL_PYTHON" > "$venv/bin/facegate"
  ln -sf "$REAL_PYTHON" "$venv/bin/python"
  chmod +x "$venv/bin/pip" "$venv/bin/facegate"
  exit 0
fi
exit 3""",
}


@pytest.fixture()
def fake(tmp_path: Path) -> dict[str, object]:
    """A fake root, fake commands first on PATH, and the log they write."""
    if os.geteuid() != 0:
        pytest.skip("the install scripts run as root (this test user is not)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in FAKES.items():
        path = bin_dir / name
        path.write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> "$FAKE_LOG"\n{body}\n')
        path.chmod(0o755)
    root = tmp_path / "root"
    (root / "etc" / "facegate").mkdir(parents=True)
    photos = tmp_path / "photos"  # a source that works here: the owner's config, kept as it is
    photos.mkdir()
    (root / "etc" / "facegate" / "config.toml").write_text(f'[camera]\nsource = "{photos}"\n')
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "FACEGATE_ROOT": str(root),
        "FAKE_LOG": str(tmp_path / "calls.log"),
        "REAL_PYTHON": sys.executable,
    }
    return {"env": env, "root": root, "log": tmp_path / "calls.log"}


@pytest.fixture(scope="module")
def archive(bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built default bundle, packed: the service's start-up checks need every model."""
    return pack(bundle, tmp_path_factory.mktemp("archive") / "default.tar.gz").path


@pytest.mark.parametrize("codename", ["bookworm", "trixie"])
def test_pi_uses_the_constraints_of_its_release(
    fake: dict, archive: Path, codename: str
) -> None:
    (fake["root"] / "etc" / "os-release").write_text(f'VERSION_CODENAME="{codename}"\n')
    proc = _run(PI, fake, "--bundle", str(archive), "--no-start")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"constraints-pi-{codename}.txt" in _calls(fake)


def test_pi_does_not_enable_a_service_whose_config_cannot_start(
    fake: dict, archive: Path
) -> None:
    (fake["root"] / "etc" / "facegate" / "config.toml").unlink()  # the example is written: camera 0
    proc = _run(PI, fake, "--bundle", str(archive))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "installed but not enabled" in proc.stderr.splitlines()[-1]
    assert "no such camera" in proc.stderr
    assert "systemctl enable" not in _calls(fake)


def test_pi_refuses_a_release_it_has_no_constraints_for(fake: dict, archive: Path) -> None:
    (fake["root"] / "etc" / "os-release").write_text("VERSION_CODENAME=bullseye\n")
    proc = _run(PI, fake, "--bundle", str(archive))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "'bullseye' is not supported" in proc.stderr
    assert "apt-get" not in _calls(fake)


def _run(script: Path, fake: dict, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**fake["env"], **env},
    )


def _calls(fake: dict) -> str:
    log = fake["log"]
    return log.read_text() if log.exists() else ""


@pytest.mark.parametrize("script", [PI, JETSON], ids=lambda p: p.name)
def test_without_a_bundle_nothing_is_installed(script: Path, fake: dict) -> None:
    (fake["root"] / "etc" / "nv_tegra_release").write_text("# R36 (release), REVISION: 3.0\n")
    proc = _run(script, fake)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and NO_BUNDLE in proc.stderr
    assert "the service is not enabled without one" in proc.stderr
    assert "apt-get" not in _calls(fake) and "systemctl" not in _calls(fake)
    assert not (fake["root"] / "opt").exists()


def test_pi_installs_the_bundle_and_enables_the_service(fake: dict, archive: Path) -> None:
    proc = _run(PI, fake, "--bundle", str(archive), "--no-start")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = fake["root"]
    bundle = root / "var" / "lib" / "facegate" / "models" / "default"
    assert (bundle / "manifest.json").is_file()
    assert stat.S_IMODE((bundle / "embedder.fp32.onnx").stat().st_mode) == 0o600
    assert (root / "etc" / "facegate" / "config.toml").is_file()
    assert (root / "etc" / "systemd" / "system" / "facegate.service").is_file()
    template = root / "etc" / "systemd" / "system" / "facegate@.service"
    assert template.read_bytes() == (REPO / "deploy" / "facegate@.service").read_bytes()
    calls = _calls(fake)
    assert "systemctl enable facegate.service" in calls
    assert "systemctl enable facegate@" not in calls  # the template waits for instances
    assert "systemctl enable --now facegate@NAME" in proc.stdout
    assert "systemctl restart" not in calls  # --no-start
    assert "chown -R facegate:facegate" in calls
    # a second run without --bundle keeps the installed one and still enables the service
    again = _run(PI, fake, "--no-start")
    assert again.returncode == 0, again.stderr


def test_pi_refuses_a_tampered_archive_before_enabling(
    fake: dict, archive: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not an archive")
    proc = _run(PI, fake, "--bundle", str(bad))
    assert proc.returncode == 1
    assert "not a readable .tar.gz bundle archive" in proc.stderr
    assert "systemctl enable" not in _calls(fake)
    proc = _run(PI, fake, "--bundle", str(tmp_path / "absent.tar.gz"))
    assert proc.returncode == 1 and "no such bundle archive" in proc.stderr


def test_pi_refuses_32_bit(fake: dict, archive: Path) -> None:
    proc = _run(PI, fake, "--bundle", str(archive), FAKE_ARCH="armhf")
    assert proc.returncode == 1 and "64-bit Raspberry Pi OS" in proc.stderr
    assert "apt-get" not in _calls(fake)


JETPACK = {
    "# R35 (release), REVISION: 4.1, GCID: 33958178": "JetPack 5 (L4T R35) ships Python 3.8",
    "# R32 (release), REVISION: 7.1": "L4T R32 is not supported",
}


@pytest.mark.parametrize("release", sorted(JETPACK))
def test_jetson_unsupported_release_is_refused_first(
    release: str, fake: dict, archive: Path
) -> None:
    (fake["root"] / "etc" / "nv_tegra_release").write_text(release + "\n")
    proc = _run(JETSON, fake, "--bundle", str(archive))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and JETPACK[release] in proc.stderr
    assert "apt-get" not in _calls(fake) and not (fake["root"] / "opt").exists()


def test_jetson_release_from_the_l4t_package_and_no_jetpack(fake: dict, archive: Path) -> None:
    proc = _run(JETSON, fake, "--bundle", str(archive), FAKE_L4T="35.5.0-20240219203809")
    assert proc.returncode == 1 and "JetPack 5" in proc.stderr
    proc = _run(JETSON, fake, "--bundle", str(archive))
    assert proc.returncode == 1 and "not a JetPack system" in proc.stderr
    assert "apt-get" not in _calls(fake)


def test_jetson_python_and_gpu_wheel_must_match(fake: dict, archive: Path, tmp_path: Path) -> None:
    (fake["root"] / "etc" / "nv_tegra_release").write_text("# R36 (release), REVISION: 4.0\n")
    proc = _run(JETSON, fake, "--bundle", str(archive), FAKE_PYVER="3.8")
    assert proc.returncode == 1 and "python3 is 3.8; facegate needs Python >= 3.10" in proc.stderr
    wrong = tmp_path / "onnxruntime_gpu-1.20.0-cp311-cp311-linux_aarch64.whl"
    wrong.write_bytes(b"wheel")
    proc = _run(JETSON, fake, "--bundle", str(archive), "--gpu-wheel", str(wrong))
    assert proc.returncode == 1 and "does not match JetPack's Python (cp310" in proc.stderr
    assert "apt-get" not in _calls(fake)


def test_jetson_installs_with_the_gpu_wheel(fake: dict, archive: Path, tmp_path: Path) -> None:
    (fake["root"] / "etc" / "nv_tegra_release").write_text("# R36 (release), REVISION: 4.0\n")
    wheel = tmp_path / "onnxruntime_gpu-1.20.0-cp310-cp310-linux_aarch64.whl"
    wheel.write_bytes(b"wheel")
    (fake["root"] / "etc" / "facegate" / "config.toml").unlink()  # the installer writes one
    proc = _run(JETSON, fake, "--bundle", str(archive), "--gpu-wheel", str(wheel))
    root = fake["root"]
    assert (root / "var" / "lib" / "facegate" / "models" / "default" / "manifest.json").is_file()
    config = (root / "etc" / "facegate" / "config.toml").read_text()
    assert config.rstrip().endswith('[runtime]\nproviders = ["cuda", "cpu"]')
    assert (root / "etc/systemd/system/facegate.service.d/jetson-gpu.conf").is_file()
    assert (root / "etc/systemd/system/facegate@.service.d/jetson-gpu.conf").is_file()
    assert (root / "etc/systemd/system/facegate@.service").is_file()
    calls = _calls(fake)
    assert f"pip install --quiet {wheel}" in calls
    # This machine has no CUDA provider (the fake wheel installs nothing): the daemon's own
    # start-up checks refuse the config, so the service is installed but not enabled.
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "runtime.providers: execution provider 'cuda'" in proc.stderr
    assert "installed but not enabled" in proc.stderr.splitlines()[-1]
    assert "systemctl enable" not in calls
