"""Approximate-index candidates (usearch, hnswlib, faiss) as a one-shot worker in the ANN venv.

Reads one JSON request on stdin: which index, the gallery and probes as .npy files, top-k and the
search-effort values to sweep. Builds the index on one thread, then times one probe per query
(top-k) for every probe at each effort, and answers with build time, resident-memory growth and,
per effort, the latency summary and each probe's top-1 row id (the parent computes recall).
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

HNSW_M = 16  # graph degree: the usual default of hnswlib/usearch
EF_CONSTRUCTION = 128  # usearch's default expansion_add; hnswlib's own default is 200
FAISS_HNSW_M = 32  # faiss' common IndexHNSWFlat setting
IVF_TRAIN_PER_LIST = 64  # faiss warns below 39 training points per list


def rss_mb() -> float:
    """Resident set size of this process in MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _usearch(data: np.ndarray, dtype: str) -> tuple[object, object]:
    from usearch.index import Index

    index = Index(
        ndim=data.shape[1],
        metric="ip",
        dtype=dtype,
        connectivity=HNSW_M,
        expansion_add=EF_CONSTRUCTION,
    )
    index.add(np.arange(len(data)), data, threads=1)

    def search(q: np.ndarray, k: int, ef: int) -> int:
        index.expansion_search = ef
        return int(index.search(q, k, threads=1).keys[0])

    return index, search


def _hnswlib(data: np.ndarray) -> tuple[object, object]:
    import hnswlib

    index = hnswlib.Index(space="ip", dim=data.shape[1])
    index.init_index(max_elements=len(data), ef_construction=EF_CONSTRUCTION, M=HNSW_M)
    index.set_num_threads(1)
    index.add_items(data, np.arange(len(data)))

    def search(q: np.ndarray, k: int, ef: int) -> int:
        index.set_ef(max(ef, k))
        return int(index.knn_query(q, k=k)[0][0, 0])

    return index, search


def _faiss(data: np.ndarray, kind: str) -> tuple[object, object]:
    import faiss

    faiss.omp_set_num_threads(1)
    d = data.shape[1]
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, FAISS_HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = EF_CONSTRUCTION
    else:  # IVF-Flat: 4 sqrt(n) lists (faiss' guideline), k-means on 64 points per list
        nlist = max(1, int(4 * np.sqrt(len(data))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(data[: min(len(data), IVF_TRAIN_PER_LIST * nlist)])
    index.add(data)

    def search(q: np.ndarray, k: int, effort: int) -> int:
        if kind == "hnsw":
            index.hnsw.efSearch = effort
        else:
            index.nprobe = effort
        return int(index.search(q[None], k)[1][0, 0])

    return index, search


BUILDERS = {
    "usearch-f32": lambda d: _usearch(d, "f32"),
    "usearch-i8": lambda d: _usearch(d, "i8"),
    "hnswlib": _hnswlib,
    "faiss-hnsw": lambda d: _faiss(d, "hnsw"),
    "faiss-ivf": lambda d: _faiss(d, "ivf"),
}


def bench(req: dict) -> dict:
    """Build one index and sweep its search effort."""
    data = np.load(req["data"])
    probes = np.load(req["probes"])
    before = rss_mb()
    start = time.perf_counter()
    index, search = BUILDERS[req["lib"]](data)
    build_s = time.perf_counter() - start
    grown = rss_mb() - before
    sweep = []
    for effort in req["efforts"]:
        ms, top1 = [], []
        for q in probes:
            t0 = time.perf_counter()
            top1.append(search(q, req["k"], effort))
            ms.append(1000 * (time.perf_counter() - t0))
        p50, p90 = np.percentile(ms, [50, 90])
        sweep.append({"effort": effort, "median_ms": p50, "p90_ms": p90, "top1": top1})
    del index
    return {"build_s": build_s, "index_mb": grown, "data_mb": data.nbytes / 2**20, "sweep": sweep}


def main() -> None:
    """Answer the one request on stdin."""
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr
    req = json.loads(sys.stdin.readline())
    try:
        out = {"ok": True, **bench(req)}
    except Exception as err:  # report to the parent
        out = {"ok": False, "error": f"{type(err).__name__}: {err}"}
    reply.write(json.dumps(out) + "\n")
    reply.flush()


if __name__ == "__main__":
    main()
