"""The device side never loads the offline side (converters, onnx, TensorFlow) at import, and
the frame path never loads the web stack (Flask and friends: the daemon's HTTP thread only)."""

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
        "facegate.web.app",
    } <= set(result["walked"])
    assert result["loaded"] == []


WEB_STACK = ("flask", "flask_wtf", "wtforms", "werkzeug", "jinja2", "itsdangerous", "markupsafe")
# Everything `facegate run` imports before its HTTP thread builds the page: the CLI command, the
# daemon with its pipeline, capture, sinks, the HTTP server and the recent-events ring.
FRAME_PATH = """
import json, sys
import facegate.cli.run, facegate.service.daemon, facegate.service.pipeline
import facegate.service.health, facegate.service.recent, facegate.sinks.mqtt
print(json.dumps(sorted(sys.modules)))
"""


def test_the_frame_path_does_not_import_the_web_stack() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", FRAME_PATH], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout)
    assert "facegate.service.daemon" in loaded  # the list is real
    web = [n for n in loaded if n.split(".")[0] in WEB_STACK or n.startswith("facegate.web")]
    assert web == []
