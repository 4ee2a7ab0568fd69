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
