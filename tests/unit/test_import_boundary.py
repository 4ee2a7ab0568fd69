"""The device side never loads the offline side: no converters, onnx or TensorFlow at import."""

from __future__ import annotations

import json
import subprocess
import sys

# Imports every facegate module outside facegate.converters (walking the package as installed),
# then prints what of the offline side ended up loaded.
WALK = """
import importlib, json, pkgutil, sys
import facegate

def walk(pkg):
    for m in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + "."):
        if m.name == "facegate.converters" or m.name.endswith(".__main__"):
            continue
        mod = importlib.import_module(m.name)
        walked.append(m.name)
        if m.ispkg:
            walk(mod)

walked = []
walk(facegate)
offline = ("onnx", "tensorflow", "tflite", "tf_keras", "keras")
loaded = sorted(n for n in sys.modules
                if n.split(".")[0] in offline or n.startswith("facegate.converters"))
print(json.dumps({"walked": walked, "loaded": loaded}))
"""


def test_device_modules_do_not_import_the_offline_side() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", WALK], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert {
        "facegate.cli.models",
        "facegate.backends.onnxruntime",
        "facegate.service.daemon",
        "facegate.bundle.install",
    } <= set(result["walked"])
    assert result["loaded"] == []


# Runs one `facegate identify --json` on a photo, then prints the top-level modules it loaded.
IDENTIFY = """
import json, sys
from facegate.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": sorted({n.split(".")[0] for n in sys.modules}),
                  "facegate": sorted(n for n in sys.modules if n.startswith("facegate."))}))
"""
# Nothing on a one-image identify's path needs these: encryption (gallery export), terminal
# tables (--json prints plain JSON), the web/metrics server, MQTT, plotting, HTTP clients, and
# subprocess (finding libc with ctypes.util spawned ldconfig: ~20 ms of a one-image answer).
NOT_ON_THE_FRAME_PATH = (
    "cryptography", "rich", "waitress", "paho", "flask", "werkzeug", "jinja2", "matplotlib",
    "PIL", "requests", "urllib3", "onnx", "tensorflow", "subprocess",
)  # fmt: skip
NOT_FACEGATE = ("facegate.service", "facegate.sinks", "facegate.config", "facegate.converters",
                "facegate.gallery.exchange", "facegate.evaluate")  # fmt: skip


def test_identify_loads_only_what_one_image_needs(bundle_dir, tmp_path) -> None:
    import os

    from tests.data import data

    photo = next(p for p in sorted(data("faces").rglob("*.jpg")))
    env = {**os.environ, "FACEGATE_HOME": str(tmp_path)}
    argv = ["identify", "--json", "--backend", "litert", "--bundle", str(bundle_dir), str(photo)]
    proc = subprocess.run(
        [sys.executable, "-c", IDENTIFY, *argv],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 0
    assert "facegate.vision.detect.mtcnn" in result["facegate"]  # it did identify
    assert set(NOT_ON_THE_FRAME_PATH) & set(result["loaded"]) == set()
    assert "onnxruntime" not in result["loaded"]  # the LiteRT backend runs without it
    assert [m for m in result["facegate"] if m.startswith(NOT_FACEGATE)] == []
