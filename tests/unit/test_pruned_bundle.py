"""The pruned bundles: recipes pin the repository's weights, the model id names them, and a
built pruned bundle identifies faces while refusing a gallery made by the teacher."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from facegate.converters import build, ir_store
from facegate.converters.recipe import load
from facegate.converters.sources import fetch, repository_file, sha256_file
from tests.conftest import run_cli

PRUNED = {"pruned": "mobilefacenet-pruned60", "pruned40": "mobilefacenet-pruned40"}


@pytest.mark.parametrize("name", sorted(PRUNED))
def test_recipe_builds_from_the_repository_weights(name: str) -> None:
    recipe, default = load(name), load("default")
    m = recipe.models["embedder"]
    src = recipe.sources[m.source]
    assert (src.registry, m.reader, m.member) == ("repository", "facegate-ir", "")
    assert sha256_file(repository_file(src)) == src.sha256
    assert "non-commercial" in src.licence
    for role in ("pnet", "rnet", "onet"):  # the detector exactly as the default bundle's
        assert recipe.models[role] == default.models[role]
        assert recipe.sources[recipe.models[role].source] == default.sources["mtcnn"]
    graph, meta = ir_store.load(repository_file(src))
    assert graph.name == meta["architecture"] == PRUNED[name]


def _model_ids(name: str, tmp_path: Path) -> dict[str, str]:
    from facegate.host.paths import cache_dir

    recipe = load(name)
    state = build.BuildState(recipe, tmp_path, None, None)
    for key, src in recipe.sources.items():
        state.sources[key] = fetch(src, cache_dir())  # cached by the default build: offline
    state.graphs = {role: build._read_graph(state, m) for role, m in recipe.models.items()}
    return build._model_ids(state)


def test_model_id_names_the_pruned_weights_and_keeps_the_default(tmp_path: Path, bundle) -> None:
    pruned = _model_ids("pruned", tmp_path / "p")
    src = load("pruned").sources["mobilefacenet-pruned60"]
    assert pruned["embedder"] == f"mobilefacenet-pruned60-{src.sha256[:12]}"
    default = _model_ids("default", tmp_path / "d")
    assert default["embedder"] == bundle.embedder_id  # galleries of the default bundle stay valid
    assert pruned["pnet"] == default["pnet"]


def _pruned_bundle() -> Path:
    """A built pruned bundle: $FACEGATE_PRUNED_BUNDLE, else the state dir's, else skip."""
    from facegate.host.paths import models_dir

    path = Path(os.environ.get("FACEGATE_PRUNED_BUNDLE") or models_dir() / "pruned")
    if not (path / "manifest.json").is_file():
        pytest.skip(
            f"optional data: no built pruned bundle at {path} "
            "(`facegate models build --bundle pruned`, or set FACEGATE_PRUNED_BUNDLE)"
        )
    return path


@pytest.mark.slow
def test_pruned_bundle_identifies_and_refuses_a_teacher_gallery(
    tmp_path: Path, state: Path, faces_dir: Path
) -> None:
    bundle = _pruned_bundle()
    photo = next(iter(sorted((faces_dir / "face_recognition" / "obama").glob("*.jpg"))))
    common = ["--backend", "onnxruntime"]
    env = {"FACEGATE_HOME": str(state)}
    proc = run_cli("identify", str(photo), "--bundle", str(bundle), "--json", *common, env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)[0]["faces"]) == 1
    enrolled = run_cli("gallery", "enroll", "obama", str(photo), *common, env=env)
    assert enrolled.returncode == 0, enrolled.stderr
    refused = run_cli("identify", str(photo), "--bundle", str(bundle), *common, env=env)
    assert refused.returncode == 1
    assert "reembed" in refused.stderr and "Traceback" not in refused.stderr
