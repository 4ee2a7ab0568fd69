"""Reading a gallery needs no write access: a full disk and a read-only mount (real tmpfs).

We run as root, so a read-only directory cannot be made with chmod; the tests mount a small
tmpfs, put a gallery on it, then fill it up or remount it read-only. Where mounting is refused
they skip.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facegate.errors import GalleryError
from facegate.gallery import GalleryStore, Template
from tests.integration.test_faults_disk import fill

MODEL = "mobilefacenet-test"
DIM = 8
TMPFS_SIZE = "1m"  # room for a small gallery and its WAL; then filled up


def _mount(folder: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["mount", *options, str(folder)], capture_output=True, text=True, check=False
    )


@pytest.fixture()
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs with a two-person gallery on it, closed cleanly (no -wal, no -shm)."""
    folder = tmp_path / "disk"
    folder.mkdir(mode=0o700)
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = _mount(folder, "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        rng = np.random.default_rng(3)
        with GalleryStore.open(folder / "gallery.db", MODEL, DIM) as store:
            for name in ("amy", "zed"):
                vector = rng.normal(size=DIM).astype(np.float32)
                crop = rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8)
                store.enroll(name, [Template(vector, crop, f"{name}.jpg")])
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def _read_everything(path: Path) -> None:
    with GalleryStore.open(path, MODEL, DIM, readonly=True) as store:
        assert [p.name for p in store.people()] == ["amy", "zed"]
        assert store.snapshot().names == ("amy", "zed")
        assert len(store.dump().people) == 2
        assert store.person("zed").template_count == 1
        with pytest.raises(GalleryError, match="read-only"):
            store.remove("zed")


def test_a_full_disk_still_reads(disk: Path) -> None:
    assert not (disk / "gallery.db-shm").exists()
    fill(disk)
    with pytest.raises(GalleryError, match=r"disk I/O error|full"):
        GalleryStore.open(disk / "gallery.db", MODEL, DIM).close()  # a writer cannot
    _read_everything(disk / "gallery.db")


def test_a_read_only_mount_still_reads(disk: Path) -> None:
    done = _mount(disk, "-o", "remount,ro")
    if done.returncode != 0:
        pytest.skip(f"cannot remount read-only: {done.stderr.strip()}")
    _read_everything(disk / "gallery.db")


def test_a_reader_beside_a_writer_sees_new_people(disk: Path) -> None:
    path = disk / "gallery.db"
    with GalleryStore.open(path, MODEL, DIM, readonly=True) as reader:
        before = reader.version()
        with GalleryStore.open(path, MODEL, DIM) as writer:
            writer.remove("amy")
        assert reader.version() != before
        assert reader.snapshot().names == ("zed",)
