"""Tables (rich on the terminal, markdown in results.md) and plots from the results dict."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table as RichTable

from benchmarks import multicam, plots, realframes, targets
from benchmarks.common import console

Table = tuple[str, list[str], list[list[str]]]


def f(value: object, digits: int = 1) -> str:
    """A number for a table ('-' when absent)."""
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _files(files: dict[str, str]) -> str:
    return " ".join(v.split(".")[0] + "." + v.split(".")[1] for v in files.values())


def stage_table(res: dict) -> list[Table]:
    """Section 1: one row per frame, backend and precision."""
    heads = [
        "frame",
        "backend",
        "precision",
        "faces",
        "decode",
        "detect",
        "align",
        "embed",
        "match",
        "detect→match",
        "files that ran",
    ]
    rows = []
    for r in sorted(res.get("rows", []), key=lambda r: (r["frame"], r["backend"], r["precision"])):
        s = r["stages_ms"]
        rows.append(
            [
                r["frame"],
                r["backend"],
                r["precision"],
                str(r["faces_found"]),
                *(f(s[k]["median"], 2) for k in ("decode", "detect", "align", "embed", "match")),
                f(r["detect_to_match_ms"]["median"], 2),
                _files(r["files"]),
            ]
        )
    title = f"Per-stage latency, ms (median of {res.get('repetitions')}, one thread)"
    return [(title, heads, rows)]


def e2e_table(res: dict) -> list[Table]:
    """Section 2: pipeline frame rate per clip and backend."""
    heads = [
        "backend",
        "clip",
        "size",
        "frames",
        "process ms (median)",
        "p90",
        "fps (process)",
        "fps (+decode)",
        "embeds",
        "events",
    ]
    rows = [
        [
            r["backend"],
            r["clip"],
            r["size"],
            str(r["frames"]),
            f(r["process_ms"]["median"]),
            f(r["process_ms"]["p90"]),
            f(r["fps_process"]),
            f(r["fps_with_decode"]),
            f(r["counters"].get("embeddings", 0), 0),
            ", ".join(r["events"]) or "-",
        ]
        for r in res.get("rows", [])
    ]
    return [("End-to-end Pipeline.process on the clips (fp32, one thread)", heads, rows)]


PEER_HEADS = ["frame", "faces fg/peer", "facegate ORT ms", "facegate LiteRT ms", "peer ms",
              "× ORT", "× LiteRT", "ms/face ORT", "ms/face LiteRT", "ms/face peer",
              "peer CPU/wall"]  # fmt: skip
PEER_TITLE = (
    "Speed vs face_recognition (HOG, upsample 1 + encodings): × = peer time / facegate time"
)


def detector_tables(res: dict) -> list[Table]:
    """MTCNN against facenet-pytorch: exactness on shared/faces, speed on the frames."""
    if "speed" not in res:
        return []
    heads = ["backend", "images", "faces (ref / facegate)", "found by one only",
             "box px max", "landmark px max", "px max, coords < 1024", "float32 steps max",
             "score max diff"]  # fmt: skip
    rows = []
    spread = res.get("reference_spread")
    named = list(res["exactness"].items())
    if spread:
        named.append(("facenet-pytorch native convs vs oneDNN", spread))
    for backend, e in named:
        small = e.get("px_under_1024")
        steps = e.get("float32_steps", {}).get("max")
        rows.append([backend, str(e["images"]), f"{e['ref_faces']} / {e['faces']}",
                     str(len(e["only_ref"]) + len(e["only_ours"])),
                     f"{e['box_px']['max']:.1e}", f"{e['landmark_px']['max']:.1e}",
                     "-" if small is None else f"{small:.1e}",
                     "-" if steps is None else f"{steps:.0f}",
                     f"{e['score']['max']:.1e}"])  # fmt: skip
    out: list[Table] = [("MTCNN vs facenet-pytorch 2.6.0: same pixels, crop=clip", heads, rows)]
    heads = ["frame", "faces", "ORT ms", "LiteRT ms", "facenet-pytorch ms", "ORT ×", "LiteRT ×"]
    rows = []
    for r in res["speed"]:
        ms = r["ms"]
        rows.append([r["frame"], str(r["faces"]["onnxruntime"]), f(ms["onnxruntime"]["median"]),
                     f(ms["litert"]["median"]), f(ms["facenet-pytorch"]["median"]),
                     f(r["ratio"]["onnxruntime"]), f(r["ratio"]["litert"])])  # fmt: skip
    out.append(("MTCNN detection time (min face 40, one thread)", heads, rows))
    return out


def _peer_row(r: dict) -> list[str]:
    o, lt = r["onnxruntime"], r["litert"]
    return [r["frame"], f"{o['faces']}/{r['peer_faces']}", f(o["ms"]["median"]),
            f(lt["ms"]["median"]), f(r["peer_ms"]["median"]), f(o["ratio"]), f(lt["ratio"]),
            f(o["ms_per_face"]), f(lt["ms_per_face"]), f(r["peer_ms_per_face"]),
            f(r.get("peer_cpu_per_wall"), 2)]  # fmt: skip


def peer_tables(res: dict) -> list[Table]:
    """Section 3: speed ratios and verification accuracy against face_recognition."""
    if "speed" not in res:
        return []
    out: list[Table] = [(PEER_TITLE, PEER_HEADS, [_peer_row(r) for r in res["speed"]])]
    acc = res.get("accuracy")
    if isinstance(acc, list):
        out.append(accuracy_table(acc))
    return out


def accuracy_table(sets: list[dict]) -> Table:
    """Verification: 10-fold accuracy, TAR@FAR=1e-2, detection failures."""
    heads = [
        "pairs",
        "system",
        "images failed",
        "pairs scored",
        "10-fold acc",
        "± std",
        "acc (fail=wrong)",
        "threshold",
        "TAR@FAR=1e-2",
        "AUC",
    ]
    rows = []
    for s in sets:
        name = f"{s['name']} ({s['images']} img, {s['genuine_pairs']}+/{s['impostor_pairs']}-)"
        for key, label in (
            ("facegate", "facegate"),
            ("peer", "face_recognition"),
            ("facegate_common", "facegate, common pairs"),
            ("peer_common", "face_recognition, common pairs"),
        ):
            m = s[key]
            rows.append(
                [
                    name,
                    label,
                    str(m["images_failed"]),
                    str(m["pairs_scored"]),
                    f(m["accuracy"], 4),
                    f(m["accuracy_std"], 4),
                    f(m["accuracy_failures_wrong"], 4),
                    f(m["threshold"], 3),
                    f(m["tar_at_far_1e-2"], 4),
                    f(m["auc"], 4),
                ]
            )
    return "Verification accuracy (same photos, same pairs)", heads, rows


EXACT_HEADS = ["templates", "query ms (median)", "p90", "1 BLAS thread ms", "bandwidth bound ms",
               "build ms", "matrix MB", "RSS growth MB"]  # fmt: skip


def _exact_row(r: dict) -> list[str]:
    single = (r.get("query_ms_one_blas_thread") or {}).get("median")
    return [f"{r['templates']:,}", f(r["query_ms"]["median"], 3), f(r["query_ms"]["p90"], 3),
            f(single, 3), f(r.get("bandwidth_bound_ms"), 3), f(r["build_ms"]),
            f(r["matrix_mb"]), f(r["rss_growth_mb"])]  # fmt: skip


def _profile_table(exact: list[dict]) -> list[Table]:
    rows = [
        [f"{r['templates']:,}", p["function"], f(p["ms_per_search"], 3), f(100 * p["share"], 0)]
        for r in exact
        for p in r.get("profile", [])
    ]
    heads = ["templates", "function (own time)", "ms per search", "% of search"]
    return [("cProfile of ExactMatcher.search (one probe)", heads, rows)] if rows else []


def gallery_tables(res: dict) -> list[Table]:
    """Section 4: exact matcher and approximate indexes."""
    exact = res.get("exact", [])
    title = (
        f"ExactMatcher: one probe, top-{res.get('top_k')} "
        f"(read bandwidth {f(res.get('read_bandwidth_gbs'))} GB/s)"
    )
    out: list[Table] = [(title, EXACT_HEADS, [_exact_row(r) for r in exact])]
    out.extend(_profile_table(exact))
    ann = res.get("ann")
    if isinstance(ann, list):
        out.append(ann_table(ann))
    return out


def ann_table(rows_in: list[dict]) -> Table:
    """One row per index, size and search effort."""
    heads = [
        "index",
        "templates",
        "build s",
        "index MB",
        "effort",
        "query ms",
        "recall@1 all",
        "noisy copies",
        "random probes",
    ]
    rows = []
    for r in rows_in:
        if "error" in r:
            rows.append([r["lib"], f"{r['templates']:,}", "error: " + r["error"][:60]] + [""] * 6)
            continue
        for p in r["sweep"]:
            rec = p["recall"]
            rows.append(
                [
                    r["lib"],
                    f"{r['templates']:,}",
                    f(r["build_s"]),
                    f(r["index_mb"]),
                    str(p["effort"]),
                    f(p["median_ms"], 3),
                    f(rec["all"], 3),
                    f(rec["noisy_copies"], 3),
                    f(rec["random"], 3),
                ]
            )
    return "Approximate indexes (one thread; effort = ef or nprobe)", heads, rows


def all_tables(results: dict) -> list[Table]:
    """Every table the results allow."""
    from benchmarks.report_system import coldstart_table, limits_tables

    makers = {
        "stages": stage_table,
        "e2e": e2e_table,
        "realframes": realframes.tables,
        "detector": detector_tables,
        "peer": peer_tables,
        "gallery": gallery_tables,
        "coldstart": coldstart_table,
        "limits": limits_tables,
        "multicam": multicam.tables,
    }
    out: list[Table] = []
    for name, make in makers.items():
        if name in results and "error" not in results[name]:
            out.extend(make(results[name]))
    out.append(targets.table(results))
    return out


def markdown(tables: list[Table]) -> str:
    """The tables as markdown."""
    parts = []
    for title, heads, rows in tables:
        parts.append(f"### {title}\n")
        parts.append("| " + " | ".join(heads) + " |")
        parts.append("|" + "---|" * len(heads))
        parts.extend("| " + " | ".join(r) + " |" for r in rows)
        parts.append("")
    return "\n".join(parts)


def show(results: dict, out: Path) -> None:
    """Print every table, write results.md and the plots."""
    tables = all_tables(results)
    for title, heads, rows in tables:
        table = RichTable(title=title, title_justify="left")
        for h in heads:
            table.add_column(h)
        for r in rows:
            table.add_row(*r)
        console.print(table)
    (out / "results.md").write_text(markdown(tables))
    for path in plots.save_all(results, out):
        console.print(f"plot: {path}")
