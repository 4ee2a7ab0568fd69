"""SQL side of the unknown-face store: place a face in a cluster, merge, split, expire, summarise.

Each function runs inside the transaction of its caller, ``UnknownStore``.
A cluster row keeps ``total``, the sum of its members' unit embeddings, so joining is one update;
after sightings leave (retention, split) the sum is recomputed from those that remain.
"""

from __future__ import annotations

import sqlite3
import time

import numpy as np

from facegate.gallery import clusters as cl
from facegate.gallery.unknown_types import ClusterSummary, Retention

DAY_S = 86400.0
HOUR_S = 3600.0


def _blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def _vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def _clusters(conn: sqlite3.Connection, model_id: str) -> tuple[list[int], list[str], np.ndarray]:
    rows = conn.execute(
        "SELECT id, state, total FROM unknown_clusters WHERE model_id = ? ORDER BY id", (model_id,)
    ).fetchall()
    if not rows:
        return [], [], np.empty((0, 0), np.float32)
    return [r[0] for r in rows], [r[1] for r in rows], np.stack([_vector(r[2]) for r in rows])


def place(
    conn: sqlite3.Connection, model_id: str, vector: np.ndarray, threshold: float, now: float
) -> int:
    """The id of the cluster ``vector`` joins (its sum updated), or of a new one it starts."""
    ids, _, totals = _clusters(conn, model_id)
    best, similarity = cl.nearest(totals, vector)
    if best >= 0 and similarity >= threshold:
        conn.execute(
            "UPDATE unknown_clusters SET total = ? WHERE id = ?",
            (_blob(totals[best] + vector), ids[best]),
        )
        return ids[best]
    cursor = conn.execute(
        "INSERT INTO unknown_clusters (state, model_id, total, created) VALUES ('open', ?, ?, ?)",
        (model_id, _blob(vector), now),
    )
    return int(cursor.lastrowid or 0)


def tidy(
    conn: sqlite3.Connection, model_id: str, cluster_id: int, sighting_id: int, threshold: float
) -> int:
    """Merge clusters the grown one now reaches, split it if its members form two groups;
    return the cluster that holds ``sighting_id`` afterwards."""
    cluster_id = _merge(conn, model_id, cluster_id, threshold)
    _split(conn, model_id, cluster_id, threshold)
    return conn.execute(
        "SELECT cluster_id FROM unknown_sightings WHERE id = ?", (sighting_id,)
    ).fetchone()[0]


def _merge(conn: sqlite3.Connection, model_id: str, cluster_id: int, threshold: float) -> int:
    ids, states, totals = _clusters(conn, model_id)
    here = ids.index(cluster_id)
    labels = dict(conn.execute("SELECT id, label FROM unknown_clusters").fetchall())
    for other in cl.merge_candidates(totals, here, threshold):
        a, b = (here, other) if _rank(states[here]) >= _rank(states[other]) else (other, here)
        if states[b] != "open" and (states[a], labels[ids[a]]) != (states[b], labels[ids[b]]):
            continue  # two decided clusters that disagree stay apart
        conn.execute(
            "UPDATE unknown_sightings SET cluster_id = ? WHERE cluster_id = ?", (ids[a], ids[b])
        )
        conn.execute("DELETE FROM unknown_clusters WHERE id = ?", (ids[b],))
        _recompute(conn, ids[a])
        return _merge(conn, model_id, ids[a], threshold)  # the merged centroid moved
    return cluster_id


def _rank(state: str) -> int:
    """Which cluster survives a merge: a decision (ignored, labelled) outlives an open one."""
    return {"open": 0, "ignored": 1, "labelled": 2}.get(state, 0)


def _split(conn: sqlite3.Connection, model_id: str, cluster_id: int, threshold: float) -> None:
    state = conn.execute(
        "SELECT state FROM unknown_clusters WHERE id = ?", (cluster_id,)
    ).fetchone()[0]
    if state != "open":
        return  # a user's decision about a cluster is not undone by arithmetic
    rows = conn.execute(
        "SELECT id, embedding FROM unknown_sightings WHERE cluster_id = ? ORDER BY id",
        (cluster_id,),
    ).fetchall()
    if len(rows) < cl.SPLIT_MIN_MEMBERS:
        return
    leaving = cl.split(np.stack([_vector(blob) for _, blob in rows]), threshold)
    if leaving is None:
        return
    created = time.time()
    new_id = conn.execute(
        "INSERT INTO unknown_clusters (state, model_id, total, created) VALUES ('open', ?, ?, ?)",
        (model_id, rows[0][1], created),
    ).lastrowid
    moved = [(new_id, sid) for (sid, _), go in zip(rows, leaving.tolist(), strict=True) if go]
    conn.executemany("UPDATE unknown_sightings SET cluster_id = ? WHERE id = ?", moved)
    _recompute(conn, cluster_id)
    _recompute(conn, int(new_id or 0))


def _recompute(conn: sqlite3.Connection, cluster_id: int) -> None:
    """Set a cluster's sum from its sightings; a cluster left empty goes unless it is ignored
    (an ignored stranger keeps suppressing alerts until purged)."""
    blobs = [
        b
        for (b,) in conn.execute(
            "SELECT embedding FROM unknown_sightings WHERE cluster_id = ?", (cluster_id,)
        )
    ]
    if blobs:
        total = np.sum([_vector(b) for b in blobs], axis=0)
        conn.execute(
            "UPDATE unknown_clusters SET total = ? WHERE id = ?", (_blob(total), cluster_id)
        )
    else:
        conn.execute(
            "DELETE FROM unknown_clusters WHERE id = ? AND state != 'ignored'", (cluster_id,)
        )


def delete_sightings(conn: sqlite3.Connection, where: str, args: tuple[object, ...]) -> int:
    """Delete the sightings matching ``where`` and fix up the clusters they left."""
    touched = [
        c
        for (c,) in conn.execute(
            f"SELECT DISTINCT cluster_id FROM unknown_sightings WHERE {where}", args
        )
    ]
    count = conn.execute(f"DELETE FROM unknown_sightings WHERE {where}", args).rowcount
    for cluster_id in touched:
        _recompute(conn, cluster_id)
    return count


def expire(conn: sqlite3.Connection, retention: Retention, now: float) -> int:
    """Apply retention: sightings past the age or beyond the count, recent matches past theirs."""
    removed = 0
    if retention.max_age_days > 0:
        removed += delete_sightings(conn, "time < ?", (now - retention.max_age_days * DAY_S,))
    if retention.max_sightings > 0:
        removed += delete_sightings(
            conn,
            "id NOT IN (SELECT id FROM unknown_sightings ORDER BY time DESC, id DESC LIMIT ?)",
            (retention.max_sightings,),
        )
    cutoff = now - retention.keep_matches_hours * HOUR_S
    conn.execute("DELETE FROM recent_matches WHERE time < ?", (cutoff,))
    return removed


def summaries(conn: sqlite3.Connection, cluster_id: int | None) -> list[ClusterSummary]:
    """Summaries of every cluster (or of one), latest sighting first."""
    where, args = ("WHERE c.id = ?", (cluster_id,)) if cluster_id is not None else ("", ())
    rows = conn.execute(
        "SELECT c.id, COUNT(s.id), MIN(s.time), MAX(s.time), c.state, c.label,"
        " GROUP_CONCAT(DISTINCT s.camera),"
        " (SELECT b.id FROM unknown_sightings b WHERE b.cluster_id = c.id"
        "  ORDER BY b.quality DESC, b.id LIMIT 1)"
        f" FROM unknown_clusters c LEFT JOIN unknown_sightings s ON s.cluster_id = c.id {where}"
        " GROUP BY c.id ORDER BY MAX(s.time) DESC, c.id DESC",
        args,
    ).fetchall()
    return [
        ClusterSummary(
            id=cid,
            size=size,
            first_seen=first or 0.0,
            last_seen=last or 0.0,
            cameras=tuple(sorted(set((cams or "").split(",")) - {""})),
            state=state,
            label=label,
            best_sighting=best,
        )
        for cid, size, first, last, state, label, cams, best in rows
    ]


def best_rows(
    conn: sqlite3.Connection, cluster_id: int, model_id: str, limit: int
) -> list[tuple[bytes, bytes]]:
    """(embedding, JPEG crop) of the cluster's best sightings of ``model_id``, best first."""
    return conn.execute(
        "SELECT embedding, crop FROM unknown_sightings WHERE cluster_id = ? AND model_id = ?"
        " ORDER BY quality DESC, id LIMIT ?",
        (cluster_id, model_id, limit),
    ).fetchall()
