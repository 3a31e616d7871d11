"""Dataset versions: the frozen kept sets with their lineage, freezing a new one, and the diff
of two versions (or a version and the kept set now).

Freezing and diffing run through ``app.jobs.version_job`` / ``diff_job`` on the view's job
runners; the list is read from ``app.export.versions``. Changed words are highlighted with the
palette's colours, so the view follows the desktop's light or dark theme.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPalette, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.export.versions import CURRENT, EditedRecord, VersionDiff, versions
from app.jobs import diff_job, version_job
from app.store.notebook import Notebook
from app.store.versions import DatasetVersion
from widgets.job_runner import JobRunner

VERSION_COLUMNS = ("tag", "created", "records", "content hash", "parent", "message")
CHANGE_COLUMNS = ("change", "record", "text")


def _item(text: object, data: object = None) -> QTableWidgetItem:
    item = QTableWidgetItem("—" if text is None else str(text))
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if data is not None:
        item.setData(Qt.ItemDataRole.UserRole, data)
    return item


def _short(text: str, width: int = 120) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


class FreezeDialog(QDialog):
    """Asks for the new version's tag and a one-line message."""

    def __init__(self, suggested: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Freeze kept set as version")
        self.tag = QLineEdit(suggested)
        self.message = QLineEdit()
        self.message.setPlaceholderText("what changed, in a line")
        form = QFormLayout(self)
        form.addRow("Tag", self.tag)
        form.addRow("Message", self.message)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)


class VersionsView(QWidget):
    sig_frozen = Signal(object)  # the DatasetVersion just made
    sig_diffed = Signal(object)  # the VersionDiff shown

    def __init__(self, nb: Notebook, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.nb = nb
        self.diff: VersionDiff | None = None
        self.freeze_runner = JobRunner(self)
        self.freeze_runner.sig_finished.connect(self._on_frozen)
        self.freeze_runner.sig_errored.connect(self._on_error)
        self.diff_runner = JobRunner(self)
        self.diff_runner.sig_finished.connect(self.show_diff)
        self.diff_runner.sig_errored.connect(self._on_error)

        self.freeze_button = QPushButton("Freeze kept set as version…")
        self.freeze_button.clicked.connect(self._on_freeze_clicked)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.diff_runner.sig_started.connect(lambda: self.status.setText("comparing…"))
        self.table = QTableWidget(0, len(VERSION_COLUMNS))
        self.table.setHorizontalHeaderLabels(VERSION_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setStretchLastSection(True)

        self.before, self.after = QComboBox(), QComboBox()
        self.diff_button = QPushButton("Diff")
        self.diff_button.clicked.connect(lambda: self.start_diff(self.before.currentText(), self.after.currentText()))
        self.counts = QLabel("Freeze a version, then compare it with a later one or with the kept set now.")
        self.counts.setWordWrap(True)
        self.stages = QTableWidget(0, 3)
        self.stages.setHorizontalHeaderLabels(["funnel stage / measure", "before", "after"])
        self.stages.verticalHeader().setVisible(False)
        self.stages.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.changes = QTableWidget(0, len(CHANGE_COLUMNS))
        self.changes.setHorizontalHeaderLabels(CHANGE_COLUMNS)
        self.changes.verticalHeader().setVisible(False)
        self.changes.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.changes.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.changes.horizontalHeader().setStretchLastSection(True)
        self.changes.currentCellChanged.connect(lambda row, *_: self._show_change(row))
        self.text_diff = QTextEdit()
        self.text_diff.setReadOnly(True)
        self.text_diff.setPlaceholderText("Pick a changed record above to see its text before and after.")

        bar = QHBoxLayout()
        bar.addWidget(self.freeze_button)
        bar.addWidget(self.status, 1)
        pick = QHBoxLayout()
        pick.addWidget(QLabel("Compare"))
        pick.addWidget(self.before)
        pick.addWidget(QLabel("with"))
        pick.addWidget(self.after)
        pick.addWidget(self.diff_button)
        pick.addStretch(1)
        upper = QWidget()
        ul = QVBoxLayout(upper)
        ul.setContentsMargins(0, 0, 0, 0)
        ul.addWidget(self.table)
        ul.addLayout(pick)
        ul.addWidget(self.counts)
        middle = QSplitter(Qt.Orientation.Horizontal)
        middle.addWidget(self.stages)
        middle.addWidget(self.changes)
        middle.setSizes([350, 650])
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(upper)
        split.addWidget(middle)
        split.addWidget(self.text_diff)
        split.setSizes([220, 300, 200])
        lay = QVBoxLayout(self)
        lay.addLayout(bar)
        lay.addWidget(split, 1)
        self.reload()

    # -- the list -----------------------------------------------------------------------------

    def reload(self) -> None:
        vs = versions(self.nb)
        self.table.setRowCount(len(vs))
        self.table.horizontalHeader().setStretchLastSection(True)
        self.counts.setText(
            "Freeze a version, then compare it with a later one or with the kept set now." if vs else
            "No dataset versions yet. A version freezes what the funnel keeps now (records, scores, prompt and "
            "model hashes) so you can export it, cite it and see what later changes did: press Freeze kept set as version…")
        for r, v in enumerate(vs):
            cells = (v.tag, v.created[:19].replace("T", " "), v.records, v.content_hash[:12], v.parent_tag, v.message)
            for c, text in enumerate(cells):
                item = _item(text, v.tag if c == 0 else None)
                if c == 3:
                    item.setToolTip(v.content_hash)
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        tags = [v.tag for v in vs]
        for combo, choices, pick in ((self.before, tags, -2), (self.after, [*tags, CURRENT], -1)):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(choices)
            if current in choices:
                combo.setCurrentText(current)
            elif choices:
                combo.setCurrentIndex(max(0, len(choices) + pick))
            combo.blockSignals(False)
        self.diff_button.setEnabled(bool(tags))

    def suggested_tag(self) -> str:
        tags = {v.tag for v in versions(self.nb)}
        n = len(tags) + 1
        while f"v{n}" in tags:
            n += 1
        return f"v{n}"

    # -- freezing -------------------------------------------------------------------------------

    def _on_freeze_clicked(self) -> None:
        dialog = FreezeDialog(self.suggested_tag(), self)
        if dialog.exec():
            self.freeze(dialog.tag.text(), dialog.message.text())

    def freeze(self, tag: str, message: str = "") -> None:
        """Freeze the kept set now as version ``tag`` (in the background)."""
        self.freeze_button.setEnabled(False)
        self.status.setText(f"freezing the kept set as {tag}…")
        self.freeze_runner.start(version_job, self.nb.path, tag, message=message)

    def _on_frozen(self, v: DatasetVersion) -> None:
        self.freeze_button.setEnabled(True)
        self.status.setText(f"froze {v.records} records as {v.tag} ({v.content_hash[:12]})")
        self.reload()
        self.sig_frozen.emit(v)

    def _on_error(self, message: str) -> None:
        self.freeze_button.setEnabled(True)
        self.status.setText("error: " + message.splitlines()[0])

    # -- the diff ---------------------------------------------------------------------------------

    def start_diff(self, before: str, after: str = CURRENT) -> None:
        if not before:
            return
        self.diff_runner.start(diff_job, self.nb.path, before, after)

    def show_diff(self, d: VersionDiff) -> None:
        self.diff = d
        self.status.setText(f"compared {d.before} with {d.after}")
        if d.identical:
            self.counts.setText(f"{d.before} and {d.after} are identical: same records, same text, made the same way.")
        else:
            self.counts.setText(
                f"{d.before}: {d.count_before} records → {d.after}: {d.count_after} records. "
                f"Added {len(d.added)}, removed {len(d.removed)}, edited {len(d.edited)}, "
                f"status changed {len(d.status_changes)}, clusters changed {len(d.clusters)}.")
        fmt = lambda v: "—" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
        rows: list[tuple[str, str, str]] = [(f"{s.stage} (kept / dropped)", f"{fmt(s.kept_before)} / "
                                             f"{fmt(s.dropped_before)}", f"{fmt(s.kept_after)} / {fmt(s.dropped_after)}")
                                            for s in d.stages]
        rows += [(f"{s.name}: mean, median (KS {fmt(s.ks)})", f"{fmt(s.mean_before)}, {fmt(s.median_before)}",
                  f"{fmt(s.mean_after)}, {fmt(s.median_after)}") for s in d.distributions]
        rows += [(f"cluster {c.cluster}", str(c.before), str(c.after)) for c in d.clusters]
        self.stages.setRowCount(len(rows))
        for r, cells in enumerate(rows):
            for c, text in enumerate(cells):
                self.stages.setItem(r, c, _item(text))
        self.stages.resizeColumnsToContents()
        changes: list[tuple[str, int, str]] = [("added", r.record_id, r.output) for r in d.added]
        changes += [("removed", r.record_id, r.output) for r in d.removed]
        changes += [("edited", e.record_id, f"{e.changed_words} words changed: {e.after}") for e in d.edited]
        changes += [("status", c.record_id, f"{c.before} → {c.after}") for c in d.status_changes]
        self.changes.setRowCount(len(changes))
        for r, (kind, rid, text) in enumerate(changes):
            self.changes.setItem(r, 0, _item(kind, kind))
            self.changes.setItem(r, 1, _item(rid, rid))
            self.changes.setItem(r, 2, _item(_short(text)))
        self.text_diff.clear()
        if changes:
            self.changes.selectRow(0)
            self._show_change(0)  # the current row may not have moved, so no signal says so
        self.sig_diffed.emit(d)

    def _show_change(self, row: int) -> None:
        kind_item, id_item = self.changes.item(row, 0), self.changes.item(row, 1)
        if self.diff is None or kind_item is None or id_item is None:
            return
        kind = kind_item.data(Qt.ItemDataRole.UserRole)
        rid = id_item.data(Qt.ItemDataRole.UserRole)
        if kind == "edited":
            self.show_text_diff(next(e for e in self.diff.edited if e.record_id == rid))
            return
        text = {r.record_id: r.output for r in (*self.diff.added, *self.diff.removed)}.get(rid)
        self.text_diff.setPlainText(text if text is not None else f"record {rid}: {kind} change only")

    def show_text_diff(self, e: EditedRecord) -> None:
        """The edited record's words, deletions struck through and insertions highlighted."""
        pal = self.palette()
        plain = QTextCharFormat()
        gone = QTextCharFormat()
        gone.setFontStrikeOut(True)
        gone.setForeground(pal.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text))
        added = QTextCharFormat()
        added.setBackground(pal.color(QPalette.ColorRole.Highlight))
        added.setForeground(pal.color(QPalette.ColorRole.HighlightedText))
        self.text_diff.clear()
        cursor = QTextCursor(self.text_diff.document())
        cursor.insertText(f"record {e.record_id}: {self.diff.before if self.diff else ''} → "
                          f"{self.diff.after if self.diff else ''}\n\n", plain)
        for span in e.words:
            if span.op in ("delete", "replace"):
                cursor.insertText(" ".join(span.before), gone)
                cursor.insertText(" ", plain)
            if span.op in ("insert", "replace"):
                cursor.insertText(" ".join(span.after), added)
                cursor.insertText(" ", plain)
            if span.op == "equal":
                cursor.insertText(" ".join(span.before) + " ", plain)
        if e.unified:  # the same change line by line, as a unified diff
            cursor.insertText("\n\nline by line:\n", plain)
            for line in e.unified[2:]:  # the two file headers add nothing here
                cursor.insertText(line + "\n", added if line.startswith("+") else gone if line.startswith("-")
                                  else plain)
        self.text_diff.moveCursor(QTextCursor.MoveOperation.Start)

    def stop(self) -> None:
        self.freeze_runner.cancel()
        self.diff_runner.cancel()
