"""A gallery update as one MQTT message: the encrypted export, versioned and signed (ed25519).

Layout (bytes)::

    facegate-fleet-gallery 1\\n          the magic line: what this is, and its layout version
    {"version": N, "created": T, ...}\\n  the header, JSON on one line
    <facegate-gallery-encrypted export>  exactly header["bytes"] bytes (edge/gallery/exchange.py)
    <64-byte ed25519 signature>          over everything before it

The signature is checked before anything else is parsed, so a message from anyone but the key's
holder is refused before its header or its envelope is read. The version is in the signed header:
a replayed older update is recognised as older. The export's own AES-GCM encryption keeps the
faces secret from the brokers that carry it; the signature says who made it.
"""

from __future__ import annotations

import json
import tempfile
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
from facegate.gallery.exchange import export_gallery
from facegate.gallery.store import GalleryStore

MAGIC = b"facegate-fleet-gallery 1\n"
MAX_HEADER_BYTES = 1024  # the header is three numbers; a longer first line is not ours
MAX_VERSION = 2**53  # versions stay exact in every JSON reader (IEEE double integers)
MQTT_MAX_PAYLOAD = 268_435_455  # the most one MQTT message carries (mosquitto.conf(5))


class UpdateRefused(FacegateError):
    """A gallery update that is not applied: why, in one line."""


@dataclass(frozen=True, slots=True)
class Update:
    """A verified update: its version, when it was made, and the encrypted export."""

    version: int
    created: float
    envelope: bytes


def build(store: GalleryStore, passphrase: str, version: int, key: Ed25519PrivateKey) -> bytes:
    """The signed update message for ``store``'s gallery at ``version``."""
    if not 1 <= version <= MAX_VERSION:
        raise FacegateError(f"a gallery version is a whole number from 1 to 2**53, got {version}")
    with tempfile.TemporaryDirectory(prefix="facegate-fleet-") as tmp:  # mode 0700
        path = Path(tmp) / "gallery.export"
        export_gallery(store, path, passphrase)
        envelope = path.read_bytes()
    header = {"version": version, "created": round(time.time(), 3), "bytes": len(envelope)}
    signed = MAGIC + json.dumps(header, separators=(",", ":")).encode("ascii") + b"\n" + envelope
    if len(signed) + SIGNATURE_BYTES > MQTT_MAX_PAYLOAD:
        raise FacegateError(
            f"the update would be {len(signed) + SIGNATURE_BYTES} bytes, over the"
            f" {MQTT_MAX_PAYLOAD} one MQTT message can carry (about 6,000 people with one"
            " template each); nothing published"
        )
    return signed + key.sign(signed)


def open_update(payload: bytes, key: Ed25519PublicKey, max_bytes: int) -> Update:
    """The update in ``payload`` once its size and signature are checked; UpdateRefused if not."""
    if len(payload) > max_bytes:
        raise UpdateRefused(f"{len(payload)} bytes, over the limit of {max_bytes} ([fleet] max_mb)")
    if not payload.startswith(MAGIC):
        raise UpdateRefused("not a signed facegate gallery update (no fleet header)")
    if len(payload) < len(MAGIC) + SIGNATURE_BYTES + 2:
        raise UpdateRefused("truncated: shorter than a signature")
    signed, signature = payload[:-SIGNATURE_BYTES], payload[-SIGNATURE_BYTES:]
    if not verify(key, signature, signed):
        raise UpdateRefused("bad signature: not signed by the pinned key, or modified on the way")
    line, _, envelope = signed[len(MAGIC) :].partition(b"\n")
    header = _header(line)
    if header["bytes"] != len(envelope):
        raise UpdateRefused(f"the header says {header['bytes']} bytes, {len(envelope)} came")
    return Update(header["version"], float(header["created"]), envelope)


def _header(line: bytes) -> dict[str, Any]:
    if len(line) > MAX_HEADER_BYTES:
        raise UpdateRefused("the header is too long")
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
    return header
