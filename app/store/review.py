"""What the review queue reads: which samples a person has reviewed, the pass/fail scores and
their settings, clusters' representatives, the criteria a person can answer, and how the
person's labels compare with each judge. The ordering itself is ``app.review.queue``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.store.notebook import Notebook

# Authors of status changes that no person made (app.generate.best_of.AUTHOR rejects the losers of
# best-of-N): such a status does not make a record reviewed.
AUTOMATIC_AUTHORS = ("best-of",)
GATE_KINDS = ("validator", "judge", "rubric", "additive")  # the scores that pass or fail a record

_PERSON_REVIEWED = (
    "(r.status != 'new' AND COALESCE((SELECT e.author FROM edits e WHERE e.record_id = r.id AND e.field = 'status' "
    "ORDER BY e.id DESC LIMIT 1), '') NOT IN (SELECT value FROM json_each(?))) "
    "OR EXISTS (SELECT 1 FROM labels l WHERE l.record_id = r.id)"
)


def review_ids(nb: Notebook, only_unreviewed: bool = False) -> list[int]:
    """Samples with text in id order (only those no person has reviewed, if asked)."""
    sql = "SELECT r.id FROM records r WHERE r.role = 'sample' AND r.output IS NOT NULL"
    params: list[Any] = []
    if only_unreviewed:
        sql += f" AND NOT ({_PERSON_REVIEWED})"
        params.append(json.dumps(AUTOMATIC_AUTHORS))
    return [r[0] for r in nb.conn.execute(sql + " ORDER BY r.id", params)]


def reviewed_ids(nb: Notebook) -> set[int]:
    """Samples a person has reviewed: set their status (accepted, rejected or flagged) or answered a criterion."""
    return {r[0] for r in nb.conn.execute(
        f"SELECT r.id FROM records r WHERE r.role = 'sample' AND ({_PERSON_REVIEWED})",
        (json.dumps(AUTOMATIC_AUTHORS),))}


def review_progress(nb: Notebook) -> list[dict[str, Any]]:
    """Per run: samples, how many a person reviewed (see :func:`reviewed_ids`), and the share."""
    rows = nb.conn.execute(
        f"SELECT r.run_id, COUNT(*) AS n, COALESCE(SUM({_PERSON_REVIEWED}), 0) AS reviewed FROM records r "
        "WHERE r.role = 'sample' GROUP BY r.run_id ORDER BY r.run_id", (json.dumps(AUTOMATIC_AUTHORS),)
    ).fetchall()
    return [{"run_id": r["run_id"], "samples": r["n"], "reviewed": r["reviewed"],
             "share": r["reviewed"] / r["n"] if r["n"] else 0.0} for r in rows]


def review_card(nb: Notebook, record_id: int) -> dict[str, Any]:
    """What the review queue shows for one record: text, lineage, scores, failures, duplicates,
    the person's labels, the scores made stale by an edit, and the funnel's last verdict."""
    from app.store.queries import lineage  # queries re-exports this module's functions: import late
    from app.store.scores import scores_for

    info = lineage(nb, record_id)
    scores = scores_for(nb, record_id)
    dups = nb.conn.execute(
        "SELECT d.method, d.representative_id, (SELECT COUNT(*) FROM duplicates e WHERE e.method = d.method "
        "AND e.group_id = d.group_id) AS size FROM duplicates d WHERE d.record_id = ?", (record_id,)
    ).fetchall()
    info["scores"] = [s for s in scores if s.kind != "validator"]
    info["failures"] = [s for s in scores if s.kind == "validator" and s.passed is False]
    info["duplicates"] = [dict(d) for d in dups]
    info["labels"] = {r[0]: bool(r[1]) for r in nb.conn.execute(
        "SELECT criterion, value FROM labels WHERE record_id = ?", (record_id,))}
    info["stale"] = [r[0] for r in nb.conn.execute(
        "SELECT name FROM scores WHERE record_id = ? AND stale = 1 ORDER BY name", (record_id,))]
    info["likelihood_stale"] = bool(info["record"].get("likelihood_stale"))
    verdict = nb.conn.execute("SELECT kept, stage, reason FROM verdicts WHERE record_id = ?", (record_id,)).fetchone()
    info["verdict"] = None if verdict is None else (bool(verdict[0]), verdict[1], verdict[2])
    return info


# -- what the queue is ordered by --------------------------------------------------------------------


@dataclass(frozen=True)
class GateScore:
    """One pass/fail score of one sample."""

    record_id: int
    name: str
    kind: str
    value: float | None
    passed: bool
    reason: str
    stale: bool


def gate_scores(nb: Notebook) -> list[GateScore]:
    """Every pass/fail score (validators and judges) of the samples with text, by name then record id."""
    return [GateScore(r[0], r[1], r[2], r[3], bool(r[4]), r[5] or "", bool(r[6])) for r in nb.conn.execute(
        "SELECT s.record_id, s.name, s.kind, s.value, s.passed, s.reason, s.stale FROM scores s "
        "JOIN records r ON r.id = s.record_id WHERE r.role = 'sample' AND r.output IS NOT NULL "
        f"AND s.passed IS NOT NULL AND s.kind IN ({','.join('?' * len(GATE_KINDS))}) ORDER BY s.name, s.record_id",
        GATE_KINDS)]


def score_step_settings(nb: Notebook) -> dict[str, dict[str, Any]]:
    """Score name -> the settings of the latest step that wrote it (thresholds, rule bounds, questions)."""
    out: dict[str, dict[str, Any]] = {}
    for name, settings in nb.conn.execute(
            "SELECT s.name, st.settings FROM (SELECT name, MAX(step_id) AS step_id FROM scores GROUP BY name) s "
            "JOIN steps st ON st.id = s.step_id"):
        out[name] = json.loads(settings)
    return out


def sample_statuses(nb: Notebook) -> dict[int, str]:
    """Sample id -> status, for the samples with text."""
    return dict(nb.conn.execute(
        "SELECT id, status FROM records WHERE role = 'sample' AND output IS NOT NULL ORDER BY id").fetchall())


def cluster_representatives(nb: Notebook, map_id: int) -> list[tuple[int, int, int]]:
    """(cluster, record id, size) per cluster of a map (noise left out), biggest first: the sample
    nearest its cluster's centroid stands for it."""
    rows = nb.conn.execute(
        "SELECT p.cluster, p.record_id, COUNT(*) OVER (PARTITION BY p.cluster) AS size, "
        "ROW_NUMBER() OVER (PARTITION BY p.cluster ORDER BY COALESCE(p.centroid_distance, 0), p.record_id) AS rank "
        "FROM map_points p JOIN records r ON r.id = p.record_id "
        "WHERE p.map_id = ? AND p.cluster >= 0 AND r.role = 'sample' AND r.output IS NOT NULL", (map_id,))
    best = [(r[0], r[1], r[2]) for r in rows if r[3] == 1]
    return sorted(best, key=lambda t: (-t[2], t[0]))


def duplicate_disagreements(nb: Notebook, score_name: str) -> list[tuple[int, int, str]]:
    """(record id, duplicate id, method) where a score passes one of two duplicates and fails the other
    (stale scores left out: they describe text that was since edited)."""
    return [(r[0], r[1], r[2]) for r in nb.conn.execute(
        "SELECT d.record_id, e.record_id, d.method FROM duplicates d "
        "JOIN duplicates e ON e.method = d.method AND e.group_id = d.group_id AND e.record_id != d.record_id "
        "JOIN scores a ON a.record_id = d.record_id AND a.name = ? "
        "JOIN scores b ON b.record_id = e.record_id AND b.name = ? "
        "WHERE a.passed IS NOT NULL AND b.passed IS NOT NULL AND a.passed != b.passed AND a.stale = 0 AND b.stale = 0 "
        "ORDER BY d.record_id, e.record_id", (score_name, score_name))]


def label_agreement(nb: Notebook) -> dict[str, tuple[int, int]]:
    """Criterion -> (labels with a judge score to compare, how many of them the judge's pass/fail contradicts).

    A label is the person's answer "does this record pass the criterion"; a score made stale by an
    edit is left out (the person answered about the new text)."""
    return {r[0]: (r[1], r[2]) for r in nb.conn.execute(
        "SELECT l.criterion, COUNT(*), SUM(l.value != s.passed) FROM labels l "
        "JOIN scores s ON s.record_id = l.record_id AND s.name = 'judge:' || l.criterion "
        "WHERE s.passed IS NOT NULL AND s.stale = 0 GROUP BY l.criterion ORDER BY l.criterion")}


def records_failing(nb: Notebook, score_name: str) -> list[int]:
    """The samples the ``score_name`` score fails, in id order."""
    return [r[0] for r in nb.conn.execute(
        "SELECT s.record_id FROM scores s JOIN records r ON r.id = s.record_id WHERE s.name = ? AND s.passed = 0 "
        "AND r.role = 'sample' ORDER BY s.record_id", (score_name,))]


def failing_counts(nb: Notebook) -> list[tuple[str, int]]:
    """(score name, samples it fails) of each pass/fail score that fails any, by name."""
    return [(r[0], r[1]) for r in nb.conn.execute(
        "SELECT s.name, COUNT(*) FROM scores s JOIN records r ON r.id = s.record_id "
        f"WHERE s.passed = 0 AND r.role = 'sample' AND s.kind IN ({','.join('?' * len(GATE_KINDS))}) "
        "GROUP BY s.name ORDER BY s.name", GATE_KINDS)]
