"""The import preview: a file's first rows as the importer parsed them (its separator, its columns,
what it was recognised as), and the column that becomes each record's text, before anything is
written. A file that cannot be read shows why, and cannot be imported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import StudioError
from app.data.importer import preview_table
from app.data.training_files import recognise

PREVIEW_ROWS = 20
AUTO = "auto"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value if len(value) <= 300 else value[:300] + "…"
    return json.dumps(value, ensure_ascii=False)[:300]


class ImportPreview(QDialog):
    """Shows ``path`` as it will be imported; ``output_column()`` is the person's choice
    (None: recognised training files as records, else the ``output`` column if there is one)."""

    def __init__(self, path: str | Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path = Path(path)
        self.setWindowTitle(f"Import {self.path.name}")
        self.resize(900, 480)
        self.columns: list[str] = []
        self.how = QLabel()
        self.how.setWordWrap(True)
        self.column_choice = QComboBox()
        self.column_choice.setToolTip("The column that holds each record's text; rows without text become "
                                      "input rows to generate from")
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.import_button = self.buttons.addButton("Import", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Record text", self.column_choice)
        layout = QVBoxLayout(self)
        layout.addWidget(self.how)
        layout.addLayout(form)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.buttons)
        self._load()
        self.column_choice.currentIndexChanged.connect(self._on_column_changed)
        self._on_column_changed()

    def _load(self) -> None:
        try:
            columns, rows, how = preview_table(self.path, PREVIEW_ROWS)
        except StudioError as exc:
            self.how.setText(f"<b>Cannot import this file.</b> {exc}")
            self.column_choice.setEnabled(False)
            self.import_button.setEnabled(False)
            return
        self.columns = columns
        recognised = recognise(columns)
        auto = (f"{AUTO}: as {recognised.title}" if recognised is not None
                else f"{AUTO}: the output column" if "output" in columns else f"{AUTO}: none (all input rows)")
        self.column_choice.addItem(auto, None)
        for c in columns:
            self.column_choice.addItem(c, c)
        self.how.setText(f"{how}. First {len(rows)} rows of {self.path.name}:")
        self.table.setColumnCount(len(columns))
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for i, value in enumerate(row):
                self.table.setItem(r, i, QTableWidgetItem(_cell(value)))

    def output_column(self) -> str | None:
        """The column chosen to hold the records' text, or None for the automatic choice."""
        data = self.column_choice.currentData()
        return data if isinstance(data, str) else None

    def text_column(self) -> str | None:
        """The column whose values will be the records' text (marked in the table)."""
        chosen = self.output_column()
        if chosen is not None:
            return chosen
        kind = recognise(self.columns)
        if kind is None:
            return "output" if "output" in self.columns else None
        return {"studio": "output", "sft": "messages", "sharegpt": "conversations"}.get(kind.kind)

    def _on_column_changed(self) -> None:
        text = self.text_column()
        bold = QFont()
        bold.setBold(True)
        for i, name in enumerate(self.columns):
            item = QTableWidgetItem(f"{name}\n(record text)" if name == text else name)
            if name == text:
                item.setFont(bold)
            self.table.setHorizontalHeaderItem(i, item)
