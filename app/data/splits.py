"""Splitting the real records (input rows and real samples) into train, eval and holdout.

Seeded, and stratified by one input column when asked: each category is split in proportion,
its eval (and holdout) count the floor or the ceiling of its share, and the categories that
get the ceiling are those with the largest remainders (ties by the seed), so the totals match
the requested shares and a category of one or two records is not forced into eval. Records
in eval or holdout are never drawn as few-shot examples (``app.store.records.FEW_SHOT_SOURCES``).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.core.errors import StudioError
from app.store.notebook import Notebook
from app.store.splits import SPLITS, RealRecord, real_records, set_splits

MISSING = "(missing)"  # the category of a record without the stratifying column


@dataclass(frozen=True)
class SplitResult:
    counts: dict[str, int]  # records per split
    by_category: dict[str, dict[str, int]]  # category -> records per split (one category "all" when not stratified)
    changed: int  # records whose split changed


def category(variables: Mapping[str, Any], column: str | None) -> str:
    if column is None:
        return "all"
    if column not in variables or variables[column] is None:
        return MISSING
    value = variables[column]
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _apportion(sizes: Mapping[str, int], share: float, room: Mapping[str, int], rng: random.Random) -> dict[str, int]:
    """Records per category for one split: floor or ceiling of each category's share (never more than
    its ``room``), the ceilings to the largest remainders so the total is the whole set's share."""
    quota = {c: m * share for c, m in sizes.items()}
    got = {c: min(math.floor(q), room[c]) for c, q in quota.items()}
    left = math.floor(sum(sizes.values()) * share + 0.5) - sum(got.values())
    tie = {c: rng.random() for c in sorted(sizes)}
    for c in sorted(sizes, key=lambda c: (-(quota[c] - math.floor(quota[c])), tie[c])):
        if left <= 0:
            break
        if got[c] < min(math.ceil(quota[c]), room[c]):
            got[c] += 1
            left -= 1
    return got


def assign_splits(records: Sequence[RealRecord], *, eval_share: float, holdout_share: float,
                  by: str | None = None, seed: int = 0) -> dict[int, str]:
    """Each record's split (train, eval or holdout), seeded and stratified by the ``by`` column."""
    for name, share in (("--eval", eval_share), ("--holdout", holdout_share)):
        if not 0 <= share <= 1:
            raise StudioError(f"{name} is a share of the real records, between 0 and 1, not {share}")
    if eval_share + holdout_share > 1:
        raise StudioError(f"--eval {eval_share} and --holdout {holdout_share} add up to more than all the records")
    groups: dict[str, list[int]] = {}
    for r in sorted(records, key=lambda r: r.id):
        groups.setdefault(category(r.variables, by), []).append(r.id)
    rng = random.Random(seed)
    sizes = {c: len(ids) for c, ids in groups.items()}
    n_eval = _apportion(sizes, eval_share, sizes, rng)
    n_holdout = _apportion(sizes, holdout_share, {c: sizes[c] - n_eval[c] for c in sizes}, rng)
    out: dict[int, str] = {}
    for c in sorted(groups):
        ids = list(groups[c])
        rng.shuffle(ids)
        e, h = n_eval[c], n_holdout[c]
        out.update({rid: "eval" for rid in ids[:e]})
        out.update({rid: "holdout" for rid in ids[e:e + h]})
        out.update({rid: "train" for rid in ids[e + h:]})
    return out


def split_notebook(nb: Notebook, *, eval_share: float = 0.1, holdout_share: float = 0.1, by: str | None = None,
                   seed: int = 0) -> SplitResult:
    """Assign every real record of the notebook to train, eval or holdout (replacing an earlier split)."""
    records = real_records(nb)
    if not records:
        raise StudioError("no real records to split: import a table first (synth-studio import NB.db FILE)")
    if by is not None and not any(by in r.variables for r in records):
        columns = sorted({k for r in records for k in r.variables})
        raise StudioError(f"no real record has a column {by!r} (columns: {', '.join(columns) or 'none'})")
    assignment = assign_splits(records, eval_share=eval_share, holdout_share=holdout_share, by=by, seed=seed)
    changed = set_splits(nb, assignment)
    counts = dict.fromkeys(SPLITS, 0)
    by_category: dict[str, dict[str, int]] = {}
    for r in records:
        split = assignment[r.id]
        counts[split] += 1
        by_category.setdefault(category(r.variables, by), dict.fromkeys(SPLITS, 0))[split] += 1
    return SplitResult(counts, dict(sorted(by_category.items())), changed)
