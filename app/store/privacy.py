"""What the privacy checks read and write: the synthetic samples with their prompts, the samples
that could have been shown as few-shot examples, and the canary strings planted in real rows.

Real and synthetic are told apart by what a record was made as (``records.MADE_AS``): a
generated record a person edited is still synthetic, a redacted real row is still real.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from app.core.errors import StudioError
from app.store.migrations import now
from app.store.notebook import Notebook, inserted_id
from app.store.records import MADE_AS


@dataclass(frozen=True)
class SyntheticSample:
    id: int
    output: str
    prompt: str  # the rendered prompt ("" when unknown)
    input_record_id: int | None  # the row (or, for a transform, the sample) it was made from


@dataclass(frozen=True)
class Canary:
    id: int
    text: str
    record_id: int | None
    created: str


def synthetic_samples(nb: Notebook) -> list[SyntheticSample]:
    """Every sample with text that was generated (edited or not), by id."""
    return [SyntheticSample(r["id"], r["output"], r["prompt"] or "", r["input_record_id"]) for r in nb.conn.execute(
        f"SELECT id, output, prompt, input_record_id FROM records WHERE role = 'sample' AND output IS NOT NULL "
        f"AND {MADE_AS} = 'synthetic' ORDER BY id")]


def sample_outputs(nb: Notebook) -> list[tuple[int, str]]:
    """(id, text) of every sample with text: whatever a few-shot block could have shown."""
    return [(r[0], r[1]) for r in nb.conn.execute(
        "SELECT id, output FROM records WHERE role = 'sample' AND output IS NOT NULL ORDER BY id")]


def is_made_real(nb: Notebook, record_id: int) -> bool:
    row = nb.conn.execute(f"SELECT {MADE_AS} = 'real' FROM records WHERE id = ?", (record_id,)).fetchone()
    if row is None:
        raise StudioError(f"no record with id {record_id}")
    return bool(row[0])


def first_seed_row(nb: Notebook) -> int | None:
    """The real row a canary goes into when none is named: the first real sample with text (what
    few-shot examples are drawn from), else the first real input row; never a held-out one."""
    row = nb.conn.execute(
        f"SELECT id FROM records WHERE {MADE_AS} = 'real' AND COALESCE(split, 'train') = 'train' "
        "AND (role = 'input' OR (role = 'sample' AND output IS NOT NULL)) ORDER BY role = 'input', id LIMIT 1").fetchone()
    return None if row is None else int(row[0])


def add_canary(nb: Notebook, text: str, record_id: int | None) -> Canary:
    try:
        with nb.transaction() as c:
            cur = c.execute("INSERT INTO canaries (text, record_id, created) VALUES (?, ?, ?)",
                            (text, record_id, now()))
    except sqlite3.IntegrityError:
        raise StudioError(f"the canary {text!r} is already planted; choose another text") from None
    return canary(nb, inserted_id(cur))


def canary(nb: Notebook, canary_id: int) -> Canary:
    row = nb.conn.execute("SELECT * FROM canaries WHERE id = ?", (canary_id,)).fetchone()
    if row is None:
        raise StudioError(f"no canary with id {canary_id}")
    return Canary(row["id"], row["text"], row["record_id"], row["created"])


def canaries(nb: Notebook) -> list[Canary]:
    return [Canary(r["id"], r["text"], r["record_id"], r["created"])
            for r in nb.conn.execute("SELECT * FROM canaries ORDER BY id")]
