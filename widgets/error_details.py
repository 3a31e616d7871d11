"""The window's messages: one line in the status bar; an error keeps its whole text behind "Details…".

Job errors can be several lines (a traceback for a bug); the status bar shows the first,
in the theme's error colour, and the Details button opens a message box whose "Show
Details…" part holds all of it (selectable, for a bug report). Every error shown here is
also in the log file (``app.core.logs``).
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QStatusBar, QToolButton

from widgets.theme import set_style

log = logging.getLogger("widgets.main_window")


class ErrorDetails(QToolButton):
    """The "Details…" button at the right end of a status bar, shown while an error is."""

    def __init__(self, status_bar: QStatusBar) -> None:
        super().__init__(status_bar)
        self.status_bar = status_bar
        self.setText("Details…")
        self.setToolTip("The whole message (and the log file's place)")
        self.setAutoRaise(True)
        self.clicked.connect(self.open_details)
        status_bar.addPermanentWidget(self)
        self.hide()
        self.full_text = ""  # the error's whole text
        self.dialog: QMessageBox | None = None

    def show_message(self, text: str, error: bool = False, logged: bool = False) -> None:
        """Show ``text``'s first line; an error also logs it (unless ``logged`` already) and offers the rest."""
        first = next((line for line in text.splitlines() if line.strip()), "")
        if error and not logged:
            log.error("%s", text)
        set_style(self.status_bar, "QStatusBar { color: $error; }" if error else "")
        self.status_bar.showMessage(("error: " if error else "") + first)
        self.full_text = text if error else ""
        self.setVisible(error)

    def open_details(self) -> QMessageBox:
        from app.core.logs import log_path

        first = next((line for line in self.full_text.splitlines() if line.strip()), "")
        box = QMessageBox(QMessageBox.Icon.Critical, "Error", first, QMessageBox.StandardButton.Close, self.window())
        box.setInformativeText(f"Errors are also written to {log_path()}")
        box.setDetailedText(self.full_text)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.dialog = box
        box.open()
        return box
