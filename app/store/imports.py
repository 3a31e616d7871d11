"""Writes for imported training files: records that arrive with their prompt and status, and
records that share an input row (the two sides of a preference pair).

A plain table goes in through :meth:`Notebook.add_imported_rows`; this is for files the importer
recognised (``app.data.training_files``). Both stage their rows in chunks and show them at once
(:mod:`app.store.staged`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import StudioError
from app.store.migrations import now
from app.store.notebook import IMPORTED_FILES, ORIGINS, RECORD_STATUSES, Notebook
from app.store.staged import Progress, staged_chunks, staging


@dataclass(frozen=True)
class ImportedRecord:
    variables: dict[str, Any] = field(default_factory=dict)
    output: str | None = None  # None: an input row to generate from
    prompt: str | None = None  # what the user turn said
    status: str = "new"
    # Records with the same group share one input row, made from the first one's variables, so
    # the review's preference pairs (accepted vs rejected of one input row) find them.
    group: Hashable | None = None


def add_imported_records(nb: Notebook, records: Sequence[ImportedRecord], *, origin: str,
                         source: str, imported: dict[str, Any] | None = None,
                         progress: Progress | None = None) -> tuple[int, int]:
    """Insert ``records`` (and the input rows their groups share); returns (input rows, samples).
    ``imported`` (the file's {sha256, source, rows}) is remembered with them. Staged a chunk per
    transaction and made visible at once, as :meth:`Notebook.add_imported_rows` does."""
    if origin not in ORIGINS:
        raise StudioError(f"origin must be one of {', '.join(ORIGINS)}, not {origin!r}")
    bad = [r.status for r in records if r.status not in RECORD_STATUSES]
    if bad:
        raise StudioError(f"status must be one of {', '.join(RECORD_STATUSES)}, not {bad[0]!r}")
    ts = now()
    inputs: dict[Hashable, int] = {}
    n_inputs = n_samples = 0
    with staging(nb) as staged:
        input_role, sample_role = staged.role("input"), staged.role("sample")

        def add_input(c: sqlite3.Connection, variables: dict[str, Any]) -> int:
            nonlocal n_inputs
            n_inputs += 1
            cur = c.execute("INSERT INTO records (role, variables, origin, status, source, created, updated) "
                            "VALUES (?, ?, ?, 'new', ?, ?, ?)",
                            (input_role, json.dumps(variables, ensure_ascii=False), origin, source, ts, ts))
            return int(cur.lastrowid or 0)

        for chunk in staged_chunks(records, progress):
            with staged.chunk(len(chunk)) as c:
                for r in chunk:
                    if not r.output:
                        add_input(c, r.variables)
                        continue
                    input_id = None
                    if r.group is not None:
                        input_id = inputs.get(r.group)
                        if input_id is None:
                            input_id = inputs[r.group] = add_input(c, r.variables)
                    c.execute("INSERT INTO records (role, input_record_id, variables, prompt, output, origin, "
                              "status, source, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                              (sample_role, input_id, json.dumps(r.variables, ensure_ascii=False), r.prompt,
                               r.output, origin, r.status, source, ts, ts))
                    n_samples += 1
        staged.publish(imported)
    return n_inputs, n_samples


# -- which files went in (so a notebook's Run all does not import the same file twice) ----------

def find_import(nb: Notebook, sha256: str) -> dict[str, Any] | None:
    """The first import of a file with this content, or None."""
    return next((f for f in nb.get_meta(IMPORTED_FILES, []) if f.get("sha256") == sha256), None)
