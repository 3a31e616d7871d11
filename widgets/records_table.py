"""The records table: one QAbstractTableModel over the store, fetched in pages.

Its columns are the fixed ones (RECORD_COLUMNS) and, when a prompt of the notebook declares an
output schema, one ``output.<field>`` column per field (app/generate/structured.py): the field's
value read from each loaded row's JSON output, sorted and filtered in SQL like the others.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QUndoStack

from app.generate.structured import field_columns
from app.prompts.structured import FIELD_PREFIX, cell_text, parse_output
from app.store.notebook import Notebook
from app.store.queries import RECORD_COLUMNS, RecordFilter, count_records, record_page
from widgets.theme import STATUS_TONES, tone

PAGE = 200
Index = QModelIndex | QPersistentModelIndex


EDITABLE = {"output": "output", "status": "status"}



def table_columns(nb: Notebook, flt: RecordFilter | None = None) -> tuple[str, ...]:
    """The fixed columns with the outputs' fields right after ``output`` (visible without scrolling):
    every prompt's fields, or only the shown prompt's when the filter picks one."""
    at = RECORD_COLUMNS.index("output") + 1
    fields = field_columns(nb, flt.prompt if flt else None, flt.prompt_version_id if flt else None)
    return RECORD_COLUMNS[:at] + tuple(fields) + RECORD_COLUMNS[at:]


class RecordsModel(QAbstractTableModel):
    def __init__(self, nb: Notebook, parent: Any = None, undo_stack: QUndoStack | None = None) -> None:
        super().__init__(parent)
        self._nb = nb
        self._rows: list[dict[str, Any]] = []
        self.filter = RecordFilter()
        self.columns: tuple[str, ...] = table_columns(nb)
        self._total = count_records(nb, self.filter)
        self.undo_stack = undo_stack or QUndoStack(self)

    def set_filter(self, flt: RecordFilter) -> None:
        self.filter = flt
        self.reload()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sorting happens in SQL, so it covers every record, not just the loaded pages."""
        from dataclasses import replace

        self.set_filter(replace(self.filter, order_by=self.columns[column],
                                descending=order == Qt.SortOrder.DescendingOrder))

    def column_of(self, name: str) -> int:
        """The index of the column headed ``name`` (e.g. ``output.answer``); -1 when there is none."""
        return self.columns.index(name) if name in self.columns else -1

    @property
    def total(self) -> int:
        """Records matching the filter (loaded or not)."""
        return self._total

    # -- editing: through the undo stack and the notebook's edit history ----------------------

    def flags(self, index: Index) -> Qt.ItemFlag:
        f = super().flags(index)
        if index.isValid() and self.columns[index.column()] in EDITABLE:
            f |= Qt.ItemFlag.ItemIsEditable
        return f

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid():
            return False
        field = EDITABLE.get(self.columns[index.column()])
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
                self.dataChanged.emit(self.index(i, 0), self.index(i, len(self.columns) - 1))
                return

    def reload(self) -> None:
        """Re-read from the first page; the field columns too (a prompt saved since may add fields)."""
        self.beginResetModel()
        self._rows = []
        self.columns = table_columns(self._nb, self.filter)
        self._total = count_records(self._nb, self.filter)
        self.endResetModel()
        if self.canFetchMore():
            self.fetchMore()

    def sync(self) -> None:
        """Pick up records added since the last fetch, without resetting the view (unless a prompt saved
        since brought new fields: then their columns come in with a reload)."""
        if table_columns(self._nb, self.filter) != self.columns:
            self.reload()
            return
        loaded_all = len(self._rows) >= self._total
        self._total = count_records(self._nb, self.filter)
        if loaded_all and self.canFetchMore():
            self.fetchMore()

    def record_at(self, row: int) -> dict[str, Any]:
        return self._rows[row]

    def row_of(self, record_id: int) -> int | None:
        """The row of ``record_id`` among the loaded rows; None when it is not loaded (or not shown)."""
        return next((i for i, r in enumerate(self._rows) if r["id"] == record_id), None)

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
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns[section] if 0 <= section < len(self.columns) else None
        return None

    @staticmethod
    def _fields(r: dict[str, Any]) -> dict[str, Any] | None:
        """The row's output as a JSON object (parsed once per loaded row), or None for plain text."""
        if "_fields" not in r:
            r["_fields"] = parse_output(r.get("output"))
        return r["_fields"]

    def field_of(self, row: int, name: str) -> Any:
        """A loaded row's value of the top-level field ``name`` (the key as the schema spells it, dots and
        all, as the SQL sort and filter match it); None when absent."""
        fields = self._fields(self._rows[row])
        return fields.get(name) if fields is not None else None

    def field_text(self, row: int, name: str) -> str:
        """What the ``output.<name>`` cell of a loaded row shows."""
        return cell_text(self.field_of(row, name))

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        r = self._rows[index.row()]
        col = self.columns[index.column()]
        if col.startswith(FIELD_PREFIX):
            if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
                text = self.field_text(index.row(), col.removeprefix(FIELD_PREFIX))
                return text if role == Qt.ItemDataRole.ToolTipRole else text.replace("\n", " ")[:200]
            if role == Qt.ItemDataRole.TextAlignmentRole:
                value = self.field_of(index.row(), col.removeprefix(FIELD_PREFIX))
                if isinstance(value, int | float) and not isinstance(value, bool):
                    return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return None
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
