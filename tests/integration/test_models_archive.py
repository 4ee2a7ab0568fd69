"""A built bundle packed on one machine and installed on another, as a user does it (CLI, URL)."""

from __future__ import annotations

import functools
import http.server
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from facegate.bundle import install as install_mod
from facegate.bundle.install import install
from facegate.errors import BundleError
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def packed(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The built default bundle packed with ``facegate models pack``: (file, sha256)."""
    out = tmp_path_factory.mktemp("pack") / "default.tar.gz"
    proc = run_cli("models", "pack", str(bundle_dir), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    digest, name = proc.stdout.split()
    assert name == str(out) and len(digest) == 64
    return out, digest


class _QuietServer(http.server.ThreadingHTTPServer):
    """Serves files; a client that hangs up mid-download (facegate at its size cap) is normal."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving a folder: (base URL, folder)."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    httpd = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", folder
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_installed_bundle_verifies_and_recognizes(
    packed: tuple[Path, str], home: Path, faces_dir: Path
) -> None:
    archive, digest = packed
    env = {"FACEGATE_HOME": str(home)}
    proc = run_cli("models", "install", str(archive), "--sha256", digest, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    done = json.loads(proc.stdout)
    assert done["state"] == "installed" and done["path"] == str(home / "models" / "default")
    proc = run_cli("models", "verify", "--json", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] and result["sample_photos"] > 0  # parity photos travelled too
    assert result["provider"] == "CPUExecutionProvider"
    photo = sorted((faces_dir / "face_recognition" / "obama").glob("*.jpg"))[0]
    proc = run_cli("identify", str(photo), "--backend", "onnxruntime", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    again = run_cli("models", "install", str(archive), env=env)
    assert again.returncode == 0 and "unchanged" in again.stdout


def test_install_from_url(packed: tuple[Path, str], server: tuple[str, Path], home: Path) -> None:
    archive, digest = packed
    base, folder = server
    (folder / "b.tar.gz").write_bytes(archive.read_bytes())
    env = {"FACEGATE_HOME": str(home)}
    proc = run_cli("models", "install", f"{base}/b.tar.gz", "--sha256", digest, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (home / "models" / "default" / "manifest.json").is_file()
    missing = run_cli("models", "install", f"{base}/absent.tar.gz", "--name", "x", env=env)
    assert missing.returncode == 1
    assert (
        missing.stderr.strip() == f"facegate: error: {base}/absent.tar.gz: HTTP 404 File not found"
    )


def test_download_size_cap_and_scheme(
    packed: tuple[Path, str],
    server: tuple[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    archive, _ = packed
    base, folder = server
    (folder / "b.tar.gz").write_bytes(archive.read_bytes())
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setattr(install_mod, "MAX_DOWNLOAD_BYTES", 1000)
    with pytest.raises(BundleError, match=r"refused: .* over 1000"):
        install(f"{base}/b.tar.gz", models)
    with pytest.raises(BundleError, match="only http:// and https://"):
        install("ftp://127.0.0.1/b.tar.gz", models)
    with pytest.raises(BundleError, match="download failed"):
        install("http://127.0.0.1:1/b.tar.gz", models)
    assert list(models.iterdir()) == []


def test_the_missing_bundle_message_names_models_install(home: Path) -> None:
    proc = run_cli("models", "verify", env={"FACEGATE_HOME": str(home)})
    assert proc.returncode == 1
    assert "`facegate models install FILE|URL`" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
