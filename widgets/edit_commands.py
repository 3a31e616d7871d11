"""Undoable record edits (QUndoStack). Every do/undo goes through the notebook's edit history.

Undo is a revert of the edit that ``redo`` made, so the history stays append-only
and the record's origin returns to what it was when every text edit is undone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtGui import QUndoCommand

from app.core.errors import NotebookBusy, StudioError
from app.store.notebook import Notebook

log = logging.getLogger(__name__)


class EditRecordCommand(QUndoCommand):
    """One record edit. A refused edit (a bad status, variables that are not JSON) changes nothing,
    leaves no undo step and goes to ``on_error``: an exception raised inside ``QUndoStack.push``
    would only reach stderr, with the dead command left on the stack."""

    def __init__(self, nb: Notebook, record_id: int, field: str, new: Any,
                 on_change: Callable[[int], None], on_error: Callable[[str], None] | None = None,
                 on_busy: Callable[[str], None] | None = None) -> None:
        super().__init__(f"{'set status of' if field == 'status' else 'edit'} record {record_id}")
        self._nb, self._rid, self._field, self._new = nb, record_id, field, new
        self._on_change, self._on_error, self._on_busy = on_change, on_error, on_busy
        self._edit_id: int | None = None

    def redo(self) -> None:
        try:
            edit = self._nb.edit_record(self._rid, self._field, self._new, author="user")
        except NotebookBusy as exc:  # another program's write: ``on_busy`` may keep the edit and try again
            report = self._on_busy or self._on_error
            self.setObsolete(True)
            if report is not None:
                report(str(exc))
            else:
                log.warning("edit of record %s not written: %s", self._rid, exc)
            return
        except StudioError as exc:
            self.setObsolete(True)  # push() then drops it instead of stacking it
            if self._on_error is not None:
                self._on_error(str(exc))
            else:
                log.warning("edit of record %s refused: %s", self._rid, exc)
            return
        self._edit_id = edit.id if edit else None
        self._on_change(self._rid)

    def undo(self) -> None:
        if self._edit_id is not None:
            self._nb.revert_edit(self._edit_id, author="user (undo)")
        self._on_change(self._rid)


class RevertEditCommand(QUndoCommand):
    """Put back what an earlier edit replaced (itself undoable)."""

    def __init__(self, nb: Notebook, edit_id: int, on_change: Callable[[int], None]) -> None:
        super().__init__(f"revert edit {edit_id}")
        self._nb, self._target, self._on_change = nb, edit_id, on_change
        self._rid = nb.edit(edit_id).record_id
        self._made: int | None = None

    def redo(self) -> None:
        edit = self._nb.revert_edit(self._target, author="user (revert)")
        self._made = edit.id if edit else None
        self._on_change(self._rid)

    def undo(self) -> None:
        if self._made is not None:
            self._nb.revert_edit(self._made, author="user (undo)")
        self._on_change(self._rid)
