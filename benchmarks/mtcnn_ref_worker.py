"""facenet-pytorch 2.6.0's MTCNN as a JSON-lines worker; runs in the MTCNN reference venv.

The reference the facegate detector is measured against: same cascade, same published weights
(the wheel's own ``pnet.pt``/``rnet.pt``/``onet.pt``), on one torch thread. Requests on stdin, one
JSON object per line; one JSON reply per line on stdout. Images arrive as ``.npy`` files of
HxWx3 uint8 RGB pixels, so both detectors see the very same pixels. Ops: ``detect`` (boxes,
scores, landmarks as float32 values), ``time`` (``reps`` timed calls), ``info``, ``quit``.

facenet-pytorch imports torchvision for ``batched_nms`` alone, and PyPI's torchvision does not
load beside the CPU build of torch this venv uses; ``_torchvision_nms`` provides that one
function with torchvision's documented semantics (boxes by descending score, IoU over
``(x2 - x1) * (y2 - y1)`` areas, suppress IoU > threshold, batches by coordinate offset).
"""

from __future__ import annotations

import json
import os
import sys
import time
import types

import numpy as np
import torch


def _nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    x1, y1, x2, y2 = boxes.unbind(1)
    area = (x2 - x1) * (y2 - y1)
    order = scores.argsort(descending=True)
    keep = []
    while order.numel():
        i, rest = order[0], order[1:]
        keep.append(i)
        w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest])).clamp(min=0)
        h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest])).clamp(min=0)
        inter = w * h
        order = rest[inter / (area[i] + area[rest] - inter) <= threshold]
    return torch.stack(keep) if keep else torch.zeros(0, dtype=torch.long)


def _batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, threshold: float
) -> torch.Tensor:
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64)
    offsets = idxs.to(boxes) * (boxes.max() + 1)
    return _nms(boxes + offsets[:, None], scores, threshold)


def _torchvision_nms() -> None:
    """Register a ``torchvision`` module that holds ``ops.boxes.batched_nms`` only."""
    root = types.ModuleType("torchvision")
    ops, boxes = types.ModuleType("torchvision.ops"), types.ModuleType("torchvision.ops.boxes")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    boxes.batched_nms = _batched_nms  # type: ignore[attr-defined]
    ops.boxes, root.ops, root.transforms = boxes, ops, transforms  # type: ignore[attr-defined]
    transforms.functional = functional  # type: ignore[attr-defined]
    for name, module in (
        ("torchvision", root),
        ("torchvision.ops", ops),
        ("torchvision.ops.boxes", boxes),
        ("torchvision.transforms", transforms),
        ("torchvision.transforms.functional", functional),
    ):
        sys.modules[name] = module


_torchvision_nms()
torch.set_num_threads(1)
from facenet_pytorch import MTCNN  # noqa: E402  (needs the torchvision module above)

_detectors: dict[tuple, MTCNN] = {}


def _detector(req: dict) -> MTCNN:
    key = (float(req["min_face"]), float(req["factor"]), tuple(req["thresholds"]))
    if key not in _detectors:
        _detectors[key] = MTCNN(
            min_face_size=key[0],
            factor=key[1],
            thresholds=list(key[2]),
            keep_all=True,
            post_process=False,
            device="cpu",
        )
    return _detectors[key]


def _detect(req: dict) -> dict:
    image = np.load(req["path"])
    # onednn=False: torch's native convolutions, another float32 summation order of the same
    # nets; the difference between the two is the reference's own float32 spread
    torch.backends.mkldnn.enabled = bool(req.get("onednn", True))
    with torch.no_grad():
        boxes, probs, points = _detector(req).detect(image, landmarks=True)
    if boxes is None:
        return {"boxes": [], "scores": [], "landmarks": []}
    return {
        "boxes": np.asarray(boxes, np.float64).tolist(),
        "scores": np.asarray(probs, np.float64).tolist(),
        "landmarks": np.asarray(points, np.float64).tolist(),
    }


def _time(req: dict) -> dict:
    image, detector = np.load(req["path"]), _detector(req)
    ms = []
    with torch.no_grad():
        for _ in range(int(req.get("reps", 1))):
            t0 = time.perf_counter()
            detector.detect(image, landmarks=True)
            ms.append(1000 * (time.perf_counter() - t0))
    return {"ms": ms}


def handle(req: dict) -> dict:
    """Answer one request."""
    op = req["op"]
    if op == "detect":
        return _detect(req)
    if op == "time":
        return _time(req)
    if op == "info":
        import facenet_pytorch

        return {
            "torch": torch.__version__,
            "facenet_pytorch": facenet_pytorch.__file__,
            "threads": torch.get_num_threads(),
        }
    raise ValueError(f"unknown op {op!r}")


def main() -> None:
    """Serve requests until ``quit`` or end of input."""
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # anything the libraries print goes to stderr
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "quit":
            break
        try:
            reply.write(json.dumps({"ok": True, **handle(req)}) + "\n")
        except Exception as err:  # report to the parent, keep serving
            reply.write(json.dumps({"ok": False, "error": f"{type(err).__name__}: {err}"}) + "\n")


if __name__ == "__main__":
    main()
