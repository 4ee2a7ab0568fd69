"""Bundle archives: one ``.tar.gz`` of a built bundle, packed reproducibly and read defensively.

An archive holds one folder named after the bundle: ``manifest.json``, every model file the
manifest lists, and the optional extras (``report.json``, the parity photos ``samples/*.jpg``)
listed with their sha256 in ``pack.json``. Reading one never trusts it: only regular files and
folders, no absolute paths or ``..``, bounded member count and size, and every file's sha256
checked against the manifest (models) or ``pack.json`` (extras); anything else is refused.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from facegate.bundle.manifest import Bundle, sha256_file
from facegate.errors import BundleError

PACK_FORMAT = 1
PACK_LIST = "pack.json"
MANIFEST = "manifest.json"
# Limits for reading an archive. The default bundle packs to ~15 MB in 17 members; the largest
# common face models (an ArcFace R100 is ~250 MB per format) still fit four times in 1 GiB.
MAX_MEMBERS = 256
MAX_UNPACKED_BYTES = 1 << 30
EXTRA = re.compile(r"report\.json|samples/[\w.-]+\.jpg")  # extras an archive may carry
MODEL_FILE = re.compile(r"[\w.-]+")  # a model file: a plain name, no folder
CHUNK = 1 << 20
FILE_MODE, DIR_MODE = 0o600, 0o700


@dataclass(frozen=True, slots=True)
class Packed:
    """A written archive: where it is, its sha256 and what it holds."""

    path: Path
    sha256: str
    bundle: str
    files: int
    bytes: int


def _extras(bundle: Bundle) -> list[str]:
    """The bundle's optional files that travel with it (report, parity photos)."""
    found = [p.relative_to(bundle.root).as_posix() for p in bundle.root.rglob("*") if p.is_file()]
    return sorted(name for name in found if EXTRA.fullmatch(name))


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, path: Path | None = None):
    """Add one file with fixed owner, mode and time, so the same bundle packs to the same bytes."""
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, 0, "", ""
    if data is not None:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        return
    assert path is not None
    info.size = path.stat().st_size
    with path.open("rb") as fh:
        tar.addfile(info, fh)


def pack(bundle: Bundle, out: Path) -> Packed:
    """Write ``bundle`` to ``out`` (.tar.gz) after verifying every model file's sha256."""
    models = [bundle.verify_file(e).name for e in bundle.entries]
    for name in models:
        if not MODEL_FILE.fullmatch(name):
            raise BundleError(f"{bundle.root}: model file {name!r} is not a plain file name")
    extras = _extras(bundle)
    listing = {
        "format": PACK_FORMAT,
        "bundle": bundle.name,
        "files": {name: sha256_file(bundle.root / name) for name in extras},
    }
    out = out.expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    tmp, top = Path(tmp_name), bundle.name
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            _add(tar, f"{top}/{MANIFEST}", path=bundle.root / MANIFEST)
            _add(tar, f"{top}/{PACK_LIST}", data=json.dumps(listing, indent=2).encode())
            for name in dict.fromkeys([*models, *extras]):
                _add(tar, f"{top}/{name}", path=bundle.root / name)
        tmp.chmod(0o644)
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    files = len(set(models)) + len(extras) + 1
    return Packed(out, sha256_file(out), bundle.name, files, out.stat().st_size)


def _member_path(member: tarfile.TarInfo, source: str) -> tuple[str, str]:
    """(top folder, path inside it) of a member, or BundleError for an unsafe one."""
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith("/") or "\\" in name or ".." in parts or not parts:
        raise BundleError(f"{source}: refused: unsafe path {name!r} in the archive")
    if not (member.isreg() or member.isdir()):
        raise BundleError(f"{source}: refused: {name!r} is a link or device, not a plain file")
    if len(parts) == 1 and member.isreg():
        raise BundleError(f"{source}: refused: {name!r} lies outside the bundle's folder")
    return parts[0], "/".join(parts[1:])


def _members(tar: tarfile.TarFile, source: str) -> Iterator[tuple[tarfile.TarInfo, str, str]]:
    """Every member with its top folder and inner path, within the count and size limits."""
    count = total = 0
    while (member := tar.next()) is not None:
        count += 1
        total += max(member.size, 0)
        if count > MAX_MEMBERS:
            raise BundleError(f"{source}: refused: more than {MAX_MEMBERS} members")
        if total > MAX_UNPACKED_BYTES:
            raise BundleError(f"{source}: refused: unpacks to over {MAX_UNPACKED_BYTES >> 20} MiB")
        yield (member, *_member_path(member, source))


def _write(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> str:
    """Copy one member to ``dest`` (new file, 0600, no symlink followed); return its sha256."""
    src = tar.extractfile(member)
    if src is None:
        raise BundleError(f"{member.name}: unreadable member")
    digest = hashlib.sha256()
    dest.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(dest, flags, FILE_MODE), "wb") as out:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def unpack(archive: Path, dest: Path, source: str) -> dict[str, str]:
    """Unpack ``archive`` into the empty folder ``dest``; return inner path -> sha256."""
    tops: set[str] = set()
    written: dict[str, str] = {}
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for member, top, inner in _members(tar, source):
                tops.add(top)
                if len(tops) > 1:
                    raise BundleError(f"{source}: refused: more than one top-level folder")
                if member.isdir() or not inner:
                    continue
                if inner in written:
                    raise BundleError(f"{source}: refused: {inner!r} appears twice")
                written[inner] = _write(tar, member, dest / inner)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise BundleError(f"{source}: not a readable .tar.gz bundle archive ({err})") from err
    if not written:
        raise BundleError(f"{source}: the archive is empty")
    return written


def check_contents(root: Path, written: dict[str, str], source: str) -> Bundle:
    """The unpacked bundle, after matching every file to the manifest or the pack list."""
    if MANIFEST not in written:
        raise BundleError(f"{source}: refused: the archive holds no {MANIFEST}")
    bundle = Bundle.load(root)
    listed = _pack_list(root, written, source)
    expected = {e.file: e.sha256 for e in bundle.entries} | listed
    expected[MANIFEST], expected[PACK_LIST] = written[MANIFEST], written.get(PACK_LIST, "")
    extra = sorted(set(written) - set(expected))
    missing = sorted(set(expected) - set(written) - {PACK_LIST})
    bad = sorted(n for n in set(written) & set(expected) if written[n] != expected[n])
    for what, names in (("unexpected", extra), ("missing", missing), ("sha256 mismatch", bad)):
        if names:
            raise BundleError(f"{source}: refused: {what}: {', '.join(names[:5])}")
    (root / PACK_LIST).unlink(missing_ok=True)
    return bundle


def _pack_list(root: Path, written: dict[str, str], source: str) -> dict[str, str]:
    """The extras ``pack.json`` lists (report, parity photos), validated."""
    if PACK_LIST not in written:
        return {}
    try:
        data = json.loads((root / PACK_LIST).read_text(encoding="utf-8"))
        files = dict(data["files"]) if data.get("format") == PACK_FORMAT else None
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise BundleError(f"{source}: refused: unreadable {PACK_LIST} ({err})") from err
    if files is None:
        raise BundleError(f"{source}: refused: {PACK_LIST} format is not {PACK_FORMAT}")
    odd = sorted(n for n, h in files.items() if not EXTRA.fullmatch(n) or not isinstance(h, str))
    if odd:
        raise BundleError(f"{source}: refused: {PACK_LIST} lists unexpected files: {odd[:5]}")
    return files
