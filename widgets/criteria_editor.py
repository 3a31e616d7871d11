"""The criteria editor (in the Quality tab): your judges' questions and validator rules.

A list of the notebook's criteria and rules with version, active flag and trust state (trusted,
untrusted, unchecked, trusted by you — with AUC and kappa), a TOML editor checked as you type,
Save (a changed spec is a new version), the question previewed on a chosen record, import and
export, proposals drawn from a prompt's instructions, and the person's trust override. Every
change goes through ``app.quality.criteria``; this file only shows what the notebook says.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import StudioError
from app.quality.criteria import (
    CriterionEntry,
    activate,
    export_file,
    import_file,
    import_text,
    list_entries,
    parse_document,
    preview_text,
    proposals_toml,
    propose_for_prompt,
    set_trust,
    version_toml,
)
from app.store.notebook import Notebook
from app.store.records import first_sample_id
from widgets.theme import set_tone

COLUMNS = ["kind", "name", "version", "active", "trust", "AUC", "kappa"]
NEW_CRITERION = '[[criterion]]\nname = "new-criterion"\nquestion = "Does this text mention {{ input.topic }}?"\n'
NEW_RULE = '[[rule]]\nname = "new-rule"\ntype = "length"\nunit = "words"\nmax = 200\n'


class CriteriaEditor(QWidget):
    sig_changed = Signal()  # a criterion or rule was saved, switched on/off, imported, or its trust changed

    def __init__(self, nb: Notebook, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.nb = nb
        self.entries: list[CriterionEntry] = []
        self.save_inactive = False  # the editor holds proposals: they are saved switched off

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.itemSelectionChanged.connect(self._on_selected)

        self.editor = QPlainTextEdit()
        self.editor.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.editor.setPlaceholderText("[[criterion]] or [[rule]] tables (TOML)")
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._check_timer = QTimer(self)
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(300)
        self._check_timer.timeout.connect(self.check_text)
        self.editor.textChanged.connect(self._check_timer.start)

        self.save_button = QPushButton("Save (new version)")
        self.save_button.clicked.connect(self.save)
        self.active_box = QCheckBox("Active")
        self.active_box.setToolTip("Judging and validating use the active criteria and rules")
        self.active_box.clicked.connect(self._on_active_clicked)
        self.trust_box = QCheckBox("Trusted by you")
        self.trust_box.setToolTip("Let this judge filter and rank even though its sanity check did not show it "
                                  "beats chance (untick to follow the sanity check again)")
        self.trust_box.clicked.connect(self._on_trust_clicked)
        new_c, new_r = QPushButton("New criterion"), QPushButton("New rule")
        new_c.clicked.connect(lambda: self._start_new(NEW_CRITERION))
        new_r.clicked.connect(lambda: self._start_new(NEW_RULE))
        imp, exp = QPushButton("Import…"), QPushButton("Export…")
        imp.clicked.connect(self._on_import_clicked)
        exp.clicked.connect(self._on_export_clicked)
        self.prompt_choice = QComboBox()
        self.prompt_choice.setToolTip("The prompt whose instructions become yes/no questions")
        propose = QPushButton("Propose from prompt")
        propose.clicked.connect(lambda: self.propose(self.prompt_choice.currentText()))

        self.record_id = QSpinBox()
        self.record_id.setRange(0, 2**31 - 1)
        self.record_id.setPrefix("record #")
        preview_button = QPushButton("Preview")
        preview_button.clicked.connect(self.preview)
        self.preview_view = QPlainTextEdit()
        self.preview_view.setReadOnly(True)
        self.preview_view.setPlaceholderText("the question as the judge reads it about the chosen record")

        top = QHBoxLayout()
        row: tuple[QWidget, ...] = (new_c, new_r, imp, exp, self.prompt_choice, propose)
        for w in row:
            top.addWidget(w)
        top.addStretch(1)
        actions = QHBoxLayout()
        row = (self.save_button, self.active_box, self.trust_box)
        for w in row:
            actions.addWidget(w)
        actions.addStretch(1)
        prev = QHBoxLayout()
        prev.addWidget(self.record_id)
        prev.addWidget(preview_button)
        prev.addStretch(1)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.editor, 3)
        rl.addWidget(self.message)
        rl.addLayout(actions)
        rl.addLayout(prev)
        rl.addWidget(self.preview_view, 2)
        split = QSplitter()
        split.addWidget(self.table)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(split, 1)
        self.refresh()

    # -- reading the notebook --------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the criteria, rules and trust states; keep the selection when it still exists."""
        self.show_entries(list_entries(self.nb))

    def show_entries(self, entries: list[CriterionEntry]) -> None:
        """Show ``entries`` (read off the UI thread by the Quality view's count); keep the selection."""
        keep = self.current()
        key = (keep.kind, keep.name) if keep else None
        self.entries = entries
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.entries))
        for r, e in enumerate(self.entries):
            cells = [e.kind, e.name, f"v{e.version.version}", "yes" if e.version.active else "no",
                     e.trust_label if e.kind == "criterion" else "–",
                     "–" if e.auc is None else f"{e.auc:.2f}", "–" if e.kappa is None else f"{e.kappa:.2f}"]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 4 and e.trust is not None:
                    item.setToolTip(e.trust.detail)
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        self.table.blockSignals(False)
        prompts = [p.name for p in self.nb.prompt_versions(latest_only=True)]
        if prompts != [self.prompt_choice.itemText(i) for i in range(self.prompt_choice.count())]:
            self.prompt_choice.clear()
            self.prompt_choice.addItems(prompts)
        if self.record_id.value() == 0:
            first = first_sample_id(self.nb)
            if first is not None:
                self.record_id.setValue(first)
        if key is not None:
            self.select(*key)
        else:
            self._show_selection()

    def current(self) -> CriterionEntry | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or rows[0].row() >= len(self.entries):
            return None
        return self.entries[rows[0].row()]

    def select(self, kind: str, name: str) -> bool:
        for r, e in enumerate(self.entries):
            if (e.kind, e.name) == (kind, name):
                self.table.selectRow(r)
                self._show_selection()
                return True
        return False

    def _on_selected(self) -> None:
        e = self.current()
        if e is not None:
            self.save_inactive = False
            self.editor.setPlainText(version_toml(e.version))
        self._show_selection()

    def _show_selection(self) -> None:
        e = self.current()
        self.active_box.setEnabled(e is not None)
        self.trust_box.setEnabled(e is not None and e.kind == "criterion")
        self.active_box.setChecked(bool(e and e.version.active))
        self.trust_box.setChecked(bool(e and e.trust and e.trust.state == "overridden-trusted"))
        if e is not None and e.trust is not None:
            self._say(f"{e.name} v{e.version.version}: {e.trust.label} — {e.trust.detail}")

    # -- editing -----------------------------------------------------------------------------------

    def _say(self, text: str, error: bool = False) -> None:
        set_tone(self.message, "error" if error else None)
        self.message.setText(text)

    def _start_new(self, text: str) -> None:
        self.table.clearSelection()
        self.save_inactive = False
        self.editor.setPlainText(text)
        self._say("a new entry: change the name and settings, then Save")

    def check_text(self) -> bool:
        """Validate the editor's TOML; the message says what it holds or exactly what is wrong."""
        text = self.editor.toPlainText()
        if not text.strip():
            self._say("")
            return False
        try:
            constitution, rules = parse_document(text, "editor.toml")
        except StudioError as exc:
            self._say(str(exc), error=True)
            return False
        names = [f"criterion {c.name}" for c in constitution.criteria] + [f"rule {r.name}" for r in rules]
        self._say("valid: " + ", ".join(names) + (" (will be saved inactive)" if self.save_inactive else ""))
        return True

    def save(self) -> bool:
        """Save the editor's tables: a changed spec becomes a new version, an unchanged one nothing."""
        try:
            saved = import_text(self.nb, self.editor.toPlainText(), "editor.toml",
                                active=False if self.save_inactive else None)
        except StudioError as exc:
            self._say(str(exc), error=True)
            return False
        self.save_inactive = False
        self.refresh()
        if saved:
            last = saved[-1][0]
            self.select(last.kind, last.name)
        self._say("; ".join(f"saved {v.label}" if created else f"{v.label} unchanged (no new version)"
                            for v, created in saved))
        self.sig_changed.emit()
        return True

    def _on_active_clicked(self, checked: bool) -> None:
        e = self.current()
        if e is None:
            return
        activate(self.nb, e.kind, e.name, checked)
        self.refresh()
        self.sig_changed.emit()

    def _on_trust_clicked(self, checked: bool) -> None:
        e = self.current()
        if e is None:
            return
        self.set_trusted(e.name, checked)

    def set_trusted(self, name: str, trusted: bool) -> None:
        """Trust a judge yourself (shown as "trusted by you"), or go back to its sanity check."""
        try:
            t = set_trust(self.nb, name, True if trusted else None, reason="set in the criteria editor")
        except StudioError as exc:
            self._say(str(exc), error=True)
            return
        self.refresh()
        self._say(f"{name}: {t.label} — {t.detail}")
        self.sig_changed.emit()

    # -- preview, proposals, files -------------------------------------------------------------------

    def preview(self) -> None:
        """The editor's (first) criterion as asked about the chosen record."""
        p = preview_text(self.nb, self.editor.toPlainText(), self.record_id.value())
        if p.error:
            self.preview_view.setPlainText(f"cannot ask about record #{self.record_id.value()}: {p.error}")
            return
        lines = [f"question: {q}" for q in p.questions]
        self.preview_view.setPlainText("\n".join(lines) + "\n\n--- the judge reads ---\n" + p.prompt
                                       + "\n\n(P(yes) comes from Judge with a model)")

    def propose(self, prompt_name: str) -> None:
        """Questions drawn from the prompt's instructions, into the editor to change before saving."""
        if not prompt_name:
            self._say("no prompt to propose from yet", error=True)
            return
        try:
            proposals = propose_for_prompt(self.nb, prompt_name)
        except StudioError as exc:
            self._say(str(exc), error=True)
            return
        if not proposals:
            self._say(f"no instructions found in {prompt_name!r}", error=True)
            return
        self.table.clearSelection()
        self.save_inactive = True
        self.editor.setPlainText(proposals_toml(proposals))
        self._say(f"{len(proposals)} proposals from {prompt_name}: edit them, then Save (they are saved inactive; "
                  "check them, then tick Active)")

    def import_from(self, path: str) -> None:
        try:
            saved = import_file(self.nb, path)
        except StudioError as exc:
            self._say(str(exc), error=True)
            return
        self.refresh()
        self._say(f"imported {len(saved)} ({sum(c for _, c in saved)} new versions)")
        self.sig_changed.emit()

    def export_to(self, path: str) -> None:
        n = export_file(self.nb, path)
        self._say(f"exported {n} criteria and rules to {path}")

    def _on_import_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import criteria and rules", "", "TOML or YAML (*.toml *.yaml *.yml)")
        if path:
            self.import_from(path)

    def _on_export_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export criteria and rules", "criteria.toml", "TOML (*.toml)")
        if path:
            self.export_to(path)
