"""The size of a fleet gallery update: ``python -m benchmarks.fleet_message [--people N ...]``.

Builds galleries of N people (one template each: a 128-d synthetic embedding and a real 112x112
face crop from tests/data/faces, PNG as enrollment stores it; with --flat also a uniform grey
crop, the floor without the faces' pixels), wraps each in the signed update
``facegate fleet publish`` sends, cuts it into 4 MiB parts under a signed manifest, and prints
bytes per person, the update and manifest sizes, the part count, the time to build, to verify
and to import it, and the device's peak Python memory while importing (tracemalloc, the update
itself included). Writes fleet_message.json to --out.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from facegate.fleet.package import build, open_update
from facegate.fleet.parts import DEFAULT_PART_BYTES, split
from facegate.gallery.exchange import read_export
from facegate.gallery.store import GalleryStore, StoredPerson, StoredTemplate, encode_crop

FACES = Path(__file__).resolve().parents[1] / "tests" / "data" / "faces"
MODEL, SIZE = "synthetic", 128
PASSPHRASE = "fleet benchmark passphrase"


def crops() -> list[np.ndarray]:
    """Every photo of tests/data/faces, squared and resized to a 112x112 RGB crop."""
    out = []
    for path in sorted(FACES.rglob("*.*")):
        img = cv2.imread(str(path))
        if img is None:
            continue
        side = min(img.shape[:2])
        y, x = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
        out.append(cv2.resize(img[y : y + side, x : x + side], (112, 112))[..., ::-1].copy())
    return out


def flat_crops() -> list[np.ndarray]:
    """One uniform grey crop: what an update costs without the faces' pixels (the floor)."""
    return [np.full((112, 112, 3), 128, np.uint8)]


def measure(people: int, folder: Path, flat: bool = False) -> dict[str, object]:
    """Build a gallery of ``people``, its update and parts; sizes, times and import memory."""
    rng, faces = np.random.default_rng(0), flat_crops() if flat else crops()
    key = Ed25519PrivateKey.generate()
    with GalleryStore.open(folder / f"g{people}-{flat}.db", MODEL, SIZE) as store:
        incoming = []
        for i in range(people):
            vector = rng.standard_normal(SIZE).astype(np.float32)
            crop = encode_crop(faces[i % len(faces)])
            template = StoredTemplate(vector / np.linalg.norm(vector), crop, "bench", time.time())
            incoming.append(StoredPerson(f"person {i}", time.time(), (template,)))
        store.mirror(incoming)  # one transaction: 10,000 enrollments one by one take minutes
        del incoming
        start = time.perf_counter()
        payload = build(store, PASSPHRASE, 1, key)
        manifest, parts = split(payload, 1, DEFAULT_PART_BYTES, key)
        built = time.perf_counter() - start
    del parts
    imported, peak = _import(payload, key, folder / f"d{people}-{flat}.db")
    return {
        "crops": "flat" if flat else "real",
        "people": people,
        "bytes": len(payload),
        "bytes_per_person": round(len(payload) / people),
        "mib": round(len(payload) / 2**20, 2),
        "parts": -(-len(payload) // DEFAULT_PART_BYTES),
        "manifest_bytes": len(manifest),
        "build_s": round(built, 2),
        "import_s": round(imported, 2),
        "import_peak_mib": round(peak / 2**20, 1),
    }


def _import(payload: bytes, key: Ed25519PrivateKey, db: Path) -> tuple[float, int]:
    """What a device does with a collected update; seconds and peak bytes (update included)."""
    with GalleryStore.open(db, MODEL, SIZE) as store:
        tracemalloc.start()
        start = time.perf_counter()
        update = open_update(payload, key.public_key(), len(payload))
        plain = update.plain(PASSPHRASE, db)
        del update
        people = read_export(store, db, data=plain)
        del plain
        store.mirror(people)
        took = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return took, peak + len(payload)


def main(argv: list[str] | None = None) -> int:
    """Measure and print."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.fleet_message", description=__doc__)
    p.add_argument("--people", type=int, nargs="+", default=[100, 1000, 10_000])
    p.add_argument("--flat", action="store_true", help="also measure with uniform crops")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for flat in (False, True) if args.flat else (False,):
            for people in args.people:
                rows.append(measure(people, Path(tmp), flat))
                print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fleet_message.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
