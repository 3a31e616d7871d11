"""The prompt editor: edit a template, see it rendered against a real row, save versions.

Every save is a new version (an unchanged template saves nothing). The preview
re-renders as you type (debounced) through ``app``: the same render a run uses,
so what you see is exactly the prompt the model will get for that row and seed.
"""

from __future__ import annotations

import re
import sqlite3

from PySide6.QtCore import QEvent, QRegularExpression, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QSyntaxHighlighter, QTextCharFormat
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import StudioError
from app.generate.runs import preview_text
from app.prompts.templates import parse_template
from app.store.notebook import Notebook
from widgets.theme import set_tone, tone, tone_hex


def _fmt(tone_name: str, bold: bool = False, italic: bool = False) -> QTextCharFormat:
    f = QTextCharFormat()
    f.setForeground(tone(tone_name))
    if bold:
        f.setFontWeight(QFont.Weight.Bold)
    f.setFontItalic(italic)
    return f


class JinjaHighlighter(QSyntaxHighlighter):
    """Variables, statements, comments and front matter in the theme's tones (made again when it changes)."""

    def __init__(self, document) -> None:
        super().__init__(document)
        self.restyle()

    def restyle(self) -> None:
        self.rules = [
            (QRegularExpression(r"\{\{.*?\}\}"), _fmt("accent", bold=True)),
            (QRegularExpression(r"\{%.*?%\}"), _fmt("human", bold=True)),
            (QRegularExpression(r"\{#.*?#\}"), _fmt("muted", italic=True)),
        ]
        self.front = _fmt("ok")
        self.rehighlight()

    def highlightBlock(self, text: str) -> None:  # noqa: N802 (Qt name)
        # front matter: from a first-line '---' to the next '---'
        prev = self.previousBlockState()
        is_fence = text.strip() == "---"
        in_front = prev == 1 or (self.currentBlock().blockNumber() == 0 and is_fence)
        if in_front:
            self.setFormat(0, len(text), self.front)
            closing = is_fence and self.currentBlock().blockNumber() > 0
            self.setCurrentBlockState(0 if closing else 1)
            if not closing:
                return
        else:
            self.setCurrentBlockState(0)
        for rx, fmt in self.rules:
            it = rx.globalMatch(text)
            while it.hasNext():
                m = it.next()
                self.setFormat(m.capturedStart(), m.capturedLength(), fmt)


class PromptEditor(QWidget):
    sig_saved = Signal(str)

    def __init__(self, nb: Notebook, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.nb = nb
        self.name = QComboBox()
        self.name.setEditable(True)
        self.name.setToolTip("Choose a prompt, or type a new name")
        self.versions = QListWidget()
        self.versions.setMaximumWidth(180)
        self.editor = QPlainTextEdit()
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.editor.setFont(mono)
        self.editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)  # YAML front matter must not look re-indented
        self.highlighter = JinjaHighlighter(self.editor.document())
        self.row = QSpinBox(minimum=1, maximum=1, value=1)
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.variables = QLabel()
        self.variables.setWordWrap(True)
        self.variables.setTextFormat(Qt.TextFormat.RichText)
        self.preview = QTextBrowser()
        self.error = QLabel()
        set_tone(self.error, "error")
        self.error.setWordWrap(True)
        self.save_button = QPushButton("Save as new version")
        self.save_button.clicked.connect(self.save)
        self.message = QLabel()

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(QLabel("Prompt"))
        ll.addWidget(self.name)
        ll.addWidget(QLabel("Versions"))
        ll.addWidget(self.versions, 1)
        middle = QWidget()
        ml = QVBoxLayout(middle)
        ml.setContentsMargins(0, 0, 0, 0)
        ml.addWidget(self.editor, 1)
        ml.addWidget(self.error)
        actions = QHBoxLayout()
        actions.addWidget(self.save_button)
        actions.addWidget(self.message, 1)
        ml.addLayout(actions)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        pick = QHBoxLayout()
        pick.addWidget(QLabel("Preview against row"))
        pick.addWidget(self.row)
        pick.addWidget(QLabel("seed"))
        pick.addWidget(self.seed)
        pick.addStretch(1)
        rl.addLayout(pick)
        rl.addWidget(self.variables)
        rl.addWidget(self.preview, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        for w in (left, middle, right):
            split.addWidget(w)
        split.setSizes([180, 640, 560])
        lay = QVBoxLayout(self)
        lay.addWidget(split)

        self._clean_text = ""  # the text of the version shown, or last saved: anything else is unsaved
        self._timer = QTimer(self, singleShot=True, interval=200)
        self._timer.timeout.connect(self.update_preview)
        self.editor.textChanged.connect(self._timer.start)
        self.row.valueChanged.connect(self._timer.start)
        self.seed.valueChanged.connect(self._timer.start)
        self.name.currentTextChanged.connect(self._on_name_changed)
        self.versions.currentRowChanged.connect(self._on_version_picked)
        self.reload()

    # -- loading -----------------------------------------------------------------------

    def data_changed(self) -> None:
        """Rows were imported or removed: "Preview against row" reaches every row (edits stay as they are)."""
        if not self.nb.closed:
            self.row.setMaximum(max(1, self.nb.count_records("input")))

    def reload(self) -> None:
        current = self.name.currentText()
        names = sorted({p.name for p in self.nb.prompt_versions() if not p.name.startswith("transform:")})
        self.name.blockSignals(True)
        self.name.clear()
        self.name.addItems(names)
        self.name.blockSignals(False)
        self.name.setCurrentText(current if current else (names[0] if names else ""))
        self._on_name_changed(self.name.currentText())
        self.row.setMaximum(max(1, self.nb.count_records("input")))

    def _on_name_changed(self, name: str) -> None:
        self._versions = [p for p in self.nb.prompt_versions() if p.name == name]
        self.versions.blockSignals(True)
        self.versions.clear()
        for p in self._versions:
            self.versions.addItem(f"v{p.version}  {p.created[:16].replace('T', ' ')}")
        self.versions.blockSignals(False)
        if self._versions:
            self.versions.setCurrentRow(len(self._versions) - 1)
            self._on_version_picked(len(self._versions) - 1)

    def _on_version_picked(self, index: int) -> None:
        if 0 <= index < len(self._versions):
            self._clean_text = self._versions[index].template
            self.editor.setPlainText(self._clean_text)
            self.update_preview()

    def has_unsaved_changes(self) -> bool:
        """The editor holds text that is not the version it shows (closing the window asks first)."""
        return self.editor.toPlainText() != self._clean_text

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt name)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.highlighter.restyle()
        super().changeEvent(event)

    # -- live preview ------------------------------------------------------------------------

    def stop(self) -> None:
        """No more previews (the notebook is about to close)."""
        self._timer.stop()

    def update_preview(self) -> None:
        text = self.editor.toPlainText()
        try:
            pt = parse_template(text)
            rendered, variables = preview_text(self.nb, text, row=self.row.value(), seed=self.seed.value())
        except sqlite3.ProgrammingError:  # the notebook closed while a preview was pending
            return
        except StudioError as exc:
            self.error.setText(str(exc))
            needed = self._needed(text)
            self.variables.setText(needed)
            return
        self.error.setText("")
        self.preview.setPlainText(rendered)
        have = set(variables)
        parts = [f"<span style='color:{tone_hex('ok' if v in have else 'error')}'>{v}</span>"
                 for v in sorted(pt.required_variables)]
        extra = sorted(have - pt.required_variables)
        self.variables.setText("uses: " + (", ".join(parts) or "no row variables")
                               + (f" &nbsp; <span style='color:{tone_hex('muted')}'>unused columns: {', '.join(extra)}</span>"
                                  if extra else ""))

    @staticmethod
    def _needed(text: str) -> str:
        names = sorted(set(re.findall(r"\{\{\s*([A-Za-z_]\w*)", text)))
        return "uses: " + ", ".join(names) if names else ""

    # -- saving ---------------------------------------------------------------------------------

    def save(self) -> None:
        name = self.name.currentText().strip()
        text = self.editor.toPlainText()
        try:
            parse_template(text)
            pv, created = self.nb.add_prompt_version(name, text)
        except StudioError as exc:
            set_tone(self.message, "error")
            self.message.setText(f"not saved: {exc}")
            return
        self._clean_text = text
        set_tone(self.message, None)
        self.message.setText(f"saved {pv.label}" if created else f"unchanged: still {pv.label}")
        self.reload()
        self.name.setCurrentText(name)
        self.sig_saved.emit(name)
