"""Run facegate's benchmarks: ``python -m benchmarks.run [--quick] [--out DIR] [--sections ...]``.

Sections: stages (per-stage latency), e2e (pipeline fps on the clips), multicam (the detection
planner: one camera with it off and on, a frame with nobody in view, four cameras on one
thread), realframes (the clips'
frames and the group photos per stage, with the detector's counts, against face_recognition),
detector (MTCNN against facenet-pytorch's: exactness and speed), peer (face_recognition: speed
and accuracy), gallery (1k-1M templates, exact and approximate), coldstart (daemon start and
memory), limits (MACs against attainable FLOP/s), liveness (ms per face, fps with it on),
clustering (unknown faces: clusters per person, mixed clusters), compression (teacher, pruned
and student embedders: ms per face, size, cosine to the teacher, eval). Writes results.json and
PNG plots to --out and prints tables; results.json is rewritten after every section.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import traceback
from pathlib import Path

from benchmarks import (
    clustering,
    coldstart,
    compression,
    detector,
    e2e,
    gallery_scale,
    limits,
    liveness,
    multicam,
    peer,
    realframes,
    report,
    stages,
)
from benchmarks.common import bundle_dir, console, machine, recognizer, use_bundle
from benchmarks.frames import BenchFrame, build_frames

SECTIONS = (
    "stages",
    "e2e",
    "multicam",
    "realframes",
    "detector",
    "peer",
    "gallery",
    "coldstart",
    "limits",
    "liveness",
    "clustering",
    "compression",
)
DEFAULT_OUT = Path(__file__).resolve().parent / "out"
NEEDS_FRAMES = {"stages", "detector", "peer", "limits"}


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="few repetitions, no 1M gallery")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    p.add_argument("--lfw", type=Path, help="LFW-style folder (one sub-folder per person)")
    p.add_argument("--pairs", type=Path, help="LFW pairs.txt for --lfw")
    p.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    p.add_argument("--bundle", type=Path, help="bundle folder (default: the built default one)")
    p.add_argument(
        "--no-install",
        action="store_true",
        help="never create the side venvs (peer, facenet-pytorch, ANN; use them if present)",
    )
    args = p.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")
    if (args.lfw is None) != (args.pairs is None):
        p.error("--lfw and --pairs go together")
    return args


def _measured(results: dict) -> dict[str, dict[str, float]]:
    rows = results.get("stages", {}).get("rows", [])
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["precision"] == "fp32":
            out.setdefault(r["frame"], {})[f"{r['backend']} fp32"] = r["detect_to_match_ms"][
                "median"
            ]
    return out


def _section(name: str, args: argparse.Namespace, frames: list[BenchFrame], results: dict) -> dict:
    install = not args.no_install and not args.quick
    lfw = (args.lfw, args.pairs) if args.lfw else None
    if name == "stages":
        return stages.run(frames, args.quick)
    if name == "e2e":
        return e2e.run(args.quick)
    if name == "multicam":
        return multicam.run(args.quick)
    if name == "realframes":
        return realframes.run(args.quick, not args.no_install, args.out)
    if name == "detector":
        return detector.run(frames, args.quick, install, args.out)
    if name == "peer":
        return peer.run(frames, args.quick, install, args.out, lfw)
    if name == "gallery":
        return gallery_scale.run(args.quick, install, args.out)
    if name == "coldstart":
        return coldstart.run(args.quick)
    if name == "liveness":
        return liveness.run(args.quick)
    if name == "clustering":
        return clustering.run(args.quick)
    if name == "compression":
        return compression.run(args.quick, args.out)
    return limits.run(frames, args.quick, _measured(results))


def _save(results: dict, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections, save results.json and plots, print the tables."""
    args = _args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.bundle:
        use_bundle(args.bundle)
    results: dict = {
        "meta": {
            **machine(),
            "quick": args.quick,
            "sections": args.sections,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "bundle": str(bundle_dir()),
        }
    }
    frames: list[BenchFrame] = []
    with tempfile.TemporaryDirectory(prefix="facegate-frames-") as tmp:
        if NEEDS_FRAMES & set(args.sections):
            frames = build_frames(recognizer(), Path(tmp))
            results["meta"]["frames"] = {
                f.name: {"faces": f.faces, "sources": f.sources} for f in frames
            }
        for name in [s for s in SECTIONS if s in args.sections]:
            console.rule(f"[bold]{name}")
            start = time.perf_counter()
            try:
                results[name] = _section(name, args, frames, results)
            except Exception as err:  # one failed section must not lose the others
                console.print(f"[red]{name} failed: {err}")
                results[name] = {"error": traceback.format_exc()}
            results[name]["seconds"] = time.perf_counter() - start
            _save(results, args.out)
    report.show(results, args.out)
    _save(results, args.out)
    return 1 if any("error" in results[s] for s in args.sections) else 0


if __name__ == "__main__":
    raise SystemExit(main())
