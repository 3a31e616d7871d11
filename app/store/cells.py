"""The notebook's cells as stored: kind, settings, collapsed, position and last output, top to bottom."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.store.migrations import now
from app.store.notebook import Notebook, inserted_id


@dataclass(frozen=True)
class StoredCell:
    id: int
    kind: str
    settings: dict[str, Any]  # only what was saved; the caller fills in defaults
    collapsed: bool
    position: int
    last_output: str
    last_run: str | None


def list_cells(nb: Notebook) -> list[StoredCell]:
    """The stored cells in display order."""
    rows = nb.conn.execute("SELECT id, kind, settings, collapsed, position, last_output, last_run "
                           "FROM cells ORDER BY position, id").fetchall()
    return [StoredCell(id=r[0], kind=r[1], settings=json.loads(r[2] or "{}"), collapsed=bool(r[3]),
                       position=r[4], last_output=r[5] or "", last_run=r[6]) for r in rows]


def add_cell(nb: Notebook, kind: str, settings: dict[str, Any], position: int | None = None) -> int:
    """Insert a cell (at the end when ``position`` is None); returns its id."""
    if position is None:
        position = (nb.conn.execute("SELECT MAX(position) FROM cells").fetchone()[0] or 0) + 1
    with nb.transaction() as c:
        cur = c.execute("INSERT INTO cells (position, kind, settings, collapsed) VALUES (?, ?, ?, 0)",
                        (position, kind, json.dumps(settings)))
    return inserted_id(cur)


def save_cell(nb: Notebook, cell_id: int, *, settings: dict[str, Any], collapsed: bool, last_output: str,
              last_run: str | None) -> None:
    """Overwrite a cell's settings, collapsed state and last output."""
    with nb.transaction() as c:
        c.execute("UPDATE cells SET settings = ?, collapsed = ?, last_output = ?, last_run = ? WHERE id = ?",
                  (json.dumps(settings), int(collapsed), last_output, last_run, cell_id))


def delete_cell(nb: Notebook, cell_id: int) -> None:
    """Remove one cell."""
    with nb.transaction() as c:
        c.execute("DELETE FROM cells WHERE id = ?", (cell_id,))


def set_cell_order(nb: Notebook, cell_ids: Sequence[int]) -> None:
    """Renumber positions 0..n-1 in the order of ``cell_ids``, in one transaction."""
    with nb.transaction() as c:
        c.executemany("UPDATE cells SET position = ? WHERE id = ?", [(k, cid) for k, cid in enumerate(cell_ids)])


def record_output(nb: Notebook, cell_id: int, output: str) -> None:
    """Store a cell's last output, stamped with the time now."""
    with nb.transaction() as c:
        c.execute("UPDATE cells SET last_output = ?, last_run = ? WHERE id = ?", (output, now(), cell_id))
