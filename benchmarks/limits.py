"""Section 6: the limit — MACs per frame against this CPU's attainable FLOP rate on one thread.

MACs per model come from the manifest (counted at ``macs_shape``). For a 640x480 frame: P-Net's
MACs per input pixel (manifest MACs / its input pixels) times the pixels of every pyramid level
at min_face 40 (facegate.vision.detect.mtcnn.pyramid_scales, the level sizes the cascade runs),
plus R-Net and
O-Net per candidate they actually saw on the benchmark frame (counted by wrapping the backends),
plus the embedder per face. Attainable GFLOP/s: a float32 matmul in numpy as this process has it
and in a subprocess with every BLAS limited to one thread, and a big Conv in onnxruntime.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from benchmarks.common import load_bundle, median_ms, recognizer
from benchmarks.frames import BenchFrame
from facegate.vision.detect.mtcnn import pyramid_scales

MATMUL_N = 1024  # 2 GFLOP per product: long enough to time, small enough to repeat
ONE_THREAD = {k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
CONV = (64, 64, 112, 112, 3)  # in channels, out channels, height, width, kernel: 462M MACs


def matmul_gflops(reps: int) -> float:
    """float32 (n x n) @ (n x n) GFLOP/s in this process, median of ``reps``."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((MATMUL_N, MATMUL_N), dtype=np.float32)
    b = rng.standard_normal((MATMUL_N, MATMUL_N), dtype=np.float32)
    ms = median_ms(lambda: a @ b, reps, warmup=2)
    return 2 * MATMUL_N**3 / (ms / 1000) / 1e9


def matmul_gflops_one_thread(reps: int) -> float | None:
    """The same in a subprocess whose BLAS is limited to one thread by environment variables."""
    code = f"from benchmarks.limits import matmul_gflops; print(matmul_gflops({reps}))"
    env = {**os.environ, **ONE_THREAD}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    return float(done.stdout.strip()) if done.returncode == 0 else None


def conv_gflops(reps: int) -> float | None:
    """One big 3x3 Conv in onnxruntime (one thread, no spinning); None without ``onnx``."""
    try:
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    import onnxruntime as ort

    cin, cout, h, w, k = CONV
    weight = np.random.default_rng(0).standard_normal((cout, cin, k, k)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, h, w])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((1, cin, h, w)).astype(np.float32)
    ms = median_ms(lambda: sess.run(None, {"x": x}), reps, warmup=2)
    return 2 * cin * cout * h * w * k * k / (ms / 1000) / 1e9


class Counting:
    """Wraps a backend and counts the rows and pixels it was given."""

    def __init__(self, inner: object) -> None:
        self.inner, self.rows, self.pixels = inner, 0, 0

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Count, then run."""
        self.rows += batch.shape[0]
        self.pixels += batch.shape[0] * batch.shape[1] * batch.shape[2]
        return self.inner.run(batch)


def model_table() -> dict[str, dict]:
    """Params and MACs per role (fp32 ONNX entry), MACs per unit of work."""
    bundle = load_bundle()
    out = {}
    for e in bundle.manifest["models"]:
        if e["format"] != "onnx" or e["precision"] != "fp32":
            continue
        shape = e["macs_shape"]
        unit = shape[1] * shape[2] if e["role"] == "pnet" else shape[0]
        out[e["role"]] = {
            "params": e["params"],
            "macs": e["macs"],
            "macs_shape": shape,
            "macs_per_unit": e["macs"] / unit,
            "unit": "input pixel" if e["role"] == "pnet" else "crop",
        }
    return out


def frame_macs(frame: BenchFrame, models: dict[str, dict]) -> dict:
    """MACs of one frame: pyramid estimate and what the cascade actually ran."""
    h, w = frame.image.shape[:2]
    scales = pyramid_scales(h, w, 40.0, 0.709)
    pyramid_px = sum(int(w * s + 1) * int(h * s + 1) for s in scales)
    rec = recognizer("onnxruntime", "fp32")
    det = rec.detector
    det.pnet, det.rnet, det.onet = Counting(det.pnet), Counting(det.rnet), Counting(det.onet)
    faces = rec.detect(frame.image)
    counts = {
        "pnet_pixels": det.pnet.pixels,
        "rnet_crops": det.rnet.rows,
        "onet_crops": det.onet.rows,
        "faces": len(faces),
    }
    macs = {
        "pnet": models["pnet"]["macs_per_unit"] * pyramid_px,
        "rnet": models["rnet"]["macs_per_unit"] * counts["rnet_crops"],
        "onet": models["onet"]["macs_per_unit"] * counts["onet_crops"],
        "embedder": models["embedder"]["macs_per_unit"] * len(faces),
    }
    return {
        "frame": frame.name,
        "pyramid_levels": len(scales),
        "pyramid_pixels": pyramid_px,
        "counts": counts,
        "macs": macs,
        "total_macs": sum(macs.values()),
    }


def model_speed(models: dict[str, dict], reps: int) -> list[dict]:
    """Each fp32 model alone at its ``macs_shape`` on both backends: ms and achieved GFLOP/s."""
    bundle = load_bundle()
    rows = []
    for backend, fmt in (("onnxruntime", "onnx"), ("litert", "tflite")):
        for role, info in models.items():
            net = bundle.open(bundle.entry(role, fmt, "fp32"), 1)
            x = np.random.default_rng(0).uniform(-1, 1, info["macs_shape"]).astype(np.float32)
            ms = median_ms(lambda n=net, x=x: n.run(x), reps, warmup=3)
            gflops = 2 * info["macs"] / (ms / 1000) / 1e9
            rows.append({"backend": backend, "role": role, "ms": ms, "gflops": gflops})
    return rows


def measure(frames: list[BenchFrame], reps: int) -> dict[str, dict[str, float]]:
    """Median detect+align+embed+match ms per frame (fp32, both backends), if section 1 did not."""
    from benchmarks.stages import STAGES, chain

    out: dict[str, dict[str, float]] = {}
    for backend in ("onnxruntime", "litert"):
        rec = recognizer(backend, "fp32")
        for frame in frames:
            chain(rec, frame)
            ms = [sum(chain(rec, frame)[0][s] for s in STAGES[1:]) for _ in range(reps)]
            out.setdefault(frame.name, {})[f"{backend} fp32"] = float(np.median(ms))
    return out


def run(frames: list[BenchFrame], quick: bool, measured: dict[str, dict[str, float]]) -> dict:
    """MACs per frame, attainable GFLOP/s, and the implied lower bound next to measured times."""
    reps = 5 if quick else 30
    peaks = {
        "numpy_matmul_as_is": matmul_gflops(reps),
        "numpy_matmul_1_thread": matmul_gflops_one_thread(reps),
        "onnxruntime_conv": conv_gflops(reps),
    }
    best = max(v for v in peaks.values() if v)
    models = model_table()
    measured = measured or measure(frames, reps)
    rows = []
    for frame in frames:
        fm = frame_macs(frame, models)
        fm["lower_bound_ms"] = 2 * fm["total_macs"] / (best * 1e9) * 1000
        fm["measured_ms"] = measured.get(frame.name, {})
        rows.append(fm)
    return {
        "gflops": peaks,
        "attainable_gflops": best,
        "models": models,
        "frames": rows,
        "model_speed": model_speed(models, reps),
        "env_one_thread": ONE_THREAD,
        "env_as_is": {k: os.environ.get(k) for k in ONE_THREAD},
    }


if __name__ == "__main__":
    print(json.dumps({"matmul": matmul_gflops(5), "conv": conv_gflops(5)}))
