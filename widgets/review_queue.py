"""The review queue: one record at a time, large text, keyboard first, most useful records first.

A accept · R reject · F flag · J next · K previous · E edit (Ctrl+Enter saves, Esc cancels).
Y / N answer the focused criterion's question (Tab / Shift+Tab move between criteria, U clears
the answer): the answer is a label that checks that criterion's judge.
The order and each record's reason come from ``app.review.queue``; status changes, edits and
answers go through the same undo stack as the records table.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QKeyEvent, QKeySequence, QShortcut, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.core.reader import apart_from
from app.jobs import ReviewQueueReady, review_queue_job
from app.review.labels import CriterionCard, card_criteria, label_value
from app.review.queue import QueueItem, build_queue, progress, view_choices
from app.store.notebook import Notebook
from app.store.review import review_card, review_progress
from app.store.trust import set_label
from widgets.edit_commands import EditRecordCommand
from widgets.job_runner import JobRunner
from widgets.theme import STATUS_TONES, set_tone, tone_hex

KEYS = {Qt.Key.Key_A: "accepted", Qt.Key.Key_R: "rejected", Qt.Key.Key_F: "flagged"}
ANSWER_KEYS = {Qt.Key.Key_Y: True, Qt.Key.Key_N: False, Qt.Key.Key_U: None}
HELP = ("A accept · R reject · F flag · Y/N answer the focused question (Tab next question, U clear) · "
        "J next · K previous · E edit (Ctrl+Enter save, Esc cancel)")


class LabelCommand(QUndoCommand):
    """A person's answer to one criterion about one record (undo puts back the previous answer)."""

    def __init__(self, nb: Notebook, record_id: int, criterion: str, new: bool | None, old: bool | None,
                 on_change: Callable[[int], None]) -> None:
        super().__init__(f"answer {criterion} for record {record_id}")
        self._nb, self._rid, self._criterion, self._new, self._old = nb, record_id, criterion, new, old
        self._on_change = on_change

    def redo(self) -> None:
        set_label(self._nb, self._rid, self._criterion, self._new)
        self._on_change(self._rid)

    def undo(self) -> None:
        set_label(self._nb, self._rid, self._criterion, self._old)
        self._on_change(self._rid)


# up to this many samples the queue is ordered at once (well under 0.1 s); beyond, on a runner
ORDER_HERE = 5000


class ReviewQueue(QWidget):
    sig_record_changed = Signal(int)
    sig_ready = Signal()  # the queue is ordered and shows its current record

    def __init__(self, nb: Notebook, undo_stack: QUndoStack, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.nb, self.undo_stack = nb, undo_stack
        self.items: list[QueueItem] = []
        self.ids: list[int] = []
        self.position = 0
        self.criteria: list[CriterionCard] = []  # the current record's criteria; one has the keys' focus
        self.crit_pos = 0
        self.crit_name: str | None = None  # kept from record to record unless the next is queued for another
        self._follow_item = True
        self._wanted: int | None = None  # the record to stay on once a queue ordered on the runner arrives
        self.runner = JobRunner(self, background=True)
        self.runner.sig_finished.connect(self._on_queue_ready)
        self.runner.sig_errored.connect(self._on_queue_error)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.header = QLabel()
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.header.setWordWrap(True)
        self.view = QComboBox()
        self.view.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keys stay with the queue
        self.view.setToolTip("Which records the queue walks")
        self.view.currentIndexChanged.connect(self._on_view_changed)
        self.why = QLabel()
        self.why.setWordWrap(True)
        set_tone(self.why, "accent")
        self.stale = QLabel()
        self.stale.setWordWrap(True)
        set_tone(self.stale, "warn")
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
        self.questions = QLabel()
        self.questions.setTextFormat(Qt.TextFormat.RichText)
        self.questions.setWordWrap(True)
        self.facts = QLabel()
        self.facts.setTextFormat(Qt.TextFormat.RichText)
        self.facts.setWordWrap(True)
        self.help = QLabel(HELP)
        self.help.setWordWrap(True)
        set_tone(self.help, "muted")
        # what the output answers: the input row's variables and the prompt the model was given
        self.context = QTextBrowser()
        self.context.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.context.setMinimumWidth(220)
        beside = QSplitter(Qt.Orientation.Horizontal)
        beside.addWidget(self.stack)
        beside.addWidget(self.context)
        beside.setStretchFactor(0, 3)
        beside.setStretchFactor(1, 2)
        buttons = QHBoxLayout()
        for label, tip, slot in (("◀ Previous", "K", lambda: self.move(-1)), ("Accept", "A", lambda: self.set_status("accepted")),
                                 ("Reject", "R", lambda: self.set_status("rejected")),
                                 ("Flag", "F", lambda: self.set_status("flagged")), ("Edit", "E", self.start_edit),
                                 ("Next ▶", "J", lambda: self.move(1))):
            b = QPushButton(f"{label}  ({tip})")
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keys stay with the queue
            b.clicked.connect(slot)
            buttons.addWidget(b)
        buttons.addStretch(1)
        top = QHBoxLayout()
        top.addWidget(self.header, 1)
        top.addWidget(self.view, 0, Qt.AlignmentFlag.AlignTop)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.why)
        lay.addWidget(self.stale)
        lay.addWidget(beside, 1)
        lay.addLayout(buttons)
        lay.addWidget(self.questions)
        lay.addWidget(self.facts)
        lay.addWidget(self.help)
        QShortcut(QKeySequence("Ctrl+Return"), self.editor, self.save_edit)
        QShortcut(QKeySequence("Escape"), self.editor, self.cancel_edit)
        # built when first shown: ordering the queue reads every score (seconds on a big notebook),
        # and a window opens with the queue on a tab, or in a collapsed cell, nobody is looking at
        self._stale = True

    def showEvent(self, event) -> None:  # noqa: N802 (Qt name)
        """Shown (its tab chosen, its cell opened): the queue as the notebook is now."""
        super().showEvent(event)
        if not event.spontaneous():  # not merely the window coming back from being minimised
            self.reload(keep_position=not self._stale)

    def invalidate(self) -> None:
        """The notebook changed (or another one opened): rebuild now if shown, else when next shown."""
        if self.isVisible():
            self.reload(keep_position=False)
        else:
            self._stale = True

    # -- navigation ---------------------------------------------------------------------

    def reload(self, keep_position: bool = True) -> None:
        """Rebuild the queue (order, reasons, the filter's choices), staying on the current record."""
        self._stale = False
        current = self.current_id() if keep_position else None
        view = self.view.currentData() or "all"
        samples = self.nb.count_records()
        if samples <= ORDER_HERE:
            self._set_choices(view_choices(self.nb), view)
            self._show_queue(build_queue(self.nb, view=view), current)
            return
        # a big notebook: the menu's counts and the order on a runner while the window stays responsive
        self._wanted = current
        self.header.setText("<b>Ordering the review queue…</b> (it reads every score; the window stays usable)")
        self.runner.start(apart_from(samples, review_queue_job), self.nb.path, view)

    def _set_choices(self, choices: list[tuple[str, str]], view: str) -> None:
        """The view menu (its failing counts as counted now), staying on ``view``."""
        self.view.blockSignals(True)
        self.view.clear()
        for label, value in choices:
            self.view.addItem(label, value)
        self.view.setCurrentIndex(max(0, self.view.findData(view)))
        self.view.blockSignals(False)

    def _on_queue_error(self, message: str) -> None:
        self.header.setText(f"<b>Could not order the review queue</b>: {html.escape(message)}")

    def _on_queue_ready(self, ready: object) -> None:
        if isinstance(ready, ReviewQueueReady):
            self._set_choices(ready.choices, self.view.currentData() or "all")
            self._show_queue(ready.items, self._wanted)

    def _show_queue(self, items: list[QueueItem], current: int | None) -> None:
        self.items = items
        self.ids = [it.record_id for it in self.items]
        self.position = self.ids.index(current) if current in self.ids else 0
        self._follow_item = current not in self.ids
        self.show_current()
        self.sig_ready.emit()

    def _on_view_changed(self, _index: int) -> None:
        self.reload(keep_position=False)
        self.setFocus()

    def current_id(self) -> int | None:
        return self.ids[self.position] if 0 <= self.position < len(self.ids) else None

    def current_item(self) -> QueueItem | None:
        return self.items[self.position] if 0 <= self.position < len(self.items) else None

    # steps through the queue (widgets/screenshots.py calls it); shadows QWidget.move, which Qt never calls virtually
    def move(self, step: int) -> None:  # type: ignore[override]
        if self.ids:
            self.position = max(0, min(len(self.ids) - 1, self.position + step))
            self._follow_item = True
            self.show_current()

    def show_current(self) -> None:
        rid = self.current_id()
        runs = " · ".join(f"{'run ' + str(p['run_id']) if p['run_id'] else 'imported'}: {p['share']:.0%} reviewed"
                          for p in review_progress(self.nb))
        done = progress(self.nb, self.ids).line
        if rid is None:
            self.header.setText(f"<b>Nothing to review in this view</b><br><span style='color:{tone_hex('muted')}'>"
                                f"{html.escape(done)}</span>")
            for w in (self.why, self.stale, self.questions, self.facts):
                w.setText("")
            self.stale.hide()
            self.text.setPlainText("")
            self.context.clear()
            self.criteria = []
            return
        card = review_card(self.nb, rid)
        r = card["record"]
        status = r["status"] if r["status"] not in STATUS_TONES else (
            f"<span style='color:{tone_hex(STATUS_TONES[r['status']])}'>{r['status']}</span>")
        self.header.setText(
            f"<b>Record {rid}</b> ({self.position + 1} of {len(self.ids)}) — <b>{status}</b>, {r['origin']}"
            f"<br><b>{html.escape(done)}</b><br><span style='color:{tone_hex('muted')}'>{html.escape(runs)}</span>")
        item = self.current_item()
        self.why.setText(f"Why: {item.why}" if item else "")
        stale = card["stale"] + (["likelihood"] if card["likelihood_stale"] else [])
        self.stale.setText(f"scores are stale (edited after scoring): {', '.join(stale)}" if stale else "")
        self.stale.setVisible(bool(stale))
        self.text.setPlainText(r["output"] or "")
        self.context.setHtml(context_html(r))
        self._show_questions(rid, item)
        self.facts.setText("<br>".join(self._facts(card)))

    def _show_questions(self, rid: int, item: QueueItem | None) -> None:
        self.criteria = card_criteria(self.nb, rid)
        names = [c.info.name for c in self.criteria]
        want = (item.criterion if self._follow_item and item else None) or self.crit_name
        self._follow_item = False
        self.crit_pos = names.index(want) if want in names else 0
        self.crit_name = names[self.crit_pos] if names else None
        lines, muted = [], tone_hex("muted")
        for i, c in enumerate(self.criteria):
            if c.value is None:
                judge = "not judged"
            else:
                judge = (f"judge {c.value:.2f} {'passes' if c.passed else 'fails'} (threshold {c.threshold:g}, "
                         f"{c.trust})" + (", stale" if c.stale else ""))
            answer = {True: "yes", False: "no", None: "—"}[c.answer]
            line = (f"<b>{html.escape(c.info.name)}</b>: {html.escape(c.info.prompt)} "
                    f"<span style='color:{muted}'>{html.escape(judge)}</span> · your answer: <b>{answer}</b>")
            lines.append(f"▶ {line}" if i == self.crit_pos else f"<span style='color:{muted}'>&nbsp;&nbsp;&nbsp;{line}</span>")
        self.questions.setText("<br>".join(lines))

    @staticmethod
    def _facts(card: dict) -> list[str]:
        r, facts = card["record"], []
        pv, run = card.get("prompt_version"), card.get("run")
        if pv is not None:
            facts.append(f"prompt {html.escape(pv.label)}" + (f", run {run.id}, seed {r['seed']}" if run else ""))
        if r["mean_logprob"] is not None:
            facts.append(f"mean logprob {r['mean_logprob']:.3f}, {r['completion_tokens']} tokens")
        if card["scores"]:
            facts.append("scores: " + ", ".join(f"{html.escape(s.name)} {s.value:.3g}" for s in card["scores"]
                                                if s.value is not None))
        if card["failures"]:
            facts.append(f"<span style='color:{tone_hex('error')}'>failed: " + "; ".join(
                f"{html.escape(s.name.removeprefix('validator:'))} ({html.escape(s.reason)})" for s in card["failures"])
                + "</span>")
        for d in card["duplicates"]:
            facts.append(f"{d['method']} duplicate group of {d['size']} (representative {d['representative_id']})")
        if card["verdict"] is not None:
            kept, stage, reason = card["verdict"]
            facts.append(("kept" if kept else f"dropped at {html.escape(stage or '')}")
                         + (f": {html.escape(reason)}" if reason else ""))
        return facts

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

    def answer(self, yes: bool | None) -> None:
        """Store the person's answer to the focused criterion's question, then focus the next criterion."""
        rid = self.current_id()
        if rid is None or not 0 <= self.crit_pos < len(self.criteria):
            return
        c = self.criteria[self.crit_pos]
        new = None if yes is None else label_value(c.info, yes)
        old = None if c.answer is None else label_value(c.info, c.answer)
        if new != old:
            self.undo_stack.push(LabelCommand(self.nb, rid, c.info.name, new, old, self._changed))
        if yes is not None:
            self.focus_criterion(1, wrap=False)

    def focus_criterion(self, step: int, wrap: bool = True) -> None:
        if not self.criteria:
            return
        n = len(self.criteria)
        self.crit_pos = (self.crit_pos + step) % n if wrap else max(0, min(n - 1, self.crit_pos + step))
        self.crit_name = self.criteria[self.crit_pos].info.name
        rid = self.current_id()
        if rid is not None:
            self._show_questions(rid, self.current_item())

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

    def focusNextPrevChild(self, next: bool) -> bool:  # noqa: N802 (Qt name)
        """Tab and Shift+Tab move between the criteria's questions while the text is shown."""
        if self.stack.currentWidget() is self.editor:
            return super().focusNextPrevChild(next)
        self.focus_criterion(1 if next else -1)
        return True

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt name)
        if self.stack.currentWidget() is self.editor or event.modifiers() != Qt.KeyboardModifier.NoModifier:
            return super().keyPressEvent(event)
        key = Qt.Key(event.key())
        if key in KEYS:
            self.set_status(KEYS[key])
        elif key in ANSWER_KEYS:
            self.answer(ANSWER_KEYS[key])
        elif key == Qt.Key.Key_J:
            self.move(1)
        elif key == Qt.Key.Key_K:
            self.move(-1)
        elif key == Qt.Key.Key_E:
            self.start_edit()
        else:
            super().keyPressEvent(event)


def context_html(r: dict) -> str:
    """What an output answers: its input variables and the prompt the model was given."""
    muted = tone_hex("muted")
    variables = r.get("variables") or {}
    rows = "".join(f"<tr><td style='color:{muted}'>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                   for k, v in variables.items())
    parts = [f"<b>Input</b><table>{rows}</table>" if rows else f"<span style='color:{muted}'>no input variables</span>"]
    if r.get("prompt"):
        parts.append(f"<b>Prompt</b><pre style='white-space: pre-wrap'>{html.escape(r['prompt'])}</pre>")
    return "".join(parts)
