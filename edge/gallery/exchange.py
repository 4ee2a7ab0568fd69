"""Export and import a gallery as one portable JSON file (facegate-gallery v1), maybe encrypted.

Without a passphrase the file is plain JSON with a ``sha256`` of its canonical body. That catches
corruption (a bad disk, a truncated copy), not tampering: whoever can edit the file can recompute
the checksum, so a plain export proves nothing about who wrote it, and anyone who reads it sees
the faces.

With a passphrase the whole plain document is encrypted with AES-256-GCM under a key derived by
scrypt, in a small envelope (``facegate-gallery-encrypted`` v1) that records the KDF parameters,
salt and nonce; the envelope's header is authenticated too. A wrong passphrase or any change to
the file is refused ("wrong passphrase or the file was modified") and nothing is imported.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from facegate.errors import GalleryError
from facegate.gallery.rules import (
    check_embedding,
    check_time,
    clean_source,
    name_key,
    normalise_name,
    person_slug,
)
from facegate.gallery.store import (
    FILE_MODE,
    GalleryStore,
    ImportSummary,
    OnConflict,
    StoredPerson,
    StoredTemplate,
    decode_crop,
)
from facegate.host.permissions import write_atomic
from facegate.text import visible

log = logging.getLogger(__name__)

FORMAT_NAME = "facegate-gallery"
FORMAT_VERSION = 1
ENCRYPTED_FORMAT = "facegate-gallery-encrypted"
ENCRYPTED_VERSION = 1
CIPHER = "aes-256-gcm"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the GCM nonce size NIST SP 800-38D recommends; random per export
SALT_BYTES = 16
# scrypt cost n=2**15, r=8, p=1: 32 MiB and 0.2 s on one x86 core (measured; slower on a Pi),
# once per export or import. Percival's scrypt paper (2009) suggests 2**14 for logins and 2**20
# (1 GiB) for files; 2**20 does not fit a small board, so we take twice the login cost.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
# An envelope is read only with r and p as written above and n a power of two from 2**14 (the
# login cost) to 2**17, where scrypt's memory (128 * n * r) reaches the 128 MiB a small board
# can spare. Checked before deriving: a hostile file must not exhaust memory or crash hashlib.
MIN_SCRYPT_N, MAX_SCRYPT_N = 2**14, 2**17
MAX_SCRYPT_BYTES = 128 * MAX_SCRYPT_N * SCRYPT_R
_TAMPERED = "wrong passphrase or the file was modified"


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What an export wrote."""

    path: Path
    people: int
    templates: int
    skipped: tuple[str, ...] = ()  # templates an import would refuse, each named with why


def export_gallery(store: GalleryStore, path: Path, passphrase: str | None = None) -> ExportSummary:
    """Write every person and template of ``store`` to ``path`` atomically (mode 0600).

    With ``passphrase`` the file is encrypted (AES-256-GCM, scrypt key); without, it is plain
    JSON whose sha256 detects corruption but not deliberate edits.
    """
    path = Path(path)
    data, people, skipped = plain_export(store)
    if passphrase is not None:
        data = encrypt_document(data, passphrase)
    try:
        write_atomic(path, data, FILE_MODE)
    except OSError as err:
        raise GalleryError(f"cannot write gallery export {path}: {err}") from err
    count = sum(len(person.templates) for person in people)
    how = "encrypted" if passphrase is not None else "plain"
    log.info("exported %d people (%d templates) to %s (%s)", len(people), count, path, how)
    for problem in skipped:
        log.warning("not exported (an import would refuse it): %s", problem)
    return ExportSummary(path, len(people), count, tuple(skipped))


def plain_export(store: GalleryStore) -> tuple[bytes, list[StoredPerson], list[str]]:
    """The plain export document of ``store``, the people in it and a line for each left out."""
    dump = store.dump()
    people, skipped = _restorable(dump.people, dump.embedding_size)
    body: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model_id": dump.model_id,
        "embedding_size": dump.embedding_size,
        "people": [_person_document(person) for person in people],
    }
    body["sha256"] = _checksum(body)
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
    return data, people, skipped


def import_gallery(
    store: GalleryStore,
    path: Path,
    passphrase: str | None = None,
    ask: Callable[[], str] | None = None,
    on_conflict: OnConflict = "refuse",
) -> ImportSummary:
    """Check all of ``path`` first, then add its people to ``store`` in one transaction.

    An encrypted file needs ``passphrase``, or ``ask`` (called only for an encrypted file) to
    get one. A passphrase given for a plain file is refused: the file may have been replaced.
    Templates already stored are skipped; people already enrolled who bring new templates
    are refused unless ``on_conflict`` is "merge" or "replace" (see ``GalleryStore.merge``).
    """
    people = read_export(store, path, passphrase, ask)
    return store.merge(people, on_conflict)


def read_export(
    store: GalleryStore,
    path: Path,
    passphrase: str | None = None,
    ask: Callable[[], str] | None = None,
    data: bytes | None = None,
) -> list[StoredPerson]:
    """Every person of the export at ``path`` (or in ``data``, named ``path``), fully checked
    against ``store``'s model; nothing is written. The passphrase rules are import_gallery's."""
    path = Path(path)
    document = _load_document(path, data)
    if document.get("format") == ENCRYPTED_FORMAT:
        secret = passphrase if passphrase is not None else (ask() if ask else None)
        if secret is None:
            raise GalleryError(
                f"{path} is encrypted: give its passphrase (--passphrase-file PATH or"
                " --passphrase-env VAR); nothing imported"
            )
        document = _parse_plain(decrypt_document(document, secret, path), path)
    elif passphrase is not None:
        raise GalleryError(
            f"{path} is not encrypted although a passphrase was given: it may have been"
            " replaced; import it without a passphrase only if you trust where it came from"
        )
    _check_header(document, path, store)
    return _parse_people(document.get("people"), store.embedding_size, path)


def encrypt_document(plain: bytes, passphrase: str) -> bytes:
    """``plain`` sealed in a facegate-gallery-encrypted envelope (JSON bytes)."""
    header, sealed = seal(plain, passphrase)
    envelope = {**header, "ciphertext": _b64encode(sealed)}
    return json.dumps(envelope, separators=(",", ":")).encode("ascii") + b"\n"


def seal(plain: bytes, passphrase: str) -> tuple[dict[str, Any], bytes]:
    """The envelope's fields but its ciphertext, and that ciphertext as raw bytes."""
    salt, nonce = secrets.token_bytes(SALT_BYTES), secrets.token_bytes(NONCE_BYTES)
    kdf = {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64encode(salt)}
    header = {
        "format": ENCRYPTED_FORMAT,
        "version": ENCRYPTED_VERSION,
        "cipher": CIPHER,
        "kdf": kdf,
    }
    key = _derive_key(_passphrase_bytes(passphrase), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    sealed = AESGCM(key).encrypt(nonce, plain, _associated(header))
    return {**header, "nonce": _b64encode(nonce)}, sealed


def decrypt_document(envelope: dict[str, Any], passphrase: str, path: Path) -> bytes:
    """The plain export inside ``envelope``; GalleryError when the passphrase or file is wrong."""
    return unseal(envelope, _envelope_bytes(envelope, "ciphertext", path), passphrase, path)


def unseal(envelope: dict[str, Any], sealed: bytes, passphrase: str, path: Path) -> bytes:
    """The plain export sealed in raw ``sealed`` under ``envelope``'s fields (as ``seal``)."""
    if envelope.get("format") != ENCRYPTED_FORMAT:
        raise _tampered(path, f"the envelope is not {ENCRYPTED_FORMAT}")
    version = envelope.get("version")
    if type(version) is not int or version != ENCRYPTED_VERSION:
        raise GalleryError(
            f"{path} has {ENCRYPTED_FORMAT} version {version!r}; this facegate reads"
            f" version {ENCRYPTED_VERSION}"
        )
    if envelope.get("cipher") != CIPHER:
        raise _tampered(path, f"cipher is not {CIPHER}")
    n, r, p, salt = _kdf_parameters(envelope.get("kdf"), path)
    nonce = _envelope_bytes(envelope, "nonce", path)
    if len(nonce) != NONCE_BYTES:
        raise _tampered(path, f"nonce is not {NONCE_BYTES} bytes")
    header = {key: envelope[key] for key in ("format", "version", "cipher", "kdf")}
    key = _derive_key(_passphrase_bytes(passphrase), salt, n, r, p)
    try:
        return AESGCM(key).decrypt(nonce, sealed, _associated(header))
    except InvalidTag as err:
        raise GalleryError(f"{path}: {_TAMPERED}; nothing imported") from err


def _kdf_parameters(kdf: object, path: Path) -> tuple[int, int, int, bytes]:
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise _tampered(path, "the key derivation is not scrypt")
    n, r, p = (kdf.get(name) for name in ("n", "r", "p"))
    if (
        type(n) is not int
        or not MIN_SCRYPT_N <= n <= MAX_SCRYPT_N
        or n & (n - 1)
        or (type(r), type(p)) != (int, int)
        or (r, p) != (SCRYPT_R, SCRYPT_P)
    ):
        raise _tampered(
            path,
            f"scrypt parameters n={visible(n)}, r={visible(r)}, p={visible(p)} are not ones"
            f" facegate writes (n a power of 2 from 2**14 to 2**17, r={SCRYPT_R}, p={SCRYPT_P})",
        )
    salt = _envelope_bytes(kdf, "salt", path)
    if len(salt) != SALT_BYTES:
        raise _tampered(path, f"the scrypt salt is not {SALT_BYTES} bytes")
    return n, r, p, salt


def _derive_key(secret: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    maxmem = 128 * r * (n + p + 2) + 2**20  # what OpenSSL's scrypt allocates, plus slack
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES, maxmem=maxmem)


def _passphrase_bytes(passphrase: str) -> bytes:
    if not passphrase:
        raise GalleryError("the passphrase is empty")
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def _associated(header: dict[str, Any]) -> bytes:
    """The envelope header as canonical JSON: authenticated, so no field can be swapped."""
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _envelope_bytes(fields: dict[str, Any], name: str, path: Path) -> bytes:
    value = fields.get(name)
    if not isinstance(value, str):
        raise _tampered(path, f"{name} is missing")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise _tampered(path, f"{name} is not base64") from err
    if _b64encode(raw) != value:  # unused low bits of the last character changed
        raise _tampered(path, f"{name} is not canonical base64")
    return raw


def _tampered(path: Path, detail: str) -> GalleryError:
    return GalleryError(f"{path}: {_TAMPERED} ({detail}); nothing imported")


def _person_document(person: StoredPerson) -> dict[str, Any]:
    return {
        "name": person.name,
        "created": person.created,
        "templates": [
            {
                "embedding": _b64encode(np.asarray(t.embedding, dtype="<f4").tobytes()),
                "crop": _b64encode(t.crop_png),
                "source": t.source,
                "created": t.created,
            }
            for t in person.templates
        ],
    }


def _checksum(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _load_document(path: Path, raw: bytes | None = None) -> dict[str, Any]:
    """The export at ``path`` (or ``raw``) as JSON: a plain export or an encrypted envelope."""
    try:
        raw = path.read_bytes() if raw is None else raw
    except OSError as err:
        raise GalleryError(f"cannot read gallery export {path}: {err.strerror or err}") from err
    document = _parse_json(raw, path)
    if document.get("format") == ENCRYPTED_FORMAT:
        return document
    return _parse_plain(raw, path, document)


def _parse_plain(raw: bytes, path: Path, document: dict[str, Any] | None = None) -> dict[str, Any]:
    document = _parse_json(raw, path) if document is None else document
    if document.get("format") != FORMAT_NAME:
        raise GalleryError(f"{path} is not a {FORMAT_NAME} export")
    return document


def _parse_json(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as err:
        raise _invalid(path, "file", f"not valid UTF-8 JSON ({err})") from err
    if not isinstance(document, dict):
        raise GalleryError(f"{path} is not a {FORMAT_NAME} export")
    return document


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _check_header(document: dict[str, Any], path: Path, store: GalleryStore) -> None:
    version = document.get("version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise GalleryError(
            f"{path} has {FORMAT_NAME} format version {version!r}; this facegate reads"
            f" version {FORMAT_VERSION}"
        )
    body = {key: value for key, value in document.items() if key != "sha256"}
    try:
        expected = _checksum(body)
    except (ValueError, RecursionError) as err:
        raise _invalid(path, "file", "cannot be checksummed") from err
    if document.get("sha256") != expected:
        raise GalleryError(f"{path} failed its sha256 integrity check: damaged or edited")
    model_id = document.get("model_id")
    if not isinstance(model_id, str):
        raise _invalid(path, "header", "model_id is missing")
    if model_id != store.model_id:
        raise GalleryError(
            f"{path} holds embeddings made by model {model_id!r} but this gallery uses"
            f" {store.model_id!r}; import it into a gallery of the {model_id!r} bundle, or"
            f" re-embed the source gallery with {store.model_id!r}"
            " (`facegate gallery reembed`) and export it again"
        )
    size = document.get("embedding_size")
    if type(size) is not int or size != store.embedding_size:
        raise _invalid(path, "header", f"embedding_size {size!r} is not {store.embedding_size}")


def _parse_people(items: object, size: int, path: Path) -> list[StoredPerson]:
    if not isinstance(items, list):
        raise _invalid(path, "header", "'people' is not a list")
    people = [_parse_person(item, size, path, f"person #{i}") for i, item in enumerate(items)]
    keys: dict[str, str] = {}
    slugs: dict[str, str] = {}
    for person in people:
        key, slug = name_key(person.name), person_slug(person.name)
        first = keys.get(key) or slugs.get(slug)
        if first is not None:
            pair = f"{visible(first)!r} and {visible(person.name)!r}"
            problem = "are the same name" if key in keys else f"look alike (both {slug!r})"
            raise _invalid(path, "people", f"{pair} {problem}: a name appears more than once")
        keys[key] = slugs[slug] = person.name
    return people


def _parse_person(item: object, size: int, path: Path, where: str) -> StoredPerson:
    if not isinstance(item, dict):
        raise _invalid(path, where, "is not an object")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise _invalid(path, where, "has no name")
    try:
        name = normalise_name(name)
    except GalleryError as err:
        raise _invalid(path, where, str(err)) from err
    where = f"{where} ({visible(name)!r})"
    try:
        created = check_time(item.get("created"))
    except GalleryError as err:
        raise _invalid(path, where, str(err)) from err
    templates = item.get("templates")
    if not isinstance(templates, list) or not templates:
        raise _invalid(path, where, "has no templates")
    parsed = tuple(
        _parse_template(t, size, path, f"{where} template #{j}") for j, t in enumerate(templates)
    )
    return StoredPerson(name, created, parsed)


def _parse_template(item: object, size: int, path: Path, where: str) -> StoredTemplate:
    if not isinstance(item, dict):
        raise _invalid(path, where, "is not an object")
    raw = _b64decode(item.get("embedding"), path, f"{where} embedding")
    if len(raw) != size * 4:
        raise _invalid(path, where, f"embedding has {len(raw)} bytes, expected {size * 4}")
    vector = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    crop = _b64decode(item.get("crop"), path, f"{where} crop")
    source = item.get("source")
    if not isinstance(source, str):
        raise _invalid(path, where, "source is not a string")
    try:
        return check_template(StoredTemplate(vector, crop, source, item.get("created")), size)
    except GalleryError as err:
        raise _invalid(path, where, str(err)) from err


def check_template(template: StoredTemplate, size: int) -> StoredTemplate:
    """``template`` as an import stores it, or GalleryError saying which field is wrong.

    The one check for both directions: export leaves out what import would refuse.
    """
    vector = check_embedding(template.embedding, size)
    decode_crop(template.crop_png)
    source = clean_source(template.source)
    return StoredTemplate(vector, template.crop_png, source, check_time(template.created))


def _restorable(
    people: tuple[StoredPerson, ...], size: int
) -> tuple[list[StoredPerson], list[str]]:
    """The people and templates an import would accept, and a line for each left out."""
    kept: list[StoredPerson] = []
    skipped: list[str] = []
    for person in people:
        who = repr(visible(person.name))
        try:
            name, created = normalise_name(person.name), check_time(person.created)
        except GalleryError as err:
            skipped.append(f"{who} and {len(person.templates)} template(s): {err}")
            continue
        templates = []
        for number, template in enumerate(person.templates, 1):
            try:
                templates.append(check_template(template, size))
            except GalleryError as err:
                skipped.append(f"{who} template #{number} ({visible(template.source)}): {err}")
        if templates:
            kept.append(StoredPerson(name, created, tuple(templates)))
    return kept, skipped


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: object, path: Path, where: str) -> bytes:
    if not isinstance(value, str):
        raise _invalid(path, where, "is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise _invalid(path, where, "is not valid base64") from err


def _invalid(path: Path, where: str, problem: str) -> GalleryError:
    return GalleryError(
        f"{path} is not a valid gallery export: {where} {problem}; nothing imported"
    )
