"""``facegate models install``: take a bundle archive (file or URL), check it, place it atomically.

Needs only the runtime dependencies. The archive is unpacked into a private temporary folder
beside the target, checked file by file (:mod:`facegate.bundle.archive`), then renamed into
place; an installed bundle is replaced only when asked (``force``) or left as is when identical.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from facegate.bundle.archive import (
    CHUNK,
    DIR_MODE,
    FILE_MODE,
    MAX_UNPACKED_BYTES,
    check_contents,
    unpack,
)
from facegate.bundle.manifest import sha256_file
from facegate.errors import BundleError, ConfigError

log = logging.getLogger(__name__)

# A download may stall this long on one socket operation (connect, one read) before it is
# abandoned, and take this long in all (1 GiB at ~1.2 MB/s; the default bundle is ~15 MB).
DOWNLOAD_TIMEOUT_S = 30.0
DOWNLOAD_DEADLINE_S = 900.0
MAX_DOWNLOAD_BYTES = MAX_UNPACKED_BYTES  # gzip barely shrinks model weights
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Installed:
    """What ``install`` did: ``installed``, ``replaced`` or ``unchanged``."""

    name: str
    path: Path
    state: str
    sha256: str
    files: int


def shown(url: str) -> str:
    """A URL for messages, without any user:password part."""
    return re.sub(r"//[^/@\s]*@", "//***@", url)


def is_url(source: str) -> bool:
    """Whether ``source`` is meant as a URL rather than a file."""
    return re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", source) is not None


def download(url: str, dest: Path, limit: int | None = None) -> None:
    """Fetch an http(s) ``url`` into ``dest``, refusing more than ``limit`` bytes."""
    limit = MAX_DOWNLOAD_BYTES if limit is None else limit
    if not url.lower().startswith(("http://", "https://")):
        raise BundleError(f"{shown(url)}: only http:// and https:// URLs can be installed")
    request = urllib.request.Request(url, headers={"User-Agent": "facegate-models-install"})
    deadline = time.monotonic() + DOWNLOAD_DEADLINE_S
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > limit:
                raise BundleError(f"{shown(url)}: refused: {int(length)} bytes is over {limit}")
            total = 0
            with dest.open("wb") as out:
                for chunk in iter(lambda: resp.read(CHUNK), b""):
                    total += len(chunk)
                    if total > limit:
                        raise BundleError(f"{shown(url)}: refused: larger than {limit} bytes")
                    if time.monotonic() > deadline:
                        raise BundleError(
                            f"{shown(url)}: download took over {DOWNLOAD_DEADLINE_S:.0f} s"
                        )
                    out.write(chunk)
    except urllib.error.HTTPError as err:
        raise BundleError(f"{shown(url)}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise BundleError(f"{shown(url)}: download failed ({reason})") from err
    log.info("downloaded %s (%d bytes)", shown(url), total)


def _digests(root: Path) -> dict[str, str]:
    """Every file under ``root`` (inner path -> sha256)."""
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in root.rglob("*") if p.is_file()}


def _private(root: Path) -> None:
    """Folders 0700, files 0600, like the rest of the state."""
    root.chmod(DIR_MODE)
    for path in root.rglob("*"):
        path.chmod(DIR_MODE if path.is_dir() else FILE_MODE)


def _place(staging: Path, target: Path, force: bool) -> str:
    """Rename ``staging`` to ``target``; return installed / replaced / unchanged."""
    if not (target.exists() or target.is_symlink()):
        staging.rename(target)
        return "installed"
    if target.is_dir() and _digests(target) == _digests(staging):
        return "unchanged"
    if not force:
        raise BundleError(
            f"a different bundle is installed at {target}: pass --force to replace it"
        )
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    target.rename(old / target.name)
    try:
        staging.rename(target)
    except OSError:
        (old / target.name).rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return "replaced"


def _local(source: str, work: Path) -> tuple[Path, str]:
    """The archive as a local file (downloaded into ``work`` for a URL) and its label."""
    if is_url(source):
        path = work / "download.tar.gz"
        download(source, path)
        return path, shown(source)
    path = Path(source).expanduser()
    if not path.is_file():
        raise BundleError(f"{source}: no such bundle archive (give a .tar.gz file or a URL)")
    return path, str(path)


def install(
    source: str,
    models: Path,
    *,
    name: str | None = None,
    sha256: str | None = None,
    force: bool = False,
) -> Installed:
    """Install the bundle archive ``source`` (file or http(s) URL) into the ``models`` folder."""
    if sha256 is not None and not SHA256.fullmatch(sha256.lower()):
        raise ConfigError(f"--sha256 must be 64 hex digits, got {sha256!r}")
    if name is not None and not NAME.fullmatch(name):
        raise ConfigError(f"--name {name!r}: use letters, digits, '.', '_' or '-'")
    work = Path(tempfile.mkdtemp(prefix=".install-", dir=models))
    try:
        archive, label = _local(source, work)
        digest = sha256_file(archive)
        if sha256 is not None and digest != sha256.lower():
            raise BundleError(
                f"{label}: refused: sha256 {digest[:16]}… differs from --sha256 {sha256[:16]}…"
            )
        staging = work / "bundle"
        staging.mkdir(mode=DIR_MODE)
        bundle = check_contents(staging, unpack(archive, staging, label), label)
        final = name or bundle.name
        if not NAME.fullmatch(final):
            raise BundleError(f"{label}: refused: bundle name {final!r} is not a plain name")
        _private(staging)
        files = sum(1 for p in staging.rglob("*") if p.is_file())
        state = _place(staging, models / final, force)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("bundle %s %s at %s", final, state, models / final)
    return Installed(final, models / final, state, digest, files)


def copy_into_place(src: Path, target: Path, leave_out: tuple[str, ...] = ()) -> None:
    """Copy the folder ``src`` to ``target`` atomically (0700/0600), replacing what is there.

    Top-level names in ``leave_out`` are not copied.
    """
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if Path(folder) == src and n in leave_out]

    try:
        shutil.copytree(src, staging / "b", copy_function=shutil.copyfile, ignore=ignore)
        _private(staging / "b")
        _place(staging / "b", target, force=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
