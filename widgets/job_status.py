"""The window's file job (an import, an export) in the status bar: what it does, how far it is, and Cancel.

It only presents a :class:`~widgets.job_runner.JobRunner`'s signals and passes Cancel back to
it; the job itself (``app.jobs.import_job`` / ``export_job``) decides what a stop leaves behind
(nothing: an import's staged rows are removed, an export's partial file too).
"""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QSizePolicy, QWidget

from widgets.job_runner import JobRunner


class JobStatus(QWidget):
    """Shown while its runner has a job; hidden once it ended (its end goes to the status bar's message)."""

    def __init__(self, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.what = ""
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(260)
        self.bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop it: nothing it did so far is kept")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.bar.setMinimumWidth(220)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.label)
        lay.addWidget(self.bar)
        lay.addWidget(self.cancel_button)
        runner.sig_progress.connect(self._on_progress)
        runner.sig_done.connect(self.hide)
        self.hide()

    def begin(self, what: str) -> None:
        """A job was started: ``what`` names it ("importing topics.csv")."""
        self.what = what
        self.label.setText(what)
        self.label.setToolTip(what)
        self.bar.setRange(0, 0)  # busy until the job says how far it is
        self.bar.setFormat("")
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")
        self.show()

    def cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling…")
        self.runner.cancel()

    def _on_progress(self, done: int, total: int, message: str) -> None:
        if total <= 1 and done == 0:  # "reading": no count yet
            self.bar.setRange(0, 0)
        else:
            self.bar.setRange(0, max(total, 1))
            self.bar.setValue(min(done, total))
        self.bar.setFormat(message)
        self.bar.setToolTip(message)
