"""Criteria (LLM judges) and validator rules kept in the notebook, versioned like prompts,
and what a criterion reads about a record (its text, input row and rendered prompt).

Each save of a changed spec is a new version (``parent_id`` links it to the one it
replaced); saving an unchanged spec returns the latest version. Whether a criterion is
active belongs to the criterion, so every version of a name carries the same flag.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.core.errors import StudioError
from app.store.migrations import now
from app.store.notebook import Notebook, inserted_id

KINDS = ("criterion", "rule")


@dataclass(frozen=True)
class CriterionVersion:
    id: int
    kind: str  # criterion | rule
    name: str
    version: int
    spec: dict[str, Any]  # the [[criterion]] / [[rule]] table's settings
    hash: str
    parent_id: int | None
    active: bool
    created: str

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


def spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _version(row: Any) -> CriterionVersion:
    return CriterionVersion(row["id"], row["kind"], row["name"], row["version"], json.loads(row["spec"]),
                            row["hash"], row["parent_id"], bool(row["active"]), row["created"])


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be criterion or rule, not {kind!r}")


def save_version(nb: Notebook, kind: str, name: str, spec: dict[str, Any],
                 active: bool | None = None) -> tuple[CriterionVersion, bool]:
    """Save ``spec`` as the newest version of ``name``; returns (version, created).

    An unchanged spec creates nothing (``active``, if given, is still applied). A new
    name is active unless ``active`` is False; a new version keeps the name's flag.
    """
    _check_kind(kind)
    if not name.strip():
        raise StudioError(f"a {kind} needs a name")
    h = spec_hash(spec)
    with nb.transaction() as c:
        latest = c.execute("SELECT * FROM criteria_versions WHERE kind = ? AND name = ? ORDER BY version DESC LIMIT 1",
                           (kind, name)).fetchone()
        flag = (True if latest is None else bool(latest["active"])) if active is None else active
        if latest is not None and latest["hash"] == h:
            if bool(latest["active"]) != flag:
                c.execute("UPDATE criteria_versions SET active = ? WHERE kind = ? AND name = ?", (int(flag), kind, name))
            row = c.execute("SELECT * FROM criteria_versions WHERE id = ?", (latest["id"],)).fetchone()
            return _version(row), False
        cur = c.execute(
            "INSERT INTO criteria_versions (kind, name, version, spec, hash, parent_id, active, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (kind, name, 1 if latest is None else latest["version"] + 1,
             json.dumps(spec, sort_keys=True, ensure_ascii=False), h, None if latest is None else latest["id"],
             int(flag), now()))
        new_id = inserted_id(cur)
        c.execute("UPDATE criteria_versions SET active = ? WHERE kind = ? AND name = ?", (int(flag), kind, name))
        row = c.execute("SELECT * FROM criteria_versions WHERE id = ?", (new_id,)).fetchone()
    return _version(row), True


def latest_versions(nb: Notebook, kind: str | None = None, *, active_only: bool = False) -> list[CriterionVersion]:
    """The newest version of every criterion/rule (of one kind, if given), in the order they were first saved."""
    sql = ("SELECT * FROM criteria_versions v WHERE version = (SELECT MAX(version) FROM criteria_versions w "
           "WHERE w.kind = v.kind AND w.name = v.name)")
    params: list[Any] = []
    if kind is not None:
        _check_kind(kind)
        sql += " AND kind = ?"
        params.append(kind)
    if active_only:
        sql += " AND active = 1"
    sql += (" ORDER BY kind, (SELECT MIN(id) FROM criteria_versions w WHERE w.kind = v.kind AND w.name = v.name)")
    return [_version(r) for r in nb.conn.execute(sql, params)]


def get_version(nb: Notebook, kind: str, name: str, version: int | None = None) -> CriterionVersion | None:
    """One version of ``name`` (the newest when ``version`` is None), or None."""
    _check_kind(kind)
    if version is None:
        row = nb.conn.execute("SELECT * FROM criteria_versions WHERE kind = ? AND name = ? ORDER BY version DESC "
                              "LIMIT 1", (kind, name)).fetchone()
    else:
        row = nb.conn.execute("SELECT * FROM criteria_versions WHERE kind = ? AND name = ? AND version = ?",
                              (kind, name, version)).fetchone()
    return None if row is None else _version(row)


def version_by_id(nb: Notebook, version_id: int) -> CriterionVersion | None:
    row = nb.conn.execute("SELECT * FROM criteria_versions WHERE id = ?", (version_id,)).fetchone()
    return None if row is None else _version(row)


def version_history(nb: Notebook, kind: str, name: str) -> list[CriterionVersion]:
    """Every version of ``name``, oldest first."""
    _check_kind(kind)
    return [_version(r) for r in nb.conn.execute(
        "SELECT * FROM criteria_versions WHERE kind = ? AND name = ? ORDER BY version", (kind, name))]


def set_active(nb: Notebook, kind: str, name: str, active: bool) -> bool:
    """Switch a criterion/rule on or off; False when there is no such name."""
    _check_kind(kind)
    with nb.transaction() as c:
        cur = c.execute("UPDATE criteria_versions SET active = ? WHERE kind = ? AND name = ?", (int(active), kind, name))
    return cur.rowcount > 0


def count_versions(nb: Notebook, kind: str) -> int:
    _check_kind(kind)
    n: int = nb.conn.execute("SELECT COUNT(*) FROM criteria_versions WHERE kind = ?", (kind,)).fetchone()[0]
    return n


# -- what a criterion reads about a record ---------------------------------------------------------


@dataclass(frozen=True)
class SampleContext:
    """A sample as a judge or validator sees it."""

    record_id: int
    output: str
    completion_tokens: int | None
    variables: dict[str, Any]  # the input row's variables
    prompt: str  # the rendered prompt ("" for imported records)


def _context(row: Any) -> SampleContext:
    try:
        variables = json.loads(row["variables"] or "{}")
    except json.JSONDecodeError:
        variables = {}
    return SampleContext(row["id"], row["output"], row["completion_tokens"],
                         variables if isinstance(variables, dict) else {}, row["prompt"] or "")


def sample_contexts(nb: Notebook, record_ids: Sequence[int] | None = None) -> list[SampleContext]:
    """The samples with text (those of ``record_ids`` only, if given), by id."""
    sql = ("SELECT id, output, completion_tokens, variables, prompt FROM records "
           "WHERE role = 'sample' AND output IS NOT NULL")
    params: list[Any] = []
    if record_ids is not None:
        sql += " AND id IN (SELECT value FROM json_each(?))"
        params.append(json.dumps(list(record_ids)))
    return [_context(r) for r in nb.conn.execute(sql + " ORDER BY id", params)]


def record_context(nb: Notebook, record_id: int) -> SampleContext:
    row = nb.conn.execute("SELECT id, output, completion_tokens, variables, prompt FROM records WHERE id = ?",
                          (record_id,)).fetchone()
    if row is None:
        raise StudioError(f"no record with id {record_id}")
    if row["output"] is None:
        row = dict(row) | {"output": ""}
    return _context(row)


def labelled_contexts(nb: Notebook, criterion: str) -> list[tuple[SampleContext, bool]]:
    """The records a person labelled for ``criterion``, with their answer (True = yes, passes)."""
    rows = nb.conn.execute(
        "SELECT r.id, r.output, r.completion_tokens, r.variables, r.prompt, l.value FROM labels l "
        "JOIN records r ON r.id = l.record_id WHERE l.criterion = ? AND r.output IS NOT NULL ORDER BY r.id",
        (criterion,)).fetchall()
    return [(_context(r), bool(r["value"])) for r in rows]


def score_version_id(nb: Notebook, name: str) -> int | None:
    """The criterion version that made the newest ``name`` scores (None: from a file, or none)."""
    row = nb.conn.execute("SELECT criterion_version_id FROM scores WHERE name = ? ORDER BY created DESC LIMIT 1",
                          (name,)).fetchone()
    return None if row is None else row[0]
