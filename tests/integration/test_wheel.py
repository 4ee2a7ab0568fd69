"""The wheel, as a device owner gets it: one ``facegate`` package, runtime dependencies only.

Builds the wheel from this checkout, installs it (not editable) into a fresh venv holding only
the runtime dependencies (from a wheel cache filled once, ~/.cache/facegate-test-wheels), and
uses it end to end: list recipes, install a packed bundle, enrol, identify, run. Slow (~1-2 min).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

# A version test rather than try/except: vermin then sees 3.10 is covered.
if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
WHEELHOUSE = Path.home() / ".cache" / "facegate-test-wheels"
# The runtime dependencies at the versions this checkout's venv runs (pip's cache has them).
SOURCES = ("edge", "converters", "models", "pyproject.toml", "README.md")
MIN_SETUPTOOLS = (77,)  # pyproject's build requirement (SPDX licence string, PEP 639)

pytestmark = pytest.mark.slow


def _sh(*cmd: str | Path, cwd: Path | None = None, env: dict | None = None, timeout: int = 600):
    """Run a command, returning the completed process (text output)."""
    return subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )


def _build_wheel(out: Path) -> Path:
    """The wheel of a copy of this checkout (the build leaves nothing in the worktree)."""
    src = out / "src"
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / name)
    version = tuple(int(p) for p in metadata.version("setuptools").split(".")[:1])
    # An older setuptools here cannot read pyproject: pip then builds in isolation, taking a
    # current setuptools from the package index.
    flags = ("--no-build-isolation",) if version >= MIN_SETUPTOOLS else ()
    proc = _sh(sys.executable, "-m", "pip", "wheel", "--no-deps", *flags, "-w", out, src)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = out.glob("facegate-*.whl")
    return wheel


def _runtime() -> list[str]:
    """The distributions pyproject's ``dependencies`` name for this Python (no extras).

    Read from this checkout's pyproject.toml, not from the installed metadata: an editable
    install made before a dependency was added does not list it.
    """
    from packaging.requirements import Requirement  # pytest's own dependency

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(line) for line in project["dependencies"]]
    return [r.name for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


def _wheelhouse() -> Path:
    """The runtime dependencies as wheels, downloaded once per set of versions and reused."""
    pins = [f"{name}=={metadata.version(name)}" for name in _runtime()]
    stamp = WHEELHOUSE / "pins.txt"
    if stamp.exists() and stamp.read_text().split() == pins:
        return WHEELHOUSE
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    proc = _sh(sys.executable, "-m", "pip", "download", "-q", "-d", WHEELHOUSE, *pins)
    if proc.returncode != 0:
        pytest.skip(f"the runtime wheels could not be fetched: {proc.stderr.strip()[-300:]}")
    stamp.write_text("\n".join(pins))
    return WHEELHOUSE


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def fresh(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the wheel installed from files only: its bin folder."""
    root = tmp_path_factory.mktemp("venv") / "v"
    venv.EnvBuilder(with_pip=True).create(root)
    py = root / "bin" / "python"
    proc = _sh(py, "-m", "pip", "install", "-q", "--no-index", "--find-links", _wheelhouse(), wheel)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "bin"


def test_wheel_holds_one_package_and_the_recipes(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        (top,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert z.read(top).decode().split() == ["facegate"]
    assert "facegate/recipes/default.json" in names
    for part in ("onnx", "json"):  # the liveness model and its spec (sha256, threshold)
        assert f"facegate/recipes/weights/liveness-nuaa-v1.{part}" in names
    assert "facegate/converters/command.py" in names
    assert "facegate/converters/train/prune.py" in names  # the training subpackage
    for name in ("pruned.json", "pruned40.json", "weights/mobilefacenet-pruned60.npz"):
        assert f"facegate/recipes/{name}" in names
    web = ("templates/index.html", "templates/login.html", "static/style.css", "static/app.js")
    assert {f"facegate/web/{n}" for n in (*web, "openapi.json")} <= set(names)
    assert not [n for n in names if n.split("/")[0] in ("edge", "converters", "models")]


def test_installed_wheel_works_with_runtime_dependencies_only(
    fresh: Path, bundle_dir: Path, tmp_path: Path
) -> None:
    env = {
        "PATH": f"{fresh}:/usr/bin:/bin",
        "FACEGATE_HOME": str(tmp_path / "home"),
        "HOME": str(tmp_path),
    }

    def facegate(*args: str | Path) -> subprocess.CompletedProcess:
        proc = _sh(fresh / "facegate", *args, cwd=tmp_path, env=env)
        assert proc.returncode == 0, f"facegate {args}: {proc.stderr[-2000:]}"
        return proc

    probe = (
        "import importlib.util as u, facegate; print(facegate.__file__); print("
        "[m for m in ('edge', 'converters', 'onnx', 'tensorflow') if u.find_spec(m)])"
    )
    proc = _sh(fresh / "python", "-c", probe, cwd=tmp_path, env=env)
    where, found = proc.stdout.splitlines()
    assert "site-packages" in where and str(REPO) not in where  # not editable
    assert found == "[]"
    assert "default" in json.loads(facegate("models", "list", "--json").stdout)["recipes"]

    archive = tmp_path / "default.tar.gz"
    facegate("models", "pack", bundle_dir, "-o", archive)
    facegate("models", "install", archive)
    samples = bundle_dir / "samples"
    facegate("gallery", "enroll", "obama", samples / "obama.jpg")
    faces = json.loads(facegate("identify", samples / "obama2.jpg", "--json").stdout)
    assert "obama" in json.dumps(faces)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(6):  # a still scene: one track, enough agreeing frames to be named
        shutil.copy(samples / "obama2.jpg", frames / f"{i:02d}.jpg")
    proc = facegate("run", "--source", frames, "--sink", "jsonl:-")
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert any(e["event"] == "recognized" and e["person"] == "obama" for e in events), events
    proc = _sh(fresh / "python", "-c", PAGE, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["200"] * 5  # the page, its assets, the API's description


# The web page from the installed package: templates, static files and the OpenAPI document.
PAGE = """
import tempfile
from pathlib import Path
from facegate.gallery.store import GalleryStore
from facegate.service.recent import RecentEvents
from facegate.web.app import WebSettings, create_app
from facegate.web.backend import Backend
path = Path(tempfile.mkdtemp()) / "gallery.db"
store = GalleryStore.open(path, "m", 128)
health = lambda: {"status": "ok"}
backend = Backend(lambda: store, lambda: store, None, health, RecentEvents(1))
client = create_app(backend, WebSettings(token=None, max_upload_bytes=1000)).test_client()
for url in ("/", "/static/style.css", "/static/app.js", "/api/openapi.json", "/api/people"):
    print(client.get(url, headers={"Host": "127.0.0.1"}).status_code)
"""
