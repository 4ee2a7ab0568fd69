"""Start-up permission check: real files in tmp_path, chmod-ed, and the warnings they give."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from facegate.host import permissions
from facegate.host.permissions import check_private, gallery_files, private_paths, warn_private
from tests.conftest import run_cli


def make(path: Path, mode: int, folder: bool = False) -> Path:
    """Create ``path`` (a file, or a folder) and give it ``mode``."""
    if folder:
        path.mkdir(parents=True, exist_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    path.chmod(mode)
    return path


@pytest.fixture()
def state(tmp_path: Path) -> Path:
    """A private state dir with a private gallery, WAL, SHM and snapshot folder."""
    root = make(tmp_path / "state", 0o700, folder=True)
    for target in gallery_files(root / "gallery.db"):
        make(target, 0o600)
    make(root / "snapshots", 0o700, folder=True)
    make(root / "snapshots" / "20240101-120000-door-t1.jpg", 0o600)
    return root


def paths_of(state: Path) -> list[Path]:
    return private_paths(state / "gallery.db", state / "snapshots", state)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_state_gives_no_warning(state: Path) -> None:
    assert check_private(paths_of(state)) == []


def test_a_world_readable_gallery_is_named_with_the_fix(state: Path) -> None:
    gallery = state / "gallery.db"
    gallery.chmod(0o644)
    assert check_private(paths_of(state)) == [
        f"{gallery} is mode 0644, should be 0600: chmod 600 {gallery}"
    ]


def test_wal_and_shm_are_checked_too(state: Path) -> None:
    (state / "gallery.db-wal").chmod(0o640)
    (state / "gallery.db-shm").chmod(0o604)
    warnings = check_private(paths_of(state))
    assert len(warnings) == 2
    assert "gallery.db-wal is mode 0640, should be 0600" in warnings[0]
    assert "gallery.db-shm is mode 0604, should be 0600" in warnings[1]


def test_a_loose_state_dir_should_be_0700(state: Path) -> None:
    state.chmod(0o755)
    assert check_private(paths_of(state)) == [
        f"{state} is mode 0755, should be 0700: chmod 700 {state}"
    ]


def test_snapshot_folder_and_files(state: Path) -> None:
    folder = state / "snapshots"
    folder.chmod(0o750)
    shot = folder / "20240101-120000-door-t1.jpg"
    shot.chmod(0o664)
    warnings = check_private(paths_of(state))
    assert warnings == [
        f"{folder} is mode 0750, should be 0700: chmod 700 {folder}",
        f"{shot} is mode 0664, should be 0600: chmod 600 {shot}",
    ]


def test_stricter_modes_are_fine_and_missing_paths_are_skipped(tmp_path: Path) -> None:
    gallery = make(tmp_path / "gallery.db", 0o400)  # no -wal, no -shm, no snapshots
    assert check_private(private_paths(gallery, tmp_path / "nope", tmp_path / "absent")) == []


def test_the_check_never_changes_a_mode(state: Path) -> None:
    (state / "gallery.db").chmod(0o666)
    state.chmod(0o777)
    check_private(paths_of(state))
    warn_private(paths_of(state))
    assert mode_of(state / "gallery.db") == 0o666 and mode_of(state) == 0o777


def test_a_foreign_owner_is_reported(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    me = os.geteuid()
    monkeypatch.setattr(permissions.os, "geteuid", lambda: me + 1)
    warnings = check_private([state / "gallery.db"])
    assert len(warnings) == 1
    assert f"gallery.db is owned by {permissions._user(me)}, not by" in warnings[0]
    assert f"uid {me + 1}" in warnings[0] and "that runs facegate: chown" in warnings[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file away")
def test_a_file_really_owned_by_nobody_is_reported(state: Path) -> None:
    gallery = state / "gallery.db"
    os.chown(gallery, 65534, 65534)
    warnings = check_private(paths_of(state))
    assert len(warnings) == 1 and "uid 65534" in warnings[0]
    assert warnings[0].endswith(f"chown {permissions._user_name(os.geteuid())} {gallery}")


def test_many_loose_snapshots_end_in_one_summary_line(state: Path) -> None:
    for i in range(20):
        make(state / "snapshots" / f"shot-{i:02d}.jpg", 0o644)
    warnings = check_private(paths_of(state))
    assert len(warnings) == permissions.MAX_WARNINGS + 1
    assert warnings[-1].startswith("15 more file(s) or folder(s) are not private either")


def test_each_warning_is_logged_once_at_warning_level(
    state: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (state / "gallery.db").chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="facegate.host.permissions"):
        first = warn_private(paths_of(state))
        second = warn_private(paths_of(state))
    assert len(first) == 1 and second == []
    records = [r for r in caplog.records if r.name == "facegate.host.permissions"]
    assert [r.levelno for r in records] == [logging.WARNING]
    assert "is mode 0644, should be 0600" in records[0].getMessage()


# ---- the CLI and the daemon ------------------------------------------------------------------


@pytest.mark.slow
def test_gallery_list_on_a_0644_gallery_warns_and_still_works(home: Path, bundle_dir: Path) -> None:
    env = {"FACEGATE_HOME": str(home)}
    args = ("gallery", "list", "--bundle", str(bundle_dir), "--backend", "onnxruntime")
    first = run_cli(*args, env=env)
    assert first.returncode == 0, first.stderr
    assert "should be" not in first.stderr  # a fresh gallery is private
    gallery = home / "gallery.db"
    gallery.chmod(0o644)
    proc = run_cli(*args, env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"{gallery} is mode 0644, should be 0600: chmod 600 {gallery}" in proc.stderr
    assert proc.stderr.count("should be 0600") == 1
    assert "0 people in" in proc.stdout


@pytest.mark.slow
def test_the_daemon_warns_about_loose_state_at_start(
    home: Path, bundle_dir: Path, faces_dir: Path
) -> None:
    env = {"FACEGATE_HOME": str(home)}
    args = ("--bundle", str(bundle_dir), "--backend", "onnxruntime")
    assert run_cli("gallery", "list", *args, env=env).returncode == 0
    (home / "gallery.db").chmod(0o640)
    snapshots = make(home / "snapshots", 0o755, folder=True)
    photos = make(home.parent / "photos", 0o755, folder=True)
    obama = sorted((faces_dir / "face_recognition" / "obama").glob("*.jpg"))[0]
    (photos / obama.name).write_bytes(obama.read_bytes())
    config = home.parent / "config.toml"
    config.write_text("[http]\nenabled = false\n")  # no port: tests run side by side
    sink = f"jsonl:{home.parent / 'events.jsonl'}"
    proc = run_cli(
        "run", "--config", str(config), "--source", str(photos), "--sink", sink, *args, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{home / 'gallery.db'} is mode 0640, should be 0600" in proc.stderr
    assert f"{snapshots} is mode 0755, should be 0700: chmod 700 {snapshots}" in proc.stderr
    assert mode_of(snapshots) == 0o755  # warned about, not changed
