"""A signed update cut into MQTT-sized parts under a small signed manifest, and put back together.

On the broker (all retained, QoS 1)::

    <topic>           the manifest, published after every part
    <topic>/part/<i>  part i: a 16-byte header (b"FGP1", version, index) and its slice

Manifest (bytes)::

    facegate-fleet-manifest 1\\n
    {"version": N, "created": T, "bytes": B, "part_bytes": P, "sha256": ["<hex>", ...]}\\n
    <64-byte ed25519 signature over everything before it>

A device checks the manifest's signature first (the pinned key), then takes only parts whose
header names the manifest's version and whose sha256 is the one the manifest lists, writing each
at its place in a 0600 file (parts may come in any order), never past the manifest's size. The
parts put together are the signed update of ``facegate.fleet.package``, checked again as a whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from facegate.fleet.package import MAX_VERSION, UpdateRefused
from facegate.fleet.signing import SIGNATURE_BYTES, verify

MIB = 1024 * 1024
MANIFEST_MAGIC = b"facegate-fleet-manifest 1\n"
PART_MAGIC = b"FGP1"
PART_HEADER = struct.Struct(">4sQI")  # magic, version (u64), index (u32): 16 bytes
# 4 MiB a part: a QoS 1 resend or a broker's in-flight copy stays small, and 10,000 people
# (about 330 MiB) are some 80 parts with a manifest of about 5 kB.
DEFAULT_PART_BYTES = 4 * MIB
MIN_PART_BYTES = 1024  # smaller only multiplies messages (tests use this to get many parts)
MAX_PART_BYTES = 256 * MIB - PART_HEADER.size - 1  # one MQTT message (mosquitto.conf(5))
MAX_PARTS = 65_536  # bounds the manifest (64 hex digits a part: 4.3 MB at most)
MAX_MANIFEST_BYTES = 5 * MIB
TEMP_PREFIX = ".fleet-update-"  # the device's files being collected, in the gallery's folder


class PartRefused(UpdateRefused):
    """A part that fails the manifest: the update it belongs to is given up."""


class StalePart(UpdateRefused):
    """A part of another version (left from an older update, or of a newer one): skipped."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """A verified manifest: the update's version and size, and each part's sha256."""

    version: int
    size: int
    part_bytes: int
    hashes: tuple[bytes, ...]

    def part_size(self, index: int) -> int:
        """How many bytes part ``index`` carries."""
        return min(self.part_bytes, self.size - index * self.part_bytes)


def part_topic(topic: str, index: int) -> str:
    """Where part ``index`` of the update on ``topic`` is published."""
    return f"{topic}/part/{index}"


def parts_filter(topic: str) -> str:
    """The subscription that takes every part of ``topic``'s update."""
    return f"{topic}/part/+"


def split(
    blob: bytes, version: int, part_bytes: int, key: Ed25519PrivateKey
) -> tuple[bytes, list[bytes]]:
    """The signed manifest and the part messages that carry ``blob``."""
    if not MIN_PART_BYTES <= part_bytes <= MAX_PART_BYTES:
        raise UpdateRefused(
            f"a part is {MIN_PART_BYTES} to {MAX_PART_BYTES} bytes, not {part_bytes}"
        )
    view = memoryview(blob)
    slices = [view[i : i + part_bytes] for i in range(0, len(blob), part_bytes)]
    if len(slices) > MAX_PARTS:
        raise UpdateRefused(f"{len(slices)} parts, over {MAX_PARTS}: choose larger parts")
    header = {
        "version": version,
        "created": round(time.time(), 3),
        "bytes": len(blob),
        "part_bytes": part_bytes,
        "sha256": [hashlib.sha256(s).hexdigest() for s in slices],
    }
    signed = MANIFEST_MAGIC + json.dumps(header, separators=(",", ":")).encode("ascii") + b"\n"
    parts = [PART_HEADER.pack(PART_MAGIC, version, i) + s for i, s in enumerate(slices)]
    return signed + key.sign(signed), parts


def open_manifest(payload: bytes, key: Ed25519PublicKey, max_bytes: int) -> Manifest:
    """The manifest in ``payload``, signature checked first; UpdateRefused when it is not."""
    if not payload.startswith(MANIFEST_MAGIC):
        raise UpdateRefused("not a signed facegate gallery manifest")
    if len(payload) > MAX_MANIFEST_BYTES or len(payload) < len(MANIFEST_MAGIC) + SIGNATURE_BYTES:
        raise UpdateRefused(f"a manifest of {len(payload)} bytes is not one facegate writes")
    signed, signature = payload[:-SIGNATURE_BYTES], payload[-SIGNATURE_BYTES:]
    if not verify(key, signature, signed):
        raise UpdateRefused("bad signature: not signed by the pinned key, or modified on the way")
    try:
        header = json.loads(signed[len(MANIFEST_MAGIC) :].decode("ascii"))
        manifest = Manifest(
            header["version"],
            header["bytes"],
            header["part_bytes"],
            tuple(bytes.fromhex(h) for h in header["sha256"]),
        )
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise UpdateRefused("the manifest is not one facegate writes") from err
    _check(manifest, max_bytes)
    return manifest


def _check(m: Manifest, max_bytes: int) -> None:
    numbers = (m.version, m.size, m.part_bytes)
    if any(type(n) is not int for n in numbers) or not 1 <= m.version <= MAX_VERSION:
        raise UpdateRefused("the manifest's version or sizes are not whole numbers")
    if m.size > max_bytes:
        raise UpdateRefused(f"{m.size} bytes, over the limit of {max_bytes} ([fleet] max_mb)")
    if not MIN_PART_BYTES <= m.part_bytes <= MAX_PART_BYTES or m.size < 1:
        raise UpdateRefused("the manifest's sizes are out of range")
    if len(m.hashes) != -(-m.size // m.part_bytes) or any(len(h) != 32 for h in m.hashes):
        raise UpdateRefused("the manifest's part list does not match its size")


class Assembly:
    """One update being collected into a private file in ``folder`` (mode 0600)."""

    def __init__(self, manifest: Manifest, folder: Path) -> None:
        self.manifest = manifest
        fd, name = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX)  # mkstemp: mode 0600
        self.path, self._fd = Path(name), fd
        self._have: set[int] = set()

    @property
    def complete(self) -> bool:
        """Whether every part is in."""
        return len(self._have) == len(self.manifest.hashes)

    def missing(self) -> list[int]:
        """The parts not yet in."""
        return [i for i in range(len(self.manifest.hashes)) if i not in self._have]

    def add(self, payload: bytes) -> bool:
        """Check one part message and write it at its place; whether the update is complete."""
        m = self.manifest
        if len(payload) < PART_HEADER.size:
            raise PartRefused("a part shorter than its header")
        magic, version, index = PART_HEADER.unpack_from(payload)
        if magic != PART_MAGIC:
            raise PartRefused("a part without the fleet part header")
        if version != m.version:
            raise StalePart(f"part {index} is of version {version}, not {m.version}")
        if index >= len(m.hashes):
            raise PartRefused(f"part {index} is beyond the manifest's {len(m.hashes)} parts")
        data = memoryview(payload)[PART_HEADER.size :]
        if len(data) != m.part_size(index) or hashlib.sha256(data).digest() != m.hashes[index]:
            raise PartRefused(f"part {index} does not match the signed manifest")
        if index not in self._have:
            os.pwrite(self._fd, data, index * m.part_bytes)
            self._have.add(index)
        return self.complete

    def read(self) -> bytes:
        """The whole update, once complete."""
        data = os.pread(self._fd, self.manifest.size, 0)
        if len(data) != self.manifest.size:
            raise PartRefused(f"read {len(data)} of {self.manifest.size} bytes back from disk")
        return data

    def close(self) -> None:
        """Remove the file."""
        with contextlib.suppress(OSError):
            os.close(self._fd)
        with contextlib.suppress(OSError):
            self.path.unlink()


def remove_leftovers(folder: Path) -> None:
    """Delete files an interrupted collection left in ``folder``."""
    for path in Path(folder).glob(TEMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            path.unlink()
