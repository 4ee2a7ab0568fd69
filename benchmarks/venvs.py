"""Side virtual environments for code that must not enter the project venv (peer, ANN indexes).

Each venv lives under the facegate cache (``$FACEGATE_CACHE`` or ``~/.cache/facegate``), is made
with ``python -m venv`` on first use and marked ready by a file that records what was installed;
pip's output goes to a log beside it. Workers run there as subprocesses and talk JSON lines.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from facegate.host.paths import cache_dir

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent  # pip runs here: requirement files are named relative to it

READY_FILE = ".facegate-ready"
PIP_TIMEOUT_S = 1800  # face_recognition_models is a 100 MB sdist; hnswlib compiles C++


@dataclass(frozen=True, slots=True)
class VenvSpec:
    """A named side venv: pip install steps run in order (each a list of pip arguments)."""

    name: str
    steps: tuple[tuple[str, ...], ...]


# face_recognition 1.3.0 pins the dlib sdist (a 10-minute CMake build): install it without
# dependencies and bring dlib as the prebuilt dlib-bin wheel (20.0.1.post1 has a cp311 wheel).
# face_recognition_models imports pkg_resources, which setuptools 81 removed.
PEER = VenvSpec(
    "peer-venv",
    (
        ("setuptools<81", "wheel", "numpy<2.3", "pillow", "Click>=6.0"),
        ("dlib-bin==20.0.1.post1",),
        ("face-recognition-models==0.3.0",),
        ("--no-deps", "face-recognition==1.3.0"),
    ),
)
# facenet-pytorch's MTCNN, the detector's reference: the CPU build of torch 2.13.0 (pip takes it
# from the machine's wheel folder where there is one), the wheel itself pinned by sha256.
MTCNN_REF = VenvSpec(
    "mtcnn-ref-venv",
    (
        ("torch==2.13.0", "numpy<2.5", "pillow", "requests", "tqdm"),
        ("--no-deps", "--require-hashes", "-r", "mtcnn-reference.txt"),  # beside this file
    ),
)
# Approximate nearest-neighbour candidates; hnswlib ships only an sdist (compiled here with g++).
ANN = VenvSpec(
    "ann-venv",
    (("numpy<2.3", "usearch==2.26.6", "faiss-cpu==1.15.1", "psutil"), ("hnswlib==0.8.0",)),
)


def venv_dir(spec: VenvSpec) -> Path:
    """Where ``spec``'s venv lives."""
    return cache_dir() / spec.name


def python_of(spec: VenvSpec) -> Path:
    """The venv's interpreter."""
    return venv_dir(spec) / "bin" / "python"


def _marker(spec: VenvSpec) -> str:
    return json.dumps([list(s) for s in spec.steps])


def is_ready(spec: VenvSpec) -> bool:
    """True when the venv exists and holds exactly what ``spec`` asks for."""
    ready = venv_dir(spec) / READY_FILE
    return ready.is_file() and ready.read_text() == _marker(spec) and python_of(spec).exists()


def _base_python() -> str:
    """The interpreter the project venv was made from (so the side venv has the same Python)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def ensure(spec: VenvSpec, install: bool = True) -> Path | None:
    """The venv's python, creating the venv first if allowed; None if absent or it failed."""
    if is_ready(spec):
        return python_of(spec)
    if not install:
        log.info("%s: not installed and installs are off", spec.name)
        return None
    root = venv_dir(spec)
    logfile = root.parent / f"{spec.name}.pip.log"
    print(f"creating {root} (pip output in {logfile}) ...", file=sys.stderr)
    with logfile.open("w") as out:
        steps = [[_base_python(), "-m", "venv", "--clear", str(root)]]
        pip = [str(python_of(spec)), "-m", "pip", "install", "--disable-pip-version-check"]
        steps += [[*pip, *step] for step in spec.steps]
        for cmd in steps:
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            done = subprocess.run(
                cmd, stdout=out, stderr=subprocess.STDOUT, timeout=PIP_TIMEOUT_S, cwd=HERE
            )
            if done.returncode != 0:
                log.warning("%s: %s failed, see %s", spec.name, cmd[-1], logfile)
                print(f"{spec.name}: install failed, see {logfile}", file=sys.stderr)
                return None
    (root / READY_FILE).write_text(_marker(spec))
    return python_of(spec)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(name, ensure({"peer": PEER, "ann": ANN, "mtcnn-ref": MTCNN_REF}[name]))
