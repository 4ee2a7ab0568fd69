"""Train the small liveness classifier (offline, ``[train]`` extra: torch on the CPU).

    python -m facegate.converters.liveness_train --nuaa ../shared/liveness/nuaa \
        --extra-real ../shared/train/utkface_crops --test-subjects 11-16 --out models/weights

Faces are found with the bundle's MTCNN, as on the device, and cropped with
:func:`facegate.vision.liveness.crop_face` at twice the box (cached once), so augmentation can
jitter the crop scale around the model's ``crop_scale``. The split is by subject: the
``--test-subjects`` never reach training, and the figures printed are per split. The result is
an ONNX file (NHWC float input in [0, 255] / 255, softmax output: [live, attack]) and the JSON
spec beside it, with the file's sha256.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from facegate.bundle import Bundle, sha256_file
from facegate.host.paths import models_dir
from facegate.vision.image import load_image
from facegate.vision.liveness import crop_face
from facegate.vision.recognizer import Recognizer, RecognizerConfig

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

CACHE_SCALE = 2.0  # crops are cached at twice the face box, scale jitter cuts into them
CACHE_SIDE = 128
SEED = 15


def subject_of(path: Path) -> int:
    """NUAA subject number from its folder (``s0011`` -> 11)."""
    match = re.fullmatch(r"s0*(\d+)", path.parent.name)
    return int(match.group(1)) if match else -1


def parse_subjects(text: str) -> set[int]:
    """``11-16`` or ``11,12,15`` as a set of subject numbers."""
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def cache_crops(rec: Recognizer, paths: list[Path]) -> np.ndarray:
    """The largest face of each image cropped at CACHE_SCALE (images without a face dropped)."""
    from tqdm import tqdm

    crops = []
    for path in tqdm(paths, desc="faces", unit="img", leave=False):
        image = load_image(path)
        faces = rec.detect(image)
        if faces:
            face = max(faces, key=lambda f: f.size)
            crops.append(crop_face(image, face.box, CACHE_SCALE, CACHE_SIDE))
    return np.asarray(crops, np.uint8)


def augment(crop: np.ndarray, rng: np.random.Generator, scale: float, size: int) -> np.ndarray:
    """One training view: scale and shift jitter, flip, colour, blur and JPEG."""
    side = CACHE_SIDE * scale / CACHE_SCALE * rng.uniform(0.85, 1.15)
    cx, cy = CACHE_SIDE / 2 + rng.uniform(-0.06, 0.06, 2) * side
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    out = crop_face(crop, box, 1.0, size).astype(np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    grey = out.mean(axis=2, keepdims=True)
    out = grey + (out - grey) * rng.uniform(0.6, 1.4)  # saturation
    out = (out - 128) * rng.uniform(0.7, 1.3) + 128 + rng.uniform(-30, 30)  # contrast, brightness
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < 0.5:
        quality = int(rng.integers(30, 95))
        _, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return np.ascontiguousarray(out)


def build_net(width: int = 16):
    """A MobileNet-style net: one conv, four depthwise-separable blocks, global pool, 2 logits."""
    import torch
    from torch import nn

    def block(cin: int, cout: int, stride: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
            nn.BatchNorm2d(cin),
            nn.ReLU(inplace=True),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    class LivenessNet(nn.Module):
        """NHWC float in [0, 1]; softmax [live, attack] out when exported."""

        def __init__(self) -> None:
            super().__init__()
            w = width
            self.features = nn.Sequential(
                nn.Conv2d(3, w, 3, 2, 1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
                block(w, 2 * w, 2),
                block(2 * w, 4 * w, 2),
                block(4 * w, 6 * w, 2),
                block(6 * w, 8 * w, 1),
            )
            self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(8 * w, 2))
            self.softmax_out = False

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.permute(0, 3, 1, 2)
            logits = self.head(self.features(x).mean(dim=(2, 3)))
            return torch.softmax(logits, 1) if self.softmax_out else logits

    return LivenessNet()


def batches(
    data: list[tuple[np.ndarray, int]], rng: np.random.Generator, scale: float, size: int, n: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Shuffled, augmented (NHWC float [0, 1], labels) batches of one epoch."""
    order = rng.permutation(len(data))
    for i in range(0, len(order), n):
        picked = [data[j] for j in order[i : i + n]]
        x = np.stack([augment(c, rng, scale, size) for c, _ in picked]).astype(np.float32) / 255
        yield x, np.array([y for _, y in picked], np.int64)


def predict(net, crops: np.ndarray, scale: float, size: int) -> np.ndarray:
    """Attack probabilities of cached crops at the nominal scale (no augmentation)."""
    import torch

    views = [crop_face(c, _centre_box(scale), 1.0, size) for c in crops]
    x = torch.from_numpy(np.asarray(views, np.float32) / 255)
    net.eval()
    with torch.no_grad():
        return torch.softmax(net(x), 1)[:, 1].numpy()


def _centre_box(scale: float) -> tuple[float, float, float, float]:
    side = CACHE_SIDE * scale / CACHE_SCALE
    lo = (CACHE_SIDE - side) / 2
    return (lo, lo, lo + side, lo + side)


def train(args: argparse.Namespace) -> None:
    """Cache crops, train with a subject-disjoint split, report, export ONNX and its spec."""
    import torch
    from tqdm import tqdm

    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(SEED)
    started = time.monotonic()
    data = load_data(args)
    net = build_net(args.width)
    params = sum(p.numel() for p in net.parameters())
    log.warning("net: %d parameters", params)
    train_set = [(c, 0) for c in data["train_real"]] + [(c, 1) for c in data["train_attack"]]
    train_set += [(c, 0) for c in data["extra_real"]]
    counts = np.bincount([y for _, y in train_set], minlength=2)
    weight = torch.tensor(counts.sum() / (2 * counts), dtype=torch.float32)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, 3e-3, total_steps=args.epochs * (len(train_set) // args.batch + 1)
    )
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    for epoch in tqdm(range(args.epochs), desc="epochs", unit="epoch"):
        net.train()
        total = 0.0
        for x, y in batches(train_set, rng, args.crop_scale, args.size, args.batch):
            opt.zero_grad()
            loss = loss_fn(net(torch.from_numpy(x)), torch.from_numpy(y))
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(y)
        log.warning("epoch %d: loss %.4f", epoch + 1, total / len(train_set))
    report = {k: _split_figures(net, data, k, args) for k in ("train", "test")}
    report["wall_s"] = round(time.monotonic() - started, 1)
    report["parameters"] = params
    export(net, args, report)


def _split_figures(net, data: dict, split: str, args: argparse.Namespace) -> dict:
    real = predict(net, data[f"{split}_real"], args.crop_scale, args.size)
    attack = predict(net, data[f"{split}_attack"], args.crop_scale, args.size)
    t = float(np.quantile(real, 0.95))
    figures = {
        "real": len(real),
        "attack": len(attack),
        "threshold_bpcer5": round(t, 4),
        "apcer_at_bpcer5": round(float(np.mean(attack <= t)), 4),
        "bpcer_at_0.5": round(float(np.mean(real >= 0.5)), 4),
        "apcer_at_0.5": round(float(np.mean(attack < 0.5)), 4),
    }
    log.warning("%s subjects: %s", split, figures)
    return figures


def load_data(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Cached crops of the NUAA split and the extra real faces (cache reused when present)."""
    cache = args.cache
    if cache.exists():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    bundle = Bundle.load(models_dir() / "default")
    rec = Recognizer.from_bundle(bundle, RecognizerConfig(backend="onnxruntime"))
    test = parse_subjects(args.test_subjects)
    data = {}
    for kind, folder in (("real", "real"), ("attack", "print_attack")):
        paths = sorted((args.nuaa / folder).rglob("*.jpg"))
        data[f"train_{kind}"] = cache_crops(rec, [p for p in paths if subject_of(p) not in test])
        data[f"test_{kind}"] = cache_crops(rec, [p for p in paths if subject_of(p) in test])
    extra = sorted(args.extra_real.rglob("*.jpg")) if args.extra_real else []
    picked = np.random.default_rng(SEED).permutation(len(extra))[: args.extra_count]
    data["extra_real"] = cache_crops(rec, [extra[i] for i in sorted(picked)])
    np.savez_compressed(cache, **data)
    return data


def export(net: nn.Module, args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Write the ONNX model (softmax output), check it with onnxruntime, write its spec."""
    import onnxruntime as ort
    import torch

    net.eval()
    net.softmax_out = True
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name}.onnx"
    dummy = torch.rand(2, args.size, args.size, 3)
    torch.onnx.export(
        net,
        (dummy,),
        str(path),
        input_names=["image"],
        output_names=["prob"],
        dynamic_axes={"image": {0: "n"}, "prob": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )
    with torch.no_grad():
        want = net(dummy).numpy()
    got = ort.InferenceSession(str(path)).run(None, {"image": dummy.numpy()})[0]
    gap = float(np.abs(got - want).max())
    if gap > 1e-4:
        raise SystemExit(f"ONNX output differs from torch by {gap}")
    spec = {
        "name": args.name,
        "file": path.name,
        "sha256": sha256_file(path),
        "size": args.size,
        "crop_scale": args.crop_scale,
        "mean": 0.0,
        "std": 255.0,
        "score": "attack-probability",
        "threshold": report["test"]["threshold_bpcer5"],
        "training": {
            **report,
            "seed": SEED,
            "epochs": args.epochs,
            "test_subjects": args.test_subjects,
            "onnx_max_abs_gap": gap,
        },
    }
    (args.out / f"{args.name}.json").write_text(json.dumps(spec, indent=1) + "\n")
    log.warning("wrote %s (%d bytes) and its spec", path, path.stat().st_size)


def main() -> None:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nuaa", type=Path, required=True)
    p.add_argument("--extra-real", type=Path, default=None)
    p.add_argument("--extra-count", type=int, default=1500)
    p.add_argument("--test-subjects", default="11-16")
    p.add_argument("--out", type=Path, default=Path("models/weights"))
    p.add_argument("--name", default="liveness-nuaa-v1")
    p.add_argument("--cache", type=Path, default=Path("/tmp/facegate-liveness-crops.npz"))
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--crop-scale", type=float, default=1.2)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    train(p.parse_args())


if __name__ == "__main__":
    main()
