"""Ed25519 keys for fleet gallery updates: the central side signs, each device pins the public key.

The private key is a PKCS#8 PEM file, mode 0600; the public key is its 32 raw bytes in base64,
one line, short enough to paste into a device's config as ``[fleet] public_key``.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from facegate.errors import ConfigError
from facegate.fleet.files import PRIVATE_MODE, PUBLIC_MODE, write_new

SIGNATURE_BYTES = 64  # RFC 8032: an Ed25519 signature is 64 bytes
PUBLIC_KEY_BYTES = 32  # RFC 8032: an Ed25519 public key is 32 bytes


def generate(private_path: Path, public_path: Path, overwrite: bool = False) -> str:
    """Write a new keypair (private 0600, public 0644); return the public key in base64."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = public_text(key.public_key())
    if Path(public_path).exists() and not overwrite:  # checked first: write both or neither
        raise ConfigError(f"{public_path} already exists; nothing written (--force replaces it)")
    write_new(Path(private_path), pem, PRIVATE_MODE, overwrite)
    write_new(Path(public_path), (public + "\n").encode("ascii"), PUBLIC_MODE, overwrite)
    return public


def public_text(key: Ed25519PublicKey) -> str:
    """The public key's 32 raw bytes in base64."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def load_private(path: Path) -> Ed25519PrivateKey:
    """The ed25519 private key in the PEM file at ``path``; ConfigError when it is not one."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read private key {path}: {err.strerror or err}") from err
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{path} is not an unencrypted PEM private key") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an ed25519 key (`facegate fleet keygen` makes one)")
    return key


def parse_public(text: str, where: str) -> Ed25519PublicKey:
    """The public key written as base64 of its 32 raw bytes; ConfigError naming ``where``."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as err:
        raise ConfigError(f"{where}: the public key is not base64") from err
    if len(raw) != PUBLIC_KEY_BYTES:
        raise ConfigError(
            f"{where}: an ed25519 public key is {PUBLIC_KEY_BYTES} bytes, not {len(raw)}"
        )
    return Ed25519PublicKey.from_public_bytes(raw)


def read_public(value: str | None, path: str | None) -> Ed25519PublicKey:
    """The pinned public key: ``value`` (base64) or the file ``path`` holding it."""
    if value:
        return parse_public(value, "[fleet] public_key")
    if not path:
        raise ConfigError(
            "[fleet] needs public_key or public_key_file (from `facegate fleet keygen`)"
        )
    try:
        text = Path(path).expanduser().read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read public key file {path}: {err}") from err
    return parse_public(text, str(path))


def verify(key: Ed25519PublicKey, signature: bytes, data: bytes | memoryview) -> bool:
    """Whether ``signature`` is ``key``'s signature of ``data``."""
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
