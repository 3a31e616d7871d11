"""The Notebook tab: the cells from data to export, top to bottom.

Each cell shows its settings (saved in the notebook as they change), its last
output, and Run / Run all below; the header collapses it and moves it. Runs go to
the compute queue one cell after another; Stop cancels the running cell and drops
the rest, and running another cell meanwhile does the same before it starts. All
the work is ``app.cells.run_cell``; this only presents and asks.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPalette, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.cells import (
    CHOICES,
    KINDS,
    TITLES,
    Cell,
    duplicate_cell,
    ensure_cells,
    insert_cell,
    live_summary,
    move_cell,
    remove_cell,
    restore_cell,
    run_cell,
    save_cell,
)
from app.jobs import JobEvent, RecordMade, TokenStreamed, WindowSummary
from app.store.notebook import Notebook
from app.store.queries import generated_record, prompt_names, record_variables
from widgets.funnel_counter import FunnelCounter, SummaryCounter
from widgets.job_runner import JobRunner
from widgets.streaming import StreamFollower
from widgets.theme import set_style, set_tone, style_figure

if TYPE_CHECKING:  # imported where they are built: the Map cell pulls in pyqtgraph and scipy
    from matplotlib.figure import Figure

    from widgets.chart import Chart
    from widgets.map_view import MapView
    from widgets.prompt_editor import PromptEditor
    from widgets.review_queue import ReviewQueue

INPUT_ROWS = "input rows"  # the Generate cell's "over" when it is not a chain
HINTS = {
    "data": "Import a table: rows without text are inputs to generate from.",
    "prompt": "Edit the template and preview it against a row; every save is a version. Run checks it renders.",
    "generate": "Generate samples with the notebook's model (File > Models…). Over another prompt's samples, "
                "it chains: question → answer → critique.",
    "quality": "Validators, LLM judges and near-duplicates; the funnel counts what is left.",
    "map": "Embed samples and cluster them; hover for text, Shift+drag to lasso, look at the extremes of any axis.",
    "review": "One record at a time: A accept, R reject, F flag, J/K next/previous, E edit. Run reports progress.",
    "export": "Write what you trust: .jsonl, .csv or .parquet; plain, chat SFT or DPO pairs.",
}


class FileField(QWidget):
    """The ``file`` setting: a path in ``line``, with a … button beside it that picks one."""

    def __init__(self, line: QLineEdit, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.line = line


class CellWidget(QFrame):
    sig_run = Signal(object)
    sig_run_below = Signal(object)
    sig_move = Signal(object, int)
    sig_cell_action = Signal(object, str)  # "duplicate", "remove", or "add:<kind>" (a new cell below)
    sig_changed = Signal(object)
    sig_paste = Signal(object)
    sig_edit_input = Signal(int, str, str)  # record id, variable, new value

    def __init__(self, cell: Cell, prompts: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cell = cell
        self.folder = Path.home()  # where its file dialogs start: the notebook's folder (set by the view)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setObjectName("cell")
        set_style(self, "#cell { border: 1px solid $mid; border-radius: 6px; background: $alternate_base; }")
        self.toggle = QToolButton()
        self.toggle.setAutoRaise(True)
        self.toggle.clicked.connect(self._on_toggle)
        title = QLabel(f"<b>{cell.title}</b>")
        self.summary = QLabel()
        set_tone(self.summary, "muted")
        self.run_button = QPushButton("▶ Run")
        self.run_button.setToolTip("Run this cell")
        self.run_button.clicked.connect(lambda: self.sig_run.emit(self))
        self.below_button = QPushButton("Run all below")
        self.below_button.setToolTip("Run this cell and every cell under it, in order")
        self.below_button.clicked.connect(lambda: self.sig_run_below.emit(self))
        up, down = QToolButton(), QToolButton()
        up.setText("↑")
        down.setText("↓")
        up.setToolTip("Move up")
        down.setToolTip("Move down")
        up.clicked.connect(lambda: self.sig_move.emit(self, -1))
        down.clicked.connect(lambda: self.sig_move.emit(self, 1))
        more = self.more_button = QToolButton()
        more.setText("⋯")
        more.setToolTip("Duplicate, remove, or add a cell below")
        more.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(more)
        menu.addAction("Duplicate", lambda: self.sig_cell_action.emit(self, "duplicate"))
        add = menu.addMenu("Add a cell below")
        for kind in KINDS:
            add.addAction(TITLES[kind], functools.partial(self.sig_cell_action.emit, self, f"add:{kind}"))
        menu.addSeparator()
        menu.addAction("Remove (Ctrl+Z brings it back)", lambda: self.sig_cell_action.emit(self, "remove"))
        more.setMenu(menu)
        head = QHBoxLayout()
        head.addWidget(self.toggle)
        head.addWidget(title)
        head.addWidget(self.summary, 1)
        head.addStretch(0)
        for w in (self.run_button, self.below_button, up, down, more):
            w.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
            head.addWidget(w)

        self.body = QWidget()
        form = QFormLayout(self.body)
        form.setContentsMargins(28, 0, 8, 4)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        hint = QLabel(HINTS.get(cell.kind, ""))
        set_tone(hint, "muted")
        form.addRow(hint)
        self.editors: dict[str, QWidget] = {}
        for key, value in cell.settings.items():
            if key == "backend":
                continue
            field = self._editor(key, value, prompts)
            self.editors[key] = field
            form.addRow(key.replace("_", " "), field)
        self.output = QLabel()
        self.output.setWordWrap(True)
        self.output.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setMaximumHeight(14)
        self.progress.hide()
        form.addRow(self.progress)
        # Generate: records appear as they finish; the text being written streams above them
        self.writing = QLabel()
        set_tone(self.writing, "muted", " font-style: italic;")
        self.writing.setWordWrap(True)
        self.writing.hide()
        self.live = QPlainTextEdit()
        self.live.setReadOnly(True)
        self.live.setMaximumHeight(150)
        self.live.setMaximumBlockCount(200)
        self.live.hide()
        self._streams = StreamFollower()  # one sequence at a time, readable
        form.addRow(self.writing)
        form.addRow(self.live)
        form.addRow(self.output)
        self.table = None
        if cell.kind == "data":  # the first input rows, and pasting rows from a spreadsheet
            self.table = QTableWidget()
            self.table.setMaximumHeight(190)
            self.table.setEditTriggers(QTableWidget.EditTrigger.DoubleClicked
                                       | QTableWidget.EditTrigger.EditKeyPressed)
            self.table.setToolTip("Double-click a value to edit that input row (Ctrl+Z undoes)")
            self.table.itemChanged.connect(self._on_item_edited)
            self.paste_button = QPushButton("Paste rows")
            self.paste_button.setToolTip("Import rows from the clipboard: cells copied from a spreadsheet "
                                         "(tab-separated), CSV or JSON lines, with a header row")
            self.paste_button.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
            self.paste_button.clicked.connect(lambda: self.sig_paste.emit(self))
            form.addRow(self.paste_button)
            form.addRow(self.table)
        # the Prompt, Review, Generate and Map cells hold these (set by NotebookView)
        self.editor: PromptEditor | None = None
        self.review: ReviewQueue | None = None
        self.model_label: QLabel | None = None
        self.map_view: MapView | None = None
        self.chart: Chart | None = None
        if cell.kind == "quality":  # the funnel, inline
            from widgets.chart import Chart

            self.chart = Chart(figsize=(7, 1.9))
            self.chart.setMinimumHeight(170)
            self.chart.setMinimumWidth(640)
            form.addRow(self.chart)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.addLayout(head)
        lay.addWidget(self.body)
        self.set_output(cell.last_output)
        self._apply_collapsed()

    # -- settings editors -------------------------------------------------------------------

    def _editor(self, key: str, value: Any, prompts: list[str]) -> QWidget:
        if isinstance(value, bool):
            check = QCheckBox()
            check.setChecked(value)
            check.toggled.connect(lambda v, k=key: self._set(k, bool(v)))
            return check
        if isinstance(value, int):
            spin = QSpinBox()
            spin.setMinimumWidth(110)
            spin.setRange(0, 1_000_000)
            spin.setValue(value)
            spin.valueChanged.connect(lambda v, k=key: self._set(k, int(v)))
            return spin
        if isinstance(value, float):
            dspin = QDoubleSpinBox()
            dspin.setRange(0.0, 2.0)
            dspin.setSingleStep(0.1)
            dspin.setValue(value)
            dspin.valueChanged.connect(lambda v, k=key: self._set(k, float(v)))
            return dspin
        if key == "over":  # a chain: the input rows, or another prompt's samples (typed: run:ID)
            combo = QComboBox()
            combo.setEditable(True)
            combo.addItems([INPUT_ROWS, *(f"prompt:{p}" for p in prompts)])
            combo.setMinimumWidth(260)
            combo.setCurrentText(str(value) or INPUT_ROWS)
            combo.setToolTip("Run over the input rows, or over another prompt's samples (a chain): the template "
                             "reads {{ output }}, its fields ({{ output.answer }}) and the parent's variables")
            combo.currentTextChanged.connect(lambda v, k=key: self._set(k, "" if v == INPUT_ROWS else v.strip()))
            return combo
        if key == "prompt" or key in CHOICES:
            combo = QComboBox()
            combo.addItems(prompts if key == "prompt" else list(CHOICES[key]))
            combo.setMinimumWidth(260)
            if value:
                combo.setCurrentText(str(value))
            combo.currentTextChanged.connect(lambda v, k=key: self._set(k, v))
            return combo
        line = QLineEdit(str(value))
        line.textChanged.connect(lambda v, k=key: self._set(k, v))
        if key == "models":
            line.setPlaceholderText("the notebook's model")
            line.setToolTip("Spread the samples over several models (one run each, the same seeds): GGUF paths "
                            "or server URLs separated by spaces, each optionally =WEIGHT (a.gguf=2 b.gguf=1). "
                            "Colour the map by model to compare their styles.")
        if key != "file":
            return line
        box = FileField(line)
        box.setMinimumWidth(560)
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        pick = QToolButton()
        pick.setText("…")
        pick.clicked.connect(lambda: self._pick_file(line))
        row.addWidget(line, 1)
        row.addWidget(pick)
        return box

    def _pick_file(self, line: QLineEdit) -> None:
        if self.cell.kind == "export":
            start = line.text() or str(self.folder / "dataset.jsonl")
            path, _ = QFileDialog.getSaveFileName(self, "Export to", start, "Data (*.jsonl *.csv *.parquet)")
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Import", line.text() or str(self.folder),
                                                  "Tables (*.csv *.tsv *.jsonl *.json *.parquet)")
        if path:
            line.setText(path)

    def _set(self, key: str, value: Any) -> None:
        self.cell.settings[key] = value
        self.sig_changed.emit(self)

    # -- state ------------------------------------------------------------------------------

    def _on_toggle(self) -> None:
        self.cell.collapsed = not self.cell.collapsed
        self._apply_collapsed()
        self.sig_changed.emit(self)

    def _apply_collapsed(self) -> None:
        self.body.setVisible(not self.cell.collapsed)
        self.toggle.setText("▸" if self.cell.collapsed else "▾")
        self.summary.setVisible(self.cell.collapsed)

    def set_output(self, text: str, error: bool = False) -> None:
        self.cell.last_output = text
        self.output.setText(text)
        stopped = " cancelled" in text or text.startswith("stopped")  # a stopped run never looks done
        set_tone(self.output, "error" if error else "warn" if stopped else "ok")
        self.summary.setText(text[:120])

    def show_rows(self, total: int, rows: list[tuple[int, dict]]) -> None:
        if self.table is None:
            return
        cols = list(dict.fromkeys(k for _, r in rows for k in r))
        self.table.blockSignals(True)
        self.table.setColumnCount(len(cols))
        self.table.setHorizontalHeaderLabels(cols)
        self.table.setRowCount(len(rows))
        self.table.setVerticalHeaderLabels([f"#{rid}" for rid, _ in rows])
        for i, (rid, r) in enumerate(rows):
            for j, c in enumerate(cols):
                item = QTableWidgetItem(str(r.get(c, "")))
                item.setData(Qt.ItemDataRole.UserRole, rid)
                self.table.setItem(i, j, item)
        self.table.blockSignals(False)
        self.table.resizeColumnsToContents()
        self.table.setVisible(bool(rows))
        self.paste_button.setText(f"Paste rows  ({total} input rows now)" if total else "Paste rows")

    def show_map(self) -> None:
        if self.map_view is not None:
            self.map_view.refresh()

    def _on_item_edited(self, item: QTableWidgetItem) -> None:
        assert self.table is not None  # only the Data cell's table is connected here
        header = self.table.horizontalHeaderItem(item.column())
        assert header is not None  # show_rows labels every column
        column = header.text()
        self.sig_edit_input.emit(int(item.data(Qt.ItemDataRole.UserRole)), column, item.text())

    def draw_funnel(self, stages: list[dict]) -> None:
        if self.chart is None:
            return
        from widgets.quality_view import draw_funnel

        stages = [dict(s) for s in stages]

        def draw(fig: Figure, palette: QPalette) -> None:
            if len(stages) > 1:
                draw_funnel(fig.add_subplot(), stages)
            style_figure(fig, palette)

        self.chart.setVisible(len(stages) > 1)
        self.chart.plot(draw)

    @property
    def chart_figure(self) -> Figure:
        """The funnel as last drawn (the Quality cell's)."""
        assert self.chart is not None
        return self.chart.figure

    def on_token(self, key: Hashable, piece: str) -> None:
        self._streams.token(key, piece)
        self.writing.show()
        self.writing.setText("writing: " + self._streams.line())

    def on_record(self, key: Hashable, record_id: int, text: str) -> None:
        self._streams.finished(key)
        self.live.show()
        self.live.appendPlainText(f"#{record_id}  " + " ".join(text.split())[:200])
        if not self._streams.running:
            self.writing.hide()

    def set_running(self, running: bool) -> None:
        if running:
            self._streams.clear()
            if self.cell.kind == "generate":
                self.live.clear()
        else:
            self.writing.hide()
        self.progress.setVisible(running)
        self.run_button.setEnabled(not running)
        self.below_button.setEnabled(not running)
        if running:
            self.progress.setRange(0, 0)

    def set_progress(self, done: int, total: int, message: str) -> None:
        if total:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        self.progress.setFormat(f"{message} %v/%m" if total else message)


class NotebookView(QWidget):
    sig_ran = Signal(str)  # a cell finished (its kind)
    sig_prompt_saved = Signal(str)  # a template was saved from the Prompt cell's editor
    sig_show_ids = Signal(object)  # map selection -> Records
    sig_open_record = Signal(int)
    sig_cell_settings_changed = Signal(object)  # a cell's settings were edited here (the Cell)

    def __init__(self, nb: Notebook, undo_stack: QUndoStack | None = None, parent: QWidget | None = None, *,
                 counter: FunnelCounter | None = None, summary: SummaryCounter | None = None) -> None:
        super().__init__(parent)
        self.nb = nb
        self.undo_stack = undo_stack or QUndoStack(self)
        # the funnel chart's counts and the Review cell's line (shared with the window's other views
        # when it passes its counters)
        self.counter = counter or FunnelCounter(nb, self)
        self.counter.sig_counted.connect(lambda counted: self._draw_funnel(counted.stages))
        self.summary = summary or SummaryCounter(nb, self)
        self.summary.sig_counted.connect(self._show_review_line)
        self._drawn_stages: list[dict] | None = None
        self._maps_pending = False  # the Map cell waits to be drawn until the view is shown
        self.backend = "llama-cpp"
        self.runner = JobRunner(self)
        self.runner.sig_progress.connect(self._on_progress)
        self.runner.sig_partial.connect(self._on_partial)
        self.runner.sig_errored.connect(self._on_error)
        self.runner.sig_finished.connect(self._on_finished)
        self.runner.sig_cancelled.connect(self._on_cancelled)
        self.running_cell: CellWidget | None = None
        self.queue: list[CellWidget] = []
        self.undo_stack.indexChanged.connect(self._on_undo_index_changed)
        self.cells: list[CellWidget] = []
        self.run_all = QPushButton("Run all")
        self.run_all.clicked.connect(self._run_all)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.status = QLabel()
        bar = QHBoxLayout()
        bar.addWidget(self.run_all)
        bar.addWidget(self.stop_button)
        self.add_button = QToolButton()
        self.add_button.setText("+ Add cell")
        self.add_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        add_menu = QMenu(self.add_button)
        for kind in KINDS:
            add_menu.addAction(TITLES[kind], functools.partial(self.cell_action, None, f"add:{kind}"))
        self.add_button.setMenu(add_menu)
        bar.addWidget(self.add_button)
        bar.addWidget(self.status, 1)
        self.column = QVBoxLayout()
        self.column.setSpacing(8)
        holder = QWidget()
        outer = QVBoxLayout(holder)
        outer.addLayout(self.column)
        outer.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(holder)
        lay = QVBoxLayout(self)
        lay.addLayout(bar)
        lay.addWidget(scroll, 1)
        self.reload()

    def reload(self) -> None:
        if self.runner.running or any(w.map_view is not None and w.map_view.runner.running for w in self.cells):
            return  # never rebuild under a running cell
        for w in self.cells:
            if w.editor is not None:
                w.editor.stop()
            w.setParent(None)
            w.deleteLater()
        prompts = prompt_names(self.nb)
        self.cells = []
        for cell in ensure_cells(self.nb):
            w = CellWidget(cell, prompts)
            w.folder = self.nb.path.parent
            w.sig_run.connect(lambda cw: self._run([cw]))
            w.sig_run_below.connect(self.run_from)
            w.sig_move.connect(self._move)
            w.sig_cell_action.connect(self.cell_action)
            w.sig_changed.connect(self._on_cell_changed)
            w.sig_paste.connect(self.paste_rows)
            w.sig_edit_input.connect(self.edit_input)
            form = w.body.layout()
            assert isinstance(form, QFormLayout)  # CellWidget lays its body out as a form
            if cell.kind == "prompt":  # the template editor itself, in the cell
                from widgets.prompt_editor import PromptEditor

                editor = w.editor = PromptEditor(self.nb)
                editor.setMinimumHeight(420)
                if cell.settings.get("prompt"):
                    editor.name.setCurrentText(cell.settings["prompt"])
                editor.row.setValue(int(cell.settings.get("row") or 1))
                editor.sig_saved.connect(self._on_prompt_saved)
                form.addRow(editor)
                # one prompt and one row selector: the editor's own, kept in the cell's settings
                for key in ("prompt", "row"):
                    if key in w.editors:
                        form.setRowVisible(w.editors[key], False)
                editor.name.currentTextChanged.connect(lambda v, cw=w: self._set_setting(cw, "prompt", v))
                editor.row.valueChanged.connect(lambda v, cw=w: self._set_setting(cw, "row", int(v)))
            if cell.kind == "review":  # the keyboard review queue itself (A/R/F, J/K, E)
                from widgets.review_queue import ReviewQueue

                review = w.review = ReviewQueue(self.nb, self.undo_stack)
                review.setMinimumHeight(420)  # built when the cell is opened (ReviewQueue.showEvent)
                form.addRow(review)
            if cell.kind == "generate":  # which model runs (File > Models… changes it)
                from app.generate.model_choice import display_name, notebook_model

                choice = notebook_model(self.nb)
                name = display_name(choice.path)
                par = f", {choice.parallel} sequences at once" if choice.parallel else ""
                model_label = w.model_label = QLabel(f"model: {name} · n_ctx {choice.n_ctx}{par}")
                set_tone(model_label, "muted")
                form.insertRow(1, model_label)
            if cell.kind == "map":  # the scatter and extrema views themselves, in the cell
                from widgets.map_view import MapView

                map_view = w.map_view = MapView(self.nb, self.undo_stack)
                map_view.setMinimumHeight(560)
                map_view.sig_show_ids.connect(self.sig_show_ids)
                map_view.sig_open_record.connect(self.sig_open_record)
                form.addRow(map_view)
            self.column.addWidget(w)
            self.cells.append(w)
        self._drawn_stages = None  # new cells: their chart is empty
        if self.counter.stages is not None:  # the last counts at once; the new ones follow
            self._draw_funnel(self.counter.stages)
        if self.summary.result is not None:
            self._show_review_line(self.summary.result)
        self._draw_charts()

    def _on_progress(self, done: int, total: int, message: str) -> None:
        if self.running_cell is not None:
            self.running_cell.set_progress(done, total, message)

    def _on_undo_index_changed(self, _index: int) -> None:
        if not self.runner.running:
            self._draw_charts()
        for w in self.cells:
            if w.editor is not None:
                w.editor.data_changed()

    def _run_all(self) -> None:
        if self.cells:
            self.run_from(self.cells[0])

    def redraw(self) -> None:
        """The notebook changed elsewhere (the generate bar, the Records table, another process): the
        cells' charts, rows and live lines follow; never under a running cell's own updates."""
        if not self.runner.running:
            self._draw_charts()
        for w in self.cells:
            if w.editor is not None:
                w.editor.data_changed()

    def _draw_charts(self) -> None:
        if self.nb.closed:  # e.g. the undo stack cleared while switching notebooks
            return
        self.counter.request()  # the funnel chart follows when counted (at once on a small notebook)
        self.summary.request()  # and the Review cell's line
        total = self.nb.count_records("input")
        rows = self.nb.input_rows(limit=8)
        for w in self.cells:
            w.show_rows(total, rows)
            live = live_summary(self.nb, w.cell.kind) if w is not self.running_cell and w.cell.kind == "map" else None
            if live is not None:  # the notebook as it is now, not the cell's last run
                w.set_output(live)
        # the Map cell reads and draws every point (most of a second at 20k): while the Notebook tab
        # is hidden it waits until it is shown
        self._maps_pending = not self.isVisible()
        if not self._maps_pending:
            self._draw_maps()

    def _draw_maps(self) -> None:
        self._maps_pending = False
        for w in self.cells:
            w.show_map()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().showEvent(event)
        if self._maps_pending and not self.nb.closed:
            self._draw_maps()

    def _show_review_line(self, counted: WindowSummary) -> None:
        for w in self.cells:
            if w.cell.kind == "review" and w is not self.running_cell:
                w.set_output(counted.review_line)

    def _draw_funnel(self, stages: list[dict]) -> None:
        """The Quality cell's funnel chart; not redrawn when the counts did not change (a redraw
        takes a good part of a second on the UI thread)."""
        if stages == self._drawn_stages:
            return
        self._drawn_stages = stages
        for w in self.cells:
            w.draw_funnel(stages)

    def edit_input(self, record_id: int, variable: str, value: str) -> None:
        """One input variable changed in the Data cell: an edit with history, undoable."""
        from widgets.edit_commands import EditRecordCommand

        variables = record_variables(self.nb, record_id)
        if variables is None:
            return
        if str(variables.get(variable, "")) == value:
            return
        variables[variable] = value
        self.undo_stack.push(EditRecordCommand(self.nb, record_id, "variables", variables, lambda _rid: None))
        self.cell_widget("data").set_output(f"edited input #{record_id}: {variable} = {value[:80]}")

    def paste_rows(self, cw: CellWidget, text: str | None = None) -> None:
        """Import what is on the clipboard (or ``text``) as rows; a bad paste changes nothing."""
        from app.core.errors import StudioError
        from app.data.importer import import_text

        if text is None:
            text = QApplication.clipboard().text()
        try:
            inputs, samples = import_text(self.nb, text)
        except StudioError as exc:
            cw.set_output(f"⚠ {exc}", error=True)
            return
        cw.set_output(f"pasted {inputs + samples} rows: {inputs} input rows, {samples} records with text")
        self._draw_charts()
        self.sig_ran.emit("data")

    def _on_prompt_saved(self, name: str) -> None:
        """A new version was saved in the cell: offer it in every prompt menu (no rebuild)."""
        for w in self.cells:
            combo = w.editors.get("prompt")
            if isinstance(combo, QComboBox) and combo.findText(name) < 0:
                combo.addItem(name)
        self.sig_prompt_saved.emit(name)

    def cell_widget(self, kind: str) -> CellWidget:
        return next(w for w in self.cells if w.cell.kind == kind)

    def _set_setting(self, cw: CellWidget, key: str, value: Any) -> None:
        cw.cell.settings[key] = value
        self._on_cell_changed(cw)

    def _on_cell_changed(self, cw: CellWidget) -> None:
        save_cell(self.nb, cw.cell)
        self.sig_cell_settings_changed.emit(cw.cell)

    def set_cell_settings(self, cell_id: int, values: dict[str, Any]) -> None:
        """Settings changed elsewhere (the generate bar): stored, and the cell's editors show them."""
        w = next((w for w in self.cells if w.cell.id == cell_id), None)
        if w is None:
            return
        w.cell.settings.update(values)
        save_cell(self.nb, w.cell)
        for key, value in values.items():
            editor = w.editors.get(key)
            if editor is None:
                continue
            editor.blockSignals(True)
            if isinstance(editor, QSpinBox):
                editor.setValue(int(value))
            elif isinstance(editor, QDoubleSpinBox):
                editor.setValue(float(value))
            elif isinstance(editor, QComboBox):
                editor.setCurrentText(str(value))
            editor.blockSignals(False)

    def cell_action(self, cw: CellWidget | None, action: str) -> None:
        """Add, duplicate or remove a cell (a removal is undoable); the column is rebuilt."""
        if self.runner.running:
            self.status.setText("stop the running cell first")
            return
        if action == "duplicate" and cw is not None:
            duplicate_cell(self.nb, cw.cell.id)
        elif action.startswith("add:"):
            insert_cell(self.nb, action[4:], after=cw.cell.id if cw is not None else None)
        elif action == "remove" and cw is not None:
            self.undo_stack.push(_RemoveCell(self, cw.cell.id))
            return
        self.reload()

    def _move(self, cw: CellWidget, delta: int) -> None:
        move_cell(self.nb, cw.cell.id, delta)
        self.reload()

    def run_from(self, cw: CellWidget) -> None:
        i = self.cells.index(cw)
        self._run(self.cells[i:])

    def _run(self, cells: list[CellWidget]) -> None:
        """Run ``cells`` in order; a cell still running is stopped first (what it finished is kept)."""
        if not cells:
            return
        old = self.running_cell
        self.queue = list(cells)
        self._next()
        if old is not None and old is not self.running_cell:  # its end is never reported: the runner forgot it
            old.set_running(False)
            old.set_output("stopped: what was finished is kept", error=True)

    def _next(self) -> None:
        if not self.queue:
            self.running_cell = None
            self.stop_button.setEnabled(False)
            self.run_all.setEnabled(True)
            return
        cw = self.queue.pop(0)
        self.running_cell = cw
        self.runner.start(run_cell, self.nb.path, cw.cell, backend=self.backend, compute=True)
        self.stop_button.setEnabled(True)
        self.run_all.setEnabled(False)
        cw.set_running(True)
        self.status.setText(f"running {cw.cell.title}" + (" (queued behind another job)" if self.runner.queued else ""))

    def _on_partial(self, event: JobEvent) -> None:
        cw = self.running_cell
        if cw is None:
            return
        if isinstance(event, TokenStreamed):
            cw.on_token(event.key, event.piece)
        elif isinstance(event, RecordMade):
            made = generated_record(self.nb, event.record_id)
            if made is not None:
                text, key = made
                cw.on_record(key, event.record_id, text)

    def _on_error(self, msg: str) -> None:
        cw = self.running_cell
        self.queue.clear()  # a failed cell stops "run all below"
        if cw is not None:
            cw.set_output(f"⚠ {msg.splitlines()[0]}", error=True)
        self._ended(None)

    def _on_cancelled(self) -> None:
        if self.running_cell is not None:
            self.running_cell.set_output("stopped: what was finished is kept", error=True)
        self._ended(None)

    def _on_finished(self, result: Any) -> None:
        cw = self.running_cell
        if cw is not None and result is not None:
            cw.set_output(str(result))
            if cw.cell.kind in ("quality", "data", "generate", "map"):
                self._draw_charts()
            self.sig_ran.emit(cw.cell.kind)
        self._ended(result)

    def _ended(self, result: Any) -> None:
        cw = self.running_cell
        if cw is not None:
            cw.set_running(False)
            self.status.setText(f"{cw.cell.title}: done" if result is not None else f"{cw.cell.title}: not finished")
        self._next()

    def stop(self) -> None:
        self.queue.clear()
        if self.runner.running:
            self.runner.cancel()
            self.status.setText("stopping…")


class _RemoveCell(QUndoCommand):
    """Removing a cell, undoable: undo puts it back where it was, with its settings and last output."""

    def __init__(self, view: NotebookView, cell_id: int) -> None:
        super().__init__("remove cell")
        self.view, self.cell_id = view, cell_id
        self.removed: Cell | None = None

    def redo(self) -> None:
        self.removed = remove_cell(self.view.nb, self.cell_id)
        self.view.reload()

    def undo(self) -> None:
        if self.removed is not None:
            self.cell_id = restore_cell(self.view.nb, self.removed).id
            self.view.reload()
