"""Rebuild tests/data from a full ../shared: ``python -m tests.data.make_data [SHARED]``.

Photos wider or taller than ``MAX_SIDE`` are downscaled, but never so far that their smallest face
falls under ``MIN_FACE_PX``; everything else is copied byte for byte. NOTICE.md names each file's
origin and licence; this script keeps the file list, NOTICE.md the licences.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2

HERE = Path(__file__).resolve().parent
MAX_SIDE = 1024  # px: a long side the detector tests run in well under a second per photo
MIN_FACE_PX = 120  # px: a downscaled face stays well above MTCNN's 40 px minimum and crop size
JPEG_QUALITY = 90
COPY_UNDER_BYTES = 200_000  # small files are copied untouched (no second JPEG generation)

# Smallest face width per photo, measured with the default bundle's MTCNN on the originals.
FACE_RECOGNITION = {
    "_group_multiface/kit_with_rose.jpg": 78,
    "_group_multiface/obama_and_biden.jpg": 135,
    "_group_multiface/two_people.jpg": 149,
    "alex_lacamoire/alex-lacamoire.png": 142,
    "alex_lacamoire/alex_lacamoire1.jpg": 293,
    "alex_lacamoire/img1.jpg": 288,
    "biden/biden.jpg": 287,
    "biden/biden2.jpg": 443,
    "kit_harington/john1.jpeg": 115,
    "kit_harington/john2.jpeg": 160,
    "kit_harington/johnsnow_test1.jpg": 173,
    "lin_manuel_miranda/lin-manuel-miranda.png": 267,
    "obama/obama.jpg": 238,
    "obama/obama1.jpg": 361,
    "obama/obama2.jpg": 281,
    "obama/obama3.jpg": 279,
    "obama/obama_partial_face.jpg": 229,
    "obama/obama_partial_face2.jpg": 215,
    "obama/obama_small.jpg": 110,
    "rose_leslie/img1.jpg": 240,
    "rose_leslie/img2.jpg": 253,
}
# Copied untouched whatever their size: MTCNN's answer on them is itself under test (a second,
# cut-off face at the border of a partial face; the box of a 5x enlargement within 5 %), and a
# downscaled copy answers differently.
KEEP_EXACT = {
    "obama/obama.jpg",
    "obama/obama_partial_face.jpg",
    "obama/obama_partial_face2.jpg",
}
BBT_PEOPLE = ("amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon", "stuart")
LIVENESS_SUBJECTS = ("s0001", "s0002")
LIVENESS_PER_FOLDER = 5
HAMILTON = "video/face_recognition_short_hamilton_clip.mp4"


def scale_for(shape: tuple[int, ...], min_face: int) -> float:
    """The downscale factor for a photo of ``shape`` whose smallest face is ``min_face`` px."""
    long_side = max(shape[:2])
    return min(1.0, max(MAX_SIDE / long_side, MIN_FACE_PX / min_face))


def photo(src: Path, dst: Path, min_face: int, exact: bool = False) -> Path:
    """Copy one photo, downscaled and re-encoded as JPEG when it is large; the written path."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    image = cv2.imread(str(src), cv2.IMREAD_COLOR)
    assert image is not None, src
    s = scale_for(image.shape, min_face)
    if exact or (s == 1.0 and src.stat().st_size < COPY_UNDER_BYTES):
        shutil.copyfile(src, dst)
        return dst
    if s < 1.0:
        size = (round(image.shape[1] * s), round(image.shape[0] * s))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    dst = dst.with_suffix(".jpg")
    cv2.imwrite(str(dst), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return dst


def spread(folder: Path, n: int) -> list[Path]:
    """``n`` files evenly spread over the sorted contents of ``folder``."""
    files = sorted(folder.iterdir())
    return [files[i * len(files) // n] for i in range(n)]


def main(shared: Path) -> None:
    """Write every fixture from ``shared`` into this folder."""
    for rel, min_face in FACE_RECOGNITION.items():
        name = f"faces/face_recognition/{rel}"
        photo(shared / name, HERE / name, min_face, exact=rel in KEEP_EXACT)
    for person in BBT_PEOPLE:
        for src in sorted((shared / "faces/bbt" / person).iterdir()):
            dst = HERE / "faces/bbt" / person / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    for kind in ("real", "print_attack"):
        for subject in LIVENESS_SUBJECTS:
            folder = shared / "liveness/nuaa" / kind / subject
            for src in spread(folder, LIVENESS_PER_FOLDER):
                dst = HERE / "liveness/nuaa" / kind / subject / src.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
    (HERE / "video").mkdir(exist_ok=True)
    shutil.copyfile(shared / HAMILTON, HERE / HAMILTON)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared")
