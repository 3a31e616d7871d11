"""The records table: one QAbstractTableModel over the store, fetched in pages."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from app.browse import RECORD_COLUMNS, record_page
from app.store.notebook import Notebook

PAGE = 200
STATUS_COLOURS = {"accepted": QColor("#1b7f4b"), "rejected": QColor("#b3261e"), "flagged": QColor("#a86b00")}
Index = QModelIndex | QPersistentModelIndex


class RecordsModel(QAbstractTableModel):
    def __init__(self, nb: Notebook, parent: Any = None) -> None:
        super().__init__(parent)
        self._nb = nb
        self._rows: list[dict[str, Any]] = []
        self._total = nb.count_records("sample")

    def reload(self) -> None:
        self.beginResetModel()
        self._rows = []
        self._total = self._nb.count_records("sample")
        self.endResetModel()
        if self.canFetchMore():
            self.fetchMore()

    def sync(self) -> None:
        """Pick up records added since the last fetch, without resetting the view."""
        loaded_all = len(self._rows) >= self._total
        self._total = self._nb.count_records("sample")
        if loaded_all and self.canFetchMore():
            self.fetchMore()

    def record_at(self, row: int) -> dict[str, Any]:
        return self._rows[row]

    # paging, as Spyder's dataframe editor does
    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:
        return not parent.isValid() and len(self._rows) < self._total

    def fetchMore(self, parent: Index = QModelIndex()) -> None:
        page = record_page(self._nb, len(self._rows), PAGE)
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
            if col == "status":
                return STATUS_COLOURS.get(r["status"])
            return QColor("#5b4bb7") if r["origin"] == "human-edited" else None
        if role == Qt.ItemDataRole.ToolTipRole and col == "output":
            return r["output"]
        if role == Qt.ItemDataRole.TextAlignmentRole and col in ("id", "tokens", "mean logprob", "run"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None
