"""Hostile manifests: every field is checked before anything uses it, and named when it is bad."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from facegate.bundle import Bundle
from facegate.errors import BundleError, ModelError
from tests.conftest import run_cli


@pytest.fixture()
def copy(bundle_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the built bundle whose manifest a test may rewrite."""
    dest = tmp_path / "bundle"
    shutil.copytree(bundle_dir, dest)
    return dest


def _rewrite(root: Path, change: Callable[[dict], None]) -> None:
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _model(manifest: dict, role: str = "embedder", fmt: str = "onnx") -> dict:
    return next(
        m
        for m in manifest["models"]
        if m["role"] == role and m["format"] == fmt and m["precision"] == "fp32"
    )


def _index(root: Path, role: str = "embedder", fmt: str = "onnx") -> int:
    models = json.loads((root / "manifest.json").read_text())["models"]
    return next(
        i
        for i, m in enumerate(models)
        if m["role"] == role and m["format"] == fmt and m["precision"] == "fp32"
    )


def _refused(root: Path, field: str) -> str:
    with pytest.raises(BundleError) as info:
        Bundle.load(root)
    message = str(info.value)
    assert field in message and "\n" not in message, message
    return message


def test_the_built_manifest_passes(bundle_dir: Path) -> None:
    bundle = Bundle.load(bundle_dir)
    assert bundle.entry("embedder", "onnx").input.std == 128.0


def test_deep_nesting_is_refused_without_recursion_error(copy: Path) -> None:
    text = (copy / "manifest.json").read_text()
    deep = "[" * 200_000 + "]" * 200_000
    hostile = text.replace('"description": ', f'"description": {deep}, "x": ', 1)
    (copy / "manifest.json").write_text(hostile)
    _refused(copy, "nested too deeply")


def test_nesting_inside_a_known_field_is_refused(copy: Path) -> None:
    nested: list = []
    for _ in range(50):
        nested = [nested]
    _rewrite(copy, lambda m: _model(m)["input"].update(mean=nested))
    _refused(copy, f"models[{_index(copy)}].input.mean")


@pytest.mark.parametrize(
    ("key", "value"),
    [("std", 0), ("std", -128.0), ("std", 1e-300), ("mean", "127.5"), ("mean", True)],
)
def test_bad_normalisation_is_refused(copy: Path, key: str, value: object) -> None:
    _rewrite(copy, lambda m: _model(m)["input"].update({key: value}))
    _refused(copy, f"models[{_index(copy)}].input.{key}")


@pytest.mark.parametrize("literal", ["1e999", "-1e999", "NaN", "Infinity"])
def test_non_finite_numbers_are_refused(copy: Path, literal: str) -> None:
    _rewrite(copy, lambda m: _model(m)["input"].update(mean="@@"))
    path = copy / "manifest.json"
    path.write_text(path.read_text().replace('"@@"', literal))
    _refused(copy, f"models[{_index(copy)}].input.mean")


def test_infinite_mean_makes_the_cli_fail_with_one_line(copy: Path, tmp_path: Path) -> None:
    """It used to say "similarity nan (threshold 0.44): different people" and exit 0."""
    _rewrite(copy, lambda m: _model(m)["input"].update(mean="@@"))
    path = copy / "manifest.json"
    path.write_text(path.read_text().replace('"@@"', "1e999"))
    photos = [str(copy / "samples" / name) for name in ("obama.jpg", "biden.jpg")]
    proc = run_cli(
        "verify", *photos, "--bundle", str(copy), env={"FACEGATE_HOME": str(tmp_path / "h")}
    )
    assert proc.returncode != 0, proc.stdout
    assert "nan" not in proc.stdout and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("facegate: error")]
    assert len(errors) == 1 and ".input.mean" in errors[0], proc.stderr


def _outside_copy(copy: Path, tmp_path: Path) -> Path:
    """The real embedder file, byte for byte, in a folder beside the bundle (same sha256)."""
    manifest = json.loads((copy / "manifest.json").read_text())
    outside = tmp_path / "elsewhere" / "x.onnx"
    outside.parent.mkdir()
    shutil.copyfile(copy / _model(manifest)["file"], outside)
    return outside


def test_model_file_outside_the_bundle_is_refused(copy: Path, tmp_path: Path) -> None:
    _outside_copy(copy, tmp_path)
    _rewrite(copy, lambda m: _model(m).update(file="../elsewhere/x.onnx"))
    _refused(copy, f"models[{_index(copy)}].file")


def test_absolute_model_file_is_refused(copy: Path, tmp_path: Path) -> None:
    outside = _outside_copy(copy, tmp_path)
    _rewrite(copy, lambda m: _model(m).update(file=str(outside)))
    _refused(copy, f"models[{_index(copy)}].file")


def test_symlink_leading_out_of_the_bundle_is_refused(copy: Path, tmp_path: Path) -> None:
    outside = _outside_copy(copy, tmp_path)
    (copy / "link.onnx").symlink_to(outside)
    _rewrite(copy, lambda m: _model(m).update(file="link.onnx"))
    _refused(copy, f"models[{_index(copy)}].file")


def test_symlink_swapped_in_after_loading_is_refused_when_opened(
    copy: Path, tmp_path: Path
) -> None:
    outside = _outside_copy(copy, tmp_path)
    bundle = Bundle.load(copy)
    entry = bundle.entry("embedder", "onnx")
    (copy / entry.file).unlink()
    (copy / entry.file).symlink_to(outside)
    with pytest.raises(ModelError, match="outside the bundle"):
        bundle.verify_file(entry)


def test_a_bundle_reached_through_a_symlink_still_loads(copy: Path, tmp_path: Path) -> None:
    link = tmp_path / "linked"
    link.symlink_to(copy)
    bundle = Bundle.load(link)
    assert bundle.verify_file(bundle.entry("embedder", "onnx")).is_file()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("role", "eyes"),
        ("format", "pickle"),
        ("precision", "int4"),
        ("sha256", "abc"),
        ("embedding_size", "192"),
        ("embedding_size", 0),
        ("outputs", []),
        ("outputs", [{"name": 3}]),
        ("model_id", ""),
        ("bytes", -1),
        ("parity", {"mean_cos": float("nan")}),
        ("role_typo", "embedder"),
    ],
)
def test_bad_model_fields_are_refused(copy: Path, field: str, value: object) -> None:
    index = _index(copy)
    _rewrite(copy, lambda m: _model(m).update({field: value}))
    message = _refused(copy, f"models[{index}].{field}")
    if field == "role_typo":
        assert "unknown" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("shape", "1,112,112,3"),
        ("shape", [None, 112, 112]),
        ("shape", [None, 112, 112, 3.5]),
        ("shape", [None, 112, 1_000_000, 3]),
        ("shape", [None, None, None, 3]),
        ("layout", "NCHW"),
        ("colour", "CMYK"),
        ("dtype", "float64"),
    ],
)
def test_bad_input_specs_are_refused(copy: Path, field: str, value: object) -> None:
    _rewrite(copy, lambda m: _model(m)["input"].update({field: value}))
    _refused(copy, f"models[{_index(copy)}].input.{field}")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda m: m.update(models={}), "models"),
        (lambda m: m.update(models=[]), "models"),
        (lambda m: m.update(bundle=["default"]), "bundle"),
        (lambda m: m.update(version=None), "version"),
        (lambda m: m.update(description="x" * 100_000), "description"),
        (lambda m: m.pop("models"), "models"),
        (lambda m: m["models"].append(dict(m["models"][0])), "models[9]"),
    ],
)
def test_bad_top_level_fields_are_refused(
    copy: Path, change: Callable[[dict], None], field: str
) -> None:
    _rewrite(copy, change)
    if field == "models[9]":
        field = f"models[{len(json.loads((copy / 'manifest.json').read_text())['models']) - 1}]"
    _refused(copy, field)


def test_embedder_without_embedding_size_is_refused(copy: Path) -> None:
    _rewrite(copy, lambda m: _model(m).pop("embedding_size"))
    _refused(copy, f"models[{_index(copy)}].embedding_size")


def test_huge_manifest_is_refused_before_parsing(copy: Path) -> None:
    (copy / "manifest.json").write_text(" " * (2 << 20) + "{}")
    _refused(copy, "manifest too large")


def _held_out(check_file: str) -> dict:
    row = {"file": check_file, "sha256": "0" * 64}
    return {"source": "samples", "calibrate": [dict(row, file="a.jpg")], "check": [row]}


def test_held_out_photos_are_plain_names_in_the_samples_folder(copy: Path) -> None:
    _rewrite(copy, lambda m: m.update(held_out=_held_out("obama.jpg")))
    assert Bundle.load(copy).manifest["held_out"]["check"][0]["file"] == "obama.jpg"
    _rewrite(copy, lambda m: m.update(held_out=_held_out("../../etc/passwd")))
    _refused(copy, "held_out.check[0].file")
