"""Tables of the system sections: daemon cold start and memory, compute limits."""

from __future__ import annotations

from benchmarks.report import Table, f

COLD_HEADS = ["what", "cold start s", "phases (import / open / first frame) s", "RSS max MB",
              "RSS steady MB", "notes"]  # fmt: skip
MODEL_HEADS = ["model", "params", "MACs (at shape)", "shape", "ORT ms", "ORT GFLOP/s",
               "LiteRT ms", "LiteRT GFLOP/s"]  # fmt: skip
FRAME_HEADS = ["frame", "levels", "pyramid px", "R/O-Net crops", "MMACs P/R/O/E", "total MMACs",
               "lower bound ms", "measured ms (detect→match)"]  # fmt: skip


def _steps(steps: dict[str, float]) -> list[str]:
    names = list(steps)
    return [
        f(steps[n]) + f" (+{f(steps[n] - steps[names[k - 1]])})" if k else f(steps[n])
        for k, n in enumerate(names)
    ]


def _cli_row(cli: dict) -> list[str]:
    if "skipped" in cli:
        return ["facegate run", "-", "-", "-", "-", cli["skipped"]]
    clip = cli["clip"]
    note = f"clip rc={clip['rc']}, {clip.get('events', 0)} events"
    if cli.get("failed"):
        note += "; failed: " + cli["failed"][0].strip().splitlines()[-1][:80]
    logged = f"daemon log: first frame at {f(cli.get('first_frame_logged_s'), 2)} s"
    return ["facegate run (1-JPEG folder; Hamilton clip)", f(cli["cold_start_s"], 2), logged,
            f(clip["rss_max_mb"]), f(clip["rss_steady_mb"]), note]  # fmt: skip


def _probe_row(probe: dict) -> list[str]:
    ph = probe.get("phases_s", {})
    phases = " / ".join(f(ph.get(k), 2) for k in ("import_s", "open_s", "first_frame_s"))
    return ["from_bundle + identify (fresh process; clip via Pipeline)",
            f(probe["cold_start_s"], 2), phases, f(probe["clip"]["rss_max_mb"]),
            f(probe["clip"]["rss_steady_mb"]),
            f"peak (VmHWM) {f(probe.get('clip_peak_rss_mb'))} MB"]  # fmt: skip


def _memory_table(probe: dict) -> list[Table]:
    steps = probe.get("rss_mb_after") or {}
    if not steps:
        return []
    rows = [[str(probe.get("backend")), *_steps(steps)]]
    ort = (probe.get("clip_onnxruntime") or {}).get("rss_mb_after") or {}
    if list(ort) == list(steps):
        rows.append(["OnnxRuntimeBackend", *_steps(ort)])
    title = "Where the stand-in's resident memory goes (MiB, cumulative after each step)"
    return [(title, ["backend", *steps], rows)]


def coldstart_table(res: dict) -> list[Table]:
    """Section 5: cold start and memory."""
    rows = [_cli_row(res["cli"])] if res.get("cli") else []
    probe = res.get("probe", {})
    if probe:
        rows.append(_probe_row(probe))
    return [("Daemon cold start and memory", COLD_HEADS, rows), *_memory_table(probe)]


def _model_rows(res: dict) -> list[list[str]]:
    speed = {(m["backend"], m["role"]): m for m in res.get("model_speed", [])}
    rows = []
    for role, m in res["models"].items():
        o, lt = speed.get(("onnxruntime", role), {}), speed.get(("litert", role), {})
        rows.append([role, f"{m['params']:,}", f"{m['macs'] / 1e6:.1f} M", str(m["macs_shape"]),
                     f(o.get("ms"), 2), f(o.get("gflops")), f(lt.get("ms"), 2),
                     f(lt.get("gflops"))])  # fmt: skip
    return rows


def _frame_rows(res: dict) -> list[list[str]]:
    rows = []
    for r in res["frames"]:
        m, c = r["macs"], r["counts"]
        measured = ", ".join(f"{k} {v:.1f}" for k, v in r["measured_ms"].items())
        macs = "/".join(f"{m[k] / 1e6:.0f}" for k in ("pnet", "rnet", "onet", "embedder"))
        rows.append([r["frame"], str(r["pyramid_levels"]), f"{r['pyramid_pixels']:,}",
                     f"{c['rnet_crops']}/{c['onet_crops']}", macs, f(r["total_macs"] / 1e6, 0),
                     f(r["lower_bound_ms"], 2), measured])  # fmt: skip
    return rows


def limits_tables(res: dict) -> list[Table]:
    """Section 6: MACs, attainable GFLOP/s and the lower bound per frame."""
    if "models" not in res:
        return []
    g = res["gflops"]
    peak = (
        f"attainable: numpy matmul as-is {f(g['numpy_matmul_as_is'])}, 1-thread env "
        f"{f(g['numpy_matmul_1_thread'])}, ORT Conv {f(g['onnxruntime_conv'])} GFLOP/s"
    )
    return [
        (f"Models ({peak})", MODEL_HEADS, _model_rows(res)),
        ("Per-frame work and the compute lower bound", FRAME_HEADS, _frame_rows(res)),
    ]
