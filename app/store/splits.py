"""Which real records are held out: the train / eval / holdout split of the real records
(input rows and real samples) and the texts of the held-out ones.

A record counts as real by what it was made as (``records.MADE_AS``), so a real record that a
person redacted or planted a canary in keeps its place in the split.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.store.notebook import VISIBLE_ROLES, Notebook
from app.store.records import MADE_AS

SPLITS = ("train", "eval", "holdout")
HELD_OUT = ("eval", "holdout")


@dataclass(frozen=True)
class RealRecord:
    id: int
    role: str  # input | sample
    variables: dict[str, Any]
    output: str | None
    split: str | None


def _real(row: Any) -> RealRecord:
    return RealRecord(row["id"], row["role"], json.loads(row["variables"] or "{}"), row["output"], row["split"])


def real_records(nb: Notebook) -> list[RealRecord]:
    """Every real record (input rows and samples made as real), by id."""
    return [_real(r) for r in nb.conn.execute(
        f"SELECT id, role, variables, output, split FROM records WHERE role IN {VISIBLE_ROLES} AND {MADE_AS} = 'real' "
        "ORDER BY id")]


def held_out_records(nb: Notebook) -> list[RealRecord]:
    """The real records in the eval or holdout split, by id."""
    return [_real(r) for r in nb.conn.execute(
        "SELECT id, role, variables, output, split FROM records WHERE split IN ('eval', 'holdout') ORDER BY id")]


def set_splits(nb: Notebook, assignment: Mapping[int, str | None]) -> int:
    """Write each record's split (None: not split) in one transaction; returns how many changed."""
    rows = [(split, rid, split) for rid, split in assignment.items()]
    with nb.transaction() as c:
        before = c.total_changes
        c.executemany("UPDATE records SET split = ? WHERE id = ? AND split IS NOT ?", rows)
        return c.total_changes - before


def split_counts(nb: Notebook) -> dict[str, int]:
    """How many records each split holds (splits with none are 0)."""
    counts = dict.fromkeys(SPLITS, 0)
    counts.update({r[0]: r[1] for r in nb.conn.execute(
        "SELECT split, COUNT(*) FROM records WHERE split IS NOT NULL GROUP BY split")})
    return counts
