"""Clustering of unknown faces: clusters per real person and mixed clusters.

Photos: every labelled photo of ../shared/faces (face_recognition without the resolution
variants of one photo, bbt, deepface by its labels.csv) goes into an empty ``UnknownStore`` as an
unknown sighting (largest face), in ``ORDERS`` shuffled orders, at several thresholds.
Street clip: the 1080p clip of strangers played through the pipeline with an empty gallery, two
ways: the daemon's own sightings (one per unknown track), and every embedded face of every frame
(a denser test of join/merge/split) with the tracker's track as its label.
Prints the tables, returns the rows for results.json.
"""

from __future__ import annotations

import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import FACES, VIDEO, console, recognizer
from facegate.evaluate.dataset import scan
from facegate.evaluate.embed import largest_face
from facegate.gallery.clusters import CLUSTER_THRESHOLD
from facegate.gallery.unknowns import Retention, UnknownFace, UnknownStore, quality_score
from facegate.service.faces_kept import FaceKeeper
from facegate.service.metrics import Metrics
from facegate.service.pipeline import Pipeline, PipelineSettings
from facegate.types import Frame
from facegate.vision.image import load_image
from facegate.vision.recognizer import Recognizer
from facegate.vision.track import IoUTracker

THRESHOLDS = (0.35, 0.40, 0.44, 0.50, CLUSTER_THRESHOLD, 0.60)
ORDERS = 5  # shuffled arrival orders per threshold (clustering is incremental: order matters)
SETS = (("face_recognition", ("obama_resolution_variants",)), ("bbt", ()), ("deepface", ()))
STREET = "facenet_pytorch_video.mp4"
HAMILTON = "face_recognition_short_hamilton_clip.mp4"  # one speaker: every face is one person
CLIP_THRESHOLDS = (0.44, 0.50, CLUSTER_THRESHOLD, 0.60)
UNLIMITED = Retention(0, 0, 0)


def _faces(rec: Recognizer) -> tuple[list[UnknownFace], list[str]]:
    """One sighting per labelled photo with a face, and its identity."""
    faces, labels = [], []
    for name, exclude in SETS:
        data = scan(FACES / name, exclude)
        for path, label in zip(data.paths, data.labels, strict=True):
            image = load_image(path)
            found = rec.detect(image)
            if not found:
                continue
            aligned, emb = rec.embed(image, [found[largest_face(found)]])
            q = rec.quality(aligned[0])
            score = quality_score(q.size, q.sharpness, q.pose.yaw, q.pose.pitch)
            faces.append(UnknownFace(emb[0], aligned[0].crop, score, 0.0, name, 0))
            labels.append(f"{name}/{label}")
    return faces, labels


def score(assigned: list[int], labels: list[str]) -> dict[str, float]:
    """Clusters per person (mean), people split, mixed clusters, pairwise precision/recall."""
    by_person: dict[str, set[int]] = defaultdict(set)
    by_cluster: dict[int, Counter[str]] = defaultdict(Counter)
    for c, label in zip(assigned, labels, strict=True):
        by_person[label].add(c)
        by_cluster[c][label] += 1
    same_c = sum(n * (n - 1) // 2 for cnt in by_cluster.values() for n in [sum(cnt.values())])
    same_both = sum(n * (n - 1) // 2 for cnt in by_cluster.values() for n in cnt.values())
    same_p = sum(n * (n - 1) // 2 for n in Counter(labels).values())
    return {
        "people": len(by_person),
        "faces": len(labels),
        "clusters": len(by_cluster),
        "clusters_per_person": float(np.mean([len(s) for s in by_person.values()])),
        "people_split": sum(len(s) > 1 for s in by_person.values()),
        "mixed_clusters": sum(len(cnt) > 1 for cnt in by_cluster.values()),
        "pair_precision": same_both / same_c if same_c else 1.0,
        "pair_recall": same_both / same_p if same_p else 1.0,
        "mixed": sorted("+".join(sorted(cnt)) for cnt in by_cluster.values() if len(cnt) > 1),
    }


def cluster_all(faces: list[UnknownFace], order: np.ndarray, threshold: float) -> list[int]:
    """The cluster each face ends in, after adding them in ``order`` to an empty store."""
    with tempfile.TemporaryDirectory(prefix="facegate-clusters-") as tmp:
        size = int(faces[0].embedding.shape[0])
        with UnknownStore.open(
            Path(tmp) / "g.db", "bench", size, threshold=threshold, retention=UNLIMITED
        ) as store:
            ids = {int(i): store.add(faces[int(i)]).sighting_id for i in order}
            where = {s.id: c.id for c in store.clusters() for s in store.sightings(c.id)}
    return [where[ids[i]] for i in range(len(faces))]


def photos(rec: Recognizer, quick: bool) -> list[dict]:
    """Rows per threshold: the mean over shuffled orders."""
    faces, labels = _faces(rec)
    rng = np.random.default_rng(0)
    orders = [rng.permutation(len(faces)) for _ in range(1 if quick else ORDERS)]
    rows = []
    for threshold in THRESHOLDS:
        runs = [score(cluster_all(faces, o, threshold), labels) for o in orders]
        row: dict = {k: float(np.mean([r[k] for r in runs])) for k in runs[0] if k != "mixed"}
        row["mixed"] = sorted({m for r in runs for m in r["mixed"]})
        row["mixed_clusters_max"] = max(r["mixed_clusters"] for r in runs)
        rows.append({"threshold": threshold, "orders": len(orders), **row})
    return rows


def _frames(clip: Path) -> list[Frame]:
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        frames.append(Frame(rgb, len(frames) / fps, len(frames), "street"))
    cap.release()
    return frames


def street_daemon(rec: Recognizer, frames: list[Frame], tmp: Path) -> dict:
    """The pipeline with an empty gallery: unknown events, clusters, sightings per cluster."""
    rec.set_gallery(None)
    with UnknownStore.open(tmp / "street.db", rec.model_id, rec.embedder.size) as store:
        pipe = Pipeline(
            rec, PipelineSettings(camera="street"), keeper=FaceKeeper(store, "street", Metrics())
        )
        events = [e for f in frames for e in pipe.process(f)] + pipe.finish(frames[-1].timestamp)
        found = store.clusters()
    unknown = [e for e in events if e.kind == "unknown"]
    return {
        "unknown_events": len(unknown),
        "unknown_tracks": len({e.track_id for e in unknown}),
        "clusters": len(found),
        "sightings_per_cluster": [c.size for c in found],
    }


def dense_faces(
    rec: Recognizer, frames: list[Frame], label: str | None
) -> tuple[list[UnknownFace], list[str]]:
    """Every embeddable face of every frame, labelled ``label`` (None: by its track)."""
    settings = PipelineSettings()
    tracker = IoUTracker(settings.iou_threshold, settings.max_missed)
    faces, labels = [], []
    for frame in frames:
        matched, _ = tracker.update(rec.detect(frame.image), frame.timestamp)
        for track, face in matched:
            if face.size < settings.min_face_size:
                continue
            aligned = rec.align(frame.image, [face])[0]
            q = rec.quality(aligned)
            if not settings.good_enough(q):
                continue
            emb = rec.embed_aligned([aligned])[0]
            score_ = quality_score(q.size, q.sharpness, q.pose.yaw, q.pose.pitch)
            face_ = UnknownFace(emb, aligned.crop, score_, frame.timestamp, "clip", track.id)
            faces.append(face_)
            labels.append(label or f"track {track.id}")
    return faces, labels


def dense(faces: list[UnknownFace], labels: list[str]) -> list[dict]:
    """Rows per threshold, the faces added in the order the camera saw them."""
    order = np.arange(len(faces))
    return [
        {"threshold": t, **score(cluster_all(faces, order, t), labels)} for t in CLIP_THRESHOLDS
    ]


def run(quick: bool) -> dict:
    """Both measurements; prints their tables."""
    rec = recognizer()
    out: dict = {"photos": photos(rec, quick)}
    clip = VIDEO / STREET
    if clip.exists():
        frames = _frames(clip)
        with tempfile.TemporaryDirectory(prefix="facegate-street-") as tmp:
            out["street_daemon"] = street_daemon(rec, frames, Path(tmp))
        out["street_dense"] = dense(*dense_faces(rec, frames, None))
    hamilton = VIDEO / HAMILTON
    if hamilton.exists():
        out["hamilton_dense"] = dense(*dense_faces(rec, _frames(hamilton), "lin_manuel_miranda"))
    show(out)
    return out


def show(out: dict) -> None:
    """Print the tables."""
    from rich.table import Table

    t = Table(
        title="unknown-face clustering: ../shared/faces photos as unknowns", title_justify="left"
    )
    heads = (
        "threshold",
        "people",
        "faces",
        "clusters",
        "clusters/person",
        "people split",
        "mixed clusters",
        "pair precision",
        "pair recall",
    )
    for h in heads:
        t.add_column(h)
    for r in out["photos"]:
        t.add_row(
            f"{r['threshold']:.2f}",
            f"{r['people']:.0f}",
            f"{r['faces']:.0f}",
            f"{r['clusters']:.1f}",
            f"{r['clusters_per_person']:.2f}",
            f"{r['people_split']:.1f}",
            f"{r['mixed_clusters']:.1f} (max {r['mixed_clusters_max']})",
            f"{r['pair_precision']:.3f}",
            f"{r['pair_recall']:.3f}",
        )
    console.print(t)
    if "street_daemon" in out:
        console.print(f"street clip, daemon: {out['street_daemon']}")
        for r in out["street_dense"]:
            console.print(f"street clip, every face, labelled by track: {r}")
    for r in out.get("hamilton_dense", []):
        console.print(f"Hamilton clip, every face (one person): {r}")
