"""Faces are biometric data: no embedding, crop or image ever reaches a log line or an event.

Every command that touches faces runs at maximum verbosity (``-vv``) on real photos and the
Hamilton clip; everything it prints is searched for the shapes biometric data takes in text.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PEOPLE = ("lin_manuel_miranda", "obama")
SECRET = "privacy test passphrase"

_FLOAT = r"[-+]?(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?"
# ten or more floats in a row, separated by commas and/or white space: a printed vector
FLOAT_RUN = re.compile(rf"{_FLOAT}(?:[\s,]+{_FLOAT}){{9,}}")
BASE64_BLOB = re.compile(r"[A-Za-z0-9+/]{101,}={0,2}")  # longer than 100 characters
IMAGE_MAGIC = (b"\x89PNG", b"IHDR", b"IDAT", b"\xff\xd8\xff", b"JFIF", b"Exif\0")
IMAGE_ESCAPED = ("\\x89PNG", "\\xff\\xd8", "x89PNG", "ffd8ff")
FORBIDDEN_KEYS = ("embedding", "vector", "crop", "pixels", "landmarks", "image_data")


def facegate(home: Path, *args: str, timeout: float = 300) -> bytes:
    """Run ``facegate -vv ARGS``; return everything it printed (stdout and stderr) as bytes."""
    env = {**os.environ, "FACEGATE_HOME": str(home), "FG_PRIVACY_PASS": SECRET}
    proc = subprocess.run(
        [sys.executable, "-m", "facegate.cli", "-vv", *args],
        capture_output=True,
        env=env,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output.decode(errors="replace")[-3000:]
    return output


@pytest.fixture()
def state(home: Path, bundle_dir: Path) -> Path:
    """A state dir whose default bundle is the built one."""
    (home / "models").mkdir(parents=True)
    (home / "models" / "default").symlink_to(bundle_dir)
    return home


def secrets_of(export: Path) -> list[str]:
    """The start of every embedding and crop, as base64, from a plain export."""
    doc = json.loads(export.read_text())
    return [
        template[key][:24]
        for person in doc["people"]
        for template in person["templates"]
        for key in ("embedding", "crop")
    ]


def assert_no_biometrics(output: bytes, known: list[str]) -> None:
    """No vector, no long base64, no image bytes, none of the known templates."""
    for magic in IMAGE_MAGIC:
        assert magic not in output, f"image bytes {magic!r} in the output"
    text = output.decode("utf-8", errors="replace")
    for escaped in IMAGE_ESCAPED:
        assert escaped not in text, f"escaped image bytes {escaped!r} in the output"
    vector = FLOAT_RUN.search(text)
    assert vector is None, f"a run of floats in the output: {vector.group()[:200]}"
    blob = BASE64_BLOB.search(text)
    assert blob is None, f"a base64 blob in the output: {blob.group()[:120]}"
    for fragment in known:
        assert fragment not in text, "a stored embedding or crop appears in the output"


def forbidden_keys(value: object) -> list[str]:
    """Keys anywhere in a JSON value that would carry biometric data."""
    if isinstance(value, dict):
        own = [k for k in value if any(word in k.lower() for word in FORBIDDEN_KEYS)]
        return own + [k for v in value.values() for k in forbidden_keys(v)]
    if isinstance(value, list):
        return [k for v in value for k in forbidden_keys(v)]
    return []


def test_the_detectors_of_this_test_work() -> None:
    vector = ", ".join(f"{i / 7:.4f}" for i in range(12))
    numpy_style = "[ 0.0123 -0.0456  0.789   1.  -2.5e-03 0.1 0.2 0.3 0.4 0.5\n 0.6]"
    blob = base64.b64encode(bytes(range(256))).decode()
    for bad in (vector.encode(), numpy_style.encode(), blob.encode(), b"x \x89PNG\r\n"):
        with pytest.raises(AssertionError):
            assert_no_biometrics(bad, [])
    assert_no_biometrics(
        b"INFO facegate.service.daemon: 12.5 fps, box [1.0, 2.0, 3.0, 4.0] t=0.25 s", []
    )
    assert forbidden_keys({"a": [{"Embedding": 1}]}) == ["Embedding"]


@pytest.mark.slow
def test_no_biometric_data_in_any_log_line_or_event(
    state: Path, faces_dir: Path, hamilton_clip: Path, tmp_path: Path
) -> None:
    outputs: list[bytes] = []
    photos = {p: sorted((faces_dir / "face_recognition" / p).iterdir()) for p in PEOPLE}
    for person, files in photos.items():
        outputs.append(facegate(state, "gallery", "enroll", person, *map(str, files)))
    probe = str(photos["obama"][-1])
    outputs.append(facegate(state, "identify", probe))
    outputs.append(facegate(state, "identify", probe, "--json"))
    plain, sealed = tmp_path / "plain.json", tmp_path / "sealed.json"
    outputs.append(facegate(state, "gallery", "export", str(plain)))
    outputs.append(
        facegate(state, "gallery", "export", str(sealed), "--passphrase-env", "FG_PRIVACY_PASS")
    )
    for i, (path, extra) in enumerate(
        ((plain, ()), (sealed, ("--passphrase-env", "FG_PRIVACY_PASS")))
    ):
        other = ("--gallery", str(tmp_path / f"imported{i}.db"))
        outputs.append(facegate(state, "gallery", "import", str(path), *other, *extra))
    events = tmp_path / "events.jsonl"
    config = tmp_path / "config.toml"
    config.write_text("[http]\nenabled = false\n")  # no port: tests run side by side
    outputs.append(
        facegate(
            state,
            "run",
            "--config",
            str(config),
            "--source",
            str(hamilton_clip),
            "--sink",
            f"jsonl:{events}",
        )
    )
    daemon_log = outputs[-1].decode(errors="replace")
    assert "DEBUG" in daemon_log and "first frame processed" in daemon_log  # really -vv
    lines = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    assert any(e["event"] == "recognized" for e in lines)
    outputs += unknown_face_commands(state, config, hamilton_clip, tmp_path, lines)
    known = secrets_of(plain)
    for output in outputs:
        assert_no_biometrics(output, known)
    lines += [json.loads(line) for line in (tmp_path / "strangers.jsonl").read_text().splitlines()]
    assert any(e["event"] == "unknown" and e["cluster_id"] for e in lines)
    for event in lines:
        assert forbidden_keys(event) == [], event
        assert all(not isinstance(v, list) or len(v) <= 4 for v in event.values()), event


def unknown_face_commands(
    state: Path, config: Path, clip: Path, tmp_path: Path, events: list[dict]
) -> list[bytes]:
    """The unknown-face paths at -vv: a correction of a recognized visit, then a daemon run on
    an empty gallery (the speaker is a stranger) and every ``unknowns`` action on his cluster."""
    visit = next(e["visit_id"] for e in events if e["event"] == "recognized")
    outputs = [
        facegate(state, "unknowns", "matches"),
        facegate(state, "unknowns", "matches", "--json"),
        facegate(state, "unknowns", "correct", visit),
    ]
    empty = ("--gallery", str(tmp_path / "strangers.db"))
    strangers = tmp_path / "strangers.toml"
    strangers.write_text(config.read_text() + f'[gallery]\npath = "{tmp_path / "strangers.db"}"\n')
    sink = f"jsonl:{tmp_path / 'strangers.jsonl'}"
    outputs.append(
        facegate(state, "run", "--config", str(strangers), "--source", str(clip), "--sink", sink)
    )
    crops = tmp_path / "crops"
    for args in (
        ("list",),
        ("list", "--json"),
        ("show", "1", "--export", str(crops)),
        ("show", "1", "--json"),
        ("label", "1", "Stranger"),
        ("purge", "--all", "--yes"),
    ):
        outputs.append(facegate(state, "unknowns", *args, *empty))
    assert any(crops.iterdir())
    return outputs
