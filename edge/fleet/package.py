"""A gallery update: the encrypted export, versioned and signed (ed25519), in binary framing.

Layout (bytes)::

    facegate-fleet-gallery 2\\n              the magic line: what this is, and its layout version
    {"version": N, "created": T, "bytes": B, "sealed": {...}}\\n
                                            the header, JSON on one line; "sealed" holds the
                                            export's encryption fields (edge/gallery/exchange.py)
    <AES-256-GCM ciphertext>                exactly B raw bytes: the plain export, sealed
    <64-byte ed25519 signature>             over everything before it

The ciphertext travels as raw bytes, not base64 inside a JSON envelope: the only base64 left is
the crops' and embeddings' inside the (encrypted) plain export. Layout 1 carried the whole
``facegate-gallery-encrypted`` JSON file, a third larger.

The signature is checked before anything else is parsed, so a message from anyone but the key's
holder is refused before its header is read. The version is in the signed header: a replayed
older update is recognised as older. The export's own AES-GCM encryption keeps the faces secret
from the brokers that carry it; the signature says who made it. ``facegate.fleet.parts`` cuts
this blob into MQTT-sized parts under a signed manifest.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from facegate.errors import FacegateError
from facegate.fleet.signing import SIGNATURE_BYTES, verify
from facegate.gallery.exchange import plain_export, seal, unseal
from facegate.gallery.store import GalleryStore

MAGIC = b"facegate-fleet-gallery 2\n"
MAX_HEADER_BYTES = 4096  # three numbers and the encryption fields (about 300 bytes)
MAX_VERSION = 2**53  # versions stay exact in every JSON reader (IEEE double integers)


class UpdateRefused(FacegateError):
    """A gallery update that is not applied: why, in one line."""


@dataclass(frozen=True, slots=True)
class Update:
    """A verified update: its version, when it was made, and the sealed export."""

    version: int
    created: float
    sealed_fields: dict[str, Any]
    sealed: bytes

    def plain(self, passphrase: str, name: Path) -> bytes:
        """The plain export document; GalleryError on a wrong passphrase."""
        return unseal(self.sealed_fields, self.sealed, passphrase, name)


def check_version(version: int) -> None:
    """FacegateError unless ``version`` is a whole number from 1 to 2**53."""
    if not 1 <= version <= MAX_VERSION:
        raise FacegateError(f"a gallery version is a whole number from 1 to 2**53, got {version}")


def build(store: GalleryStore, passphrase: str, version: int, key: Ed25519PrivateKey) -> bytes:
    """The signed update for ``store``'s gallery at ``version`` (any size: parts carry it)."""
    check_version(version)
    plain, _, _ = plain_export(store)
    fields, sealed = seal(plain, passphrase)
    del plain
    header = {
        "version": version,
        "created": round(time.time(), 3),
        "bytes": len(sealed),
        "sealed": fields,
    }
    line = json.dumps(header, separators=(",", ":")).encode("ascii")
    signed = b"".join((MAGIC, line, b"\n", sealed))
    return signed + key.sign(signed)


def open_update(payload: bytes, key: Ed25519PublicKey, max_bytes: int) -> Update:
    """The update in ``payload`` once its size and signature are checked; UpdateRefused if not."""
    if len(payload) > max_bytes:
        raise UpdateRefused(f"{len(payload)} bytes, over the limit of {max_bytes} ([fleet] max_mb)")
    if not payload.startswith(MAGIC):
        raise UpdateRefused("not a signed facegate gallery update (no fleet header)")
    if len(payload) < len(MAGIC) + SIGNATURE_BYTES + 2:
        raise UpdateRefused("truncated: shorter than a signature")
    signed = memoryview(payload)[:-SIGNATURE_BYTES]
    if not verify(key, payload[-SIGNATURE_BYTES:], signed):
        raise UpdateRefused("bad signature: not signed by the pinned key, or modified on the way")
    end = payload.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER_BYTES + 1)
    if end < 0:
        raise UpdateRefused("the header is too long")
    header = _header(payload[len(MAGIC) : end])
    sealed = signed[end + 1 :]
    if header["bytes"] != len(sealed):
        raise UpdateRefused(f"the header says {header['bytes']} bytes, {len(sealed)} came")
    return Update(header["version"], float(header["created"]), header["sealed"], bytes(sealed))


def _header(line: bytes) -> dict[str, Any]:
    try:
        header = json.loads(line.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as err:
        raise UpdateRefused("the header is not JSON") from err
    if not isinstance(header, dict):
        raise UpdateRefused("the header is not a JSON object")
    version, created, size = header.get("version"), header.get("created"), header.get("bytes")
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        raise UpdateRefused(f"the header's version {version!r} is not a whole number >= 1")
    if type(created) not in (int, float) or type(size) is not int:
        raise UpdateRefused("the header lacks created or bytes")
    if not isinstance(header.get("sealed"), dict):
        raise UpdateRefused("the header lacks the encryption fields")
    return header
