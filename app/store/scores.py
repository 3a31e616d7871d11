"""Scores, steps and duplicate groups: what the quality funnel writes to the notebook."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from app.store.migrations import now
from app.store.notebook import Notebook


@dataclass(frozen=True)
class Score:
    record_id: int
    name: str
    kind: str
    value: float | None
    passed: bool | None
    reason: str = ""
    model_sha256: str | None = None


def add_step(nb: Notebook, kind: str, name: str, settings: dict[str, Any], model_sha256: str | None = None) -> int:
    with nb.transaction() as c:
        cur = c.execute(
            "INSERT INTO steps (kind, name, settings, model_sha256, created) VALUES (?, ?, ?, ?, ?)",
            (kind, name, json.dumps(settings, sort_keys=True, default=str), model_sha256, now()),
        )
    return int(cur.lastrowid)


def save_scores(nb: Notebook, scores: Iterable[Score], step_id: int | None) -> int:
    """Upsert scores (one per record x name) in a single transaction."""
    ts = now()
    rows = [
        (s.record_id, s.name, s.kind, s.value, None if s.passed is None else int(s.passed), s.reason, step_id,
         s.model_sha256, ts)
        for s in scores
    ]
    with nb.transaction() as c:
        c.executemany(
            "INSERT INTO scores (record_id, name, kind, value, passed, reason, step_id, model_sha256, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(record_id, name) DO UPDATE SET "
            "kind = excluded.kind, value = excluded.value, passed = excluded.passed, reason = excluded.reason, "
            "step_id = excluded.step_id, model_sha256 = excluded.model_sha256, created = excluded.created",
            rows,
        )
    return len(rows)


def scores_for(nb: Notebook, record_id: int) -> list[Score]:
    return [
        Score(r["record_id"], r["name"], r["kind"], r["value"], None if r["passed"] is None else bool(r["passed"]),
              r["reason"] or "", r["model_sha256"])
        for r in nb.conn.execute("SELECT * FROM scores WHERE record_id = ? ORDER BY name", (record_id,))
    ]


def score_values(nb: Notebook, name: str) -> dict[int, float]:
    return {r[0]: r[1] for r in nb.conn.execute("SELECT record_id, value FROM scores WHERE name = ?", (name,))}


def score_names(nb: Notebook) -> list[str]:
    return [r[0] for r in nb.conn.execute("SELECT DISTINCT name FROM scores ORDER BY name")]


def sample_texts(nb: Notebook, record_ids: Sequence[int] | None = None) -> list[tuple[int, str, int | None]]:
    """(id, output, completion_tokens) of the samples that have text."""
    sql = "SELECT id, output, completion_tokens FROM records WHERE role = 'sample' AND output IS NOT NULL"
    params: list[Any] = []
    if record_ids is not None:
        sql += f" AND id IN ({','.join('?' * len(record_ids))})"
        params = list(record_ids)
    return [(r[0], r[1], r[2]) for r in nb.conn.execute(sql + " ORDER BY id", params)]


def save_duplicates(nb: Notebook, method: str, groups: dict[int, list[int]], step_id: int) -> None:
    """Replace the method's duplicate groups; ``groups`` maps representative -> members (incl. itself)."""
    with nb.transaction() as c:
        c.execute("DELETE FROM duplicates WHERE method = ?", (method,))
        c.executemany(
            "INSERT INTO duplicates (record_id, method, group_id, representative_id, step_id) VALUES (?, ?, ?, ?, ?)",
            [(m, method, rep, rep, step_id) for rep, members in groups.items() for m in members],
        )
