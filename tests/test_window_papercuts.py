"""The window a person can trust: redo by keyboard, multi-line outputs, status typos, stopped runs."""

import pytest

pytest.importorskip("PySide6")

from app.data.importer import import_file  # noqa: E402
from app.generate.runs import create_run, execute_run, prepare_run  # noqa: E402
from app.store.notebook import RECORD_STATUSES  # noqa: E402


@pytest.fixture
def filled(nb, topics_csv, fake):
    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Ticket about {{ topic }}.")
    execute_run(nb, create_run(nb, prepare_run(nb, "ticket", samples=2, limit_rows=5), fake.info), fake)
    return nb


@pytest.fixture
def win(qtbot, filled):
    from widgets.main_window import MainWindow

    w = MainWindow(filled)
    qtbot.addWidget(w)
    return w


def _column(win, name: str) -> int:
    col = win.model.column_of(name)
    assert col >= 0
    return col


def _show_active(qtbot, win) -> None:
    """Shown, active and on the Records tab: window shortcuts only fire in the active window."""
    from PySide6.QtWidgets import QApplication

    win.show()
    qtbot.waitExposed(win)
    win.tabs.setCurrentWidget(win.records_page)
    win.windowHandle().requestActivate()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win, timeout=5000)


def test_redo_keys_are_each_bound_once(qtbot, win):
    from PySide6.QtGui import QAction, QKeySequence

    from widgets.main_window import _unique_keys

    keys = [k.toString() for k in _unique_keys("Ctrl+Shift+Z", "Ctrl+Y", QKeySequence.StandardKey.Redo)]
    assert keys[:2] == ["Ctrl+Shift+Z", "Ctrl+Y"] and len(keys) == len(set(keys))
    bound = [k.toString() for a in win.findChildren(QAction) for k in a.shortcuts()]
    for key in ("Ctrl+Z", "Ctrl+Shift+Z", "Ctrl+Y"):
        assert bound.count(key) == 1, key  # a key bound twice is ambiguous: Qt fires neither binding


def test_undo_and_redo_fire_from_the_keyboard(qtbot, win, filled):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QKeySequence

    _show_active(qtbot, win)
    win.table.setFocus()
    rid = win.model.record_at(1)["id"]
    original = filled.record(rid)["output"]
    assert win.model.setData(win.model.index(1, _column(win, "output")), "Edited by hand.")
    assert filled.record(rid)["output"] == "Edited by hand."
    ctrl = Qt.KeyboardModifier.ControlModifier
    qtbot.keyClick(win.table, Qt.Key.Key_Z, ctrl)
    assert filled.record(rid)["output"] == original
    qtbot.keySequence(win.table, QKeySequence("Ctrl+Shift+Z"))
    assert filled.record(rid)["output"] == "Edited by hand."
    qtbot.keyClick(win.table, Qt.Key.Key_Z, ctrl)
    assert filled.record(rid)["output"] == original
    qtbot.keyClick(win.table, Qt.Key.Key_Y, ctrl)
    assert filled.record(rid)["output"] == "Edited by hand."


def test_a_multi_line_output_round_trips_through_the_table_editor(qtbot, win, filled):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QPlainTextEdit, QStyleOptionViewItem

    index = win.model.index(2, _column(win, "output"))
    rid = win.model.record_at(2)["id"]
    delegate = win.table.itemDelegateForIndex(index)
    editor = delegate.createEditor(win.table.viewport(), QStyleOptionViewItem(), index)
    assert isinstance(editor, QPlainTextEdit)
    delegate.setEditorData(editor, index)
    assert editor.toPlainText() == filled.record(rid)["output"]
    text = "line one\nline two\n\n  indented\u00a0line\t"
    editor.setPlainText(text)
    editor.document().setModified(True)  # as typing does
    delegate.setModelData(editor, win.model, index)
    assert filled.record(rid)["output"] == text
    assert win.model.data(index, Qt.ItemDataRole.EditRole) == text
    delegate.setEditorData(editor, index)  # reopened and closed untouched: nothing is written
    edits = len(filled.history(rid))
    delegate.setModelData(editor, win.model, index)
    assert filled.record(rid)["output"] == text and len(filled.history(rid)) == edits


def test_ctrl_enter_commits_the_output_editor_and_escape_cancels(qtbot, win, filled):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QTextCursor
    from PySide6.QtWidgets import QPlainTextEdit

    _show_active(qtbot, win)
    index = win.model.index(0, _column(win, "output"))
    rid = win.model.record_at(0)["id"]
    original = filled.record(rid)["output"]
    win.table.setCurrentIndex(index)

    def open_editor() -> QPlainTextEdit:
        qtbot.waitUntil(lambda: not win.table.viewport().findChildren(QPlainTextEdit))  # the last one is gone
        win.table.edit(index)
        editor = win.table.viewport().findChild(QPlainTextEdit)
        assert isinstance(editor, QPlainTextEdit)
        assert editor.textCursor().atEnd()  # typing goes on from the end of the text
        editor.setPlainText("first")
        editor.moveCursor(QTextCursor.MoveOperation.End)
        return editor

    editor = open_editor()
    qtbot.keyClick(editor, Qt.Key.Key_Escape)
    assert filled.record(rid)["output"] == original  # Esc: nothing kept
    editor = open_editor()
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # Enter is a line break, not the end of the edit
    qtbot.keyClicks(editor, "second")
    assert filled.record(rid)["output"] == original and editor.isVisible()
    qtbot.keyClick(editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert filled.record(rid)["output"] == "first\nsecond"


def test_a_status_typo_is_refused_with_a_message_naming_the_valid_statuses(qtbot, win, filled):
    index = win.model.index(0, _column(win, "status"))
    rid = win.model.record_at(0)["id"]
    before = filled.record(rid)["status"]
    steps = win.model.undo_stack.count()
    messages = []
    win.model.sig_edit_refused.connect(messages.append)
    assert win.model.setData(index, "acepted") is False
    assert filled.record(rid)["status"] == before
    assert win.model.undo_stack.count() == steps  # no empty undo step either
    assert messages and all(s in messages[0] for s in RECORD_STATUSES)
    shown = win.statusBar().currentMessage()
    assert "acepted" in shown and all(s in shown for s in RECORD_STATUSES)


def test_the_status_editor_offers_exactly_the_valid_statuses(qtbot, win, filled):
    from PySide6.QtWidgets import QComboBox, QStyleOptionViewItem

    index = win.model.index(0, _column(win, "status"))
    rid = win.model.record_at(0)["id"]
    delegate = win.table.itemDelegateForIndex(index)
    combo = delegate.createEditor(win.table.viewport(), QStyleOptionViewItem(), index)
    assert isinstance(combo, QComboBox)
    assert [combo.itemText(i) for i in range(combo.count())] == list(RECORD_STATUSES)
    delegate.setEditorData(combo, index)
    assert combo.currentText() == filled.record(rid)["status"]
    combo.setCurrentText("flagged")
    delegate.setModelData(combo, win.model, index)
    assert filled.record(rid)["status"] == "flagged"


def test_a_refused_edit_from_elsewhere_leaves_no_undo_step_and_no_traceback(qtbot, filled, capfd):
    from PySide6.QtGui import QUndoStack

    from widgets.edit_commands import EditRecordCommand

    stack = QUndoStack()
    rid = filled.records()[0]["id"]
    errors = []
    stack.push(EditRecordCommand(filled, rid, "variables", "{not json", lambda _rid: None, on_error=errors.append))
    assert stack.count() == 0 and errors and "JSON" in errors[0]
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("fault", ["read-only", "disk full"])
def test_an_edit_the_disk_refuses_is_said_in_one_line_and_never_reported_done(qtbot, win, filled, fault):
    """A read-only notebook (SQLite's query_only, as a file one may not write) or a full disk (the
    file may not grow) refuses the edit: the window says why in one line, the record keeps its
    text, and no undo step claims the edit was made."""
    index = win.model.index(0, _column(win, "output"))
    rid = win.model.record_at(0)["id"]
    before = filled.record(rid)["output"]
    steps = win.model.undo_stack.count()
    messages = []
    win.model.sig_edit_refused.connect(messages.append)
    if fault == "read-only":
        filled.conn.execute("PRAGMA query_only = 1")
    else:
        pages = filled.conn.execute("PRAGMA page_count").fetchone()[0]
        filled.conn.execute(f"PRAGMA max_page_count = {pages}")
    try:
        assert win.model.setData(index, "a new text " * 2000) is False
    finally:
        filled.conn.execute("PRAGMA query_only = 0")
        filled.conn.execute("PRAGMA max_page_count = 1073741823")
    expected = "the notebook is read-only" if fault == "read-only" else "the disk is full"
    assert len(messages) == 1 and expected in messages[0] and str(filled.path) in messages[0]
    assert "Traceback" not in messages[0] and "\n" not in messages[0]
    assert expected in win.statusBar().currentMessage()
    assert filled.record(rid)["output"] == before
    assert win.model.undo_stack.count() == steps
    assert win.model.setData(index, "written once the disk takes it") is True  # the notebook still works
    assert filled.record(rid)["output"] == "written once the disk takes it"


def test_an_edit_while_another_program_writes_is_kept_and_saved_when_it_is_free(qtbot, win, filled):
    """Another program holds the write lock (a big import, a sqlite3 shell): the edit waits half a
    second, not ten, then stays in its cell, the window says it is kept, closing would ask, and it
    is written (undoable) as soon as the lock is free. Never reported as saved before it is."""
    import sqlite3
    import time

    from widgets.close_guard import unfinished_work

    win.model._retry.setInterval(50)
    index = win.model.index(0, _column(win, "output"))
    rid = win.model.record_at(0)["id"]
    before = filled.record(rid)["output"]
    steps = win.model.undo_stack.count()
    other = sqlite3.connect(filled.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        t = time.perf_counter()
        assert win.model.setData(index, "typed while another program writes") is True
        assert time.perf_counter() - t < 3  # the UI thread is not held for the 10 s busy timeout
        assert filled.record(rid)["output"] == before  # not written...
        assert win.model.data(index) == "typed while another program writes"  # ...but kept, in its cell
        assert win.model.data(index, __import__("PySide6.QtCore").QtCore.Qt.ItemDataRole.FontRole).italic()
        assert win.model.pending_edits == 1 and win.model.undo_stack.count() == steps
        shown = win.statusBar().currentMessage()
        assert "busy" in shown and f"your edit of record {rid} is kept" in shown and "saved" not in shown.split("kept")[0]
        assert any("wait for another program" in r or "waits for another program" in r for r in unfinished_work(win))
        qtbot.wait(300)  # retries meanwhile find it still busy
        assert win.model.pending_edits == 1 and filled.record(rid)["output"] == before
    finally:
        other.execute("COMMIT")
        other.close()
    qtbot.waitUntil(lambda: win.model.pending_edits == 0, timeout=5000)
    assert filled.record(rid)["output"] == "typed while another program writes"
    assert f"saved your edit of record {rid}" in win.statusBar().currentMessage()
    assert win.model.undo_stack.count() == steps + 1
    win.model.undo_stack.undo()
    assert filled.record(rid)["output"] == before


def test_an_error_no_slot_caught_reaches_the_status_bar(qtbot, win, monkeypatch):
    import sys

    from app.core.errors import NotebookError

    seen = []
    monkeypatch.setattr(sys, "excepthook", lambda *a: seen.append(a[0]))
    hook = win.say_uncaught()
    hook(NotebookError, NotebookError("cannot write nb.db: the disk is full"), None)
    assert win.statusBar().currentMessage() == "error: cannot write nb.db: the disk is full"
    assert seen == []  # a StudioError is the person's to fix, not a bug with a traceback
    hook(KeyError, KeyError("x"), None)
    assert "unexpected error: KeyError" in win.statusBar().currentMessage()
    assert seen == [KeyError]  # the earlier hook (the log file) still gets a bug


@pytest.fixture
def stopped(qtbot, win, monkeypatch):
    """A generation cancelled from the bar after its first sample (the fake backend, slowed down)."""
    monkeypatch.setenv("SYNTH_STUDIO_FAKE_DELAY", "0.01")
    bar = win.generate_bar
    bar.backend = "fake"
    bar.prompt.setCurrentText("ticket")
    bar.samples.setValue(5)
    bar.rows.setValue(0)  # all 20 rows: 100 samples, far more than can finish
    with qtbot.waitSignal(bar.sig_run_finished, timeout=30000) as blocker:
        bar.start_generation()
        qtbot.waitSignal(bar.sig_record_added, timeout=10000).wait()
        bar.cancel()
    run = blocker.args[0]
    assert run.status == "cancelled"
    return run


def test_a_stopped_run_reads_stopped_in_the_warning_tone_and_resumes(qtbot, win, filled, stopped, monkeypatch):
    from PySide6.QtCore import Qt

    from app.store.queries import run_record_count
    from widgets.theme import tone, tone_hex

    bar, run = win.generate_bar, stopped
    made = run_record_count(filled, run.id)
    assert 0 < made < 100
    text = bar.status.text()
    assert f"stopped ({made} of 100 made)" in text and "Resume" in text
    assert "complete" not in text and "done" not in text
    assert tone_hex("warn") in bar.status.styleSheet() and tone_hex("ok") not in bar.status.styleSheet()
    assert "stopped" in bar.progress.format() and tone_hex("warn") in bar.progress.styleSheet()
    assert bar.resume_button.isVisibleTo(bar)

    i = win.run_filter.findData(run.id)  # the run menu follows without a reload
    assert f"stopped ({made} of 100 made)" in win.run_filter.itemText(i)
    assert win.run_filter.itemData(i, Qt.ItemDataRole.ForegroundRole) == tone("warn")
    row = next(r for r in range(win.model.rowCount()) if win.model.record_at(r)["run_id"] == run.id)
    win.table.selectRow(row)
    panel = win.detail.toHtml()
    assert f"stopped ({made} of 100 made)" in win.detail.toPlainText() and "Resume" in win.detail.toPlainText()
    assert "completed" not in win.detail.toPlainText() and f"resume:{run.id}" in panel

    monkeypatch.setenv("SYNTH_STUDIO_FAKE_DELAY", "0")  # the rest at full speed
    with qtbot.waitSignal(bar.sig_run_finished, timeout=60000) as blocker:
        bar.resume_button.click()
    assert blocker.args[0].id == run.id and blocker.args[0].status == "completed"
    assert run_record_count(filled, run.id) == 100
    assert not bar.resume_button.isVisibleTo(bar) and tone_hex("warn") not in bar.status.styleSheet()
    assert "complete" in bar.status.text()
    i = win.run_filter.findData(run.id)
    assert "completed" in win.run_filter.itemText(i) and "stopped" not in win.run_filter.itemText(i)
    assert "stopped" not in win.detail.toPlainText()


def test_the_side_panel_resumes_a_stopped_run(qtbot, win, filled, stopped, monkeypatch):
    from PySide6.QtCore import QUrl

    from app.store.queries import run_record_count

    monkeypatch.setenv("SYNTH_STUDIO_FAKE_DELAY", "0")
    win.go_to_record(next(r["id"] for r in filled.records() if r["run_id"] == stopped.id))
    assert f"resume:{stopped.id}" in win.detail.toHtml()
    with qtbot.waitSignal(win.generate_bar.sig_run_finished, timeout=60000) as blocker:
        win.detail.anchorClicked.emit(QUrl(f"resume:{stopped.id}"))
    assert blocker.args[0].id == stopped.id and blocker.args[0].status == "completed"
    assert run_record_count(filled, stopped.id) == 100
