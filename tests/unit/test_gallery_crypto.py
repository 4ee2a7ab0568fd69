"""Encrypted gallery exports: AES-256-GCM under a scrypt key; wrong or tampered means nothing in."""

from __future__ import annotations

import argparse
import base64
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facegate.cli.gallery import _passphrase
from facegate.errors import FacegateError, GalleryError
from facegate.gallery import GalleryStore, Template, exchange, export_gallery, import_gallery
from tests.conftest import run_cli

MODEL = "mobilefacenet-test"
DIM = 8
SECRET = "correct horse battery staple"
TAMPERED = "wrong passphrase or the file was modified"
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def make_template(rng: np.random.Generator, source: str) -> Template:
    """A random unit embedding with a random RGB crop."""
    vector = rng.normal(size=DIM).astype(np.float32)
    crop = rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8)
    return Template(vector / np.linalg.norm(vector), crop, source)


@pytest.fixture
def source(tmp_path: Path) -> Iterator[GalleryStore]:
    rng = np.random.default_rng(7)
    with GalleryStore.open(tmp_path / "source.db", MODEL, DIM) as store:
        store.enroll("alice", [make_template(rng, "a1.jpg"), make_template(rng, "a2.jpg")])
        store.enroll("bob", [make_template(rng, "b1.jpg")])
        yield store


@pytest.fixture
def target(tmp_path: Path) -> Iterator[GalleryStore]:
    with GalleryStore.open(tmp_path / "target.db", MODEL, DIM) as store:
        yield store


@pytest.fixture
def sealed(source: GalleryStore, tmp_path: Path) -> Path:
    path = tmp_path / "gallery.enc.json"
    export_gallery(source, path, SECRET)
    return path


def envelope(path: Path) -> dict:
    return json.loads(path.read_text())


def assert_nothing_imported(target: GalleryStore) -> None:
    assert target.people() == []
    assert target.snapshot().embeddings.shape[0] == 0


def test_round_trip_restores_every_person_and_embedding(
    source: GalleryStore, target: GalleryStore, sealed: Path
) -> None:
    summary = import_gallery(target, sealed, SECRET)
    assert (summary.people_added, summary.templates_added) == (2, 3)
    before, after = source.snapshot(), target.snapshot()
    assert after.names == before.names
    np.testing.assert_array_equal(after.embeddings, before.embeddings)
    assert [t.source for t in target.person("alice").templates] == ["a1.jpg", "a2.jpg"]


def test_the_envelope_records_its_parameters_and_hides_everything(sealed: Path) -> None:
    doc = envelope(sealed)
    assert set(doc) == {"format", "version", "cipher", "kdf", "nonce", "ciphertext"}
    assert (doc["format"], doc["version"], doc["cipher"]) == (
        "facegate-gallery-encrypted",
        1,
        "aes-256-gcm",
    )
    assert {k: doc["kdf"][k] for k in ("name", "n", "r", "p")} == {
        "name": "scrypt",
        "n": 2**15,
        "r": 8,
        "p": 1,
    }
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 16
    assert len(base64.b64decode(doc["nonce"])) == 12
    header = json.dumps({k: v for k, v in doc.items() if k != "ciphertext"}).encode()
    body = base64.b64decode(doc["ciphertext"])
    for plain in (b'"alice"', b'"bob"', b"a1.jpg", MODEL.encode(), b'"people"', b'"embedding"'):
        assert plain not in header and plain not in body  # 5+ bytes: not there by chance
    assert stat.S_IMODE(sealed.stat().st_mode) == 0o600


def test_every_export_has_its_own_salt_and_nonce(source: GalleryStore, tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    export_gallery(source, a, SECRET)
    export_gallery(source, b, SECRET)
    da, db = envelope(a), envelope(b)
    assert da["kdf"]["salt"] != db["kdf"]["salt"] and da["nonce"] != db["nonce"]


def test_wrong_passphrase_imports_nothing(target: GalleryStore, sealed: Path) -> None:
    with pytest.raises(GalleryError, match=TAMPERED):
        import_gallery(target, sealed, SECRET + "!")
    assert_nothing_imported(target)


def test_a_flipped_byte_in_the_ciphertext_imports_nothing(
    target: GalleryStore, sealed: Path
) -> None:
    doc = envelope(sealed)
    data = bytearray(base64.b64decode(doc["ciphertext"]))
    data[len(data) // 2] ^= 0x01
    doc["ciphertext"] = base64.b64encode(bytes(data)).decode()
    sealed.write_text(json.dumps(doc))
    with pytest.raises(GalleryError, match=TAMPERED):
        import_gallery(target, sealed, SECRET)
    assert_nothing_imported(target)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kdf.r", 4),  # a weaker KDF: another key, and the header is authenticated
        ("kdf.salt", base64.b64encode(b"\0" * 16).decode()),
        ("nonce", base64.b64encode(b"\0" * 12).decode()),
        ("cipher", "aes-128-gcm"),
        ("nonce", "AAAA"),
        ("kdf.n", 2**30),  # would need 8 GiB: refused before scrypt runs
        ("kdf.n", 1000),
        ("kdf.name", "pbkdf2"),
        ("ciphertext", "not base64!"),
    ],
)
def test_a_tampered_envelope_imports_nothing(
    target: GalleryStore, sealed: Path, field: str, value: object
) -> None:
    doc = envelope(sealed)
    holder = doc["kdf"] if field.startswith("kdf.") else doc
    holder[field.removeprefix("kdf.")] = value
    sealed.write_text(json.dumps(doc))
    with pytest.raises(GalleryError, match=TAMPERED):
        import_gallery(target, sealed, SECRET)
    assert_nothing_imported(target)


@pytest.mark.parametrize(
    "kdf",
    [
        {"n": 65536, "r": 1},  # hashlib.scrypt raised ValueError: a traceback
        {"n": 2, "r": 2**19},  # 477 MB of memory against the 128 MiB cap
        {"n": 2**18},  # 256 MiB
        {"n": 2**13},  # cheaper than facegate ever writes
        {"p": 2},
        {"r": True},
        {"salt": base64.b64encode(b"s" * 64).decode()},
    ],
)
def test_kdf_parameters_facegate_never_writes_are_refused_before_deriving(
    target: GalleryStore, sealed: Path, kdf: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = envelope(sealed)
    doc["kdf"].update(kdf)
    sealed.write_text(json.dumps(doc))

    def derive(*args: object) -> bytes:
        raise AssertionError("scrypt ran on parameters that should have been refused")

    monkeypatch.setattr(exchange, "_derive_key", derive)
    with pytest.raises(GalleryError, match="scrypt") as info:
        import_gallery(target, sealed, SECRET)
    assert "nothing imported" in str(info.value) and "\n" not in str(info.value)
    assert_nothing_imported(target)


def test_a_truncated_file_imports_nothing(target: GalleryStore, sealed: Path) -> None:
    raw = sealed.read_bytes()
    for cut in (0, 10, len(raw) // 2, len(raw) - 3):
        sealed.write_bytes(raw[:cut])
        with pytest.raises(GalleryError):
            import_gallery(target, sealed, SECRET)
    assert_nothing_imported(target)


def test_an_encrypted_file_without_a_passphrase_says_so(target: GalleryStore, sealed: Path) -> None:
    with pytest.raises(GalleryError, match="is encrypted: give its passphrase") as info:
        import_gallery(target, sealed)
    assert "--passphrase-file" in str(info.value) and "nothing imported" in str(info.value)
    assert_nothing_imported(target)


def test_ask_is_called_only_for_an_encrypted_file(
    source: GalleryStore, target: GalleryStore, sealed: Path, tmp_path: Path
) -> None:
    asked: list[int] = []

    def ask() -> str:
        asked.append(1)
        return SECRET

    plain = tmp_path / "plain.json"
    export_gallery(source, plain)
    import_gallery(target, plain, ask=ask)
    assert asked == []
    import_gallery(target, sealed, ask=ask)  # the same templates again: stored once
    assert asked == [1] and target.person("alice").template_count == 2


def test_a_passphrase_for_a_plain_file_is_refused(
    source: GalleryStore, target: GalleryStore, tmp_path: Path
) -> None:
    plain = tmp_path / "plain.json"
    export_gallery(source, plain)
    with pytest.raises(GalleryError, match="not encrypted although a passphrase was given"):
        import_gallery(target, plain, SECRET)
    assert_nothing_imported(target)


def test_an_empty_passphrase_is_refused(source: GalleryStore, tmp_path: Path) -> None:
    with pytest.raises(GalleryError, match="empty"):
        export_gallery(source, tmp_path / "x.json", "")
    assert not (tmp_path / "x.json").exists()


def test_the_passphrase_is_unicode_normalised(
    source: GalleryStore, target: GalleryStore, tmp_path: Path
) -> None:
    path = tmp_path / "u.json"
    export_gallery(source, path, "caf\u00e9")  # precomposed é
    import_gallery(target, path, "cafe\u0301")  # e + combining accent
    assert len(target.people()) == 2


@FUZZ
@given(data=st.data())
def test_random_mutations_never_import_anything(
    source: GalleryStore,
    target: GalleryStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    data: st.DataObject,
) -> None:
    monkeypatch.setattr(exchange, "SCRYPT_N", 2**10)  # the file says which n: fast to fuzz
    path = tmp_path / "fuzz.json"
    if not path.exists():
        export_gallery(source, path, SECRET)
    original = path.read_bytes()
    mutated = data.draw(mutations(original))
    if mutated == original:
        return
    bad = tmp_path / "mutated.json"
    bad.write_bytes(mutated)
    try:
        import_gallery(target, bad, SECRET)
    except GalleryError:
        assert_nothing_imported(target)
        return
    # only a change that leaves the JSON value as it was (e.g. the trailing newline) may load
    assert json.loads(mutated) == json.loads(original)
    target.remove("alice")
    target.remove("bob")


@st.composite
def mutations(draw: st.DrawFn, original: bytes) -> bytes:
    """One random change: flip bits, truncate, insert or delete bytes, or swap two spans."""
    data = bytearray(original)
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "overwrite"]))
    at = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        data[at] ^= draw(st.integers(1, 255))
    elif kind == "truncate":
        del data[at:]
    elif kind == "insert":
        data[at:at] = draw(st.binary(min_size=1, max_size=8))
    elif kind == "delete":
        del data[at : at + draw(st.integers(1, 16))]
    else:
        chunk = draw(st.binary(min_size=1, max_size=8))
        data[at : at + len(chunk)] = chunk
    return bytes(data)


# ---- where the CLI takes the passphrase from ---------------------------------------------------


def options(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**{"passphrase_file": None, "passphrase_env": None, **kw})


def test_cli_reads_the_first_line_of_the_passphrase_file(tmp_path: Path) -> None:
    path = tmp_path / "pass"
    path.write_text(f"{SECRET}\n")
    path.chmod(0o600)
    assert _passphrase(options(passphrase_file=path)) == SECRET
    assert _passphrase(options()) is None


def test_cli_refuses_missing_or_empty_passphrases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FG_TEST_PASS", raising=False)
    with pytest.raises(FacegateError, match="FG_TEST_PASS is not set"):
        _passphrase(options(passphrase_env="FG_TEST_PASS"))
    monkeypatch.setenv("FG_TEST_PASS", "")
    with pytest.raises(FacegateError, match="empty"):
        _passphrase(options(passphrase_env="FG_TEST_PASS"))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(FacegateError, match="empty"):
        _passphrase(options(passphrase_file=empty))
    with pytest.raises(FacegateError, match="cannot read the passphrase file"):
        _passphrase(options(passphrase_file=tmp_path / "absent"))


def test_the_cli_has_no_option_that_takes_the_passphrase_itself() -> None:
    proc = run_cli("gallery", "export", "--help")
    assert "--passphrase-file" in proc.stdout and "--passphrase-env" in proc.stdout
    assert "--passphrase " not in proc.stdout and "--passphrase=" not in proc.stdout


@pytest.mark.slow
def test_cli_export_and_import_with_a_passphrase(
    home: Path, bundle_dir: Path, faces_dir: Path, tmp_path: Path
) -> None:
    env = {"FACEGATE_HOME": str(home), "FG_TEST_PASS": SECRET}
    models = ("--bundle", str(bundle_dir), "--backend", "onnxruntime")
    photo = sorted((faces_dir / "face_recognition" / "obama").glob("*.jpg"))[0]
    assert run_cli("gallery", "enroll", "obama", str(photo), *models, env=env).returncode == 0
    secret_file = tmp_path / "pass"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o644)
    out = tmp_path / "export.json"
    proc = run_cli(
        "gallery", "export", str(out), "--passphrase-file", str(secret_file), *models, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{secret_file} is mode 0644, should be 0600" in proc.stderr
    assert envelope(out)["format"] == "facegate-gallery-encrypted"
    other = ("--gallery", str(tmp_path / "other.db"), *models)
    proc = run_cli("gallery", "import", str(out), *other, env=env)
    assert proc.returncode == 1
    assert "is encrypted: give its passphrase" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli(
        "gallery", "import", str(out), "--passphrase-env", "FG_TEST_PASS", *other, env=env
    )
    assert proc.returncode == 0, proc.stderr
    listed = run_cli("gallery", "list", "--json", *other, env=env)
    assert [p["name"] for p in json.loads(listed.stdout)] == ["obama"]
