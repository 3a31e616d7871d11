"""Scores, steps and duplicate groups: what the quality funnel writes to the notebook."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from app.store.migrations import now
from app.store.notebook import Notebook, inserted_id
from app.store.views import SCORE_NAMES, ensure_scores_view


@dataclass(frozen=True)
class Score:
    record_id: int
    name: str
    kind: str
    value: float | None
    passed: bool | None
    reason: str = ""
    model_sha256: str | None = None
    criterion_version_id: int | None = None  # the notebook criterion/rule version that made it (None: from a file)


def _insert_step(c: sqlite3.Connection, kind: str, name: str, settings: dict[str, Any],
                 model_sha256: str | None = None) -> int:
    cur = c.execute(
        "INSERT INTO steps (kind, name, settings, model_sha256, created) VALUES (?, ?, ?, ?, ?)",
        (kind, name, json.dumps(settings, sort_keys=True, default=str), model_sha256, now()),
    )
    return inserted_id(cur)


def add_step(nb: Notebook, kind: str, name: str, settings: dict[str, Any], model_sha256: str | None = None) -> int:
    with nb.transaction() as c:
        return _insert_step(c, kind, name, settings, model_sha256)


_UPSERT_SCORE = (
    "INSERT INTO scores (record_id, name, kind, value, passed, reason, step_id, model_sha256, created, "
    "criterion_version_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(record_id, name) DO UPDATE SET "
    "kind = excluded.kind, value = excluded.value, passed = excluded.passed, reason = excluded.reason, "
    "step_id = excluded.step_id, model_sha256 = excluded.model_sha256, created = excluded.created, "
    "criterion_version_id = excluded.criterion_version_id, stale = 0")


def _write_scores(c: sqlite3.Connection, scores: Iterable[Score], step_id: int | None) -> int:
    """Upsert ``scores`` as they come (a generator is never held in memory whole); returns how many."""
    ts = now()
    names: set[str] = set()
    count = 0

    def rows() -> Iterator[tuple[Any, ...]]:
        nonlocal count
        for s in scores:
            names.add(s.name)
            count += 1
            yield (s.record_id, s.name, s.kind, s.value, None if s.passed is None else int(s.passed), s.reason,
                   step_id, s.model_sha256, ts, s.criterion_version_id)

    c.executemany(_UPSERT_SCORE, rows())
    # a new score name gets its column in the records_with_scores view (a cheap check otherwise)
    ensure_scores_view(c, names)
    return count


def save_scores(nb: Notebook, scores: Iterable[Score], step_id: int | None) -> int:
    """Upsert scores (one per record x name) in a single transaction; a score name seen for the
    first time rebuilds the ``records_with_scores`` view in that transaction (app/store/views.py)."""
    with nb.transaction() as c:
        return _write_scores(c, scores, step_id)


def save_step_scores(nb: Notebook, kind: str, name: str, settings: dict[str, Any], scores: Iterable[Score],
                     model_sha256: str | None = None) -> int:
    """A step row and its scores in one transaction (a step shown as run always has its scores);
    returns the step's id.

    Scores given as a list are written at once. Scores computed as they stream (a generator that
    checks each record: validate at a million records makes 7M of them over minutes) are first
    staged in a temporary table of this connection, which takes no lock on the notebook, and
    copied in when the last one is made: the notebook's write lock is held for the copy, not for
    the checking, so the window's edits and other programs write meanwhile. A stop or a kill before
    the copy leaves nothing (the temporary table dies with the connection)."""
    if isinstance(scores, Sequence):
        with nb.transaction() as c:
            step_id = _insert_step(c, kind, name, settings, model_sha256)
            _write_scores(c, scores, step_id)
        return step_id
    names = _stage_scores(nb, scores)
    try:
        with nb.transaction() as c:
            step_id = _insert_step(c, kind, name, settings, model_sha256)
            c.execute(_COPY_STAGED, (step_id, now()))
            ensure_scores_view(c, names)
    finally:
        nb.conn.execute("DROP TABLE IF EXISTS temp.staged_scores")
    return step_id


_COPY_STAGED = (
    "INSERT INTO scores (record_id, name, kind, value, passed, reason, step_id, model_sha256, created, "
    "criterion_version_id) SELECT record_id, name, kind, value, passed, reason, ?, model_sha256, ?, "
    "criterion_version_id FROM temp.staged_scores WHERE true ORDER BY rowid "  # WHERE: SQLite's upsert-from-SELECT rule
    + _UPSERT_SCORE[_UPSERT_SCORE.index("ON CONFLICT"):])


def _stage_scores(nb: Notebook, scores: Iterable[Score]) -> set[str]:
    """Write ``scores`` as they come into ``temp.staged_scores`` (this connection's own temporary
    database: no lock on the notebook file); returns their names."""
    names: set[str] = set()

    def rows() -> Iterator[tuple[Any, ...]]:
        for sc in scores:
            names.add(sc.name)
            yield (sc.record_id, sc.name, sc.kind, sc.value, None if sc.passed is None else int(sc.passed),
                   sc.reason, sc.model_sha256, sc.criterion_version_id)

    c = nb.conn
    with nb.scratch():
        c.execute("DROP TABLE IF EXISTS temp.staged_scores")
        c.execute("CREATE TEMP TABLE staged_scores (record_id INTEGER, name TEXT, kind TEXT, value REAL, "
                  "passed INTEGER, reason TEXT, model_sha256 TEXT, criterion_version_id INTEGER)")
        c.executemany("INSERT INTO temp.staged_scores VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows())
    return names


def scores_for(nb: Notebook, record_id: int) -> list[Score]:
    return [
        Score(r["record_id"], r["name"], r["kind"], r["value"], None if r["passed"] is None else bool(r["passed"]),
              r["reason"] or "", r["model_sha256"], r["criterion_version_id"])
        for r in nb.conn.execute("SELECT * FROM scores WHERE record_id = ? ORDER BY name", (record_id,))
    ]


def score_values(nb: Notebook, name: str, record_ids: Sequence[int] | None = None) -> dict[int, float]:
    """The ``name`` score of every record that has one (of ``record_ids`` only, if given)."""
    if record_ids is None:
        return {r[0]: r[1] for r in nb.conn.execute("SELECT record_id, value FROM scores WHERE name = ?", (name,))}
    ids = list(record_ids)
    return {r[0]: r[1] for r in nb.conn.execute(
        f"SELECT record_id, value FROM scores WHERE name = ? AND record_id IN ({','.join('?' * len(ids))})",
        [name, *ids])}


def score_names(nb: Notebook, kind: str | None = None) -> list[str]:
    """The stored score names (of one kind, if given), sorted."""
    names = [r[0] for r in nb.conn.execute(SCORE_NAMES)]
    if kind is None:
        return names
    return [n for n in names
            if nb.conn.execute("SELECT 1 FROM scores WHERE name = ? AND kind = ? LIMIT 1", (n, kind)).fetchone()]


def failed_scores(nb: Notebook, name: str) -> list[tuple[int, str | None]]:
    """(record id, reason) of every record that failed the ``name`` score."""
    return [(r[0], r[1]) for r in nb.conn.execute(
        "SELECT record_id, reason FROM scores WHERE name = ? AND passed = 0", (name,))]


def score_step(nb: Notebook, name: str) -> int | None:
    """The latest step that wrote a ``name`` score (a seek per kind the name has, through the
    (name, kind, step_id) index, not a scan of its scores)."""
    step_id: int | None = nb.conn.execute(
        "WITH RECURSIVE k(kind) AS (SELECT MIN(kind) FROM scores WHERE name = :n UNION ALL "
        "SELECT (SELECT MIN(kind) FROM scores WHERE name = :n AND kind > k.kind) FROM k WHERE k.kind IS NOT NULL) "
        "SELECT MAX((SELECT MAX(step_id) FROM scores WHERE name = :n AND kind = k.kind)) FROM k "
        "WHERE k.kind IS NOT NULL", {"n": name}).fetchone()[0]
    return step_id


def sample_score_values(nb: Notebook, name: str) -> list[tuple[int, float]]:
    """(record id, value) of the samples with a non-empty ``name`` score."""
    return [(r[0], r[1]) for r in nb.conn.execute(
        "SELECT s.record_id, s.value FROM scores s JOIN records r ON r.id = s.record_id "
        "WHERE s.name = ? AND s.value IS NOT NULL AND r.role = 'sample'", (name,))]


def judge_score_totals(nb: Notebook, record_ids: Sequence[int]) -> dict[int, float | None]:
    """Sum of the judge, rubric and additive scores of each of ``record_ids`` that has any."""
    ids = list(record_ids)
    return {r[0]: r[1] for r in nb.conn.execute(
        f"SELECT record_id, SUM(value) FROM scores WHERE kind IN ('judge', 'rubric', 'additive') "
        f"AND record_id IN ({','.join('?' * len(ids))}) GROUP BY record_id", ids)}


def failed_validator_ids(nb: Notebook, record_ids: Sequence[int]) -> set[int]:
    """Those of ``record_ids`` that failed any validator."""
    ids = list(record_ids)
    return {r[0] for r in nb.conn.execute(
        f"SELECT DISTINCT record_id FROM scores WHERE kind = 'validator' AND passed = 0 "
        f"AND record_id IN ({','.join('?' * len(ids))})", ids)}


def pass_rates(nb: Notebook, record_ids: Sequence[int]) -> dict[str, float]:
    """Share of ``record_ids`` that passed, per pass/fail score name."""
    ids = list(record_ids)
    return {r[0]: r[1] for r in nb.conn.execute(
        f"SELECT name, AVG(passed) FROM scores WHERE passed IS NOT NULL AND record_id IN ({','.join('?' * len(ids))}) "
        "GROUP BY name", ids)}


def step_names(nb: Notebook, kind: str) -> list[str]:
    """The names of the steps of one kind that ever ran."""
    return [r[0] for r in nb.conn.execute("SELECT DISTINCT name FROM steps WHERE kind = ?", (kind,))]


def latest_step_id(nb: Notebook, kind: str, name: str) -> int | None:
    """The latest step of this kind and name."""
    step_id: int | None = nb.conn.execute(
        "SELECT MAX(id) FROM steps WHERE kind = ? AND name = ?", (kind, name)).fetchone()[0]
    return step_id


def sample_texts(nb: Notebook, record_ids: Sequence[int] | None = None) -> list[tuple[int, str, int | None]]:
    """(id, output, completion_tokens) of the samples that have text."""
    sql = "SELECT id, output, completion_tokens FROM records WHERE role = 'sample' AND output IS NOT NULL"
    params: list[Any] = []
    if record_ids is not None:
        sql += f" AND id IN ({','.join('?' * len(record_ids))})"
        params = list(record_ids)
    return [(r[0], r[1], r[2]) for r in nb.conn.execute(sql + " ORDER BY id", params)]


def _write_duplicates(c: sqlite3.Connection, method: str, groups: dict[int, list[int]], step_id: int) -> None:
    c.execute("DELETE FROM duplicates WHERE method = ?", (method,))
    c.executemany(
        "INSERT INTO duplicates (record_id, method, group_id, representative_id, step_id) VALUES (?, ?, ?, ?, ?)",
        [(m, method, rep, rep, step_id) for rep, members in groups.items() for m in members],
    )


def save_duplicates(nb: Notebook, method: str, groups: dict[int, list[int]], step_id: int) -> None:
    """Replace the method's duplicate groups; ``groups`` maps representative -> members (incl. itself)."""
    with nb.transaction() as c:
        _write_duplicates(c, method, groups, step_id)


def save_dedupe(nb: Notebook, method: str, settings: dict[str, Any], groups: dict[int, list[int]]) -> int:
    """The dedupe step row and its groups in one transaction: a step shown as run always has its groups."""
    with nb.transaction() as c:
        step_id = _insert_step(c, "dedupe", method, settings)
        _write_duplicates(c, method, groups, step_id)
    return step_id


def duplicate_methods(nb: Notebook) -> list[str]:
    """The dedupe methods that have stored groups."""
    return [r[0] for r in nb.conn.execute("SELECT DISTINCT method FROM duplicates")]


def duplicate_members(nb: Notebook, method: str) -> list[tuple[int, int]]:
    """(record id, representative id) of the records ``method`` found to duplicate another."""
    return [(r[0], r[1]) for r in nb.conn.execute(
        "SELECT record_id, representative_id FROM duplicates WHERE method = ? AND record_id != representative_id",
        (method,))]


def duplicate_group_sizes(nb: Notebook) -> list[tuple[int, int]]:
    """(id, size of its largest duplicate group over all methods; 1 if none) of every sample with text."""
    return [(r[0], r[1]) for r in nb.conn.execute(
        "SELECT r.id, COALESCE((SELECT MAX(cnt) FROM (SELECT d.method, COUNT(*) AS cnt FROM duplicates d "
        "JOIN duplicates m ON m.method = d.method AND m.group_id = d.group_id WHERE d.record_id = r.id "
        "GROUP BY d.method)), 1) FROM records r WHERE r.role = 'sample' AND r.output IS NOT NULL")]


def judge_score_names_of(nb: Notebook, record_ids: Sequence[int]) -> list[str]:
    """The judge, rubric and additive score names that any of ``record_ids`` has."""
    return [r[0] for r in nb.conn.execute(
        "SELECT DISTINCT name FROM scores WHERE kind IN ('judge', 'rubric', 'additive') AND record_id IN "
        "(SELECT value FROM json_each(?)) ORDER BY name", (json.dumps(list(record_ids)),))]


def duplicate_groups(nb: Notebook, method: str) -> dict[int, list[int]]:
    """``method``'s stored duplicate groups: {representative id: member ids, the representative included}."""
    groups: dict[int, list[int]] = {}
    for rep, rid in nb.conn.execute(
            "SELECT representative_id, record_id FROM duplicates WHERE method = ? "
            "ORDER BY representative_id, record_id", (method,)):
        groups.setdefault(rep, []).append(rid)
    return groups
