"""Closing the window while work is unfinished asks first: "Quit anyway" or "Cancel".

Unfinished work is a job still running in any view (a generation, a judge pass, an import;
not a background warm-up) or a prompt editor whose text is not saved as a version. The
question is window-modal and does not block: the close is put on hold (the event ignored)
until the person answers, and "Quit anyway" closes the window again, this time for good.
Only a window a person can see asks; a script closing a hidden window, or one that sets
``ASK_BEFORE_CLOSE = False``, closes at once.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QMessageBox, QPushButton, QWidget

from widgets.job_runner import JobRunner
from widgets.prompt_editor import PromptEditor
from widgets.records_table import RecordsModel

ASK_BEFORE_CLOSE = True


def unfinished_work(window: QWidget) -> list[str]:
    """What closing ``window`` now would lose or stop, in words; empty: nothing."""
    reasons = []
    jobs = [r for r in window.findChildren(JobRunner) if r.running and not r.background]
    if jobs:
        reasons.append(f"{'A job is' if len(jobs) == 1 else f'{len(jobs)} jobs are'} still running: quitting "
                       "cancels it (what it made so far is kept).")
    kept = sum(m.pending_edits for m in window.findChildren(RecordsModel))
    if kept:
        reasons.append(f"{kept} edit{'s' if kept != 1 else ''} of the table wait{'' if kept != 1 else 's'} for "
                       "another program to finish writing the notebook: quitting now may lose "
                       f"{'them' if kept != 1 else 'it'} (Quit anyway waits 10 s more first).")
    if any(e.has_unsaved_changes() for e in window.findChildren(PromptEditor)):
        reasons.append("The prompt editor has changes that are not saved as a version: quitting loses them.")
    return reasons


class CloseGuard(QObject):
    """Owned by a window; its ``closeEvent`` starts with ``if self.close_guard.holds(event): return``."""

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self.window = window
        self.confirmed = False
        self.dialog: QMessageBox | None = None  # the open question, for a test to answer
        self.quit_button: QPushButton | None = None

    def holds(self, event: QCloseEvent) -> bool:
        """True: the close waits for the person's answer (``event`` is ignored)."""
        if self.confirmed or not ASK_BEFORE_CLOSE or not self.window.isVisible():
            return False
        reasons = unfinished_work(self.window)
        if not reasons:
            return False
        event.ignore()
        if self.dialog is None:
            self._ask(reasons)
        return True

    def _ask(self, reasons: list[str]) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, "Quit Synth Studio?", "Quit anyway?",
                          QMessageBox.StandardButton.Cancel, self.window)
        box.setInformativeText("\n\n".join(reasons))
        quit_button = box.addButton("Quit anyway", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setEscapeButton(QMessageBox.StandardButton.Cancel)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.finished.connect(lambda _result: self._on_answer(box.clickedButton() is quit_button))
        self.dialog, self.quit_button = box, quit_button
        box.open()

    def _on_answer(self, quit_anyway: bool) -> None:
        dialog, self.dialog, self.quit_button = self.dialog, None, None
        if dialog is not None:
            dialog.deleteLater()
        if quit_anyway:
            self.confirmed = True
            self.window.close()
