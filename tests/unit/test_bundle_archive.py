"""Bundle archives: pack is reproducible; install checks every file and refuses hostile archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import stat
import tarfile
from pathlib import Path

import pytest

from facegate.bundle import Bundle
from facegate.bundle import archive as archive_mod
from facegate.bundle.archive import pack
from facegate.bundle.install import install
from facegate.errors import BundleError, ConfigError

MODEL = b"not really onnx, but the installer checks bytes, not graphs" * 10


def _manifest(name: str = "tiny", data: bytes = MODEL) -> dict:
    """A manifest that passes the bundle schema, for one small stand-in model file."""
    return {
        "schema": 1,
        "bundle": name,
        "version": "1.0",
        "models": [
            {
                "role": "embedder",
                "file": "embedder.fp32.onnx",
                "format": "onnx",
                "precision": "fp32",
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
                "input": {
                    "shape": [None, 112, 112, 3],
                    "dtype": "float32",
                    "layout": "NHWC",
                    "colour": "RGB",
                    "mean": 127.5,
                    "std": 128.0,
                },
                "outputs": [{"name": "embedding"}],
                "embedding_size": 192,
                "model_id": "tiny-embedder",
                "params": 1,
                "macs": 1,
                "latency_ms": 1.0,
                "source": {
                    "package": "tiny",
                    "version": "1.0",
                    "registry": "pypi-wheel",
                    "sha256": "0" * 64,
                    "licence": "MIT",
                    "member": "tiny.bin",
                },
                "converter_version": "0.1.0",
            }
        ],
    }


@pytest.fixture()
def tiny(tmp_path: Path) -> Bundle:
    """A small bundle: one model file, a report and one parity photo."""
    root = tmp_path / "src" / "tiny"
    (root / "samples").mkdir(parents=True)
    (root / "manifest.json").write_text(json.dumps(_manifest()))
    (root / "embedder.fp32.onnx").write_bytes(MODEL)
    (root / "report.json").write_text("{}")
    (root / "samples" / "face.jpg").write_bytes(b"\xff\xd8jpeg")
    (root / "stray.tmp").write_text("not part of the bundle")
    return Bundle.load(root)


@pytest.fixture()
def models(tmp_path: Path) -> Path:
    path = tmp_path / "home" / "models"
    path.mkdir(parents=True)
    return path


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """Write a .tar.gz of hand-made members (for archives pack would never write)."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _good_members(manifest: dict | None = None) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    return [
        _file("tiny/manifest.json", json.dumps(manifest or _manifest()).encode()),
        _file("tiny/embedder.fp32.onnx", MODEL),
    ]


def test_pack_is_reproducible_and_holds_only_the_bundle(tiny: Bundle, tmp_path: Path) -> None:
    first = pack(tiny, tmp_path / "a.tar.gz")
    second = pack(tiny, tmp_path / "b.tar.gz")
    assert first.sha256 == second.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest()
    with tarfile.open(first.path) as tar:
        names = sorted(tar.getnames())
    assert names == sorted(
        f"tiny/{n}"
        for n in (
            "manifest.json",
            "pack.json",
            "embedder.fp32.onnx",
            "report.json",
            "samples/face.jpg",
        )
    )


def test_install_round_trip_private_modes(tiny: Bundle, tmp_path: Path, models: Path) -> None:
    packed = pack(tiny, tmp_path / "tiny.tar.gz")
    done = install(str(packed.path), models, sha256=packed.sha256)
    assert (done.state, done.files, done.name) == ("installed", 4, "tiny")
    root = models / "tiny"
    assert (root / "embedder.fp32.onnx").read_bytes() == MODEL
    assert not (root / "pack.json").exists() and not (root / "stray.tmp").exists()
    for path in [root, *root.rglob("*")]:
        want = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == want, path
    assert Bundle.load(root).name == "tiny"
    assert [p.name for p in models.iterdir()] == ["tiny"]  # no temporary folder left


def test_identical_reinstall_is_a_no_op_different_needs_force(
    tiny: Bundle, tmp_path: Path, models: Path
) -> None:
    packed = pack(tiny, tmp_path / "tiny.tar.gz")
    install(str(packed.path), models)
    assert install(str(packed.path), models).state == "unchanged"
    (tiny.root / "report.json").write_text('{"changed": true}')
    changed = pack(tiny, tmp_path / "tiny2.tar.gz")
    with pytest.raises(BundleError, match="--force"):
        install(str(changed.path), models)
    assert (models / "tiny" / "report.json").read_text() == "{}"  # the old one is untouched
    assert install(str(changed.path), models, force=True).state == "replaced"
    assert "changed" in (models / "tiny" / "report.json").read_text()
    assert sorted(p.name for p in models.iterdir()) == ["tiny"]


def test_install_under_another_name(tiny: Bundle, tmp_path: Path, models: Path) -> None:
    packed = pack(tiny, tmp_path / "tiny.tar.gz")
    assert install(str(packed.path), models, name="door").path == models / "door"
    with pytest.raises(ConfigError, match="--name"):
        install(str(packed.path), models, name="../escape")


def test_wrong_sha256_is_refused_before_unpacking(
    tiny: Bundle, tmp_path: Path, models: Path
) -> None:
    packed = pack(tiny, tmp_path / "tiny.tar.gz")
    with pytest.raises(BundleError, match="differs from --sha256"):
        install(str(packed.path), models, sha256="0" * 64)
    with pytest.raises(ConfigError, match="64 hex digits"):
        install(str(packed.path), models, sha256="abc")
    assert list(models.iterdir()) == []


def _link(name: str, kind: bytes, target: str = "/etc/passwd") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


HOSTILE = {
    "absolute path": [_file("/tmp/evil", b"x")],
    "dot-dot": [_file("tiny/../../evil", b"x")],
    "symlink": [_link("tiny/embedder.fp32.onnx", tarfile.SYMTYPE)],
    "hard link": [_link("tiny/embedder.fp32.onnx", tarfile.LNKTYPE)],
    "device": [_link("tiny/dev", tarfile.CHRTYPE)],
    "fifo": [_link("tiny/fifo", tarfile.FIFOTYPE)],
    "file at top level": [_file("manifest.json", b"{}")],
    "two folders": [_file("other/x.jpg", b"x")],
    "extra file": [_file("tiny/run-me.sh", b"#!/bin/sh")],
    "duplicate": [_file("tiny/embedder.fp32.onnx", MODEL)],
}
REASONS = {
    "absolute path": "unsafe path",
    "dot-dot": "unsafe path",
    "symlink": "link or device",
    "hard link": "link or device",
    "device": "link or device",
    "fifo": "link or device",
    "file at top level": "outside the bundle",
    "two folders": "more than one top-level folder",
    "extra file": "unexpected: run-me.sh",
    "duplicate": "appears twice",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_refused_in_one_line(case: str, tmp_path: Path, models: Path) -> None:
    path = _tar(tmp_path / "evil.tar.gz", _good_members() + HOSTILE[case])
    with pytest.raises(BundleError) as err:
        install(str(path), models)
    assert "refused" in str(err.value) and REASONS[case] in str(err.value)
    assert "\n" not in str(err.value)
    assert list(models.iterdir()) == []
    assert not (tmp_path / "evil").exists()


def test_tampered_missing_and_unlisted_files_are_refused(tmp_path: Path, models: Path) -> None:
    tampered = _tar(
        tmp_path / "t.tar.gz",
        [
            _file("tiny/manifest.json", json.dumps(_manifest()).encode()),
            _file("tiny/embedder.fp32.onnx", MODEL[:-1] + b"?"),
        ],
    )
    with pytest.raises(BundleError, match=r"sha256 mismatch: embedder.fp32.onnx"):
        install(str(tampered), models)
    missing = _tar(tmp_path / "m.tar.gz", _good_members()[:1])
    with pytest.raises(BundleError, match=r"missing: embedder.fp32.onnx"):
        install(str(missing), models)
    listing = {"format": 1, "files": {"samples/a.jpg": hashlib.sha256(b"a").hexdigest()}}
    lying = _tar(
        tmp_path / "l.tar.gz",
        [
            *_good_members(),
            _file("tiny/pack.json", json.dumps(listing).encode()),
            _file("tiny/samples/a.jpg", b"b"),
        ],
    )
    with pytest.raises(BundleError, match=r"sha256 mismatch: samples/a.jpg"):
        install(str(lying), models)
    listing = {"format": 1, "files": {"bin/tool": hashlib.sha256(b"a").hexdigest()}}
    odd = _tar(
        tmp_path / "o.tar.gz",
        [*_good_members(), _file("tiny/pack.json", json.dumps(listing).encode())],
    )
    with pytest.raises(BundleError, match="lists unexpected files"):
        install(str(odd), models)
    assert list(models.iterdir()) == []


def test_limits_on_members_and_size(
    tmp_path: Path, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    many = _tar(
        tmp_path / "many.tar.gz",
        [*_good_members(), *(_file(f"tiny/samples/{i}.jpg", b"x") for i in range(10))],
    )
    monkeypatch.setattr(archive_mod, "MAX_MEMBERS", 5)
    with pytest.raises(BundleError, match="more than 5 members"):
        install(str(many), models)
    monkeypatch.setattr(archive_mod, "MAX_MEMBERS", 256)
    monkeypatch.setattr(archive_mod, "MAX_UNPACKED_BYTES", len(MODEL))
    with pytest.raises(BundleError, match="unpacks to over"):
        install(str(_tar(tmp_path / "big.tar.gz", _good_members())), models)


def test_not_an_archive_and_truncated(tiny: Bundle, tmp_path: Path, models: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"hello, not gzip")
    with pytest.raises(BundleError, match=r"not a readable .tar.gz"):
        install(str(junk), models)
    packed = pack(tiny, tmp_path / "tiny.tar.gz")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(packed.path.read_bytes()[: packed.bytes // 2])
    with pytest.raises(BundleError, match=r"not a readable .tar.gz"):
        install(str(cut), models)
    bomb = tmp_path / "bomb.tar.gz"
    bomb.write_bytes(gzip.compress(b"\0" * 10_000))
    with pytest.raises(BundleError):
        install(str(bomb), models)
    with pytest.raises(BundleError, match="no such bundle archive"):
        install(str(tmp_path / "absent.tar.gz"), models)
    assert list(models.iterdir()) == []


def test_install_copy_leaves_out_the_builds_rejected_variants(tmp_path: Path) -> None:
    from facegate.bundle.install import copy_into_place

    src = tmp_path / "cache"
    (src / "rejected").mkdir(parents=True)
    (src / "rejected" / "embedder.int8.onnx").write_bytes(b"x")
    (src / "manifest.json").write_text("{}")
    (src / "samples").mkdir()
    (src / "samples" / "rejected").write_text("a sample that happens to share the name")
    target = tmp_path / "models" / "default"
    target.parent.mkdir()
    copy_into_place(src, target, leave_out=("rejected",))
    assert (target / "manifest.json").is_file()
    assert (target / "samples" / "rejected").is_file()
    assert not (target / "rejected").exists()
