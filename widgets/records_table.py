"""The records table: one QAbstractTableModel over the store, fetched in pages."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QUndoStack

from app.store.notebook import Notebook
from app.store.queries import RECORD_COLUMNS, RecordFilter, count_records, record_page
from widgets.theme import STATUS_TONES, tone

PAGE = 200
Index = QModelIndex | QPersistentModelIndex


EDITABLE = {"output": "output", "status": "status"}


class RecordsModel(QAbstractTableModel):
    def __init__(self, nb: Notebook, parent: Any = None, undo_stack: QUndoStack | None = None) -> None:
        super().__init__(parent)
        self._nb = nb
        self._rows: list[dict[str, Any]] = []
        self.filter = RecordFilter()
        self._total = count_records(nb, self.filter)
        self.undo_stack = undo_stack or QUndoStack(self)

    def set_filter(self, flt: RecordFilter) -> None:
        self.filter = flt
        self.reload()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sorting happens in SQL, so it covers every record, not just the loaded pages."""
        from dataclasses import replace

        self.set_filter(replace(self.filter, order_by=RECORD_COLUMNS[column],
                                descending=order == Qt.SortOrder.DescendingOrder))

    @property
    def total(self) -> int:
        """Records matching the filter (loaded or not)."""
        return self._total

    # -- editing: through the undo stack and the notebook's edit history ----------------------

    def flags(self, index: Index) -> Qt.ItemFlag:
        f = super().flags(index)
        if index.isValid() and RECORD_COLUMNS[index.column()] in EDITABLE:
            f |= Qt.ItemFlag.ItemIsEditable
        return f

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid():
            return False
        field = EDITABLE.get(RECORD_COLUMNS[index.column()])
        if field is None:
            return False
        return self.edit(self._rows[index.row()]["id"], field, value)

    def edit(self, record_id: int, field: str, value: Any) -> bool:
        from app.core.errors import StudioError
        from widgets.edit_commands import EditRecordCommand

        current = next((r for r in self._rows if r["id"] == record_id), None)
        if current is not None and current.get(field) == value:
            return False
        try:
            self.undo_stack.push(EditRecordCommand(self._nb, record_id, field, value, self.refresh_record))
        except StudioError:
            return False
        return True

    def revert_edit(self, edit_id: int) -> None:
        """Revert one edit from the history, through the undo stack."""
        from widgets.edit_commands import RevertEditCommand

        self.undo_stack.push(RevertEditCommand(self._nb, edit_id, self.refresh_record))

    def refresh_record(self, record_id: int) -> None:
        """Re-read one record after an edit/undo and repaint its row."""
        for i, r in enumerate(self._rows):
            if r["id"] == record_id:
                from app.store.queries import record_row

                self._rows[i] = record_row(self._nb, record_id)
                self.dataChanged.emit(self.index(i, 0), self.index(i, len(RECORD_COLUMNS) - 1))
                return

    def reload(self) -> None:
        self.beginResetModel()
        self._rows = []
        self._total = count_records(self._nb, self.filter)
        self.endResetModel()
        if self.canFetchMore():
            self.fetchMore()

    def sync(self) -> None:
        """Pick up records added since the last fetch, without resetting the view."""
        loaded_all = len(self._rows) >= self._total
        self._total = count_records(self._nb, self.filter)
        if loaded_all and self.canFetchMore():
            self.fetchMore()

    def record_at(self, row: int) -> dict[str, Any]:
        return self._rows[row]

    # paging, as Spyder's dataframe editor does
    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:
        return not parent.isValid() and len(self._rows) < self._total

    def fetchMore(self, parent: Index = QModelIndex()) -> None:
        page = record_page(self._nb, len(self._rows), PAGE, self.filter)
        if not page:
            self._total = len(self._rows)
            return
        self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(page) - 1)
        self._rows.extend(page)
        self.endInsertRows()

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(RECORD_COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return RECORD_COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        r = self._rows[index.row()]
        col = RECORD_COLUMNS[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            value = {
                "id": r["id"],
                "status": r["status"],
                "origin": r["origin"],
                "prompt": r["prompt_label"] or r.get("source") or "",
                "output": (r["output"] or "").replace("\n", " ")[:200],
                "tokens": r["completion_tokens"] if r["completion_tokens"] is not None else "",
                "mean logprob": f"{r['mean_logprob']:.3f}" if r["mean_logprob"] is not None else "",
                "run": r["run_id"] or "",
            }[col]
            return value
        if role == Qt.ItemDataRole.ForegroundRole and col in ("status", "origin"):
            name = STATUS_TONES.get(r["status"]) if col == "status" else (
                "human" if r["origin"] == "human-edited" else None)
            return tone(name) if name else None
        if role == Qt.ItemDataRole.EditRole and col in EDITABLE:
            return r[EDITABLE[col]]
        if role == Qt.ItemDataRole.ToolTipRole and col == "output":
            return r["output"]
        if role == Qt.ItemDataRole.TextAlignmentRole and col in ("id", "tokens", "mean logprob", "run"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None
