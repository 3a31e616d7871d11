"""Dataset versions: frozen kept sets (``dataset_versions`` and ``version_records``, migration 006)
and what a version's manifest reads about the records it freezes.

A version is written once, in one transaction, and never changed: the migration's triggers
abort any UPDATE or DELETE, so a version is exactly what was shipped whatever happens to the
notebook afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.core.errors import StudioError
from app.store.migrations import now
from app.store.notebook import Notebook, inserted_id


@dataclass(frozen=True)
class DatasetVersion:
    id: int
    tag: str
    message: str
    parent_id: int | None
    parent_tag: str | None
    content_hash: str
    manifest: dict[str, Any]
    created: str
    records: int


@dataclass(frozen=True)
class VersionRecord:
    """One record as a version holds it (or as the kept set holds it now)."""

    record_id: int
    text_hash: str
    output: str
    status: str
    scores: dict[str, float | None]
    cluster: int | None


_VERSION_SQL = (
    "SELECT v.*, p.tag AS parent_tag, (SELECT COUNT(*) FROM version_records r WHERE r.version_id = v.id) AS n "
    "FROM dataset_versions v LEFT JOIN dataset_versions p ON p.id = v.parent_id"
)


def _version(row: Any) -> DatasetVersion:
    return DatasetVersion(row["id"], row["tag"], row["message"] or "", row["parent_id"], row["parent_tag"],
                          row["content_hash"], json.loads(row["manifest"]), row["created"], row["n"])


def tag_exists(nb: Notebook, tag: str) -> bool:
    return nb.conn.execute("SELECT 1 FROM dataset_versions WHERE tag = ?", (tag,)).fetchone() is not None


def save_version(nb: Notebook, tag: str, message: str, content_hash: str, manifest: dict[str, Any],
                 records: Sequence[VersionRecord]) -> DatasetVersion:
    """Write a version and its records in one transaction; its parent is the newest version before it.

    A tag that exists is refused (a :class:`StudioError`) and nothing is written.
    """
    with nb.transaction() as c:
        if c.execute("SELECT 1 FROM dataset_versions WHERE tag = ?", (tag,)).fetchone() is not None:
            raise StudioError(f"a version tagged {tag!r} exists; versions never change: choose a new tag")
        parent = c.execute("SELECT MAX(id) FROM dataset_versions").fetchone()[0]
        cur = c.execute(
            "INSERT INTO dataset_versions (tag, message, parent_id, content_hash, manifest, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (tag, message, parent, content_hash, json.dumps(manifest, sort_keys=True, ensure_ascii=False), now()))
        version_id = inserted_id(cur)
        c.executemany(
            "INSERT INTO version_records (version_id, record_id, text_hash, output, status, scores, cluster) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(version_id, r.record_id, r.text_hash, r.output, r.status,
              json.dumps(r.scores, sort_keys=True, ensure_ascii=False), r.cluster) for r in records])
        row = c.execute(_VERSION_SQL + " WHERE v.id = ?", (version_id,)).fetchone()
    return _version(row)


def list_versions(nb: Notebook) -> list[DatasetVersion]:
    """Every version, oldest first, with its parent's tag and its number of records."""
    return [_version(r) for r in nb.conn.execute(_VERSION_SQL + " ORDER BY v.id")]


def get_version(nb: Notebook, tag: str) -> DatasetVersion | None:
    row = nb.conn.execute(_VERSION_SQL + " WHERE v.tag = ?", (tag,)).fetchone()
    return None if row is None else _version(row)


def version_records(nb: Notebook, version_id: int) -> list[VersionRecord]:
    """A version's records as they were frozen, by record id."""
    return [VersionRecord(r["record_id"], r["text_hash"], r["output"], r["status"], json.loads(r["scores"]),
                          r["cluster"])
            for r in nb.conn.execute("SELECT * FROM version_records WHERE version_id = ? ORDER BY record_id",
                                     (version_id,))]


# -- what a snapshot of the kept set reads -----------------------------------------------------------


def kept_rows(nb: Notebook, record_ids: Sequence[int]) -> list[tuple[int, str, str]]:
    """(id, output, status) of each of ``record_ids`` that has text, by id."""
    return [(r[0], r[1], r[2]) for r in nb.conn.execute(
        "SELECT id, output, status FROM records WHERE output IS NOT NULL AND id IN (SELECT value FROM json_each(?)) "
        "ORDER BY id", (json.dumps(list(record_ids)),))]


def prompt_versions_of(nb: Notebook, record_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The prompt versions (name, version, hash) the records were generated from, with how many records each."""
    rows = nb.conn.execute(
        "SELECT p.name, p.version, p.hash, COUNT(*) AS n FROM records r JOIN prompt_versions p "
        "ON p.id = r.prompt_version_id WHERE r.id IN (SELECT value FROM json_each(?)) "
        "GROUP BY p.id ORDER BY p.name, p.version", (json.dumps(list(record_ids)),))
    return [{"name": r[0], "version": r[1], "hash": r[2], "records": r[3]} for r in rows]


def run_models_of(nb: Notebook, record_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The models (backend, file name, sha256) of the runs that generated the records, with record counts."""
    rows = nb.conn.execute(
        "SELECT u.backend, u.model_path, u.model_sha256, COUNT(*) FROM records r JOIN runs u ON u.id = r.run_id "
        "WHERE r.id IN (SELECT value FROM json_each(?)) GROUP BY u.backend, u.model_path, u.model_sha256 "
        "ORDER BY u.backend, u.model_sha256, u.model_path", (json.dumps(list(record_ids)),))
    return [{"backend": r[0], "model_path": r[1], "model_sha256": r[2], "records": r[3]} for r in rows]


def score_sources_of(nb: Notebook, record_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Per score name on the records: its kind, the step that made it and the model hash (judges) it used."""
    rows = nb.conn.execute(
        "SELECT s.name, s.kind, s.step_id, st.kind, st.name, COALESCE(s.model_sha256, st.model_sha256), "
        "s.criterion_version_id, COUNT(*) FROM scores s LEFT JOIN steps st ON st.id = s.step_id "
        "WHERE s.record_id IN (SELECT value FROM json_each(?)) "
        "GROUP BY s.name, s.kind, s.step_id, COALESCE(s.model_sha256, st.model_sha256), s.criterion_version_id "
        "ORDER BY s.name, s.step_id", (json.dumps(list(record_ids)),))
    return [{"score": r[0], "kind": r[1], "step_id": r[2], "step_kind": r[3], "step_name": r[4], "model_sha256": r[5],
             "criterion_version_id": r[6], "records": r[7]} for r in rows]


def step_settings(nb: Notebook, step_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """step id -> {kind, name, settings, model_sha256} of each of ``step_ids`` that exists."""
    return {r[0]: {"kind": r[1], "name": r[2], "settings": json.loads(r[3]), "model_sha256": r[4]}
            for r in nb.conn.execute("SELECT id, kind, name, settings, model_sha256 FROM steps "
                                     "WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(step_ids)),))}


def trust_overrides(nb: Notebook) -> list[dict[str, Any]]:
    """The person's trust decisions per criterion (what lets a judge filter, or stops it)."""
    return [{"criterion": r[0], "trusted": bool(r[1]), "author": r[2], "reason": r[3] or ""}
            for r in nb.conn.execute("SELECT criterion, trusted, author, reason FROM trust_overrides ORDER BY criterion")]
