"""The student recipe: the repository's ShuffleNet weights pinned, the detector as the default's."""

from __future__ import annotations

from facegate.converters import ir_store
from facegate.converters.ir import count_macs
from facegate.converters.recipe import load
from facegate.converters.sources import repository_file, sha256_file


def test_student_recipe_pins_the_shipped_half_width_student() -> None:
    recipe, default = load("student"), load("default")
    m = recipe.models["embedder"]
    src = recipe.sources[m.source]
    assert (src.registry, m.reader, m.member) == ("repository", "facegate-ir", "")
    assert sha256_file(repository_file(src)) == src.sha256
    assert "non-commercial" in src.licence
    for role in ("pnet", "rnet", "onet"):
        assert recipe.models[role] == default.models[role]
        assert recipe.sources[recipe.models[role].source] == default.sources["mtcnn"]
    assert recipe.models["embedder"].input == default.models["embedder"].input
    graph, meta = ir_store.load(repository_file(src))
    assert graph.name == meta["architecture"] == "shufflenet-v2-0.5x-face"
    assert count_macs(graph, 112, 112) == meta["macs"] == 38_163_360
    assert "UTKFace" in meta["training_data"]["name"] and meta["seed"] == 14


def test_both_widths_ship_with_their_figures() -> None:
    for name, width in (("shufflenet-student-w05", 0.5), ("shufflenet-student-w10", 1.0)):
        from facegate.bundle.recipes import recipes_dir

        graph, meta = ir_store.load(recipes_dir() / "weights" / f"{name}.npz")
        assert graph.name == f"shufflenet-v2-{width:g}x-face"
        assert meta["heldout"]["crops"] > 0 and "cos_mean" in meta["heldout"]
        assert meta["command"].split()[:5] == [
            "nice",
            "python",
            "-m",
            "facegate.converters.train",
            "distill",
        ]
