"""MTCNN face detector: P-Net -> R-Net -> O-Net cascade in numpy + OpenCV on any ``Backend``.

The cascade reproduces facenet-pytorch 2.6's ``detect_face`` step by step, so that on the same
pixels it finds the same faces with the same boxes and landmarks (a test holds it to that): 1-based
MATLAB box conventions; the pyramid and the R/O-Net crops resampled with torch's "area" mode
(an average over each output pixel's window of whole input pixels, computed here from one
integral image, float32 like torch); torchvision-style NMS (areas without the +1) after P-Net and
R-Net, and 'Min' NMS with the +1 after O-Net. One step differs by default: a box that leaves the
image is cut out with black around it, as in Zhang et al.'s original code, where facenet-pytorch
stretches the part inside (``MTCNNConfig.crop = "clip"`` does that too, and then every face
matches the reference). The model files take
NHWC float32 RGB in normal orientation (the transposed training layout is in the graph).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from facegate.backends.base import Backend
from facegate.errors import ConfigError, ImageError
from facegate.types import Face

log = logging.getLogger(__name__)

PadMode = Literal["auto", "always", "never"]
BorderMode = Literal["constant", "replicate"]
CropMode = Literal["clip", "zero"]

PNET_STRIDE = 2  # P-Net's output stride (one 2x2 max-pool), from the network definition
PNET_CELL = 12  # P-Net's receptive field in pixels, from the network definition
RNET_SIZE = 24  # R-Net input side, from the network definition
ONET_SIZE = 48  # O-Net input side, from the network definition
INPUT_MEAN = 127.5  # (x - 127.5) / 128: the normalisation the Caffe nets were trained with
INPUT_SCALE = 1.0 / 128.0
NMS_MATRIX_MAX = 1000  # NMS via the pairwise matrix (4-6x faster on real P-Net levels) up to
# this many boxes, so each n x n float32 temporary stays <= 4 MB; box by box above it
EXACT_MAX_PIXELS = 1 << 24  # larger images are first reduced by a whole factor (box mean): the
# integral image costs 12 bytes a pixel, 200 MB at this size (a 14 MP photo is done as it is)
CROP_BLOCK = 8  # batches whose crops are cut in one go: 128 R-Net crops (0.9 MB as float32)
_BORDERS = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE}


@dataclass(frozen=True, slots=True)
class MTCNNConfig:
    """Thresholds and options of the MTCNN cascade."""

    min_face_size: float = 40.0  # pixels; facenet-pytorch's 20 costs 2.2x on 640x480 frames
    scale_factor: float = 0.709  # pyramid step, ~1/sqrt(2): all reference implementations
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)  # P/R/O-Net face prob: references
    nms_pnet_scale: float = 0.5  # IoU within one pyramid level: detect_face.m/.py, facenet-pytorch
    nms_pnet_all: float = 0.7  # IoU across pyramid levels: same references
    nms_rnet: float = 0.7  # IoU after R-Net: same references
    nms_onet: float = 0.7  # overlap / smaller area ('Min') after O-Net: same references
    pad: float = 0.3  # border added around the image, as a fraction of its longer side (brief)
    # Measured on 322 tight 150 px gray crops and 367 edge-cut frames made from shared/faces:
    # padding finds faces that fill or leave the frame (crops 282 -> 314 found) but never improves
    # the landmarks of a face found without it, and always-padding costs 1.6-2x. So "auto" pads
    # only to retry, for big faces, when the plain pass finds nothing: 314 found, plain speed.
    # (Measured with cv2 resampling; with the exact one, bbt's 40 crops: 38 plain, 40 auto.)
    pad_mode: PadMode = "auto"
    border: BorderMode = "constant"  # black, as the crops: edge-cut frames padded by replicating
    # the edge lose faces (81 vs 109 of 117 cut by 30%), tight crops gain nothing from it
    retry_face: float = 0.5  # auto's padded retry looks only for faces >= this x the short side:
    # a 640x480 frame with no face takes 7.7 ms instead of 6.1 (never) or 23.5 (full retry)
    # auto retries only where it can help: the plain pass's O-Net confirmed nothing at all, or
    # confirmed (below min_score) a region at least half the retry's size that reaches the edge.
    # Measured on the Hamilton clip's first 80 frames, 11 street frames, the face-api.js clip,
    # every shared photo, 131 tight grey crops and 131 edge-cut frames made from them: every one
    # of the 48 faces the retry finds is still found, and 22 of Hamilton's 41 retries are skipped
    # (each had only small background hits, e.g. a hand or a poster). False: always retry.
    retry_gate: bool = True
    min_score: float = 0.9  # final O-Net score (prototype); drops 8 weak hits on shared/faces
    # Largest R-Net batch; O-Net batches carry as many pixels (4 crops). Measured per crop on
    # LiteRT, one thread, batch sizes interleaved: R-Net 0.130 ms at 1, 0.081 at 8, 0.079 at 16,
    # 0.094 at 64; O-Net 0.58 ms at 1, 0.56 at 2, 0.58 at 4, 0.68 at 16 (a batch's activations
    # leave the cache). ONNX Runtime: R-Net 0.14-0.17 ms at 8-16, 0.30 at 64; O-Net 1.4-1.5 ms
    # at 1-8, 2.2 at 64. The runtimes also keep the arena of the largest batch they ran.
    chunk: int = 16
    # R/O-Net crops of boxes that leave the image: "zero" pads them black (Zhang et al.'s and
    # Sandberg's code), "clip" stretches the part inside to the square (facenet-pytorch). On every
    # labelled photo of shared/faces clip took rank-1 from 100% to 92.4% (bbt's tight crops).
    crop: CropMode = "zero"

    def __post_init__(self) -> None:
        if self.min_face_size < PNET_CELL:
            raise ConfigError(f"min_face_size must be >= {PNET_CELL}, got {self.min_face_size}")
        if not 0.1 <= self.scale_factor < 1.0:
            raise ConfigError(f"scale_factor must be in [0.1, 1), got {self.scale_factor}")
        if self.pad_mode not in ("auto", "always", "never"):
            raise ConfigError(f"pad_mode must be auto, always or never, got {self.pad_mode!r}")
        if self.crop not in ("zero", "clip"):
            raise ConfigError(f"crop must be zero or clip, got {self.crop!r}")
        if self.border not in _BORDERS:
            raise ConfigError(f"border must be constant or replicate, got {self.border!r}")
        if self.pad < 0 or self.chunk < 1 or not 0 <= self.retry_face <= 1:
            raise ConfigError("need pad >= 0, chunk >= 1 and 0 <= retry_face <= 1")


@dataclass(frozen=True, slots=True)
class _Hits:
    """Candidate boxes (n, 5: x1, y1, x2, y2, score) and their landmarks (n, 5, 2)."""

    boxes: np.ndarray
    points: np.ndarray


def pyramid_scales(height: int, width: int, min_face: float, factor: float) -> list[float]:
    """Scales at which P-Net's 12 px window spans faces from ``min_face`` up to the short side."""
    scale = PNET_CELL / min_face
    side = min(height, width) * scale
    scales = []
    while side >= PNET_CELL:
        scales.append(scale)
        scale *= factor
        side *= factor
    return scales


def nms(boxes: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Greedy NMS on (n, >=5) boxes by score; returns kept indices, best first.

    ``union``: IoU over ``(x2 - x1) * (y2 - y1)`` areas, ties kept in input order (torchvision's
    ``nms``, which facenet-pytorch uses after P-Net and R-Net). ``min``: overlap over the smaller
    of the inclusive ``(x2 - x1 + 1) * (y2 - y1 + 1)`` areas, boxes taken in the order of
    ``np.argsort(scores)`` reversed (the reference's own NMS after O-Net).
    """
    if mode == "min":
        order = np.argsort(boxes[:, 4])[::-1]
    else:
        order = np.argsort(-boxes[:, 4], kind="stable")
    if len(order) > NMS_MATRIX_MAX:
        return _nms_greedy(boxes, order, threshold, mode)
    suppress = _overlap(boxes[order], boxes[order], mode) > threshold
    keep = np.ones(len(order), dtype=bool)
    for i in range(len(order)):
        if keep[i]:
            keep[i + 1 :] &= ~suppress[i, i + 1 :]
    return order[keep]


def _overlap(a: np.ndarray, b: np.ndarray, mode: str) -> np.ndarray:
    """Pairwise overlap of (n, 4+) and (m, 4+) boxes: IoU ('union') or over the smaller ('min')."""
    one = 1 if mode == "min" else 0  # the reference's O-Net NMS counts inclusive pixels
    area_a = (a[:, 2] - a[:, 0] + one) * (a[:, 3] - a[:, 1] + one)
    area_b = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + one
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + one
    inter = np.maximum(w, 0) * np.maximum(h, 0)
    if mode == "min":
        return inter / np.minimum(area_a[:, None], area_b[None, :])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _nms_greedy(boxes: np.ndarray, order: np.ndarray, threshold: float, mode: str) -> np.ndarray:
    """NMS one kept box at a time: O(n) memory for very many candidates."""
    keep = []
    while order.size:
        keep.append(order[0])
        rest = order[1:]
        order = rest[_overlap(boxes[order[:1]], boxes[rest], mode)[0] <= threshold]
    return np.asarray(keep, dtype=np.intp)


def _normalise(pixels: np.ndarray) -> np.ndarray:
    """(x - 127.5) / 128 as float32; a float32 array is normalised in place and returned."""
    out = pixels if pixels.dtype == np.float32 else pixels.astype(np.float32)
    out -= INPUT_MEAN
    out *= INPUT_SCALE
    return out


def _windows(n_in: np.ndarray | int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of each output pixel's input window: torch's adaptive pooling.

    ``n_in`` may be an array (one length per crop): the result then has one row per crop.
    """
    i = np.arange(n_out)
    n = np.asarray(n_in)[..., None]
    return (i * n) // n_out, -((-(i + 1) * n) // n_out)


def _clamp(index: np.ndarray, top: int) -> np.ndarray:
    """``index`` limited to [0, top] in place (np.clip costs more than the work here)."""
    np.maximum(index, 0, out=index)
    return np.minimum(index, top, out=index)


class _AreaSampler:
    """Area resampling of one uint8 image, bit-for-bit torch's ``interpolate(mode="area")``.

    Each output pixel is the mean of a window of whole input pixels; window sums come from one
    int32 integral image (wrapping arithmetic keeps every window sum exact), divided in float32 by
    the window's height and then its width, as torch does.

    ``padded(p)`` is the same image inside a black border of ``p`` pixels, without copying it:
    the padded image's integral at (r, c) is the image's at (r - p, c - p), clipped to its edges,
    because the border adds nothing to any sum.
    """

    def __init__(self, image: np.ndarray | None, pad: int = 0) -> None:
        if image is not None:
            self.sat = cv2.integral(image, sdepth=cv2.CV_32S)  # (h + 1, w + 1, 3)
        self.pad = pad
        self.inner_height, self.inner_width = self.sat.shape[0] - 1, self.sat.shape[1] - 1
        self.height, self.width = self.inner_height + 2 * pad, self.inner_width + 2 * pad

    def padded(self, pad: int) -> _AreaSampler:
        """This image inside a black border of ``pad`` pixels (sharing the integral image)."""
        out = _AreaSampler.__new__(_AreaSampler)
        out.sat = self.sat
        _AreaSampler.__init__(out, None, pad)
        return out

    def _rows(self, index: np.ndarray) -> np.ndarray:
        """Integral-image rows of padded-image row boundaries."""
        return _clamp(index - self.pad, self.inner_height)

    def _cols(self, index: np.ndarray) -> np.ndarray:
        """Integral-image columns of padded-image column boundaries."""
        return _clamp(index - self.pad, self.inner_width)

    @staticmethod
    def _divide(total: np.ndarray, kh: np.ndarray, kw: np.ndarray) -> np.ndarray:
        """Window sums to means: float32, by the height first and then the width (as torch)."""
        out = total.astype(np.float32)
        out /= kh.astype(np.float32)  # in place: one buffer per level, not three
        out /= kw.astype(np.float32)
        return out

    def level(self, height: int, width: int) -> np.ndarray:
        """The whole image at ``height`` x ``width`` (float32 HxWx3): rows, then columns."""
        r0, r1 = _windows(self.height, height)
        c0, c1 = _windows(self.width, width)
        kh, kw = (r1 - r0)[:, None, None], (c1 - c0)[None, :, None]
        r0, r1, c0, c1 = self._rows(r0), self._rows(r1), self._cols(c0), self._cols(c1)
        with np.errstate(over="ignore"):  # int32 sums wrap; their differences stay exact
            rows = np.take(self.sat, r1, axis=0)
            rows -= np.take(self.sat, r0, axis=0)
            flat = rows.reshape(height, -1)  # column c, channel k at 3 * c + k: fast takes
            channel = np.arange(3)
            total = np.take(flat, (3 * c1[:, None] + channel).ravel(), axis=1)
            total -= np.take(flat, (3 * c0[:, None] + channel).ravel(), axis=1)
        total = total.reshape(height, width, 3)
        return self._divide(total, kh, kw)

    def crops(self, boxes: np.ndarray, size: int, clip: bool = True) -> np.ndarray:
        """Each (1-based, inclusive) box at size x size: (n, s, s, 3).

        ``clip``: the part of the box inside the image, stretched to the square (facenet-pytorch);
        otherwise the whole box with black outside the image (Zhang et al.'s and Sandberg's code).
        """
        ints = np.trunc(boxes[:, :4]).astype(np.int64)
        x1, y1, x2, y2 = ints[:, 0], ints[:, 1], ints[:, 2], ints[:, 3]
        if clip:
            x1, y1 = np.maximum(x1, 1), np.maximum(y1, 1)
            x2, y2 = np.minimum(x2, self.width), np.minimum(y2, self.height)
        empty = (x2 < x1) | (y2 < y1)
        rows, cols = np.where(empty, 1, y2 - y1 + 1), np.where(empty, 1, x2 - x1 + 1)
        r0, r1 = _windows(rows, size)
        c0, c1 = _windows(cols, size)
        top, left = np.where(empty, 0, y1 - 1)[:, None], np.where(empty, 0, x1 - 1)[:, None]
        r0, r1, c0, c1 = r0 + top, r1 + top, c0 + left, c1 + left
        kh, kw = (r1 - r0)[:, :, None, None], (c1 - c0)[:, None, :, None]
        # Windows are summed over their part inside the image (zero outside), divided by their
        # whole size: the mean of the black-padded box.
        r0, r1, c0, c1 = self._rows(r0), self._rows(r1), self._cols(c0), self._cols(c1)
        stride = self.inner_width + 1  # flat index r * stride + c: int32 is enough (<= 16 MP)
        r0, r1 = ((r * stride).astype(np.int32)[:, :, None] for r in (r0, r1))
        c0, c1 = (c.astype(np.int32)[:, None, :] for c in (c0, c1))
        pixels = self.sat.reshape(-1, 3)
        with np.errstate(over="ignore"):
            total = np.take(pixels, r1 + c1, axis=0)
            total -= np.take(pixels, r0 + c1, axis=0)
            total -= np.take(pixels, r1 + c0, axis=0)
            total += np.take(pixels, r0 + c0, axis=0)
        out = self._divide(total, kh, kw)
        out[empty] = 0
        return out


def _reduction(height: int, width: int) -> int:
    """Whole factor that brings an image within EXACT_MAX_PIXELS (1 for most images)."""
    return max(1, math.ceil(math.sqrt(height * width / EXACT_MAX_PIXELS)))


def _generate(prob: np.ndarray, reg: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """P-Net map cells above ``threshold`` as (n, 9) boxes: x1, y1, x2, y2, score, 4 offsets."""
    ys, xs = np.nonzero(prob >= threshold)
    cells = np.stack([xs, ys], axis=1).astype(np.float32)
    q1 = np.floor((PNET_STRIDE * cells + 1) / scale)
    q2 = np.floor((PNET_STRIDE * cells + PNET_CELL) / scale)
    return np.concatenate([q1, q2, prob[ys, xs, None], reg[ys, xs]], axis=1)


def _regress(boxes: np.ndarray, reg: np.ndarray, extent: float) -> np.ndarray:
    """Apply offsets (fractions of the box side + ``extent``) to x1, y1, x2, y2."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + extent
    h = boxes[:, 3] - boxes[:, 1] + extent
    out[:, :4] += reg[:, :4] * np.stack([w, h, w, h], axis=1)
    return out


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (``rerec``)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5  # the reference's rounding order
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2:4] = out[:, 0:2] + side[:, None]
    return out


def _retry_can_help(boxes: np.ndarray, shape: tuple[int, ...], big: float) -> bool:
    """Whether the padded retry may find a face the plain pass missed (``MTCNNConfig.retry_gate``).

    ``boxes``: the plain pass's O-Net hits (all under ``min_score``). The retry looks for a face
    of at least ``big`` pixels that fills or leaves the image: worth it when O-Net confirmed
    nothing at all, or confirmed a region of at least half that size reaching the image's edge
    (a face cut by the border scores low in the plain pass). In every measured case where O-Net's
    only hits were smaller or inside the image, the retry found nothing (see ``retry_gate``).
    """
    if not len(boxes):
        return True
    height, width = shape[:2]
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    at_edge = (
        (boxes[:, 0] <= 1) | (boxes[:, 1] <= 1) | (boxes[:, 2] >= width) | (boxes[:, 3] >= height)
    )
    return bool(np.any((side >= 0.5 * big) & at_edge))


def _batch_sizes(n: int, chunk: int) -> list[int]:
    """Split ``n`` into full chunks, then the rest in powers of two (16 + 8 + 2 for 26).

    So a runtime sees at most log2(chunk) + 1 batch shapes, each of which LiteRT plans once and
    keeps (resizing one interpreter re-plans XNNPACK: 0.05-0.1 ms a call), and every batch is
    near the per-crop optimum measured for ``MTCNNConfig.chunk``.
    """
    sizes = [chunk] * (n // chunk)
    rest = n % chunk
    return sizes + [1 << b for b in reversed(range(rest.bit_length())) if rest >> b & 1]


def _run_chunked(
    backend: Backend, sampler: _AreaSampler, boxes: np.ndarray, size: int, clip: bool, chunk: int
) -> list[np.ndarray]:
    """Cut, normalise and run the crops of ``boxes`` in batches of ``_batch_sizes``.

    Crops are cut ``CROP_BLOCK`` batches at a time (numpy's cost is mostly per call), so memory
    stays bounded however many candidates P-Net left.
    """
    parts: list[list[np.ndarray]] = []
    sizes = _batch_sizes(len(boxes), chunk)
    start = 0
    for first in range(0, len(sizes), CROP_BLOCK):
        block = sizes[first : first + CROP_BLOCK]
        crops = _normalise(sampler.crops(boxes[start : start + sum(block)], size, clip))
        at = 0
        for n in block:
            parts.append(backend.run(crops[at : at + n]))
            at += n
        start += at
    return [np.concatenate(outs) for outs in zip(*parts, strict=True)]


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Return a contiguous HxWx3 uint8 view of a gray, RGB or RGBA uint8 image."""
    if image.dtype != np.uint8 or image.size == 0:
        raise ImageError(f"expected a non-empty uint8 image, got {image.dtype} {image.shape}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    return np.ascontiguousarray(image)


class MTCNN:
    """Multi-task cascaded face detector: boxes, scores and five landmarks."""

    def __init__(
        self, pnet: Backend, rnet: Backend, onet: Backend, config: MTCNNConfig = MTCNNConfig()
    ) -> None:
        self.pnet, self.rnet, self.onet = pnet, rnet, onet
        self.config = config

    def detect(self, image: np.ndarray) -> list[Face]:
        """Detect faces in an HxWx3 uint8 RGB image, best score first."""
        image = as_rgb(image)
        cfg = self.config
        if cfg.pad_mode == "always":
            return self._faces(self._padded(image, cfg.min_face_size))
        exact = _reduction(*image.shape[:2]) == 1
        sampler = _AreaSampler(image) if exact else None  # shared with the retry
        hits = self._cascade(image, cfg.min_face_size, sampler)
        if cfg.pad_mode == "auto" and not np.any(hits.boxes[:, 4] >= cfg.min_score):
            big = max(cfg.min_face_size, cfg.retry_face * min(image.shape[:2]))
            if not cfg.retry_gate or _retry_can_help(hits.boxes, image.shape, big):
                log.debug("no face in a %s image: looking for one >= %.0f px", image.shape, big)
                hits = self._padded(image, big, sampler)
        return self._faces(hits)

    def refine(self, image: np.ndarray, boxes: Sequence[tuple[float, ...]]) -> list[Face]:
        """O-Net alone on ``boxes`` (faces found in the previous frame): each is confirmed and
        re-fitted (box, score, landmarks) without the pyramid, or dropped; best score first.

        O-Net regresses a box that is off by a fraction of its size back onto the face, so a
        face tracked from one frame to the next needs neither P-Net nor R-Net to be found again.
        """
        image = as_rgb(image)
        if not len(boxes):
            return []
        cand = np.zeros((len(boxes), 5), np.float32)
        cand[:, :4] = np.asarray(boxes, np.float32)[:, :4]
        hits = self._stage_o(_AreaSampler(image), _square(cand))
        return self._faces(hits)

    def _padded(
        self, image: np.ndarray, min_face: float, sampler: _AreaSampler | None = None
    ) -> _Hits:
        """Run the cascade on ``image`` with a border around it; map results back.

        A black border is not drawn: the image's own integral image serves the padded one
        (the same sums, so the same faces; a 640x360 frame's retry took 9.8 ms with the border
        drawn and integrated, most of it outside the nets).
        """
        h, w = image.shape[:2]
        p = round(self.config.pad * max(h, w))
        if self.config.border == "constant" and _reduction(h + 2 * p, w + 2 * p) == 1:
            hits = self._cascade(image, min_face, (sampler or _AreaSampler(image)).padded(p))
        else:
            border = _BORDERS[self.config.border]
            big = cv2.copyMakeBorder(image, p, p, p, p, border, value=(0, 0, 0))
            hits = self._cascade(big, min_face)
        hits.boxes[:, :4] -= p
        hits.points[:] -= p
        return hits

    def _faces(self, hits: _Hits) -> list[Face]:
        """Hits scoring at least ``min_score`` as Face records, best first."""
        keep = hits.boxes[:, 4] >= self.config.min_score
        boxes, points = hits.boxes[keep], hits.points[keep]
        order = np.argsort(-boxes[:, 4], kind="stable")
        faces = []
        for i in order:
            x1, y1, x2, y2, score = (float(v) for v in boxes[i, :5])
            faces.append(Face((x1, y1, x2, y2), score, points[i].astype(np.float32)))
        return faces

    def _cascade(
        self, image: np.ndarray, min_face: float, sampler: _AreaSampler | None = None
    ) -> _Hits:
        """P-, R- and O-Net on ``image`` (or on ``sampler``, the image prepared for resampling)."""
        k = 1 if sampler is not None else _reduction(*image.shape[:2])
        if k > 1:  # a very large photo: detect on its k x k box means, report full-size pixels
            h, w = image.shape[0] // k, image.shape[1] // k
            small = cv2.resize(image[: h * k, : w * k], (w, h), interpolation=cv2.INTER_AREA)
            hits = self._cascade(small, max(min_face / k, PNET_CELL))
            hits.boxes[:, :4] *= k
            hits.points[:] *= k
            return hits
        sampler = sampler or _AreaSampler(image)
        boxes = self._stage_p(sampler, min_face)
        if len(boxes):
            boxes = self._stage_r(sampler, boxes)
        if not len(boxes):
            return _Hits(np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32))
        return self._stage_o(sampler, boxes)

    def _stage_p(self, sampler: _AreaSampler, min_face: float) -> np.ndarray:
        """P-Net over the pyramid -> NMS per level and across -> regressed squares (n, 5)."""
        cfg = self.config
        h, w = sampler.height, sampler.width
        found = []
        for scale in pyramid_scales(h, w, min_face, cfg.scale_factor):
            level = sampler.level(int(h * scale + 1), int(w * scale + 1))
            reg, prob = self.pnet.run(_normalise(level)[None])
            cand = _generate(prob[0, :, :, 1], reg[0], scale, cfg.thresholds[0])
            if len(cand):
                found.append(cand[nms(cand, cfg.nms_pnet_scale)])
        if not found:
            return np.zeros((0, 5), np.float32)
        boxes = np.concatenate(found)
        boxes = boxes[nms(boxes, cfg.nms_pnet_all)]
        boxes = _regress(boxes[:, :5], boxes[:, 5:9], extent=0.0)
        return _square(boxes)

    def _stage_r(self, sampler: _AreaSampler, boxes: np.ndarray) -> np.ndarray:
        """R-Net on 24x24 crops -> threshold -> NMS -> regressed squares."""
        cfg = self.config
        clip = cfg.crop == "clip"
        reg, prob = _run_chunked(self.rnet, sampler, boxes, RNET_SIZE, clip, cfg.chunk)
        keep = prob[:, 1] > cfg.thresholds[1]
        boxes = np.concatenate([boxes[keep, :4], prob[keep, 1:2]], axis=1)
        pick = nms(boxes, cfg.nms_rnet)
        return _square(_regress(boxes[pick], reg[keep][pick], extent=1.0))

    def _stage_o(self, sampler: _AreaSampler, boxes: np.ndarray) -> _Hits:
        """O-Net on 48x48 crops -> threshold -> landmarks -> regression -> NMS 'min'."""
        cfg = self.config
        clip = cfg.crop == "clip"
        chunk = max(1, cfg.chunk * RNET_SIZE**2 // ONET_SIZE**2)
        reg, marks, prob = _run_chunked(self.onet, sampler, boxes, ONET_SIZE, clip, chunk)
        keep = prob[:, 1] > cfg.thresholds[2]
        boxes = np.concatenate([boxes[keep, :4], prob[keep, 1:2]], axis=1)
        marks = marks[keep]
        w = boxes[:, 2:3] - boxes[:, 0:1] + 1
        h = boxes[:, 3:4] - boxes[:, 1:2] + 1
        xs = w * marks[:, :5] + boxes[:, 0:1] - 1
        ys = h * marks[:, 5:] + boxes[:, 1:2] - 1
        boxes = _regress(boxes, reg[keep], extent=1.0)
        pick = nms(boxes, cfg.nms_onet, mode="min")
        return _Hits(boxes[pick], np.stack([xs, ys], axis=2)[pick])
