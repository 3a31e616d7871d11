"""Stored maps: one row per computed map (cached by key) and its points, one per record."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.store.migrations import now
from app.store.notebook import Notebook, inserted_id

MapPoint = tuple[int, float, float, int, float, float]  # record_id, x, y, cluster, outlier, centroid_distance
POINT_COLUMNS = ("outlier", "centroid_distance")


@dataclass(frozen=True)
class StoredMap:
    id: int
    method: str
    params: dict[str, Any]
    labels: dict[int, str]


def _stored_map(row: Any) -> StoredMap:
    return StoredMap(row[0], row[1], json.loads(row[2]), {int(k): v for k, v in json.loads(row[3]).items()})


def latest_map(nb: Notebook) -> StoredMap | None:
    """The most recently computed map, if any."""
    row = nb.conn.execute("SELECT id, method, params, labels FROM maps ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else _stored_map(row)


def latest_map_id(nb: Notebook) -> int | None:
    """The id of the most recently computed map, if any."""
    row = nb.conn.execute("SELECT id FROM maps ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else int(row[0])


def cached_map(nb: Notebook, cache_key: str) -> StoredMap | None:
    """The map stored under ``cache_key``, if any."""
    row = nb.conn.execute("SELECT id, method, params, labels FROM maps WHERE cache_key = ?", (cache_key,)).fetchone()
    return None if row is None else _stored_map(row)


def map_points(nb: Notebook, map_id: int) -> list[MapPoint]:
    """A map's points, by record id."""
    cur = nb.conn.cursor()
    cur.row_factory = None  # plain tuples: 20k sqlite3.Row objects, then a tuple of each, cost the window 0.1 s
    return cur.execute("SELECT record_id, x, y, cluster, outlier, centroid_distance FROM map_points "
                       "WHERE map_id = ? ORDER BY record_id", (map_id,)).fetchall()


def map_counts(nb: Notebook, map_id: int) -> tuple[int, int]:
    """(points, clusters) of a map, counted in SQL (its points are not read)."""
    row = nb.conn.execute("SELECT COUNT(*), COUNT(DISTINCT CASE WHEN cluster >= 0 THEN cluster END) "
                          "FROM map_points WHERE map_id = ?", (map_id,)).fetchone()
    return int(row[0]), int(row[1])


def map_point_values(nb: Notebook, map_id: int, column: str) -> list[tuple[int, float | None]]:
    """(record id, ``outlier`` or ``centroid_distance``) of the samples on a map."""
    if column not in POINT_COLUMNS:
        raise ValueError(f"not a map point value: {column!r}")
    return [(r[0], r[1]) for r in nb.conn.execute(
        f"SELECT r.id, p.{column} FROM records r JOIN map_points p ON p.record_id = r.id "
        "WHERE p.map_id = ? AND r.role = 'sample'", (map_id,))]


def save_map(nb: Notebook, cache_key: str, embedder_sha: str, method: str, params: dict[str, Any],
             labels: dict[int, str], points: Sequence[MapPoint]) -> int:
    """Replace the map under ``cache_key`` with this one and its points, in one transaction; returns its id."""
    with nb.transaction() as c:
        c.execute("DELETE FROM maps WHERE cache_key = ?", (cache_key,))
        cur = c.execute("INSERT INTO maps (cache_key, embedder_sha256, method, params, labels, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)", (cache_key, embedder_sha, method, json.dumps(params),
                                                      json.dumps({str(k): v for k, v in labels.items()}), now()))
        map_id = inserted_id(cur)
        c.executemany("INSERT INTO map_points VALUES (?, ?, ?, ?, ?, ?, ?)", [(map_id, *p) for p in points])
    return map_id


def samples_not_on_map(nb: Notebook, map_id: int) -> list[tuple[int, str]]:
    """(id, output) of the samples with an output that have no point on the map."""
    return [(r[0], r[1]) for r in nb.conn.execute(
        "SELECT id, output FROM records WHERE role = 'sample' AND output IS NOT NULL "
        "AND id NOT IN (SELECT record_id FROM map_points WHERE map_id = ?) ORDER BY id", (map_id,))]


def edited_since_map(nb: Notebook, map_id: int) -> list[int]:
    """Ids of the map's records whose text was edited at or after the moment the map was stored."""
    return [r[0] for r in nb.conn.execute(
        "SELECT DISTINCT e.record_id FROM edits e "
        "JOIN map_points p ON p.record_id = e.record_id AND p.map_id = ? "
        "JOIN maps m ON m.id = p.map_id "
        "WHERE e.field = 'output' AND e.created >= m.created_at ORDER BY e.record_id", (map_id,))]
