"""The records table: one QAbstractTableModel over the store, fetched in pages.

Its columns are the fixed ones (RECORD_COLUMNS) and, when a prompt of the notebook declares an
output schema, one ``output.<field>`` column per field (app/generate/structured.py): the field's
value read from each loaded row's JSON output, sorted and filtered in SQL like the others.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractTableModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QFont, QKeyEvent, QTextCursor, QUndoStack
from PySide6.QtWidgets import QComboBox, QPlainTextEdit, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from app.generate.structured import field_columns
from app.prompts.structured import FIELD_PREFIX, cell_text, parse_output
from app.store.notebook import RECORD_STATUSES, Notebook
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


# An edit typed in the table waits this long for another program's write on the UI thread; when the
# notebook is still busy the edit is kept (shown in its cell, italic) and tried again every second.
EDIT_WAIT_S = 0.5
RETRY_MS = 1000


class RecordsModel(QAbstractTableModel):
    sig_edit_refused = Signal(str)  # an edit the store would not take, said in words for the window to show
    sig_edit_waiting = Signal(str)  # an edit kept until another program's write ends, in words
    sig_edit_saved = Signal(str)  # a kept edit was written at last

    def __init__(self, nb: Notebook, parent: Any = None, undo_stack: QUndoStack | None = None) -> None:
        super().__init__(parent)
        self._nb = nb
        self._rows: list[dict[str, Any]] = []
        self.filter = RecordFilter()
        self.columns: tuple[str, ...] = table_columns(nb)
        self._counted: int | None = None  # records matching the filter; counted when first needed
        self.undo_stack = undo_stack or QUndoStack(self)
        # edits the notebook could not take yet (another program holds its write lock): (record id,
        # field) -> value, shown in their cells and written by the retry timer
        self._pending: dict[tuple[int, str], Any] = {}
        self._retry = QTimer(self)
        self._retry.setInterval(RETRY_MS)
        self._retry.timeout.connect(self._retry_pending)

    def set_filter(self, flt: RecordFilter) -> None:
        self.filter = flt
        self.reload()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sorting happens in SQL, so it covers every record, not just the loaded pages."""
        from dataclasses import replace

        flt = replace(self.filter, order_by=self.columns[column], descending=order == Qt.SortOrder.DescendingOrder)
        if flt != self.filter:  # the view asks again for the order it has (setting its indicator does)
            self.set_filter(flt)

    def column_of(self, name: str) -> int:
        """The index of the column headed ``name`` (e.g. ``output.answer``); -1 when there is none."""
        return self.columns.index(name) if name in self.columns else -1

    @property
    def total(self) -> int:
        """Records matching the filter (loaded or not)."""
        return self._total

    @property
    def _total(self) -> int:
        if self._counted is None:
            self._counted = count_records(self._nb, self.filter)
        return self._counted

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
        """Edit through the undo stack. False when refused (``sig_edit_refused`` says why) or unchanged;
        True when written, or when another program's write holds the notebook past ``EDIT_WAIT_S``:
        then the edit is kept, shown in its cell, said by ``sig_edit_waiting``, and written by a retry
        every second (``sig_edit_saved``), never reported as written before it is."""
        if field == "status" and value not in RECORD_STATUSES:  # a typo must not reach the store, nor stderr
            self.sig_edit_refused.emit(f"{str(value)!r} is not a status: use one of {', '.join(RECORD_STATUSES)}")
            return False
        current = next((r for r in self._rows if r["id"] == record_id), None)
        if current is not None and current.get(field) == value and (record_id, field) not in self._pending:
            return False
        outcome, message = self._write(record_id, field, value, EDIT_WAIT_S)
        if outcome == "refused":
            self.sig_edit_refused.emit(message)
            return False
        if outcome == "busy":
            self._pending[(record_id, field)] = value
            self._retry.start()
            self._repaint(record_id)
            # short enough for the status bar, and not "try again": nothing is for the person to redo
            self.sig_edit_waiting.emit(f"the notebook is busy (another program is writing it): your edit of record "
                                       f"{record_id} is kept and saved as soon as it is free")
        else:
            self._pending.pop((record_id, field), None)  # a newer edit of the same cell, written
        return True

    @property
    def pending_edits(self) -> int:
        """Edits kept in the table that the notebook has not taken yet."""
        return len(self._pending)

    def _write(self, record_id: int, field: str, value: Any, wait_s: float) -> tuple[str, str]:
        """("done" | "busy" | "refused", message): one try through the undo stack, waiting at most
        ``wait_s`` for another program's write."""
        from widgets.edit_commands import EditRecordCommand

        refused: list[str] = []
        busy: list[str] = []
        with self._nb.patience(wait_s):
            self.undo_stack.push(EditRecordCommand(self._nb, record_id, field, value, self.refresh_record,
                                                   on_error=refused.append, on_busy=busy.append))
        if busy:
            return "busy", busy[0]
        if refused:
            return "refused", refused[0]
        return "done", ""

    def _retry_pending(self) -> None:
        if self._nb.closed or not self._write_pending(0.05):
            self._retry.stop()

    def flush_pending(self, wait_s: float) -> int:
        """Try the kept edits once more, waiting up to ``wait_s`` (closing the window); returns how
        many are still not written."""
        left = self._write_pending(wait_s)
        if not left:
            self._retry.stop()
        return left

    def _write_pending(self, wait_s: float) -> int:
        """Write the kept edits in the order they were typed, stopping at the first the notebook is
        still too busy for; returns how many are left."""
        for (record_id, field), value in list(self._pending.items()):
            outcome, message = self._write(record_id, field, value, wait_s)
            if outcome == "busy":
                break  # still busy: the rest wait too
            del self._pending[(record_id, field)]
            self._repaint(record_id)
            if outcome == "refused":
                self.sig_edit_refused.emit(message)
            else:
                self.sig_edit_saved.emit(f"saved your edit of record {record_id}: the notebook is free again")
        return len(self._pending)

    def _repaint(self, record_id: int) -> None:
        row = self.row_of(record_id)
        if row is not None:
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.columns) - 1))

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
        self._counted = None  # counted when the view asks for rows
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
        self._counted = count_records(self._nb, self.filter)
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
            self._counted = len(self._rows)
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
        waiting = self._pending and EDITABLE.get(col) is not None and (r["id"], EDITABLE[col]) in self._pending
        if waiting:  # a kept edit shows as typed, in italics, until the notebook takes it
            if role == Qt.ItemDataRole.FontRole:
                font = QFont()
                font.setItalic(True)
                return font
            if role == Qt.ItemDataRole.ToolTipRole:
                return "not saved yet: another program is writing the notebook; saved as soon as it is free"
            r = {**r, EDITABLE[col]: self._pending[(r["id"], EDITABLE[col])]}
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


class RecordsDelegate(QStyledItemDelegate):
    """Editors that fit what a cell holds: the output in a multi-line box that keeps its line breaks
    (a QLineEdit would flatten them), the status as a menu of exactly the valid statuses.

    The output box commits on Ctrl+Enter or when it loses focus (Enter is a new line); Esc cancels.
    """

    @staticmethod
    def _column(index: Index) -> str:
        return str(index.model().headerData(index.column(), Qt.Orientation.Horizontal))

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: Index) -> QWidget:  # noqa: N802 (Qt name)
        col = self._column(index)
        if col == "output":
            box = QPlainTextEdit(parent)
            box.setTabChangesFocus(True)
            box.setToolTip("Ctrl+Enter keeps the edit, Esc cancels it")
            return box
        if col == "status":
            combo = QComboBox(parent)
            combo.addItems(list(RECORD_STATUSES))
            combo.activated.connect(lambda _i, c=combo: self._finish(c))  # a pick is the whole edit
            return combo
        return super().createEditor(parent, option, index)

    def setEditorData(self, editor: QWidget, index: Index) -> None:  # noqa: N802 (Qt name)
        value = index.data(Qt.ItemDataRole.EditRole)
        if isinstance(editor, QPlainTextEdit):
            editor.setPlainText("" if value is None else str(value))
            editor.moveCursor(QTextCursor.MoveOperation.End)
        elif isinstance(editor, QComboBox):
            editor.setCurrentText(str(value))
        else:
            super().setEditorData(editor, index)

    def setModelData(self, editor: QWidget, model: QAbstractItemModel, index: Index) -> None:  # noqa: N802 (Qt name)
        if isinstance(editor, QPlainTextEdit):
            # Untouched text is not written back: toPlainText() would turn non-breaking spaces into
            # spaces, and a record only looked at must not become "human-edited". The raw text keeps
            # them; only its paragraph separators are line breaks.
            if editor.document().isModified():
                text = editor.document().toRawText().replace("\u2029", "\n")
                model.setData(index, text, Qt.ItemDataRole.EditRole)
        elif isinstance(editor, QComboBox):
            model.setData(index, editor.currentText(), Qt.ItemDataRole.EditRole)
        else:
            super().setModelData(editor, model, index)

    def updateEditorGeometry(self, editor: QWidget, option: QStyleOptionViewItem, index: Index) -> None:  # noqa: N802 (Qt name)
        """A row is one line high; the output box opens taller (over the rows below) so the text can be read."""
        rect = option.rect
        if isinstance(editor, QPlainTextEdit):
            rect.setHeight(max(rect.height(), editor.fontMetrics().lineSpacing() * 8))
            rect.setWidth(max(rect.width(), 360))
        editor.setGeometry(rect)

    def _finish(self, editor: QWidget) -> None:
        self.commitData.emit(editor)
        self.closeEditor.emit(editor, QStyledItemDelegate.EndEditHint.NoHint)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if isinstance(obj, QPlainTextEdit) and isinstance(event, QKeyEvent):
            key, mods = event.key(), event.modifiers()
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and mods & Qt.KeyboardModifier.ControlModifier:
                self._finish(obj)
                return True
        return super().eventFilter(obj, event)
