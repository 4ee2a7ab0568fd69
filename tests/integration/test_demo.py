"""README command 1's last step: the daemon over the bundled sample photos."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli


def test_demo_names_both_sample_people(home: Path, bundle_dir: Path) -> None:
    (home / "models").mkdir(parents=True)
    (home / "models" / "default").symlink_to(bundle_dir)
    proc = run_cli("demo", "--backend", "onnxruntime")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    recognized = sorted(e["person"] for e in events if e["event"] == "recognized")
    assert recognized == ["biden", "obama"]
    assert sorted(e["person"] for e in events if e["event"] == "left") == ["biden", "obama"]
    assert not [e for e in events if e["event"] == "unknown"]
