"""The Report tab: real vs synthetic, the same page ``synth-studio report --html`` writes.

The report is computed by ``app.jobs.report_job`` on the view's job runner (compute lane: its
matrix products take every core) and shown in a QTextBrowser, which renders the page's inline
PNGs (data URIs) as they are; Save HTML writes the same self-contained page to a file.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.jobs import report_job
from app.report.html import ReportPage
from app.store.notebook import Notebook
from widgets.job_runner import JobRunner
from widgets.theme import set_tone

SETS = (("kept", "the kept set"), ("all", "all synthetic samples"))


class ReportView(QWidget):
    sig_report_ready = Signal(object)  # the ReportPage just computed

    def __init__(self, nb: Notebook, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.nb = nb
        self.result: ReportPage | None = None
        self.status = QLabel()
        self.runner = JobRunner(self)
        self.runner.sig_started.connect(lambda: self.status.setText("computing…"))
        self.runner.sig_progress.connect(self._on_progress)
        self.runner.sig_finished.connect(self._on_finished)
        self.runner.sig_errored.connect(self._on_error)
        self.runner.sig_cancelled.connect(lambda: self.status.setText("cancelled"))
        self.runner.sig_done.connect(self._on_done)
        self.which = QComboBox()
        self.which.setToolTip("Which synthetic records to compare with the real ones")
        self.run_button = QPushButton("Compute report")
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.runner.cancel)
        self.save_button = QPushButton("Save HTML…")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self._on_save)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(160)
        self.progress.setVisible(False)
        self.score_label = QLabel("Compute the report to compare the synthetic records with the real ones.")
        self.score_label.setWordWrap(True)
        self.page = QTextBrowser()
        self.page.setOpenLinks(False)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Synthetic records"))
        bar.addWidget(self.which)
        for w in (self.run_button, self.cancel_button, self.save_button, self.progress):
            bar.addWidget(w)
        bar.addWidget(self.status, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(bar)
        lay.addWidget(self.score_label)
        lay.addWidget(self.page, 1)
        self.reload()

    def reload(self) -> None:
        """The choice of synthetic sets: the kept set, every synthetic sample, each frozen version."""
        from app.export.versions import versions

        current = self.which.currentData()
        self.which.clear()
        for key, label in SETS:
            self.which.addItem(label, ("set", key))
        for v in versions(self.nb):
            self.which.addItem(f"version {v.tag} ({v.records} records)", ("version", v.tag))
        index = self.which.findData(current)
        self.which.setCurrentIndex(max(0, index))
        from app.store.report import has_real_samples

        has_real = has_real_samples(self.nb)
        self.run_button.setEnabled(has_real and not self.runner.running)
        if not has_real and self.result is None:
            self.score_label.setText(
                "The report compares the synthetic records with real ones, and this notebook has none yet: import "
                "a table of real examples with their text (File > Import…, choosing the text column as output), "
                "then compute it.")
        elif self.result is None:
            self.score_label.setText("Compute the report to compare the synthetic records with the real ones.")

    def set_notebook(self, nb: Notebook) -> None:
        """Show another notebook: its report is computed afresh (one still running is cancelled)."""
        self.runner.cancel()
        self.nb, self.result = nb, None
        self.page.clear()
        self.score_label.setText("Compute the report to compare the synthetic records with the real ones.")
        self.save_button.setEnabled(False)
        self.reload()

    def showEvent(self, event) -> None:  # versions made in another tab show up here
        self.reload()
        super().showEvent(event)

    def start(self) -> None:
        """Compute the report; one still being computed is cancelled and its result dropped."""
        kind, value = self.which.currentData() or ("set", "kept")
        self.runner.start(report_job, self.nb.path, synthetic=value if kind == "set" else "kept",
                          version=value if kind == "version" else None, compute=True)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        set_tone(self.status, None)
        self.status.setToolTip("")
        self.status.setText("queued: waiting for the job that is using the cores" if self.runner.queued
                            else "starting…")

    def _on_progress(self, done: int, total: int, message: str) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.status.setText(message)

    def _on_finished(self, result: ReportPage) -> None:
        self.show_report(result)
        self.sig_report_ready.emit(result)

    def _on_error(self, message: str) -> None:
        set_tone(self.status, "error")
        self.status.setText(message.splitlines()[0])
        self.status.setToolTip(message)

    def _on_done(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setVisible(False)

    def show_report(self, result: ReportPage) -> None:
        self.result = result
        r = result.report
        parts = " · ".join(f"{name} {value:.3f}" for name, value in r.parts.items())
        self.score_label.setText(f"<span style='font-size:18pt; font-weight:bold'>{r.score:.3f}</span> overall "
                                 f"&nbsp; ({parts}) &nbsp; {r.real_count} real vs {r.synthetic_count} synthetic "
                                 f"records ({r.synthetic_set})")
        self.page.setHtml(result.html)
        self.save_button.setEnabled(True)
        self.status.setText("")

    def _on_save(self) -> None:
        if self.result is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save the report", str(self.nb.path.parent / f"{self.nb.path.stem}-report.html"),
                                              "HTML page (*.html)")
        if path:
            Path(path).write_text(self.result.html, encoding="utf-8")
            self.status.setText(f"saved {Path(path).name}")
