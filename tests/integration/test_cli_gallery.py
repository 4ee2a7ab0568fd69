"""Every gallery and recognition command, as a user runs them, on real photos."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import run_cli


@pytest.fixture()
def env(home: Path, bundle_dir: Path) -> dict[str, str]:
    """Runs the CLI against a private state dir and the built bundle."""
    return {"FACEGATE_HOME": str(home)}


def cli(
    env: dict[str, str], bundle_dir: Path, *args: str, **kw: object
) -> subprocess.CompletedProcess:
    return run_cli(*args, "--bundle", str(bundle_dir), "--backend", "onnxruntime", env=env, **kw)


def _json(proc: subprocess.CompletedProcess) -> object:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_enroll_identify_verify_round_trip(env: dict, bundle_dir: Path, faces_dir: Path) -> None:
    people = faces_dir / "face_recognition"
    obama = sorted((people / "obama").glob("*.jpg"))
    out = _json(cli(env, bundle_dir, "gallery", "enroll", "obama", str(obama[0]), "--json"))
    assert out["enrolled"] == {"obama": 1}
    out = _json(
        cli(
            env,
            bundle_dir,
            "gallery",
            "enroll",
            "biden",
            *map(str, sorted((people / "biden").glob("*.jpg"))),
            "--json",
        )
    )
    assert out["enrolled"]["biden"] >= 1
    listed = _json(cli(env, bundle_dir, "gallery", "list", "--json"))
    assert {p["name"] for p in listed} == {"obama", "biden"}
    found = _json(cli(env, bundle_dir, "identify", str(obama[1]), "--json"))
    assert [f["name"] for f in found[0]["faces"]] == ["obama"]
    same = _json(cli(env, bundle_dir, "verify", str(obama[1]), str(obama[2]), "--json"))
    assert same["same_person"] and same["similarity"] > 0.5
    biden = sorted((people / "biden").glob("*.jpg"))[0]
    diff = _json(cli(env, bundle_dir, "verify", str(obama[1]), str(biden), "--json"))
    assert not diff["same_person"]


def test_enroll_from_dir_reports_skips_and_never_aborts(
    env: dict, bundle_dir: Path, tmp_path: Path, faces_dir: Path
) -> None:
    root = tmp_path / "people"
    (root / "kit").mkdir(parents=True)
    for src in sorted((faces_dir / "face_recognition" / "kit_harington").glob("*.jp*g")):
        (root / "kit" / src.name).write_bytes(src.read_bytes())
    (root / "kit" / "broken.jpg").write_bytes(b"not a jpeg at all")
    (root / "kit" / "blank.png").write_bytes(
        cv2.imencode(".png", np.zeros((200, 200, 3), np.uint8))[1].tobytes()
    )
    blurred = cv2.GaussianBlur(cv2.imread(str(next((root / "kit").glob("*.jp*g")))), (0, 0), 8)
    cv2.imwrite(str(root / "kit" / "blurred.jpg"), blurred)
    group = sorted((faces_dir / "face_recognition" / "_group_multiface").glob("*"))[0]
    (root / "crowd").mkdir()
    (root / "crowd" / group.name).write_bytes(group.read_bytes())
    out = _json(cli(env, bundle_dir, "gallery", "enroll", "--from-dir", str(root), "--json"))
    reasons = {Path(s["file"]).name: s["reason"] for s in out["skipped"]}
    assert out["enrolled"]["kit"] >= 2
    assert "not an image" in reasons["broken.jpg"]
    assert reasons["blank.png"] == "no face found"
    assert "blurry" in reasons["blurred.jpg"]
    assert "faces found" in reasons[group.name] and "--largest" in reasons[group.name]
    out = _json(
        cli(env, bundle_dir, "gallery", "enroll", "crowd", str(group), "--largest", "--json")
    )
    assert out["enrolled"] == {"crowd": 1}


def test_show_rename_remove_export_import(
    env: dict, bundle_dir: Path, tmp_path: Path, faces_dir: Path
) -> None:
    photo = sorted((faces_dir / "face_recognition" / "rose_leslie").glob("*.jpg"))[0]
    _json(cli(env, bundle_dir, "gallery", "enroll", "rose", str(photo), "--json"))
    shown = _json(cli(env, bundle_dir, "gallery", "show", "rose", "--json"))
    assert shown["templates"][0]["source"].endswith(photo.name)
    _json(cli(env, bundle_dir, "gallery", "rename", "rose", "ygritte", "--json"))
    export = tmp_path / "g.json"
    _json(cli(env, bundle_dir, "gallery", "export", str(export), "--json"))
    assert oct(export.stat().st_mode & 0o777) == "0o600"
    refused = cli(env, bundle_dir, "gallery", "remove", "ygritte")  # no tty, no --yes
    assert refused.returncode == 1 and "--yes" in refused.stderr
    _json(cli(env, bundle_dir, "gallery", "remove", "ygritte", "--yes", "--json"))
    assert _json(cli(env, bundle_dir, "gallery", "list", "--json")) == []
    imported = _json(cli(env, bundle_dir, "gallery", "import", str(export), "--json"))
    assert imported["added"] == 1
    tampered = tmp_path / "t.json"
    tampered.write_text(export.read_text().replace('"ygritte"', '"mallory"'))
    bad = cli(env, bundle_dir, "gallery", "import", str(tampered))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert [p["name"] for p in _json(cli(env, bundle_dir, "gallery", "list", "--json"))] == [
        "ygritte"
    ]


def test_gallery_from_another_model_is_refused_until_reembed(
    env: dict, bundle_dir: Path, home: Path, faces_dir: Path
) -> None:
    import sqlite3

    photo = sorted((faces_dir / "face_recognition" / "obama").glob("*.jpg"))[0]
    _json(cli(env, bundle_dir, "gallery", "enroll", "obama", str(photo), "--json"))
    with sqlite3.connect(home / "gallery.db") as db:
        db.execute("UPDATE meta SET value = 'some-other-model' WHERE key = 'model_id'")
        db.execute("UPDATE templates SET model_id = 'some-other-model'")
    refused = cli(env, bundle_dir, "identify", str(photo))
    assert refused.returncode == 1 and "facegate gallery reembed" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    out = _json(cli(env, bundle_dir, "gallery", "reembed", "--json"))
    assert out["templates"] == 1 and out["from"] == "some-other-model"
    found = _json(cli(env, bundle_dir, "identify", str(photo), "--json"))
    assert found[0]["faces"][0]["name"] == "obama"


@pytest.mark.parametrize(
    "case", ["missing", "text", "truncated", "sixteen_bit", "rgba", "grey", "huge"]
)
def test_bad_or_odd_images_never_traceback(
    env: dict, bundle_dir: Path, tmp_path: Path, faces_dir: Path, case: str
) -> None:
    src = cv2.imread(str(sorted((faces_dir / "face_recognition" / "obama").glob("*.jpg"))[0]))
    path = tmp_path / f"{case}.png"
    if case == "text":
        path.write_text("hello")
    elif case == "truncated":
        path = tmp_path / "cut.jpg"
        data = cv2.imencode(".jpg", src)[1].tobytes()
        path.write_bytes(data[: len(data) // 3])
    elif case == "sixteen_bit":
        cv2.imwrite(str(path), src.astype(np.uint16) * 257)
    elif case == "rgba":
        cv2.imwrite(str(path), cv2.cvtColor(src, cv2.COLOR_BGR2BGRA))
    elif case == "grey":
        cv2.imwrite(str(path), cv2.cvtColor(src, cv2.COLOR_BGR2GRAY))
    elif case == "huge":
        path = tmp_path / "huge.jpg"
        big = cv2.resize(src, (8660, 5774), interpolation=cv2.INTER_LINEAR)  # 50 MP
        cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 80])
    proc = cli(env, bundle_dir, "identify", str(path), "--json")
    assert "Traceback" not in proc.stderr
    if case in ("missing", "text", "truncated"):
        assert proc.returncode == 1
        assert json.loads(proc.stdout)[0]["error"]
    else:
        assert proc.returncode == 0, proc.stderr
        assert len(json.loads(proc.stdout)[0]["faces"]) == 1


def test_annotate_writes_an_image(
    env: dict, bundle_dir: Path, tmp_path: Path, faces_dir: Path
) -> None:
    group = sorted((faces_dir / "face_recognition" / "_group_multiface").glob("*"))[0]
    out = tmp_path / "annotated.jpg"
    proc = cli(env, bundle_dir, "identify", str(group), "--annotate", str(out))
    assert proc.returncode == 0 and "unknown" in proc.stdout
    img = cv2.imread(str(out))
    assert img is not None and img.shape == cv2.imread(str(group)).shape


def _people_with_a_stall(src: Path, root: Path) -> Path:
    """Every identity of ``src`` (symlinked), the second one ending in a FIFO nobody writes.

    Reading the FIFO blocks: the enrolment deterministically stops after the second person's
    other photos were embedded and before anything of that person was stored.
    """
    folders = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("_"))
    for folder in folders:
        (root / folder.name).mkdir(parents=True)
        for photo in folder.iterdir():
            (root / folder.name / photo.name).symlink_to(photo)
    os.mkfifo(root / folders[1].name / "zz_never_written.png")
    return root


def test_killed_enrolment_leaves_no_half_person(
    env: dict, bundle_dir: Path, home: Path, tmp_path: Path, faces_dir: Path
) -> None:
    """SIGKILL a bulk enrolment while its second person is half read: no one is half-enrolled."""
    import sqlite3

    people = faces_dir / "bbt"
    stalled = _people_with_a_stall(people, tmp_path / "people")
    db = home / "gallery.db"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "facegate.cli",
            "gallery",
            "enroll",
            "--from-dir",
            str(stalled),
            "--bundle",
            str(bundle_dir),
            "--backend",
            "onnxruntime",
            "--json",
        ],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists():
                with sqlite3.connect(db, timeout=5) as conn:
                    try:
                        if conn.execute("SELECT COUNT(*) FROM people").fetchone()[0] > 0:
                            break
                    except sqlite3.OperationalError:  # schema not created yet
                        pass
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute(
            "SELECT p.name, COUNT(t.id) FROM people p LEFT JOIN templates t"
            " ON t.person_id = p.id GROUP BY p.id"
        ).fetchall()
    folders = [p for p in people.iterdir() if p.is_dir() and not p.name.startswith("_")]
    assert len(rows) == 1 < len(folders), "the kill lands while the second person is read"
    for name, count in rows:
        assert count == len(list((people / name).iterdir())), (name, count)


def test_markup_and_escapes_in_names_and_sources_are_shown_as_text(
    env: dict, bundle_dir: Path, tmp_path: Path, faces_dir: Path
) -> None:
    people = faces_dir / "face_recognition"
    obama = sorted((people / "obama").glob("*.jpg"))
    hostile = tmp_path / "\x1b]0;pwned\x07\x1b[2J.jpg"  # retitles the window, clears the screen
    hostile.write_bytes(obama[0].read_bytes())
    enrolled = cli(env, bundle_dir, "gallery", "enroll", "[/x]", str(hostile))
    assert enrolled.returncode == 0, enrolled.stderr
    assert "enrolled [/x]: 1 template(s)" in enrolled.stdout and "\x1b" not in enrolled.stdout
    biden = sorted((people / "biden").glob("*.jpg"))[0]
    _json(cli(env, bundle_dir, "gallery", "enroll", "biden", str(biden), "--json"))
    renamed = cli(env, bundle_dir, "gallery", "rename", "biden", "[red]obama[/red]")
    assert renamed.returncode == 0, renamed.stderr
    assert renamed.stdout.strip() == "renamed biden to [red]obama[/red]"
    for args in (("gallery", "list"), ("gallery", "show", "[/x]"), ("identify", str(obama[1]))):
        done = cli(env, bundle_dir, *args)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert "\x1b" not in done.stdout and "\x07" not in done.stdout
        assert "[/x]" in done.stdout
    listed = cli(env, bundle_dir, "gallery", "list").stdout
    assert "[red]obama[/red]" in listed
    shown = cli({**env, "COLUMNS": "500"}, bundle_dir, "gallery", "show", "[/x]").stdout
    assert "\\x1b]0;pwned\\x07\\x1b[2J.jpg" in shown
    bad = cli(env, bundle_dir, "gallery", "enroll", "a\x1b[2Jb", str(obama[0]))
    assert bad.returncode == 1 and "control" in bad.stderr and "\x1b" not in bad.stderr


def test_importing_twice_and_name_clashes_from_the_command_line(
    env: dict, bundle_dir: Path, tmp_path: Path, faces_dir: Path
) -> None:
    people = faces_dir / "face_recognition"
    obama = sorted((people / "obama").glob("*.jpg"))[:2]
    biden = sorted((people / "biden").glob("*.jpg"))[0]
    _json(cli(env, bundle_dir, "gallery", "enroll", "obama", *map(str, obama), "--json"))
    export = tmp_path / "g.json"
    _json(cli(env, bundle_dir, "gallery", "export", str(export), "--json"))
    again = _json(cli(env, bundle_dir, "gallery", "import", str(export), "--json"))
    assert (again["templates"], again["already_stored"]) == (0, 2)
    other = {"FACEGATE_HOME": str(tmp_path / "other")}
    _json(cli(other, bundle_dir, "gallery", "enroll", "Obama", str(biden), "--json"))
    wrong = tmp_path / "wrong.json"
    _json(cli(other, bundle_dir, "gallery", "export", str(wrong), "--json"))
    refused = cli(env, bundle_dir, "gallery", "import", str(wrong))
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1
    assert "'Obama' (enrolled as 'obama')" in refused.stderr
    assert "--merge" in refused.stderr and "--replace" in refused.stderr
    listed = _json(cli(env, bundle_dir, "gallery", "list", "--json"))
    assert [(p["name"], p["slug"], p["templates"]) for p in listed] == [("obama", "obama", 2)]
    merged = _json(cli(env, bundle_dir, "gallery", "import", str(wrong), "--merge", "--json"))
    assert (merged["merged"], merged["templates"]) == (1, 1)
