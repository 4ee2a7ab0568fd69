"""The snapshot folder is facegate's own: it never deletes, nor counts, files it did not write."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from facegate.errors import ConfigError
from facegate.service.snapshots import MARKER, SnapshotStore
from facegate.types import Face
from tests.conftest import run_cli

DAY = 86400.0
OLD = 90 * DAY  # far past the default 30-day retention


def _owner_photos(folder: Path, n: int = 4, age_s: float = OLD) -> dict[Path, bytes]:
    """A folder of the owner's own old photos (mtimes set back), and their contents."""
    folder.mkdir(parents=True, exist_ok=True)
    photos = {}
    for i in range(n):
        path = folder / f"IMG_{1000 + i}.jpg"
        data = os.urandom(2048)
        path.write_bytes(data)
        stamp = time.time() - age_s
        os.utime(path, (stamp, stamp))
        photos[path] = data
    return photos


def _intact(photos: dict[Path, bytes]) -> bool:
    return all(p.exists() and p.read_bytes() == data for p, data in photos.items())


def _save(store: SnapshotStore, n: int) -> list[Path]:
    """Save ``n`` crops, each one second "newer" than the last (explicit mtimes, not luck)."""
    image = np.full((120, 160, 3), 128, np.uint8)
    face = Face((40.0, 30.0, 100.0, 100.0), 0.99, np.zeros((5, 2), np.float32))
    paths = []
    for i in range(n):
        path = Path(str(store.save(image, face, "door", i, time.time())))
        stamp = time.time() - 100 + i
        os.utime(path, (stamp, stamp))
        paths.append(path)
    return paths


def test_a_folder_of_the_owners_photos_is_refused_and_left_alone(tmp_path: Path) -> None:
    photos = _owner_photos(tmp_path / "Pictures")
    with pytest.raises(ConfigError) as info:
        SnapshotStore(tmp_path / "Pictures", max_files=1, max_age_days=30)
    message = str(info.value)
    assert "snapshots.dir" in message and str(tmp_path / "Pictures") in message
    assert "\n" not in message
    assert _intact(photos)
    assert not (tmp_path / "Pictures" / MARKER).exists()


def test_the_owners_files_in_facegates_folder_are_neither_deleted_nor_counted(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "snaps"
    store = SnapshotStore(folder, max_files=2, max_age_days=30, max_mb=1)
    assert (folder / MARKER).is_file()
    photos = _owner_photos(folder, n=3)  # the owner drops old photos in later
    big = folder / "video.jpg"
    big.write_bytes(b"\0" * (2 << 20))  # alone over the 1 MB size limit
    os.utime(big, (time.time() - OLD, time.time() - OLD))
    photos[big] = big.read_bytes()
    saved = _save(store, 3)
    assert _intact(photos)
    # the count limit counts facegate's snapshots only: the two newest are kept
    assert sorted(p.name for p in folder.glob("2*.jpg")) == sorted(p.name for p in saved[1:])
    assert store.prune() == 0


def test_a_new_folder_is_created_private_and_marked(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "snaps"
    SnapshotStore(folder)
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / MARKER).is_file()
    assert (folder / MARKER).stat().st_mode & 0o777 == 0o600


def test_an_empty_existing_folder_is_adopted(tmp_path: Path) -> None:
    folder = tmp_path / "snaps"
    folder.mkdir()
    SnapshotStore(folder)
    assert (folder / MARKER).is_file()


def test_a_folder_of_earlier_snapshots_is_adopted_and_pruned(tmp_path: Path) -> None:
    """Snapshot folders written before the marker existed hold only facegate's own file names."""
    folder = tmp_path / "snaps"
    old = _save(SnapshotStore(folder), 2)
    (folder / MARKER).unlink()
    for path in old:
        os.utime(path, (time.time() - OLD, time.time() - OLD))
    store = SnapshotStore(folder, max_age_days=30)
    assert (folder / MARKER).is_file()
    assert store.prune() == 2 and not any(p.exists() for p in old)


def test_a_link_named_like_a_snapshot_is_not_followed_or_counted(tmp_path: Path) -> None:
    folder = tmp_path / "snaps"
    store = SnapshotStore(folder, max_files=1, max_mb=1)
    target = tmp_path / "elsewhere.bin"
    target.write_bytes(b"\0" * (2 << 20))
    link = folder / "20200101-000000-door-t1.jpg"
    link.symlink_to(target)
    saved = _save(store, 1)
    assert saved[0].exists() and target.exists() and link.is_symlink()


def test_a_file_where_the_folder_should_be_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "snaps"
    path.write_text("not a folder")
    with pytest.raises(ConfigError, match="not a folder"):
        SnapshotStore(path)


def test_the_daemon_refuses_the_owners_folder_at_start_up(
    home: Path, bundle_dir: Path, faces_dir: Path, tmp_path: Path
) -> None:
    photos = _owner_photos(tmp_path / "Pictures")
    source = tmp_path / "source"
    source.mkdir()
    obama = sorted((faces_dir / "face_recognition" / "obama").glob("*.jpg"))[0]
    (source / obama.name).write_bytes(obama.read_bytes())
    config = tmp_path / "config.toml"
    config.write_text(f'[http]\nenabled = false\n[snapshots]\ndir = "{tmp_path / "Pictures"}"\n')
    proc = run_cli(
        "run", "--config", str(config), "--source", str(source), "--sink", "jsonl:-",
        "--bundle", str(bundle_dir), "--backend", "onnxruntime",
        env={"FACEGATE_HOME": str(home)},
    )  # fmt: skip
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("facegate: error")]
    assert len(errors) == 1 and "snapshots.dir" in errors[0], proc.stderr
    assert _intact(photos)
