"""identify, verify, eval, enroll and run on awkward photos and names, as a user runs them.

Group photos, an LFW-layout folder, pictures too narrow for a face, phone motion photos, file
names that are not UTF-8, the modes of the files written, and what reaches stdout and stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import run_cli

STRICT_UTF8 = {"PYTHONIOENCODING": "utf-8:strict"}  # a desktop UTF-8 locale refuses surrogates


@pytest.fixture()
def env(home: Path, bundle_dir: Path) -> dict[str, str]:
    """Runs the CLI against a private state dir and the built bundle."""
    return {"FACEGATE_HOME": str(home)}


def cli(
    env: dict[str, str], bundle_dir: Path, *args: str, backend: str = "onnxruntime", **kw: object
) -> subprocess.CompletedProcess:
    return run_cli(*args, "--bundle", str(bundle_dir), "--backend", backend, env=env, **kw)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def thin(tmp_path: Path) -> Path:
    """A 2x8000 PNG: the detector's downscaled copy would be 0 px wide."""
    path = tmp_path / "thin.png"
    cv2.imwrite(str(path), np.zeros((8000, 2, 3), np.uint8))
    return path


# --- 12.3: verify compares every face -------------------------------------------------------


def test_verify_finds_the_person_among_the_faces_of_a_group_photo(
    env: dict, bundle_dir: Path, faces_dir: Path
) -> None:
    people = faces_dir / "face_recognition"
    group = people / "_group_multiface" / "obama_and_biden.jpg"
    portrait = people / "obama" / "obama.jpg"
    proc = cli(env, bundle_dir, "verify", str(group), str(portrait), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["same_person"] and out["similarity"] > 0.6, out
    group_faces = len(out["image1"]["faces"])  # Obama, Biden and whoever else it finds
    assert group_faces >= 2 and len(out["image2"]["faces"]) == 1
    assert len(out["pairs"]) == group_faces and out["pairs"][0] == out["best"]
    others = sorted(p["similarity"] for p in out["pairs"])[:-1]
    assert all(s < 0.44 for s in others), others  # nobody else in the photo is Obama
    best = out["image1"]["faces"][out["best"]["face1"]]
    assert 900 < best[0] < 1200  # Obama: the right one of the two men in the middle
    text = cli(env, bundle_dir, "verify", str(group), str(portrait))
    assert text.returncode == 0 and "same person" in text.stdout
    assert f"every face compared ({group_faces} x 1), the best pair: {group} face" in text.stdout


# --- 12.2: eval picks the labelled face by the folder's layout -----------------------------


def _patch(recognizer, path: Path, side: int) -> np.ndarray:
    """A ``side`` px square around the largest face of the photo at ``path``."""
    from facegate.vision.image import load_image

    image = load_image(path)
    face = max(recognizer.detect(image), key=lambda f: f.width * f.height)
    x1, y1, x2, y2 = face.box
    scale = side / (1.4 * max(x2 - x1, y2 - y1))
    shift = [side / 2 - scale * (x1 + x2) / 2, side / 2 - scale * (y1 + y2) / 2]
    m = np.float32([[scale, 0, shift[0]], [0, scale, shift[1]]])
    return cv2.warpAffine(image, m, (side, side), borderMode=cv2.BORDER_REPLICATE)


LABELLED = {
    "obama": ["obama/obama.jpg", "obama/obama1.jpg", "obama/obama2.jpg"],
    "kit": [
        "kit_harington/john1.jpeg",
        "kit_harington/john2.jpeg",
        "kit_harington/johnsnow_test1.jpg",
    ],
    "alex": ["alex_lacamoire/alex_lacamoire1.jpg", "alex_lacamoire/img1.jpg"],
}
BYSTANDERS = ["biden/biden.jpg", "biden/biden2.jpg", "rose_leslie/img1.jpg", "rose_leslie/img2.jpg"]


@pytest.fixture(scope="module")
def lfw_layout(faces_dir: Path, recognizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """250x250 images, the labelled face centred (~60 px), a larger bystander in the corner."""
    people, root = faces_dir / "face_recognition", tmp_path_factory.mktemp("lfw")
    k = 0
    for name, files in LABELLED.items():
        for n, file in enumerate(files):
            canvas = np.full((250, 250, 3), 128, np.uint8)
            canvas[140:250, 140:250] = _patch(recognizer, people / BYSTANDERS[k % 4], 110)
            canvas[83:167, 83:167] = _patch(recognizer, people / file, 84)
            k += 1
            out = root / name / f"{name}_{n + 1:04d}.jpg"
            out.parent.mkdir(exist_ok=True)
            cv2.imwrite(str(out), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    return root


def test_eval_uses_the_centre_face_in_an_lfw_layout_folder(
    env: dict, bundle_dir: Path, lfw_layout: Path
) -> None:
    images = len(list(lfw_layout.glob("*/*.jpg")))
    proc = cli(env, bundle_dir, "eval", str(lfw_layout), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # --json without a file: the report alone on stdout
    assert report["face"] == "centre" and "LFW layout" in report["face_reason"]
    assert report["multi_face"] == images and report["face_differs"] == images
    assert report["identification"]["rank1"] == 1.0
    assert report["scores"]["genuine_min"] > 0.44
    largest = cli(env, bundle_dir, "eval", str(lfw_layout), "--face", "largest", "--json")
    report = json.loads(largest.stdout)
    assert report["face"] == "largest" and report["face_differs"] == images
    assert report["identification"]["rank1"] < 0.5  # the bystanders are different people
    text = cli(env, bundle_dir, "eval", str(lfw_layout))
    assert f"--face largest would change {images}" in text.stdout


def test_eval_keeps_the_largest_face_in_a_folder_of_ordinary_photos(
    env: dict, bundle_dir: Path, faces_dir: Path, tmp_path: Path
) -> None:
    for name in ("obama", "biden"):
        (tmp_path / name).symlink_to(faces_dir / "face_recognition" / name)
    proc = cli(env, bundle_dir, "eval", str(tmp_path), "--json")
    report = json.loads(proc.stdout)
    assert report["face"] == "largest" and "not LFW layout" in report["face_reason"]


# --- 12.10: pictures too narrow for a face --------------------------------------------------


def test_a_picture_too_narrow_for_a_face_is_one_line_everywhere(
    env: dict, bundle_dir: Path, faces_dir: Path, thin: Path, tmp_path: Path
) -> None:
    portrait = faces_dir / "face_recognition" / "obama" / "obama.jpg"
    proc = cli(env, bundle_dir, "identify", str(thin), "--json")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "too narrow to show a face" in json.loads(proc.stdout)[0]["error"]
    assert "too narrow" in one_line_error(cli(env, bundle_dir, "verify", str(thin), str(portrait)))
    (tmp_path / "data" / "a").mkdir(parents=True)
    shutil.copy(thin, tmp_path / "data" / "a" / "thin.png")
    shutil.copy(portrait, tmp_path / "data" / "a" / "portrait.jpg")
    proc = cli(env, bundle_dir, "eval", str(tmp_path / "data"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert [why for _, why in json.loads(proc.stdout)["unreadable"]] == [
        "2x8000 pixels is too narrow to show a face (more than 160:1)"
    ]


def test_a_folder_source_skips_a_thin_picture_and_goes_on(
    env: dict, bundle_dir: Path, faces_dir: Path, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a-strip.png"), np.zeros((70000, 16, 3), np.uint8))
    for name in ("obama", "biden"):
        shutil.copy(faces_dir / "face_recognition" / name / f"{name}.jpg", photos / f"b-{name}.jpg")
    config = tmp_path / "facegate.toml"
    config.write_text("[http]\nenabled = false\n")
    proc = run_cli(
        "run", "--config", str(config), "--source", str(photos), "--sink", "jsonl:-",
        "--bundle", str(bundle_dir), "--backend", "onnxruntime", env=env,
    )  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "skipping" in proc.stderr and "a-strip.png" in proc.stderr
    assert "end of source after 2 frames" in proc.stderr


# --- 12.11: file names that are not UTF-8 ---------------------------------------------------


def test_names_that_are_not_utf8_never_crash_and_print_escaped(
    env: dict, bundle_dir: Path, faces_dir: Path, tmp_path: Path
) -> None:
    people = faces_dir / "face_recognition"
    root = os.fsencode(tmp_path / "people")
    for folder, src in ((b"obama", "obama/obama.jpg"), (b"j\xe9r\xf4me", "biden/biden.jpg")):
        os.makedirs(os.path.join(root, folder))
        shutil.copy(people / src, os.path.join(root, folder, b"caf\xe9.jpg"))
    shutil.copy(people / "obama/obama1.jpg", os.path.join(root, b"obama", b"ok.jpg"))
    strict = {**env, **STRICT_UTF8}
    photo = os.fsdecode(os.path.join(root, b"obama", b"caf\xe9.jpg"))
    proc = cli(strict, bundle_dir, "identify", photo)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "caf\\xe9" in proc.stdout
    proc = cli(strict, bundle_dir, "verify", photo, photo)
    assert proc.returncode == 0 and "/obama/caf\\xe9.jpg at " in proc.stdout, proc.stderr
    proc = cli(strict, bundle_dir, "gallery", "enroll", "--from-dir", os.fsdecode(root))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "enrolled obama: 2 template(s)" in proc.stdout
    assert "j\\xe9r\\xf4me" in proc.stderr  # the folder that cannot be a name is skipped, named
    shown = cli(strict, bundle_dir, "gallery", "show", "obama", "--json")
    assert any(
        t["source"].endswith("/obama/caf\\xe9.jpg") for t in json.loads(shown.stdout)["templates"]
    )
    proc = cli(strict, bundle_dir, "eval", os.fsdecode(root), "--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr


# --- 12.19: phone motion photos -------------------------------------------------------------


def test_a_motion_photo_enrols_and_is_identified(
    env: dict, bundle_dir: Path, faces_dir: Path, tmp_path: Path
) -> None:
    people = faces_dir / "face_recognition" / "obama"
    video = b"\x00\x00\x00\x18ftypmp42" + np.random.default_rng(0).bytes(500_000)
    for name in ("obama.jpg", "obama1.jpg"):
        (tmp_path / f"MVIMG_{name}").write_bytes((people / name).read_bytes() + video)
    proc = cli(env, bundle_dir, "gallery", "enroll", "obama", str(tmp_path / "MVIMG_obama.jpg"))
    assert proc.returncode == 0 and "enrolled obama: 1 template(s)" in proc.stdout, proc.stdout
    found = cli(env, bundle_dir, "identify", str(tmp_path / "MVIMG_obama1.jpg"), "--json")
    assert [f["name"] for f in json.loads(found.stdout)[0]["faces"]] == ["obama"]


# --- 12.22, 12.24: files written, --annotate on every image, stdout and stderr --------------


def test_annotate_writes_every_image_and_every_output_file_is_private(
    env: dict, bundle_dir: Path, faces_dir: Path, tmp_path: Path
) -> None:
    people = faces_dir / "face_recognition"
    photos = [people / "obama" / "obama.jpg", people / "biden" / "biden.jpg"]
    one = tmp_path / "one.jpg"
    assert cli(env, bundle_dir, "identify", str(photos[0]), "--annotate", str(one)).returncode == 0
    assert _mode(one) == 0o600 and cv2.imread(str(one)) is not None
    out = tmp_path / "annotated"
    proc = cli(env, bundle_dir, "identify", *map(str, photos), "--annotate", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    written = sorted(out.iterdir())
    assert [p.name for p in written] == ["biden.jpg", "obama.jpg"]
    assert _mode(out) == 0o700 and all(_mode(p) == 0o600 for p in written)
    for photo in photos:
        assert cv2.imread(str(out / photo.name)).shape == cv2.imread(str(photo)).shape
    report, plot = tmp_path / "eval.json", tmp_path / "roc.png"
    report.write_text("{}")
    report.chmod(0o644)  # an existing file is tightened too
    (tmp_path / "data").mkdir()
    for name in ("obama", "biden"):
        (tmp_path / "data" / name).symlink_to(people / name)
    proc = cli(
        env, bundle_dir, "eval", str(tmp_path / "data"), "--json", str(report), "--plot", str(plot)
    )
    assert proc.returncode == 0, proc.stderr
    assert _mode(report) == 0o600 and json.loads(report.read_text())["images"] == 9
    assert _mode(plot) == 0o600 and plot.read_bytes()[:4] == b"\x89PNG"


def test_litert_prints_no_info_line(env: dict, bundle_dir: Path, faces_dir: Path) -> None:
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")
    photo = faces_dir / "face_recognition" / "obama" / "obama.jpg"
    proc = cli(env, bundle_dir, "identify", str(photo), "--json", backend="litert")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)[0]["faces"]) == 1
    assert "XNNPACK" not in proc.stderr and "INFO" not in proc.stderr, proc.stderr


def test_from_dir_on_one_persons_folder_hints_at_the_right_command(
    env: dict, bundle_dir: Path, faces_dir: Path
) -> None:
    amy = faces_dir / "bbt" / "amy"
    line = one_line_error(cli(env, bundle_dir, "gallery", "enroll", "--from-dir", f"{amy}/"))
    assert "expected one sub-folder per person" in line
    assert f"did you mean `facegate gallery enroll amy {amy}/*`?" in line


@pytest.mark.parametrize("option", [["--precision", "int8"], ["--flip"], ["--threshold", "0.5"]])
def test_gallery_actions_that_only_read_refuse_model_options(home: Path, option: list) -> None:
    proc = run_cli("gallery", "list", *option, env={"FACEGATE_HOME": str(home)})
    assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr


def test_demo_json_keeps_stdout_for_events(env: dict, home: Path, bundle_dir: Path) -> None:
    (home / "models").mkdir(parents=True)
    (home / "models" / "default").symlink_to(bundle_dir)
    proc = run_cli("demo", "--backend", "onnxruntime", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # every line is JSON
    assert {e["person"] for e in events if e["event"] == "recognized"} == {"biden", "obama"}
    assert "enrolled obama" in proc.stderr
