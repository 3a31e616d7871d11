"""The review queue: one record at a time, large text, keyboard first.

A accept · R reject · F flag · J next · K previous · E edit (Ctrl+Enter saves, Esc cancels).
Status changes and edits go through the same undo stack as the records table.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QKeyEvent, QKeySequence, QShortcut, QUndoStack
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QStackedWidget, QTextBrowser, QVBoxLayout, QWidget

from app.store.queries import review_card, review_ids, review_progress
from app.store.notebook import Notebook
from widgets.edit_commands import EditRecordCommand

KEYS = {Qt.Key.Key_A: "accepted", Qt.Key.Key_R: "rejected", Qt.Key.Key_F: "flagged"}


class ReviewQueue(QWidget):
    sig_record_changed = Signal(int)

    def __init__(self, nb: Notebook, undo_stack: QUndoStack, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.nb, self.undo_stack = nb, undo_stack
        self.ids: list[int] = []
        self.pos = 0
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.header = QLabel()
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.text = QTextBrowser()
        big = QFont(self.font())
        big.setPointSize(big.pointSize() + 4)
        self.text.setFont(big)
        self.text.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.editor = QPlainTextEdit()
        self.editor.setFont(big)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.text)
        self.stack.addWidget(self.editor)
        self.facts = QLabel()
        self.facts.setTextFormat(Qt.TextFormat.RichText)
        self.facts.setWordWrap(True)
        self.help = QLabel("A accept · R reject · F flag · J next · K previous · E edit (Ctrl+Enter save, Esc cancel)")
        self.help.setStyleSheet("color: #666;")
        lay = QVBoxLayout(self)
        lay.addWidget(self.header)
        lay.addWidget(self.stack, 1)
        lay.addWidget(self.facts)
        lay.addWidget(self.help)
        QShortcut(QKeySequence("Ctrl+Return"), self.editor, self.save_edit)
        QShortcut(QKeySequence("Escape"), self.editor, self.cancel_edit)
        self.reload()

    # -- navigation ---------------------------------------------------------------------

    def reload(self) -> None:
        current = self.current_id()
        self.ids = review_ids(self.nb)
        self.pos = self.ids.index(current) if current in self.ids else 0
        self.show_current()

    def current_id(self) -> int | None:
        return self.ids[self.pos] if 0 <= self.pos < len(self.ids) else None

    def move(self, step: int) -> None:
        if self.ids:
            self.pos = max(0, min(len(self.ids) - 1, self.pos + step))
            self.show_current()

    def show_current(self) -> None:
        rid = self.current_id()
        progress = review_progress(self.nb)
        runs = " · ".join(
            f"{'run ' + str(p['run_id']) if p['run_id'] else 'imported'}: {p['share']:.0%} reviewed" for p in progress)
        if rid is None:
            self.header.setText("<b>Nothing to review yet</b>")
            self.text.setPlainText("")
            self.facts.setText("")
            return
        card = review_card(self.nb, rid)
        r = card["record"]
        colour = {"accepted": "#1b7f4b", "rejected": "#b3261e", "flagged": "#a86b00"}.get(r["status"], "#333")
        self.header.setText(
            f"<b>Record {rid}</b> ({self.pos + 1} of {len(self.ids)}) — "
            f"<span style='color:{colour}'><b>{r['status']}</b></span>, {r['origin']}"
            f"<br><span style='color:#666'>{html.escape(runs)}</span>")
        self.text.setPlainText(r["output"] or "")
        facts = []
        pv, run = card.get("prompt_version"), card.get("run")
        if pv is not None:
            facts.append(f"prompt {html.escape(pv.label)}" + (f", run {run.id}, seed {r['seed']}" if run else ""))
        if r["mean_logprob"] is not None:
            facts.append(f"mean logprob {r['mean_logprob']:.3f}, {r['completion_tokens']} tokens")
        if card["scores"]:
            facts.append("scores: " + ", ".join(f"{html.escape(s.name)} {s.value:.3g}" for s in card["scores"]
                                                if s.value is not None))
        if card["failures"]:
            facts.append("<span style='color:#b3261e'>failed: " + "; ".join(
                f"{html.escape(s.name.removeprefix('validator:'))} ({html.escape(s.reason)})" for s in card["failures"])
                + "</span>")
        for d in card["duplicates"]:
            facts.append(f"{d['method']} duplicate group of {d['size']} (representative {d['representative_id']})")
        self.facts.setText("<br>".join(facts))

    # -- actions -----------------------------------------------------------------------------

    def _push(self, field: str, value: str) -> None:
        rid = self.current_id()
        if rid is None:
            return
        self.undo_stack.push(EditRecordCommand(self.nb, rid, field, value, self._changed))

    def _changed(self, rid: int) -> None:
        self.show_current()
        self.sig_record_changed.emit(rid)

    def set_status(self, status: str) -> None:
        self._push("status", status)
        self.move(1)

    def start_edit(self) -> None:
        rid = self.current_id()
        if rid is None:
            return
        self.editor.setPlainText(self.nb.record(rid)["output"] or "")
        self.stack.setCurrentWidget(self.editor)
        self.editor.setFocus()

    def save_edit(self) -> None:
        self._push("output", self.editor.toPlainText())
        self.cancel_edit()

    def cancel_edit(self) -> None:
        self.stack.setCurrentWidget(self.text)
        self.setFocus()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt name)
        if self.stack.currentWidget() is self.editor or event.modifiers() != Qt.KeyboardModifier.NoModifier:
            return super().keyPressEvent(event)
        key = event.key()
        if key in KEYS:
            self.set_status(KEYS[key])
        elif key == Qt.Key.Key_J:
            self.move(1)
        elif key == Qt.Key.Key_K:
            self.move(-1)
        elif key == Qt.Key.Key_E:
            self.start_edit()
        else:
            super().keyPressEvent(event)
