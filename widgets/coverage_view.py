"""Coverage of the target mix: for each prompt whose front matter declares ``target:`` on a
categorical column, kept records per value against the target, and what is still missing.

A tab of the Quality view, redrawn whenever it is; the counts come from
``app.quality.coverage.notebook_coverage`` (the funnel's kept set). "Top up" asks the Quality
view to run ``app.jobs.topup_job`` for the chosen prompt (rounds of pinned runs, each validated
and counted by the funnel), the same as ``synth-studio topup``.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.quality.coverage import Coverage, notebook_coverage
from app.store.notebook import Notebook

HEADERS = ["prompt", "column", "value", "kept", "target", "missing", "made", "progress"]


class CoverageView(QWidget):
    sig_topup = Signal(str)  # a prompt's name: fill its missing kept records

    def __init__(self, nb: Notebook, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.nb = nb
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.prompt = QComboBox()
        self.prompt.setToolTip("The prompt whose targets to fill")
        self.topup_button = QPushButton("Top up")
        self.topup_button.setToolTip("Generate until every target of the prompt is met, counting only what the "
                                     "funnel keeps (rounds of runs pinned to the missing values, each validated)")
        self.topup_button.clicked.connect(lambda: self.sig_topup.emit(self.prompt.currentText()))
        self.topup_button.setEnabled(False)  # until the coverage is counted and something is short
        head = QHBoxLayout()
        head.addWidget(self.summary, 1)
        head.addWidget(self.prompt)
        head.addWidget(self.topup_button)
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        lay = QVBoxLayout(self)
        lay.addLayout(head)
        lay.addWidget(self.table, 1)

    def refresh(self) -> None:
        self.show_coverage(notebook_coverage(self.nb))

    def show_coverage(self, covs: list[Coverage]) -> None:
        """Show ``covs`` (counted off the UI thread by the Quality view's count)."""
        rows = [(cov.prompt, col, value, c) for cov in covs
                for col, counts in cov.values.items() for value, c in counts.items()]
        short = [cov.prompt for cov in covs if any(c.missing for counts in cov.values.values() for c in counts.values())]
        current = self.prompt.currentText()
        self.prompt.clear()
        self.prompt.addItems(short)
        if current in short:
            self.prompt.setCurrentText(current)
        self.prompt.setVisible(bool(short))
        self.topup_button.setEnabled(bool(short))
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
            self.summary.setText(f"{missing} kept records missing. Press Top up to generate them (only what the "
                                 "funnel keeps counts).")
        else:
            self.summary.setText("Every target is met.")
