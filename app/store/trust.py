"""What decides the dataset beyond raw scores: a person's labels per criterion, each judge's
sanity results, the person's trust overrides, and the funnel's verdict per record."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from app.store.migrations import now
from app.store.notebook import Notebook

# -- labels: a person's yes/no answer to a criterion's question ---------------------------------


def set_label(nb: Notebook, record_id: int, criterion: str, value: bool | None, author: str = "user") -> None:
    """Store (or with ``None`` remove) a person's answer to ``criterion`` about one record."""
    with nb.transaction() as c:
        if value is None:
            c.execute("DELETE FROM labels WHERE record_id = ? AND criterion = ?", (record_id, criterion))
            return
        c.execute("INSERT INTO labels (record_id, criterion, value, author, created) VALUES (?, ?, ?, ?, ?) "
                  "ON CONFLICT(record_id, criterion) DO UPDATE SET value = excluded.value, "
                  "author = excluded.author, created = excluded.created",
                  (record_id, criterion, int(value), author, now()))


def labels_for(nb: Notebook, criterion: str) -> dict[int, bool]:
    """record id -> the person's answer, for one criterion."""
    return {r[0]: bool(r[1]) for r in nb.conn.execute(
        "SELECT record_id, value FROM labels WHERE criterion = ?", (criterion,))}


def record_labels(nb: Notebook, record_id: int) -> dict[str, bool]:
    """criterion -> the person's answer, for one record."""
    return {r[0]: bool(r[1]) for r in nb.conn.execute(
        "SELECT criterion, value FROM labels WHERE record_id = ?", (record_id,))}


def labelled_texts(nb: Notebook, criterion: str) -> list[tuple[int, str, bool]]:
    """(record id, text, answer) of every record the person labelled for ``criterion``."""
    return [(r[0], r[1], bool(r[2])) for r in nb.conn.execute(
        "SELECT l.record_id, r.output, l.value FROM labels l JOIN records r ON r.id = l.record_id "
        "WHERE l.criterion = ? AND r.output IS NOT NULL ORDER BY l.record_id", (criterion,))]


# -- sanity results and overrides ------------------------------------------------------------------


@dataclass(frozen=True)
class StoredSanity:
    id: int
    criterion: str
    criterion_version_id: int | None
    model_sha256: str | None
    trusted: bool
    result: dict[str, Any]
    created: str


def save_sanity(nb: Notebook, criterion: str, criterion_version_id: int | None, model_sha256: str | None,
                trusted: bool, result: dict[str, Any]) -> int:
    with nb.transaction() as c:
        cur = c.execute(
            "INSERT INTO sanity_results (criterion, criterion_version_id, model_sha256, trusted, result, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (criterion, criterion_version_id, model_sha256, int(trusted), json.dumps(result, default=str), now()))
    return int(cur.lastrowid or 0)


def latest_sanity(nb: Notebook, criterion: str, model_sha256: str | None = None,
                  criterion_version_id: int | None = None) -> StoredSanity | None:
    """The newest sanity result of ``criterion`` (for that model and criterion version, if given)."""
    sql = "SELECT * FROM sanity_results WHERE criterion = ?"
    params: list[Any] = [criterion]
    if model_sha256 is not None:
        sql += " AND model_sha256 = ?"
        params.append(model_sha256)
    if criterion_version_id is not None:
        sql += " AND criterion_version_id = ?"
        params.append(criterion_version_id)
    row = nb.conn.execute(sql + " ORDER BY id DESC LIMIT 1", params).fetchone()
    if row is None:
        return None
    return StoredSanity(row["id"], row["criterion"], row["criterion_version_id"], row["model_sha256"],
                        bool(row["trusted"]), json.loads(row["result"]), row["created"])


def set_override(nb: Notebook, criterion: str, trusted: bool | None, author: str = "user", reason: str = "") -> None:
    """A person's trust decision for a criterion's judge (``None`` goes back to the sanity result)."""
    with nb.transaction() as c:
        if trusted is None:
            c.execute("DELETE FROM trust_overrides WHERE criterion = ?", (criterion,))
            return
        c.execute("INSERT INTO trust_overrides (criterion, trusted, author, reason, created) VALUES (?, ?, ?, ?, ?) "
                  "ON CONFLICT(criterion) DO UPDATE SET trusted = excluded.trusted, author = excluded.author, "
                  "reason = excluded.reason, created = excluded.created",
                  (criterion, int(trusted), author, reason, now()))


def override_for(nb: Notebook, criterion: str) -> tuple[bool, str, str] | None:
    """(trusted, author, reason) of the person's override, if any."""
    row = nb.conn.execute("SELECT trusted, author, reason FROM trust_overrides WHERE criterion = ?",
                          (criterion,)).fetchone()
    return None if row is None else (bool(row[0]), row[1], row[2] or "")


def score_model(nb: Notebook, name: str) -> str | None:
    """The model that made the newest ``name`` scores."""
    # the newest step's scores, found in the (name, kind, step_id) index without reading a row each;
    # scores saved without a step (none are, from the studio's own steps) by their time
    row = nb.conn.execute("SELECT model_sha256 FROM scores WHERE name = ?1 AND step_id = "
                          "(SELECT MAX(step_id) FROM scores WHERE name = ?1) LIMIT 1", (name,)).fetchone()
    if row is None:
        row = nb.conn.execute("SELECT model_sha256 FROM scores WHERE name = ? ORDER BY created DESC LIMIT 1",
                              (name,)).fetchone()
    return None if row is None else row[0]


# -- staleness -----------------------------------------------------------------------------------


def stale_record_ids(nb: Notebook) -> list[int]:
    """Samples whose scores or likelihood describe text a person has since edited."""
    return [r[0] for r in nb.conn.execute(
        "SELECT id FROM records WHERE role = 'sample' AND (likelihood_stale = 1 OR "
        "EXISTS (SELECT 1 FROM scores s WHERE s.record_id = records.id AND s.stale = 1)) ORDER BY id")]


def stale_score_names(nb: Notebook, record_id: int) -> list[str]:
    return [r[0] for r in nb.conn.execute(
        "SELECT name FROM scores WHERE record_id = ? AND stale = 1 ORDER BY name", (record_id,))]


def set_likelihood(nb: Notebook, values: Iterable[tuple[int, float, int]]) -> None:
    """Store recomputed (record id, mean logprob, completion tokens) and clear the stale mark."""
    with nb.transaction() as c:
        c.executemany("UPDATE records SET mean_logprob = ?, completion_tokens = ?, likelihood_stale = 0 WHERE id = ?",
                      [(lp, n, rid) for rid, lp, n in values])


# -- verdicts: the funnel's decision per record ------------------------------------------------------


def save_verdicts(nb: Notebook, verdicts: Sequence[tuple[int, bool, str | None, str | None]]) -> None:
    """Replace every verdict with (record id, kept, stage, reason) rows, in one transaction; nothing
    is written when they are the verdicts already stored (a count that changed nothing rewrote a
    million rows, and every other view took the write for a change)."""
    digest = hashlib.blake2b(digest_size=16)
    for rid, kept, stage, reason in verdicts:
        digest.update(f"{rid}\x1f{int(kept)}\x1f{stage}\x1f{reason}\x1e".encode("utf-8", "surrogatepass"))
    stamp = digest.hexdigest()
    row = nb.conn.execute("SELECT value FROM notebook_meta WHERE key = 'verdicts_digest'").fetchone()
    if row is not None and json.loads(row[0]) == stamp:
        return
    with nb.transaction() as c:
        c.execute("DELETE FROM verdicts")
        c.executemany("INSERT INTO verdicts (record_id, kept, stage, reason) VALUES (?, ?, ?, ?)",
                      [(rid, int(kept), stage, reason) for rid, kept, stage, reason in verdicts])
        c.execute("INSERT INTO notebook_meta (key, value) VALUES ('verdicts_digest', ?) "
                  "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (json.dumps(stamp),))


def verdict_of(nb: Notebook, record_id: int) -> tuple[bool, str | None, str | None] | None:
    row = nb.conn.execute("SELECT kept, stage, reason FROM verdicts WHERE record_id = ?", (record_id,)).fetchone()
    return None if row is None else (bool(row[0]), row[1], row[2])


def accepted_sample_ids(nb: Notebook) -> list[int]:
    return [r[0] for r in nb.conn.execute(
        "SELECT id FROM records WHERE role = 'sample' AND status = 'accepted' AND output IS NOT NULL")]


def score_table(nb: Notebook, record_ids: Sequence[int]) -> dict[int, dict[str, float | None]]:
    """record id -> {score name: value} for ``record_ids``."""
    out: dict[int, dict[str, float | None]] = {rid: {} for rid in record_ids}
    for r in nb.conn.execute("SELECT record_id, name, value FROM scores WHERE record_id IN "
                             "(SELECT value FROM json_each(?)) ORDER BY record_id, name",
                             (json.dumps(list(record_ids)),)):
        out.setdefault(r[0], {})[r[1]] = r[2]
    return out


def stale_likelihood_records(nb: Notebook, record_ids: Sequence[int] | None = None) -> list[tuple[int, str, str]]:
    """(id, prompt, output) of the samples whose likelihood describes older text."""
    rows = nb.conn.execute("SELECT id, prompt, output FROM records WHERE role = 'sample' AND likelihood_stale = 1 "
                           "AND output IS NOT NULL AND prompt IS NOT NULL ORDER BY id").fetchall()
    keep = None if record_ids is None else set(record_ids)
    return [(r[0], r[1], r[2]) for r in rows if keep is None or r[0] in keep]


def stale_scores(nb: Notebook) -> dict[str, list[int]]:
    """score name -> the records whose ``name`` score is stale."""
    out: dict[str, list[int]] = {}
    for name, rid in nb.conn.execute("SELECT name, record_id FROM scores WHERE stale = 1 ORDER BY name, record_id"):
        out.setdefault(name, []).append(rid)
    return out
