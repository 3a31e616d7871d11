"""Coverage of the target mix: for each prompt whose front matter declares ``target:`` on a
categorical column, kept records per value against the target, and what is still missing.

A tab of the Quality view, redrawn whenever it is; the counts come from
``app.quality.coverage.notebook_coverage`` (the funnel's kept set). ``synth-studio topup``
fills what is missing.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QProgressBar, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from app.quality.coverage import notebook_coverage
from app.store.notebook import Notebook

HEADERS = ["prompt", "column", "value", "kept", "target", "missing", "made", "progress"]


class CoverageView(QWidget):
    def __init__(self, nb: Notebook, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.nb = nb
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        lay = QVBoxLayout(self)
        lay.addWidget(self.summary)
        lay.addWidget(self.table, 1)

    def refresh(self) -> None:
        rows = [(cov.prompt, col, value, c) for cov in notebook_coverage(self.nb)
                for col, counts in cov.values.items() for value, c in counts.items()]
        self.table.setRowCount(len(rows))
        for r, (prompt, col, value, c) in enumerate(rows):
            for k, text in enumerate([prompt, col, value, str(c.kept), str(c.target), str(c.missing), str(c.made)]):
                item = QTableWidgetItem(text)
                if k >= 3:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, k, item)
            bar = self.table.cellWidget(r, len(HEADERS) - 1)
            if not isinstance(bar, QProgressBar):  # reused on a refresh: a replaced one lingers until deleted
                bar = QProgressBar()
                self.table.setCellWidget(r, len(HEADERS) - 1, bar)
            bar.setRange(0, max(c.target, 1))
            bar.setValue(min(c.kept, c.target) if c.target else 1)
            bar.setFormat(f"{c.kept}/{c.target}")
        self.table.resizeColumnsToContents()
        missing = sum(c.missing for *_, c in rows)
        if not rows:
            self.summary.setText("No targets: give a categorical column `target: N` in a prompt's front matter "
                                 "(kept records wanted per value).")
        elif missing:
            self.summary.setText(f"{missing} kept records missing. Fill them with: synth-studio topup NOTEBOOK "
                                 "--prompt NAME")
        else:
            self.summary.setText("Every target is met.")
