"""Duplicate groups side by side: the representative (kept) next to each member, differences marked.

Opened from the Quality tab. The groups are what a dedupe method stored
(``app.store.scores.duplicate_groups``); the word diff is ``app.quality.diffs``. Changed words
are drawn in the palette's highlight colours (deleted ones also struck through), so the view
follows a dark theme.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.quality.diffs import GroupDiff, Span, stored_group_diff
from app.quality.steps import NEAR_DUPLICATES
from app.store.notebook import Notebook
from app.store.scores import duplicate_groups, duplicate_methods, sample_texts

MAX_MEMBERS = 200  # a group of thousands of copies shows its first members and a count


def _words(words: tuple[str, ...], marked: bool, struck: bool, colours: tuple[str, str]) -> str:
    text = html.escape(" ".join(words))
    if not marked or not text:
        return text
    if struck:
        text = f"<s>{text}</s>"
    return f'<span style="background-color: {colours[0]}; color: {colours[1]};">{text}</span>'


def _side(spans: tuple[Span, ...], before: bool, colours: tuple[str, str]) -> str:
    """One text of the pair: the representative (``before``) with what the member lacks or changed
    struck and marked, or the member with what it added or changed marked."""
    parts = [_words(s.before if before else s.after, s.op != "equal", before and s.op == "delete", colours)
             for s in spans]
    return " ".join(p for p in parts if p)


def group_html(group: GroupDiff, colours: tuple[str, str], more: int = 0) -> str:
    """The group as an HTML table: one row per member, the representative on the left."""
    rows = []
    for m in group.members:
        rows.append(
            f"<tr><td><b>#{group.representative}</b> (kept)</td><td><b>#{m.record_id}</b> · "
            f"{m.similarity:.0%} of words in common, {m.changed_words} changed</td></tr>"
            f"<tr><td>{_side(m.spans, True, colours)}</td><td>{_side(m.spans, False, colours)}</td></tr>")
    tail = f"<p>…and {more} more members not shown</p>" if more else ""
    return ('<table width="100%" cellspacing="0" cellpadding="6" border="1" style="border-collapse: collapse;">'
            + "".join(rows) + "</table>" + tail)


class DuplicatesDialog(QDialog):
    """Choose a dedupe method, pick one of its groups, read it side by side."""

    def __init__(self, nb: Notebook, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Duplicate groups")
        self.resize(1000, 600)
        self.nb = nb
        self.groups: dict[int, list[int]] = {}
        self.method = QComboBox()
        self.method.currentTextChanged.connect(self._on_method_changed)
        self.summary = QLabel()
        self.group_list = QListWidget()
        self.group_list.currentItemChanged.connect(self._on_group_changed)
        self.browser = QTextBrowser()
        top = QHBoxLayout()
        top.addWidget(QLabel("Method:"))
        top.addWidget(self.method)
        top.addWidget(self.summary, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.group_list)
        split.addWidget(self.browser)
        split.setSizes([260, 740])
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(split, 1)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the methods that stored groups, keeping the chosen one if it still has any."""
        current = self.method.currentText()
        methods = sorted(duplicate_methods(self.nb))
        self.method.blockSignals(True)
        self.method.clear()
        self.method.addItems(methods)
        self.method.blockSignals(False)
        if current in methods or NEAR_DUPLICATES in methods:
            self.method.setCurrentText(current if current in methods else NEAR_DUPLICATES)
        self._on_method_changed(self.method.currentText())

    def _on_method_changed(self, method: str) -> None:
        self.groups = duplicate_groups(self.nb, method) if method else {}
        self.group_list.clear()
        firsts = {rid: " ".join(text.split()[:8]) for rid, text, _ in sample_texts(self.nb, list(self.groups))}
        for rep, members in sorted(self.groups.items(), key=lambda g: (-len(g[1]), g[0])):
            item = QListWidgetItem(f"#{rep} · {len(members)} records · {firsts.get(rep, '')}…")
            item.setData(Qt.ItemDataRole.UserRole, rep)
            self.group_list.addItem(item)
        marked = sum(len(m) - 1 for m in self.groups.values())
        self.summary.setText(f"{len(self.groups)} groups, {marked} duplicates marked (the lowest id is kept)"
                             if method else "no duplicate groups yet: run Find near-duplicates first")
        if self.group_list.count():
            self.group_list.setCurrentRow(0)
        else:
            self.browser.clear()

    def _on_group_changed(self, item: QListWidgetItem | None) -> None:
        if item is None:
            self.browser.clear()
            return
        rep = item.data(Qt.ItemDataRole.UserRole)
        members = self.groups.get(rep, [])
        group = stored_group_diff(self.nb, rep, members, limit=MAX_MEMBERS)
        pal = self.palette()
        colours = (pal.color(QPalette.ColorRole.Highlight).name(), pal.color(QPalette.ColorRole.HighlightedText).name())
        self.browser.setHtml(group_html(group, colours, more=max(0, len(members) - 1 - MAX_MEMBERS)))
