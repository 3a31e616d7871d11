"""The studio window (first version): the notebook's records and where each came from.

The full notebook of cells arrives with the notebook-window issue; this window
already follows its rules: it renders what the store says and never runs SQL.
"""

from __future__ import annotations

import html
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QEvent, Qt, QThreadPool, QTimer
from PySide6.QtGui import QAction, QDoubleValidator, QFont, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import StudioError
from app.core.logs import log_uncaught, setup_logging
from app.core.paths import resources_dir
from app.core.settings import edit_settings, load_settings
from app.generate.model_choice import notebook_model
from app.generate.runs import planned_samples
from app.generate.structured import notebook_fields
from app.jobs import FunnelCount, WindowSummary, export_job, import_job
from app.prompts.structured import cell_text, parse_output
from app.store.notebook import Notebook, Run
from app.store.queries import (
    MAX_CHAIN,
    RecordFilter,
    filter_choices,
    lineage,
    prompt_names,
    run_record_count,
)
from widgets.close_guard import CloseGuard
from widgets.compare_view import CompareView
from widgets.error_details import ErrorDetails
from widgets.file_drop import dropped_files
from widgets.funnel_counter import FunnelCounter, SummaryCounter
from widgets.generate_bar import GenerateBar, stopped_text
from widgets.job_runner import JobRunner, compute_busy
from widgets.job_status import JobStatus
from widgets.map_view import MapView
from widgets.notebook_view import NotebookView
from widgets.prompt_editor import PromptEditor
from widgets.quality_view import QualityView
from widgets.records_table import RecordsDelegate, RecordsModel
from widgets.report_view import ReportView
from widgets.review_queue import ReviewQueue
from widgets.theme import tone, tone_hex
from widgets.versions_view import VersionsView

APP_NAME = "Synth Studio"
log = logging.getLogger(__name__)
# How long a worker thread may keep Python's lock while the UI thread asks for it (Python's default
# is 5 ms). PySide lets go of the lock for every call into Qt and takes it back after, so a slot
# that makes 50 Qt calls while a job computes in Python could wait up to 50 x 5 ms. (In the UI-stall
# bench it made no difference that stood out of the noise; the counts moved to a process did.)
UI_SWITCH_INTERVAL_S = 0.001


def freeze_start_up() -> None:
    """Leave what start-up made (modules, Qt's wrappers, the window: ~200k objects) out of Python's
    full garbage collections. Each such collection walked every object with the interpreter lock
    held, 100-300 ms at a time while a job ran: the window froze that long. Objects made from now on
    are collected as before. (Not in tests, which build and drop many windows: frozen objects are
    never freed.)"""
    import gc

    gc.freeze()


class MainWindow(QMainWindow):
    def __init__(self, nb: Notebook) -> None:
        super().__init__()
        sys.setswitchinterval(UI_SWITCH_INTERVAL_S)
        self.nb = nb
        self._closed = False
        self.setWindowTitle(f"{nb.get_meta('title') or nb.path.name} — {APP_NAME}")
        self.setWindowIcon(QIcon(str(resources_dir() / "icons" / "synth-studio.svg")))
        self.model = RecordsModel(nb, self)
        self.model.sig_edit_refused.connect(self._on_edit_refused)
        self.model.sig_edit_waiting.connect(self.show_message)
        self.model.sig_edit_saved.connect(self.show_message)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setItemDelegate(RecordsDelegate(self.table))  # multi-line output, a menu of statuses
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        # the indicator first: enabling sorting sorts by it (Qt's default is descending, a reload)
        self.table.horizontalHeader().setSortIndicator(0, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setResizeContentsPrecision(40)  # fit the columns to the first rows, not to a thousand
        header.setStretchLastSection(False)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_row_changed)

        self.detail = QTextBrowser()
        self.detail.setOpenExternalLinks(False)
        self.detail.setOpenLinks(False)
        self.detail.anchorClicked.connect(self._on_anchor)
        self.summary_label = QLabel()
        self.summary_label.setTextFormat(Qt.TextFormat.RichText)
        self.summary_label.setContentsMargins(8, 6, 8, 6)

        self.runner = JobRunner(self)  # File > Import / Export
        self.runner.sig_errored.connect(lambda msg: self.show_message(msg, error=True, logged=True))
        self.runner.sig_finished.connect(self._on_job_finished)
        self.runner.sig_cancelled.connect(self._on_job_cancelled)
        self.job_status = JobStatus(self.runner)  # what the import/export does, how far, and Cancel
        self.statusBar().addPermanentWidget(self.job_status)
        self.warm_up_runner = JobRunner(self, background=True)
        self.error_details = ErrorDetails(self.statusBar())  # "Details…" for the whole text of an error
        self.open_folder_button = QPushButton("Open folder")  # after an export: where the file went
        self.open_folder_button.setFlat(True)
        self.open_folder_button.clicked.connect(self._open_written_folder)
        self.statusBar().addPermanentWidget(self.open_folder_button)
        self.open_folder_button.hide()
        self.written: Path | None = None
        self.close_guard = CloseGuard(self)  # closing asks while a job runs or a prompt is unsaved
        self.setAcceptDrops(True)  # a table dropped on the window is imported, a notebook opened
        self.generate_bar = GenerateBar(nb.path, prompt_names(nb))
        self.generate_bar.sig_record_added.connect(self._on_record_added)
        self.generate_bar.sig_manage_models.connect(self.open_model_manager)
        self.generate_bar.apply_choice(notebook_model(nb))
        self.generate_bar.sig_run_finished.connect(self._on_run_finished)
        self.generate_bar.sig_settings_edited.connect(self._cell_from_bar)

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search output text…")
        self.search.setClearButtonEnabled(True)
        self.status_filter = QComboBox()
        self.status_filter.addItems(["any status", "new", "accepted", "rejected", "flagged"])
        self.origin_filter = QComboBox()
        self.origin_filter.addItems(["any origin", "synthetic", "real", "human-edited"])
        self.version_filter = QComboBox()
        self.run_filter = QComboBox()
        self.score_filter = QComboBox()
        self.cluster_filter = QComboBox()
        self.cluster_filter.setToolTip("Clusters of the latest map (Map tab)")
        self.verdict_filter = QComboBox()
        self.verdict_filter.setToolTip("The funnel's verdict: the kept set is what export writes")
        # its choices arrive with the funnel's count (later on a big notebook): the menu grows to them
        self.verdict_filter.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.verdict_filter.addItem("kept or dropped", None)
        self.score_min, self.score_max = QLineEdit(), QLineEdit()
        for w, hint in ((self.score_min, "min"), (self.score_max, "max")):
            w.setPlaceholderText(hint)
            w.setValidator(QDoubleValidator(w))
            w.setMaximumWidth(70)
        self.field_filter = QComboBox()  # a structured output's field (shown when a prompt declares output_schema)
        self.field_filter.setToolTip("A field of the structured outputs (the prompt's output_schema)")
        self.field_value = QLineEdit()
        self.field_value.setPlaceholderText("value, or 1..5")
        self.field_value.setToolTip("Records whose field is exactly this value (as the table shows it), "
                                    "or a number range lo..hi (either end may be left out)")
        self.field_value.setMaximumWidth(140)
        self.shown_label = QLabel()
        # the funnel's counts and verdicts: at once on a small notebook, off the UI thread on a big one
        self.funnel_counter = FunnelCounter(nb, self)
        self.funnel_counter.sig_counted.connect(self._on_funnel_counted)
        self.summary_counter = SummaryCounter(nb, self)  # records by status, runs, review progress
        self.summary_counter.sig_counted.connect(self._show_summary)
        self._fill_filter_choices()
        for combo in (self.status_filter, self.origin_filter, self.version_filter, self.run_filter,
                      self.score_filter, self.cluster_filter, self.verdict_filter, self.field_filter):
            combo.currentIndexChanged.connect(self.apply_filter)
        self._search_timer = QTimer(self, singleShot=True, interval=250)
        self._search_timer.timeout.connect(self.apply_filter)
        for w in (self.score_min, self.score_max, self.field_value):
            w.textChanged.connect(lambda _t: self._search_timer.start())
        self.search.textChanged.connect(lambda _t: self._search_timer.start())
        filters = QHBoxLayout()
        filters.setContentsMargins(8, 0, 8, 0)
        filters.addWidget(self.search, 1)
        filters.addWidget(self.status_filter)
        filters.addWidget(self.origin_filter)
        filters.addWidget(self.verdict_filter)
        filters.addWidget(self.shown_label)
        filters2 = QHBoxLayout()
        filters2.setContentsMargins(8, 0, 8, 0)
        filters2.addWidget(self.version_filter)
        filters2.addWidget(self.run_filter, 1)
        filters2.addWidget(self.cluster_filter, 1)
        filters2.addWidget(self.score_filter)
        filters2.addWidget(self.score_min)
        filters2.addWidget(QLabel("–"))
        filters2.addWidget(self.score_max)
        filters2.addWidget(self.field_filter)
        filters2.addWidget(self.field_value)

        left = QWidget()
        lay = QVBoxLayout(left)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.summary_label)
        lay.addLayout(filters)
        lay.addLayout(filters2)
        lay.addWidget(self.table)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.detail)
        split.setSizes([900, 600])
        split.setStretchFactor(0, 3)  # the table grows with the window, the side panel less
        split.setStretchFactor(1, 2)
        split.splitterMoved.connect(lambda *_: self._fit_output())
        self.review = ReviewQueue(nb, self.model.undo_stack)
        self.review.sig_record_changed.connect(self._on_review_changed)
        self.tabs = QTabWidget()
        self.notebook_view = NotebookView(nb, self.model.undo_stack, counter=self.funnel_counter,
                                          summary=self.summary_counter)
        self.notebook_view.sig_ran.connect(self._on_cell_ran)
        self.notebook_view.sig_prompt_saved.connect(lambda name: self._on_prompt_saved(name))
        self.notebook_view.sig_show_ids.connect(lambda ids: self.show_records(ids))
        self.notebook_view.sig_open_record.connect(lambda rid: self.show_records((rid,)))
        self.notebook_view.sig_cell_settings_changed.connect(self._bar_from_cell)
        self.tabs.addTab(self.notebook_view, "Notebook")
        self.records_page = split
        self.tabs.addTab(split, "Records")
        self.prompt_editor = PromptEditor(nb)
        self.prompt_editor.sig_saved.connect(self._on_prompt_saved)
        self.tabs.addTab(self.prompt_editor, "Prompt")
        self.quality = QualityView(nb)
        self.quality.sig_step_finished.connect(lambda _s: self.refresh_summary())
        self.tabs.addTab(self.quality, "Quality")
        self.map_view = MapView(nb, self.model.undo_stack)
        self.map_view.sig_show_ids.connect(self.show_records)
        self.map_view.sig_open_record.connect(lambda rid: self.show_records((rid,)))
        self.map_view.sig_changed.connect(self._on_map_changed)
        self.tabs.addTab(self.map_view, "Map")
        self.tabs.addTab(self.review, "Review")
        self.compare = CompareView(nb)
        self.compare.sig_compared.connect(lambda _c: self.refresh())
        self.compare.sig_run_adopted.connect(lambda _run: self.refresh())  # its samples join the dataset
        self.tabs.addTab(self.compare, "Compare prompts")
        self.versions_view = VersionsView(nb)  # dataset versions: frozen kept sets and their diffs
        self.tabs.addTab(self.versions_view, "Dataset versions")
        self.report_view = ReportView(nb)  # real vs synthetic, the page `synth-studio report` writes
        self.tabs.addTab(self.report_view, "Report")
        self.tabs.currentChanged.connect(self._on_tab_changed)
        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.generate_bar)
        outer.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self._build_menu()
        self._build_edit_menu()
        self._build_help_menu()  # last, where people look for it
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.installEventFilter(self)
        self.model.dataChanged.connect(self._on_data_changed)
        # one "the notebook changed" path to every view, coalesced: records arriving during a run
        # redraw the other views a few times a second, not once per record
        self._changed_timer = QTimer(self, singleShot=True, interval=300)
        self._changed_timer.timeout.connect(self._on_notebook_changed)
        self.model.undo_stack.indexChanged.connect(lambda _i: self.notebook_changed())
        # writes by another process (a CLI run in a terminal) or a job's own connection
        self._bar_from_cell()  # the bar shows the Generate cell's settings
        self._seen_version = nb.data_version()
        self._watch_timer = QTimer(self, interval=2000)
        self._watch_timer.timeout.connect(self._check_outside_writes)
        self._watch_timer.start()
        self.refresh(announce=False)

    def _generate_cell(self):
        """The notebook's first Generate cell: the one source of truth the generate bar shows and edits."""
        from app.cells import list_cells

        return next((c for c in list_cells(self.nb) if c.kind == "generate"), None)

    def _bar_from_cell(self, cell=None) -> None:
        first = self._generate_cell()
        if first is not None and (cell is None or cell.id == first.id):
            self.generate_bar.apply_cell_settings((cell or first).settings)

    def _cell_from_bar(self, values: dict) -> None:
        cell = self._generate_cell()
        if cell is not None:
            self.notebook_view.set_cell_settings(cell.id, values)

    def notebook_changed(self) -> None:
        """Records were added, edited or undone, a run or a job ended: every view follows (soon)."""
        self._changed_timer.start()

    def _check_outside_writes(self) -> None:
        """Another connection committed to the notebook: new records join the table, every view follows."""
        if self.nb.closed:
            return
        version = self.nb.data_version()
        if version != self._seen_version:
            self._seen_version = version
            self.model.sync()
            self.notebook_changed()

    def _on_notebook_changed(self) -> None:
        if self.nb.closed:
            return
        self.refresh_summary()
        self.notebook_view.redraw()  # the cells' charts and live lines
        self.map_view.data_changed()  # the "N new records since this map" banner
        self.prompt_editor.data_changed()  # "Preview against row" reaches every row
        if self.tabs.currentWidget() is self.quality:
            self.quality.refresh()

    def _on_run_finished(self, _run: Run | None) -> None:
        """A run stopped, finished or resumed: the run menu and the side panel say where it is now."""
        self.notebook_changed()
        self.refresh_summary()
        self._fill_filter_choices()
        current = self.table.currentIndex()
        if current.isValid():
            self._on_current_row_changed(current, None)

    def _on_edit_refused(self, message: str) -> None:
        self.show_message(message, error=True)

    def say_uncaught(self) -> Callable[..., None]:
        """Install (and return) the hook that puts an exception no slot caught in the status bar:
        a StudioError as its line (a prompt saved to a notebook on a full disk: "cannot write ...:
        the disk is full"), anything else as "unexpected error", both kept in the log file by the
        hook that was there before. Without it such an error reached the terminal only."""
        import shiboken6

        previous = sys.excepthook

        def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
            if not issubclass(kind, StudioError):
                previous(kind, value, tb)  # the log file keeps the traceback
            else:
                log.warning("%s", value)
            if shiboken6.isValid(self):
                text = str(value) if isinstance(value, StudioError) else (
                    f"unexpected error: {kind.__name__}: {value} (the log file has the details)")
                self.show_message(text, error=True, logged=True)

        sys.excepthook = hook
        return hook

    def _on_map_changed(self) -> None:
        self.refresh_summary()
        self._fill_filter_choices()

    def _build_edit_menu(self) -> None:
        m = self.menuBar().addMenu("&Edit")
        undo = self.model.undo_stack.createUndoAction(self, "&Undo")
        undo.setShortcuts(_unique_keys("Ctrl+Z", QKeySequence.StandardKey.Undo))
        redo = self.model.undo_stack.createRedoAction(self, "&Redo")
        redo.setShortcuts(_unique_keys("Ctrl+Shift+Z", "Ctrl+Y", QKeySequence.StandardKey.Redo))
        m.addAction(undo)
        m.addAction(redo)
        self.undo_action, self.redo_action = undo, redo
        m.addSeparator()
        # A/R/F/N act on the table (an event filter), where a reviewer's hands are; the
        # menu shows them for discovery.
        for text, key, status in (("&Accept", "A", "accepted"), ("&Reject", "R", "rejected"),
                                  ("&Flag", "F", "flagged"), ("Mark &new", "N", "new")):
            act = QAction(f"{text}\t{key}", self)
            act.triggered.connect(lambda _=False, st=status: self.set_current_status(st))
            m.addAction(act)
        m.addSeparator()
        prefs = QAction("&Preferences…", self, menuRole=QAction.MenuRole.PreferencesRole)  # macOS: the app menu
        prefs.setShortcut(QKeySequence.StandardKey.Preferences)
        prefs.triggered.connect(self.open_preferences)
        m.addAction(prefs)

    STATUS_KEYS = {Qt.Key.Key_A: "accepted", Qt.Key.Key_R: "rejected", Qt.Key.Key_F: "flagged", Qt.Key.Key_N: "new"}

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt name)
        if obj is self.table and event.type() == QEvent.Type.KeyPress \
                and event.modifiers() == Qt.KeyboardModifier.NoModifier and event.key() in self.STATUS_KEYS:
            self.set_current_status(self.STATUS_KEYS[event.key()])
            return True
        return super().eventFilter(obj, event)

    def set_current_status(self, status: str) -> None:
        index = self.table.currentIndex()
        if not index.isValid():
            return
        rec = self.model.record_at(index.row())
        self.model.edit(rec["id"], "status", status)
        self._on_current_row_changed(index, None)
        self.refresh_summary()

    def _build_menu(self) -> None:
        m = self.menuBar().addMenu("&File")
        for text, key, slot in (("&New notebook…", QKeySequence.StandardKey.New, self._on_new),
                                ("New from a &starter…", QKeySequence("Ctrl+Shift+N"), self.new_from_starter),
                                ("&Open notebook…", QKeySequence.StandardKey.Open, self._on_open),
                                ("Open &recent", None, None),
                                ("Save a &copy…", None, self._on_save_copy),
                                ("&Import data…", QKeySequence("Ctrl+I"), self._on_import),
                                ("&Export…", QKeySequence("Ctrl+E"), self._on_export),
                                ("&Models…", None, self.open_model_manager),
                                ("&Reload", QKeySequence.StandardKey.Refresh, self.refresh),
                                ("&Quit", QKeySequence.StandardKey.Quit, self.close)):
            if text == "&Quit":
                m.addSeparator()
            if slot is None:  # File > Open recent
                self.recent_menu = m.addMenu(text)
                self.recent_menu.aboutToShow.connect(self._fill_recent)
                continue
            act = QAction(text, self)
            if key is not None:
                act.setShortcut(key)
            act.triggered.connect(slot)
            m.addAction(act)

    def _build_help_menu(self) -> None:
        h = self.menuBar().addMenu("&Help")
        shortcuts = h.addAction("&Keyboard shortcuts")
        shortcuts.setShortcut(QKeySequence("F1"))
        shortcuts.triggered.connect(self.show_shortcuts)
        guide = h.addAction("The &guide (README)")
        guide.triggered.connect(self.open_guide)

    def shortcut_rows(self) -> list[tuple[str, str]]:
        """(action, keys) for every menu action with a shortcut, read from the actions themselves."""
        rows = []
        for menu_action in self.menuBar().actions():
            menu = menu_action.menu()
            if not isinstance(menu, QMenu):
                continue
            for act in menu.actions():
                keys = ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in act.shortcuts())
                if keys:
                    rows.append((f"{menu_action.text().replace('&', '')} > {act.text().replace('&', '')}", keys))
        return rows

    def show_shortcuts(self) -> None:
        from PySide6.QtWidgets import QMessageBox

        table = "".join(f"<tr><td>{html.escape(a)}</td><td><b>{html.escape(k)}</b></td></tr>"
                        for a, k in self.shortcut_rows())
        extra = ("<tr><td>Review: accept / reject / flag</td><td><b>A / R / F</b></td></tr>"
                 "<tr><td>Review: next / previous / edit</td><td><b>J / K / E</b></td></tr>"
                 "<tr><td>Review: the criterion asked: yes / no / unsure</td><td><b>Y / N / U</b></td></tr>")
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts", f"<table>{table}{extra}</table>",
                          QMessageBox.StandardButton.Close, self)
        box.show()
        self.shortcuts_box = box

    def open_guide(self) -> None:
        """The README's guide: the copy next to the code when there is one, else the project page."""
        from PySide6.QtCore import QUrl
        from PySide6.QtGui import QDesktopServices

        readme = Path(__file__).resolve().parent.parent / "README.md"
        url = QUrl.fromLocalFile(str(readme)) if readme.exists() else QUrl("https://pypi.org/project/synth-studio/")
        QDesktopServices.openUrl(url)

    def new_from_starter(self) -> None:
        """File > New from a starter: the wizard makes the notebook; the window opens it."""
        from widgets.starter_wizard import StarterWizard

        wizard = StarterWizard(load_settings()[0].notebooks_folder(), self)
        if wizard.exec() and wizard.created is not None:
            self.open_notebook(str(wizard.created))

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        paths = recent_notebooks()
        if not paths:
            self.recent_menu.addAction("(none yet)").setEnabled(False)
        for p in paths:
            act = self.recent_menu.addAction(p)
            act.triggered.connect(lambda _=False, path=p: self.open_notebook(path))

    def open_model_manager(self) -> None:
        from widgets.model_manager import ModelManager

        dialog = ModelManager(self.nb, self)
        if dialog.exec():
            self.generate_bar.apply_choice(notebook_model(self.nb))

    def open_preferences(self) -> None:
        from widgets.preferences import PreferencesDialog

        if PreferencesDialog(self).exec():
            self.generate_bar.reload_preferences()
            self._bar_from_cell()  # the notebook's Generate cell still decides what a run makes

    def _on_prompt_saved(self, name: str) -> None:
        self._fill_field_choices()  # a schema's fields become columns and filter choices
        self.generate_bar.set_notebook(self.nb.path, self._prompt_names())
        self.generate_bar.prompt.setCurrentText(name)
        self.refresh_summary()

    def _on_cell_ran(self, kind: str) -> None:
        self.refresh()
        self.notebook_changed()
        if kind == "map":
            self.map_view.refresh()

    def _on_tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.notebook_view:
            self.notebook_view.reload()
        if self.tabs.widget(index) is self.prompt_editor:
            self.prompt_editor.reload()
        if self.tabs.widget(index) is self.quality:
            self.quality.refresh()
        if self.tabs.widget(index) is self.compare:
            self.compare.reload()
        if self.tabs.widget(index) is self.versions_view:
            self.versions_view.reload()
        if self.tabs.widget(index) is self.map_view:
            self.map_view.refresh()
        if self.tabs.widget(index) is self.review:  # it rebuilds itself when shown
            self.review.setFocus()

    def _on_review_changed(self, record_id: int) -> None:
        self.model.refresh_record(record_id)
        self.refresh_summary()

    def _on_anchor(self, url) -> None:
        target = url.toString()
        if target.startswith("record:"):
            self.go_to_record(int(target.split(":", 1)[1]))
        elif target.startswith("resume:"):
            self._resume_run(int(target.split(":", 1)[1]))
        elif target.startswith("revert:"):
            self.model.revert_edit(int(target.split(":", 1)[1]))
            current = self.table.currentIndex()
            if current.isValid():
                self._on_current_row_changed(current, None)

    def _resume_run(self, run_id: int) -> None:
        """The side panel's Resume: the generate bar finishes the run (its prompt's last unfinished one)."""
        run = self.nb.run(run_id)
        self.generate_bar.resume_generation(self.nb.prompt_version_by_id(run.prompt_version_id).name)

    def _stopped(self, run: Run) -> str:
        return stopped_text(run_record_count(self.nb, run.id), planned_samples(run))

    def _lineage(self, record_id: int) -> dict:
        """``lineage`` plus, for a stopped run, how far it got and whether Resume would finish it."""
        info = lineage(self.nb, record_id, chain=True)
        run = info.get("run")
        if run is not None and run.status == "cancelled":
            latest = self.nb.latest_unfinished_run(self.nb.prompt_version_by_id(run.prompt_version_id).name)
            info["run_stopped"] = (self._stopped(run), latest is not None and latest.id == run.id)
        return info

    def _fill_filter_choices(self) -> None:
        """Refill the prompt-version, run, score, cluster and verdict menus from the notebook, keeping the choice.
        The verdicts are the last count's; the funnel is counted again (_on_funnel_counted follows)."""
        choices = filter_choices(self.nb)
        for combo, key, blank in ((self.version_filter, "prompt_versions", "any prompt"),
                                  (self.run_filter, "runs", "any run"), (self.score_filter, "scores", "no score filter"),
                                  (self.cluster_filter, "clusters", "any cluster")):
            self._set_choices(combo, choices[key], blank)
        self.funnel_counter.request()  # the verdict menu follows the count (_on_funnel_counted)
        for run in self.nb.runs():  # a stopped run reads as stopped, in the warning tone, not "cancelled"
            i = self.run_filter.findData(run.id)
            if run.status == "cancelled" and i >= 0:
                label = self.nb.prompt_version_by_id(run.prompt_version_id).label
                self.run_filter.setItemText(i, f"run {run.id} ({label}, {self._stopped(run)})")
                self.run_filter.setItemData(i, tone("warn"), Qt.ItemDataRole.ForegroundRole)
        self._fill_field_choices()

    @staticmethod
    def _set_choices(combo: QComboBox, choices: list[tuple[str, Any]], blank: str) -> None:
        current = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        combo.addItem(blank, None)
        for label, value in choices:
            combo.addItem(label, value)
        combo.setCurrentIndex(max(combo.findData(current), 0))
        combo.blockSignals(False)

    def _on_funnel_counted(self, counted: FunnelCount) -> None:
        """The verdicts were written again: the kept/dropped menu's counts follow, and so do the
        records shown when that filter is on."""
        if self.nb.closed:
            return
        before = [self.verdict_filter.itemText(i) for i in range(self.verdict_filter.count())]
        self._set_choices(self.verdict_filter, counted.verdict_choices, "kept or dropped")
        after = [self.verdict_filter.itemText(i) for i in range(self.verdict_filter.count())]
        if self.verdict_filter.currentData() is not None and after != before:
            self.apply_filter()

    def _fill_field_choices(self) -> None:
        """The field menu: the notebook's structured output fields (hidden when it has none)."""
        fields = notebook_fields(self.nb)
        current = self.field_filter.currentData()
        self.field_filter.blockSignals(True)
        self.field_filter.clear()
        self.field_filter.addItem("any field", None)
        for name in fields:
            self.field_filter.addItem(f"output.{name}", name)
        self.field_filter.setCurrentIndex(max(self.field_filter.findData(current), 0))
        self.field_filter.blockSignals(False)
        self.field_filter.setVisible(bool(fields))
        self.field_value.setVisible(bool(fields))

    def _field_condition(self) -> dict:
        """The field filter's RecordFilter arguments: a value to match, or a number range ``lo..hi``."""
        name, text = self.field_filter.currentData(), self.field_value.text().strip()
        if not name or not text:
            return {}
        if ".." in text:
            lo, _, hi = (t.strip() for t in text.partition(".."))
            try:
                return {"field": name, "field_min": float(lo) if lo else None, "field_max": float(hi) if hi else None}
            except ValueError:
                pass  # not a range of numbers: a value that happens to hold ".."
        return {"field": name, "field_value": text}

    def apply_filter(self) -> None:
        if self.nb.closed:  # a filter timer that fires after the notebook was closed
            return
        pick = lambda combo: None if combo.currentIndex() == 0 else combo.currentText()  # noqa: E731
        old = self.model.filter
        columns = self.model.columns
        score = self.score_filter.currentData()
        bound = lambda w: float(w.text()) if score and w.hasAcceptableInput() else None  # noqa: E731
        self.model.set_filter(RecordFilter(
            status=pick(self.status_filter), origin=pick(self.origin_filter), text=self.search.text().strip(),
            prompt_version_id=self.version_filter.currentData(), run_id=self.run_filter.currentData(),
            score=score, score_min=bound(self.score_min), score_max=bound(self.score_max),
            cluster=self.cluster_filter.currentData(), verdict=self.verdict_filter.currentData(),
            **self._field_condition(), order_by=old.order_by, descending=old.descending))
        if self.model.columns != columns:  # another prompt's fields
            self._fit_columns()
        self.shown_label.setText(f"{self.model.total} shown")
        if self.model.rowCount():
            self.table.selectRow(0)

    def show_records(self, ids: tuple[int, ...]) -> None:
        """The Records tab showing just ``ids`` (a map selection or one clicked point)."""
        old = self.model.filter
        self.model.set_filter(RecordFilter(record_ids=tuple(ids), order_by=old.order_by, descending=old.descending))
        self.shown_label.setText(f"{self.model.total} shown (from the map; change a filter to see all)")
        self.tabs.setCurrentWidget(self.records_page)
        if self.model.rowCount():
            self.table.selectRow(0)

    def go_to_record(self, record_id: int) -> None:
        """Select ``record_id`` in the table when it is among the loaded rows, else show its details in
        the side panel, leaving the filter and the loaded pages as they are (no paging through 1M rows)."""
        row = self.model.row_of(record_id)
        if row is not None:
            self.table.selectRow(row)
            self.table.scrollTo(self.model.index(row, 0))
            return
        try:
            info = self._lineage(record_id)
        except StudioError as exc:
            self.show_message(str(exc), error=True)
            return
        self.detail.setHtml(render_lineage_html(info, note="not in the table as filtered now"))

    def _on_data_changed(self, top_left, _bottom_right, _roles=()) -> None:
        current = self.table.currentIndex()
        if current.isValid() and current.row() == top_left.row():
            self._on_current_row_changed(current, None)
        self.refresh_summary()

    def _on_record_added(self, _record_id: int) -> None:
        self.model.sync()
        self.refresh_summary()
        self.notebook_changed()

    def refresh_summary(self) -> None:
        """The side summary: counted again (at once on a small notebook, else on a runner)."""
        self.summary_counter.request()

    def _show_summary(self, counted: WindowSummary) -> None:
        if self.nb.closed:
            return
        s = counted.summary
        by = " · ".join(f"{k} {v}" for k, v in sorted(s["by_status"].items())) or "none yet"
        self.summary_label.setText(
            f"<b>{html.escape(str(self.nb.path))}</b> &nbsp; {s['inputs']} input rows · "
            f"{s['samples']} samples ({by}) · {s['prompts']} prompt{'s' if s['prompts'] != 1 else ''} · "
            f"{s['runs']} run{'s' if s['runs'] != 1 else ''}"
        )

    def _fit_columns(self) -> None:
        self.table.resizeColumnsToContents()
        fields = [i for i, c in enumerate(self.model.columns) if c.startswith("output.")]
        self.table.setColumnWidth(self.model.columns.index("output"), 260 if fields else 440)
        for i in fields:  # a long text field must not push the rest out of sight
            self.table.setColumnWidth(i, min(self.table.columnWidth(i), 240))
        self._fit_output()

    def _fit_output(self) -> None:
        """The output column takes the table's free width (at least 220 px): every other column stays in
        sight on a 1280 px screen, and a wide screen shows more of the text instead of blank space."""
        if "output" not in self.model.columns:
            return
        out = self.model.columns.index("output")
        others = sum(self.table.columnWidth(i) for i in range(self.model.columnCount()) if i != out)
        free = self.table.viewport().width() - others - 2
        self.table.setColumnWidth(out, max(220, free))

    def refresh(self, *, announce: bool = True) -> None:
        """Reread the notebook into the table; ``announce``: every other view follows too (File >
        Reload, a job's end). The window's first refresh does not announce: its views were just
        made from the notebook, and a second round of their counts would only delay the first (on
        a big notebook the counts queue in one process)."""
        if announce:
            self.notebook_changed()
        self._fill_filter_choices()
        self.refresh_summary()  # at once; the announced one, if nothing was written since, is not counted again
        self.model.reload()
        self.shown_label.setText(f"{self.model.total} shown")
        self._fit_columns()
        if self.model.rowCount():
            self.table.selectRow(0)
        else:
            self.detail.setHtml(
                "<h3>No samples yet</h3><p>Pick a prompt above and press <b>Generate</b> (or run the "
                "Generate cell in the <b>Notebook</b> tab). No prompt yet? Write one in the <b>Prompt</b> tab, "
                "or start from a ready-made task with <b>File &gt; New from a starter…</b>.</p>"
            )

    def _on_current_row_changed(self, current, _previous) -> None:
        if not current.isValid():
            return
        rec = self.model.record_at(current.row())
        self.detail.setHtml(render_lineage_html(self._lineage(rec["id"])))

    def _on_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open notebook", str(self.nb.path.parent),
                                              "Notebooks (*.db);;All files (*)")
        if path:
            self.open_notebook(path)

    def _on_new(self) -> None:
        folder = load_settings()[0].notebooks_folder()  # the data folder (Preferences)
        path, _ = QFileDialog.getSaveFileName(self, "New notebook", str(folder / "notebook.db"),
                                              "Notebooks (*.db)")
        if path:
            self.open_notebook(path, create=True)

    def _on_save_copy(self) -> None:
        """One complete file to send or back up, taken while the notebook stays open (copying the .db
        by hand can miss what is still in its -wal file)."""
        suggested = self.nb.path.with_name(f"{self.nb.path.stem} copy.db")
        path, _ = QFileDialog.getSaveFileName(self, "Save a copy", str(suggested), "Notebooks (*.db)")
        if not path:
            return
        try:  # the dialog has already asked before replacing a file
            dest = self.nb.save_copy(path, overwrite=True)
        except StudioError as exc:
            self.show_message(str(exc), error=True)
            return
        self.show_message(f"saved a copy of {self.nb.path.name} to {dest.resolve()}")

    def open_notebook(self, path: str, create: bool = False) -> bool:
        try:
            nb = Notebook.create(path) if create else Notebook.open(path)
        except StudioError as exc:
            self.show_message(str(exc), error=True)
            return False
        self.generate_bar.cancel()
        self.prompt_editor.stop()
        self.nb.close()
        self.nb = nb
        self.model.undo_stack.clear()
        self.model = RecordsModel(nb, self, undo_stack=self.model.undo_stack)
        self.model.dataChanged.connect(self._on_data_changed)
        self.model.sig_edit_refused.connect(self._on_edit_refused)
        self.model.sig_edit_waiting.connect(self.show_message)
        self.model.sig_edit_saved.connect(self.show_message)
        self.table.setModel(self.model)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_row_changed)
        self.setWindowTitle(f"{nb.get_meta('title') or nb.path.name} — {APP_NAME}")
        self.generate_bar.set_notebook(nb.path, self._prompt_names())
        self.generate_bar.apply_choice(notebook_model(nb))
        self.review.nb = self.compare.nb = self.prompt_editor.nb = self.quality.nb = self.map_view.nb = nb
        self.notebook_view.nb = nb
        self.funnel_counter.set_notebook(nb)
        self.summary_counter.set_notebook(nb)
        self._seen_version = nb.data_version()
        self.notebook_view.reload()
        self._bar_from_cell()
        self.versions_view.nb = nb
        self.versions_view.reload()
        self.report_view.set_notebook(nb)
        self.map_view.refresh()  # never the old notebook's map or legend
        self.quality.refresh()
        self.review.invalidate()
        self.compare.reload()
        remember_recent(path)
        self.refresh()
        self.show_message(f"{'created' if create else 'opened'} {path}")
        return True

    def _prompt_names(self) -> list[str]:
        return prompt_names(self.nb)

    def _on_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import data", str(self.nb.path.parent),
                                              "Tables (*.csv *.tsv *.jsonl *.ndjson *.json *.parquet)")
        if path:
            self.preview_import(path)

    def preview_import(self, path: str) -> None:
        """Show the parsed columns and the record text column first; import only what the person confirms."""
        from widgets.import_preview import ImportPreview

        dialog = ImportPreview(path, self)
        if dialog.exec():
            self.import_data(path, dialog.output_column())

    def import_data(self, path: str, output_column: str | None = None) -> None:
        if self._file_job_running():
            return
        self.job_status.begin(f"importing {Path(path).name}")
        self.runner.start(import_job, self.nb.path, path, output_column=output_column)

    def _file_job_running(self) -> bool:
        """An import or export runs: a second one waits for the person (starting it would stop the first)."""
        if not self.runner.running:
            return False
        self.show_message(f"still {self.job_status.what}: wait for it, or Cancel it first", error=True)
        return True

    def _on_job_cancelled(self) -> None:
        what = self.job_status.what
        left = "nothing was added" if what.startswith("importing") else "no file was written"
        self.show_message(f"cancelled {what}: {left}")

    def _on_export(self) -> None:
        fmt, ok = QInputDialog.getItem(self, "Export", "Format", ["plain", "sft", "dpo"], 0, False)
        if not ok:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export records",
                                              str(self.nb.path.parent / f"{self.nb.path.stem}-{fmt}.jsonl"),
                                              "JSONL (*.jsonl);;CSV (*.csv);;Parquet (*.parquet)")
        if path:
            self.export_records(path, fmt)

    def export_records(self, path: str, fmt: str = "plain") -> None:
        if self._file_job_running():
            return
        self.job_status.begin(f"exporting {Path(path).name}")
        self.runner.start(export_job, self.nb.path, path, fmt=fmt)

    def _on_job_finished(self, result) -> None:
        if isinstance(result, str):
            self.show_message(result)
            self.generate_bar.set_notebook(self.nb.path, self._prompt_names())
            self.refresh()
            self.notebook_changed()

    def warm_up_map(self) -> None:
        """Fill numba's disk cache for UMAP in the background, so the first real map does not compile.

        It runs as a lowest-priority child process through the core scheduler
        (app.map.warmup): only while no job holds the cores, and stopped the moment the person
        starts one, so a generation never waits for it. A window closed before its start-up
        timer fired has nothing left to warm up for.
        """
        if not compute_busy() and not self._closed:
            self.warm_up_runner.start(_warm_up_map)

    def show_message(self, text: str, error: bool = False, logged: bool = False) -> None:
        """One line in the status bar; an error also goes to the log file and keeps its whole text behind Details…
        A message saying where a file was written offers "Open folder"."""
        self.error_details.show_message(text, error=error, logged=logged)
        written = written_path(text) if not error else None
        self.written = written
        self.open_folder_button.setVisible(written is not None)
        if written is not None:
            self.open_folder_button.setToolTip(str(written.parent))

    def _open_written_folder(self) -> None:
        from PySide6.QtCore import QUrl
        from PySide6.QtGui import QDesktopServices

        if self.written is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.written.parent)))

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt name)
        if dropped_files(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt name)
        """A dropped notebook opens (it wins over tables dropped with it); a dropped table is imported as File > Import does."""
        got = dropped_files(event.mimeData())
        if not got:
            return
        event.acceptProposedAction()
        if got.notebooks:
            self.open_notebook(str(got.notebooks[0]))
        else:
            self.import_data(str(got.tables[0]))  # one import at a time: the runner runs one job
        taken = got.notebooks[0] if got.notebooks else got.tables[0]
        if len(got.notebooks) + len(got.tables) > 1:
            self.show_message(f"{len(got.notebooks) + len(got.tables)} files dropped: took {taken.name} "
                              "(drop the others one at a time)")

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        if hasattr(self, "model"):
            self._fit_output()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        if self.close_guard.holds(event):  # it asks; "Quit anyway" closes again
            return
        if self.model.flush_pending(Notebook.BUSY_TIMEOUT_S):  # kept edits: one last, longer wait
            log.warning("closed with %d edits another program's write kept out of %s", self.model.pending_edits,
                        self.nb.path)
        self._closed = True
        self._search_timer.stop()
        self.notebook_view.stop()
        self.generate_bar.cancel()
        self.prompt_editor.stop()
        for runner in self.findChildren(JobRunner):  # every view's job: quality, map, compare, import/export
            runner.cancel()
        with edit_settings() as s:
            s.window_geometry = bytes(self.saveGeometry().toBase64().data()).decode("ascii")
        self.nb.checkpoint()  # the .db alone is the whole notebook from now on (best effort, never waits)
        super().closeEvent(event)


def written_path(message: str) -> Path | None:
    """The file a "wrote … to /full/path" message names, when it exists."""
    _, sep, rest = message.partition(" to /")
    if not sep:
        return None
    candidate = Path("/" + rest.split(" (")[0].strip())
    return candidate if candidate.exists() else None


def _warm_up_map(*, task, worker) -> str:
    from app.map.warmup import warm_up_in_background

    return warm_up_in_background(task)


def _unique_keys(*keys: str | QKeySequence.StandardKey) -> list[QKeySequence]:
    """The given shortcuts and the platform's, each once: two bindings of one key sequence make it
    ambiguous and Qt then fires neither (Linux's standard Redo is Ctrl+Shift+Z itself)."""
    out: list[QKeySequence] = []
    for key in keys:
        for seq in QKeySequence.keyBindings(key) if isinstance(key, QKeySequence.StandardKey) else [QKeySequence(key)]:
            if not seq.isEmpty() and seq not in out:
                out.append(seq)
    return out


def recent_notebooks() -> list[str]:
    """Notebooks opened lately, newest first, that still exist."""
    return load_settings()[0].existing_recent()


def remember_recent(path: str | Path) -> None:
    with edit_settings() as s:
        s.remember_notebook(path)


def _clip(text: str | None, n: int = 240) -> str | None:
    if text is None:
        return None
    return text if len(text) <= n else text[:n] + "…"


def _change_html(old: str | None, new: str | None, context: int = 40) -> str:
    """The changed stretch of an edit with a little context on each side, old struck out, new in green."""
    a, b = old or "", new or ""
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[len(a) - 1 - end] == b[len(b) - 1 - end]:
        end += 1
    lead = ("…" if start > context else "") + a[max(0, start - context):start]
    tail = b[len(b) - end:][:context] + ("…" if end > context else "")
    gone, added = _clip(a[start:len(a) - end]), _clip(b[start:len(b) - end])
    muted = tone_hex("muted")
    return (f"<span style='color:{muted}'>{html.escape(lead)}</span>"
            f"<span style='color:{tone_hex('error')};text-decoration:line-through'>{html.escape(gone or '')}</span>"
            + (" → " if gone and added else "")
            + f"<span style='color:{tone_hex('ok')}'>{html.escape(added or '')}</span>"
            f"<span style='color:{muted}'>{html.escape(tail)}</span>")


def _chain_html(title: str, records: list[dict], muted: str) -> str:
    """A list of linked records (a chain's ancestors or children): each a link that jumps to it."""
    items = []
    for c in records:
        made = " · ".join(html.escape(str(x)) for x in (c.get("derivation"), c.get("prompt_label")) if x)
        text = html.escape(" ".join((c.get("output") or "").split())[:120])
        items.append(f"<li><a href='record:{int(c['id'])}'>#{int(c['id'])}</a> "
                     f"<span style='color:{muted}'>{made}{' · ' if made else ''}{html.escape(str(c['status']))}</span>"
                     f"<br>{text}</li>")
    return f"<h4>{html.escape(title)}</h4><ul>" + "".join(items) + "</ul>"


def render_lineage_html(info: dict, note: str = "") -> str:
    r = info["record"]
    esc = lambda v: html.escape(str(v)) if v is not None else "—"  # noqa: E731
    muted = tone_hex("muted")
    parts = [f"<h3>Record {r['id']} <small>({esc(r['status'])}, {esc(r['origin'])})</small></h3>"]
    if note:
        parts.append(f"<p style='color:{muted}'>{esc(note)}</p>")
    parts.append(f"<p style='white-space:pre-wrap'>{esc(r['output'])}</p>")
    fields = parse_output(r["output"])
    if fields:  # a structured output: its fields, one a line
        parts.append("<table cellspacing=4>" + "".join(
            f"<tr><td style='color:{muted}'>output.{esc(k)}</td><td>{esc(cell_text(v))}</td></tr>"
            for k, v in fields.items()) + "</table>")
    rows = []
    pv = info.get("prompt_version")
    run = info.get("run")
    if pv:
        rows.append(("prompt version", f"{pv.name} v{pv.version} ({pv.hash[:12]})"))
    raw: dict[str, str] = {}  # rows whose value is already HTML
    if run:
        if info.get("run_stopped"):  # unfinished work that can go on: how far it got, in the warning tone
            stopped, resumable = info["run_stopped"]
            raw["run"] = (f"{run.id} <span style='color:{tone_hex('warn')}'>{html.escape(stopped)}"
                          + (f" — <a href='resume:{run.id}'>Resume</a>" if resumable else "") + "</span>")
        rows += [
            ("run", f"{run.id} ({run.status})"),
            ("model", f"{Path(run.model_path).name if run.model_path else run.backend}"),
            ("model sha256", run.model_sha256),
            ("settings", ", ".join(f"{k}={v}" for k, v in sorted(run.settings.items()))),
            ("seed", r["seed"]),
        ]
    if r["completion_tokens"] is not None:
        rows += [("tokens", f"{r['prompt_tokens']} prompt + {r['completion_tokens']} output ({r['finish_reason']})"),
                 ("mean logprob", f"{r['mean_logprob']:.4f}" if r["mean_logprob"] is not None else "—")]
    rows.append(("variables", ", ".join(f"{k}={v}" for k, v in r["variables"].items())))
    if r.get("derivation"):
        rows.append(("made by", r["derivation"]))
    parts.append("<table cellspacing=4>" + "".join(
        f"<tr><td style='color:{muted}'>{esc(k)}</td><td>{raw.get(k) or esc(v)}</td></tr>" for k, v in rows)
        + "</table>")
    if info.get("ancestors"):
        parts.append(_chain_html("Made from (parent first)", info["ancestors"], muted))
    if info.get("children"):
        n = len(info["children"])
        parts.append(_chain_html(f"Made from this ({n}{'+' if n >= MAX_CHAIN else ''})", info["children"], muted))
    if r.get("prompt"):
        parts.append(f"<h4>Prompt</h4><pre style='white-space:pre-wrap'>{esc(r['prompt'])}</pre>")
    if info["history"]:
        items = []
        for e in reversed(info["history"]):
            link = f" <a href='revert:{e.id}'>revert</a>" if e.field in ("output", "status", "variables") else ""
            items.append(
                f"<li><span style='color:{muted}'>{esc(e.created[:19].replace('T', ' '))} {esc(e.author)}</span> "
                f"<b>{esc(e.field)}</b>{link}<br>{_change_html(e.old, e.new)}</li>")
        parts.append("<h4>History</h4><ul>" + "".join(items) + "</ul>")
    return "".join(parts)


def run_gui(notebook: str | None = None, *, sample: bool = False) -> int:
    from app.data.demo import open_sample_notebook

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv)
    app.setApplicationName(APP_NAME)
    app.setOrganizationName("synth-studio")
    app.setFont(QFont(app.font().family(), 10))
    setup_logging()  # from here on, warnings and errors also go to the log file (app.core.logs)
    log_uncaught()
    settings, problems = load_settings()
    from widgets.theme import apply_theme

    apply_theme(app, settings.theme)
    try:
        if notebook:
            nb = Notebook.open(notebook)
        else:
            last = settings.last_notebook
            nb = Notebook.open(last) if (last and not sample and Path(last).exists()) else open_sample_notebook()
    except StudioError as exc:
        log.error("could not open the notebook: %s", exc)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    win = MainWindow(nb)
    win.say_uncaught()
    remember_recent(nb.path)
    if settings.window_geometry:
        win.restoreGeometry(QByteArray.fromBase64(settings.window_geometry.encode("ascii")))
    else:
        win.resize(1400, 860)
    win.show()
    QTimer.singleShot(0, freeze_start_up)  # once the window is built and shown
    if problems:  # e.g. an unreadable settings file: the defaults are in use, and a copy was kept
        win.show_message(problems[0], error=True, logged=True)
    # a new process's first UMAP fit is ~4x slower than a warm one (numba): warm it up a few
    # seconds after start (it compiles on one core)
    QTimer.singleShot(3000, win.warm_up_map)
    rc = app.exec()
    writing = any(r.running and not r.background for r in win.findChildren(JobRunner))
    if QThreadPool.globalInstance().activeThreadCount() and not writing:
        # Only background work that reads is still running (the charts' numbers, the review queue's
        # order on a big notebook); a job that writes was cancelled on close and is left to stop.
        # Waiting for the readers would keep a closed window's process alive for minutes.
        import logging
        import os

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    return rc
