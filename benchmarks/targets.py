"""The targets the benchmarks report against (reported, never asserted)."""

from __future__ import annotations

import numpy as np

SPEEDUP = 5.0  # 640x480 one face: facegate at least 5x faster than face_recognition
ID_100K_MS = 5.0
ID_1M_EXACT_MS = 50.0
ID_1M_INDEX_MS = 2.0
RECALL = 0.99
RSS_MB = 200.0
COLD_START_S = 2.0
DETECT_MS = 15.0  # the reference: a 640x480 frame at min face 40, one thread
MTCNN_PX = 1e-4  # the cascade matches facenet-pytorch's to 1e-4 px (issue) or, where float32
MTCNN_STEPS = 4  # cannot express that (its step is 1.2e-4 px at 1024 px), to a few float32 steps


def _yes(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "MISSED")


def _speed(peer: dict) -> list[list[str]]:
    row = next((r for r in peer.get("speed", []) if r["frame"] == "640x480_1face"), None)
    if row is None:
        return [[f"640×480 1 face ≥ {SPEEDUP:.0f}× face_recognition", "not measured", "-"]]
    best = max(row["onnxruntime"]["ratio"], row["litert"]["ratio"])
    text = f"ORT {row['onnxruntime']['ratio']:.1f}×, LiteRT {row['litert']['ratio']:.1f}×"
    out = [[f"640×480 1 face ≥ {SPEEDUP:.0f}× face_recognition", text, _yes(best >= SPEEDUP)]]
    acc = peer.get("accuracy")
    if isinstance(acc, list) and acc:
        a = acc[0]
        mine, theirs = a["facegate"]["accuracy"], a["peer"]["accuracy"]
        mine_c, theirs_c = a["facegate_common"]["accuracy"], a["peer_common"]["accuracy"]
        text = (
            (f"own pairs {mine:.4f} vs {theirs:.4f}; common pairs {mine_c:.4f} vs {theirs_c:.4f}")
            if None not in (mine, theirs, mine_c, theirs_c)
            else "-"
        )
        ok = None if text == "-" else mine >= theirs and mine_c >= theirs_c
        out.append(["… at ≥ equal accuracy (10-fold)", text, _yes(ok)])
    return out


def _detector(det: dict) -> list[list[str]]:
    exact = det.get("exactness", {})
    if not exact:
        return []
    same = all(not e["only_ref"] and not e["only_ours"] for e in exact.values())
    px = max(max(e["box_px"]["max"], e["landmark_px"]["max"]) for e in exact.values())
    steps = max(e.get("float32_steps", {}).get("max", np.inf) for e in exact.values())
    text = f"{'same' if same else 'DIFFERENT'} faces, max {px:.1e} px = {steps:.0f} float32 steps"
    ok = same and (px <= MTCNN_PX or steps <= MTCNN_STEPS)
    out = [[f"MTCNN = facenet-pytorch ({MTCNN_PX:g} px, float32)", text, _yes(ok)]]
    spread = det.get("reference_spread")
    if spread:
        own = spread["float32_steps"]["max"]
        text = (f"{steps:.0f} float32 steps; facenet-pytorch's two conv backends differ by "
                f"{own:.0f} ({max(spread['box_px']['max'], spread['landmark_px']['max']):.1e} px)")
        out.append(["… within facenet-pytorch's own float32 spread", text,
                    _yes(same and steps <= own)])  # fmt: skip
    row = next((r for r in det.get("speed", []) if r["frame"] == "640x480_1face"), None)
    if row is not None:
        ratios = row["ratio"]
        text = f"ORT {ratios['onnxruntime']:.1f}×, LiteRT {ratios['litert']:.1f}× facenet-pytorch"
        out.append(["640×480 detection at least as fast", text, _yes(min(ratios.values()) >= 1)])
        ms = {b: row["ms"][b]["median"] for b in ("onnxruntime", "litert")}
        best = min(ms.values())
        text = f"ORT {ms['onnxruntime']:.1f}, LiteRT {ms['litert']:.1f} ms"
        out.append([f"640×480 detection ≤ {DETECT_MS:g} ms", text, _yes(best <= DETECT_MS)])
    return out


def _gallery(gal: dict) -> list[list[str]]:
    exact = {r["templates"]: r["query_ms"]["median"] for r in gal.get("exact", [])}
    out = []
    v = exact.get(100_000)
    out.append(
        [
            f"100k identification ≤ {ID_100K_MS:.0f} ms",
            "-" if v is None else f"{v:.2f} ms",
            _yes(None if v is None else v <= ID_100K_MS),
        ]
    )
    v = exact.get(1_000_000)
    ann = gal.get("ann") if isinstance(gal.get("ann"), list) else []
    good = [
        (p["median_ms"], r["lib"], p["effort"], p["recall"]["all"])
        for r in ann
        if r.get("templates") == 1_000_000 and "sweep" in r
        for p in r["sweep"]
        if p["recall"]["all"] >= RECALL
    ]
    best = min(good) if good else None
    text = "-" if v is None else f"exact {v:.1f} ms"
    if v is not None and best:
        text += f"; index {best[1]} (effort {best[2]}): {best[0]:.2f} ms"
    elif v is not None and any(r.get("templates") == 1_000_000 for r in ann):
        text += f"; no index reached recall@1 {RECALL} at 1M"
    ok = None if v is None else (v <= ID_1M_EXACT_MS or bool(best and best[0] <= ID_1M_INDEX_MS))
    out.append(
        [
            f"1M ≤ {ID_1M_EXACT_MS:.0f} ms exact or ≤ {ID_1M_INDEX_MS:.0f} ms index "
            f"(recall ≥ {RECALL})",
            text,
            _yes(ok),
        ]
    )
    return out


def _daemon(cold: dict) -> list[list[str]]:
    cli, probe = cold.get("cli", {}), cold.get("probe", {})
    use_cli = bool(cli.get("cold_start_s"))
    src = cli if use_cli else probe
    label = "facegate run" if use_cli else "stand-in (from_bundle + identify)"
    rss = src.get("clip", {}).get("rss_max_mb")
    start = src.get("cold_start_s")
    return [
        [
            f"daemon RSS ≤ {RSS_MB:.0f} MB",
            f"{label}: {rss:.0f} MB" if rss else "-",
            _yes(None if rss is None else rss <= RSS_MB),
        ],
        [
            f"cold start ≤ {COLD_START_S:.0f} s",
            f"{label}: {start:.2f} s" if start else "-",
            _yes(None if start is None else start <= COLD_START_S),
        ],
    ]


def table(results: dict) -> tuple[str, list[str], list[list[str]]]:
    """Target, measured value, met or missed."""
    rows: list[list[str]] = []
    if "error" not in results.get("detector", {"error": 1}):
        rows += _detector(results["detector"])
    if "error" not in results.get("peer", {"error": 1}):
        rows += _speed(results["peer"])
    if "error" not in results.get("gallery", {"error": 1}):
        rows += _gallery(results["gallery"])
    if "error" not in results.get("coldstart", {"error": 1}):
        rows += _daemon(results["coldstart"])
    return "Targets", ["target", "measured", "verdict"], rows
