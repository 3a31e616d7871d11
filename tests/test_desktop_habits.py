"""The desktop app's habits: errors with their details, a log file without secrets, closing asks
while work is unfinished, files dropped on the window, and text readable in light and dark."""

from __future__ import annotations

import logging
import re
import threading
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QPalette  # noqa: E402
from PySide6.QtWidgets import QApplication, QLabel, QMessageBox  # noqa: E402

from app.core.logs import log_path, setup_logging  # noqa: E402
from widgets.theme import (  # noqa: E402
    apply_theme,
    contrast_ratio,
    dark_palette,
    is_dark,
    set_tone,
    text_backgrounds,
)

Role = QPalette.ColorRole
HEX = re.compile(r"(?<![-\w])color:\s*(#[0-9a-fA-F]{6})")


def _studio_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if getattr(h, "synth_studio", False)]


@pytest.fixture
def studio_log():
    """The log file's handlers are the process's: take them off again after the test."""
    yield
    for h in _studio_handlers():
        logging.getLogger().removeHandler(h)
        h.close()


@pytest.fixture
def theme(qapp):
    yield lambda name: apply_theme(qapp, name)
    apply_theme(qapp, "system")


@pytest.fixture
def window(qtbot, nb):
    from widgets.main_window import MainWindow

    win = MainWindow(nb)
    qtbot.addWidget(win)
    return win


def _shown(qtbot, win):
    win.show()
    qtbot.waitExposed(win)
    return win


# -- errors and the log file -------------------------------------------------------------------


def test_an_error_shows_its_first_line_and_the_whole_text_behind_details(qtbot, window, tmp_path, studio_log):
    setup_logging()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"topic\ncaf\xe9\n")
    with qtbot.waitSignal(window.runner.sig_errored, timeout=10000) as failed:
        window.import_data(str(bad))
    line = window.statusBar().currentMessage()
    assert line.startswith("error: ") and "not valid UTF-8" in line
    assert not window.error_details.isHidden() and window.error_details.full_text == failed.args[0]

    # a bug's message is a line and a traceback: the line in the bar, all of it behind Details
    full = 'ValueError: boom\n\nTraceback (most recent call last):\n  File "x.py", line 1, in f\nValueError: boom'
    window.show_message(full, error=True)
    assert window.statusBar().currentMessage() == "error: ValueError: boom"
    box = window.error_details.open_details()
    qtbot.addWidget(box)
    assert box.text() == "ValueError: boom" and box.detailedText() == full
    assert str(log_path()) in box.informativeText()
    window.show_message("opened a notebook")
    assert window.error_details.isHidden() and window.statusBar().currentMessage() == "opened a notebook"
    for h in _studio_handlers():
        h.flush()
    logged = log_path().read_text(encoding="utf-8")
    assert logged.count("not valid UTF-8") == 1  # the job's error once, not again when shown
    assert "Traceback (most recent call last)" in logged


def test_warnings_and_errors_go_to_a_rotating_log_file_without_secrets(window, studio_home, studio_log):
    path = setup_logging()
    assert path == log_path() == studio_home / "logs" / "synth-studio.log"
    logging.getLogger("backends.openai_http").warning(
        "retrying https://bob:hunter2@llm.example.com/v1/chat?api_key=sk-abcdef1234567890xyz&stream=1")
    window.show_message('server said 401 to "Authorization: Bearer tok_live_abcdef123456"\n'
                        'request: {"model": "m", "password": "pa55word"}', error=True)
    try:
        raise RuntimeError("connect to http://alice:s3cret@10.0.0.2:8080/v1 failed")
    except RuntimeError:
        logging.getLogger("app.jobs").exception("a job failed")
    logging.getLogger("app.jobs").info("below the file's level")
    for h in _studio_handlers():
        h.flush()
    text = path.read_text(encoding="utf-8")
    for secret in ("hunter2", "sk-abcdef", "tok_live", "pa55word", "s3cret"):
        assert secret not in text
    assert "https://***:***@llm.example.com/v1/chat?api_key=***&stream=1" in text
    assert "Bearer ***" in text and '"password": "***"' in text and "http://***:***@10.0.0.2:8080" in text
    assert "WARNING backends.openai_http" in text and "Traceback" in text and "below the file's level" not in text

    files = [h for h in _studio_handlers() if isinstance(h, RotatingFileHandler)]
    assert len(files) == 1 and files[0].maxBytes > 0 and files[0].backupCount > 0
    setup_logging()  # each entry point may call it: still one file
    assert len([h for h in _studio_handlers() if isinstance(h, RotatingFileHandler)]) == 1


def test_the_log_folder_is_the_platforms_unless_studio_home_moves_it(monkeypatch, tmp_path):
    import platformdirs

    from app.core.paths import log_dir

    monkeypatch.setattr(platformdirs, "user_log_path", lambda app, appauthor=None: tmp_path / "platform" / app)
    monkeypatch.delenv("SYNTH_STUDIO_HOME")
    assert log_dir() == tmp_path / "platform" / "synth-studio" and log_dir().is_dir()
    monkeypatch.setenv("SYNTH_STUDIO_HOME", str(tmp_path / "home"))
    assert log_dir() == tmp_path / "home" / "logs"


def test_the_cli_writes_its_errors_to_the_log_file(tmp_path, capsys, studio_log):
    from app.cli import main

    assert main(["import", str(tmp_path / "missing.db"), str(tmp_path / "t.csv")]) == 2
    assert capsys.readouterr().err.startswith("error: no such notebook")
    for h in _studio_handlers():
        h.flush()
    assert "ERROR app.cli: synth-studio import: no such notebook" in log_path().read_text(encoding="utf-8")


# -- closing -----------------------------------------------------------------------------------


def test_closing_asks_while_a_job_runs_and_quit_anyway_cancels_it(qtbot, window):
    from widgets.close_guard import unfinished_work

    win = _shown(qtbot, window)
    stop, asked_to_stop = threading.Event(), []

    def slow(*, task, worker):
        while not (task.is_interruption_requested() or stop.is_set()):
            time.sleep(0.01)
        asked_to_stop.append(task.is_interruption_requested())

    try:
        win.warm_up_runner.start(lambda *, task, worker: stop.wait(10))
        assert unfinished_work(win) == []  # a background warm-up is nobody's work
        with qtbot.waitSignal(win.quality.runner.sig_started, timeout=5000):
            win.quality.runner.start(slow)
        assert not win.close()
        dialog = win.close_guard.dialog
        assert win.isVisible() and dialog is not None and dialog.isVisible()
        assert "A job is still running" in dialog.informativeText()
        assert [b.text() for b in dialog.buttons()].count("Quit anyway") == 1
        dialog.button(QMessageBox.StandardButton.Cancel).click()  # Cancel: the window stays, the job runs on
        assert win.isVisible() and win.close_guard.dialog is None and win.quality.runner.running

        win.close()
        assert win.close_guard.quit_button is not None
        win.close_guard.quit_button.click()
        assert not win.isVisible()
        qtbot.waitUntil(lambda: not win.quality.runner.running, timeout=5000)
        assert asked_to_stop == [True]
    finally:
        stop.set()


def test_closing_asks_when_the_prompt_has_unsaved_edits(qtbot, nb):
    from widgets.main_window import MainWindow

    nb.add_prompt_version("ticket", "Ticket about {{ topic }}.")
    win = MainWindow(nb)
    qtbot.addWidget(win)
    _shown(qtbot, win)
    ed = win.prompt_editor
    assert ed.editor.toPlainText() == "Ticket about {{ topic }}." and not ed.has_unsaved_changes()
    ed.editor.setPlainText("Ticket about {{ topic }}, urgently.")
    assert ed.has_unsaved_changes()
    win.close()
    dialog = win.close_guard.dialog
    assert dialog is not None and "not saved as a version" in dialog.informativeText()
    dialog.button(QMessageBox.StandardButton.Cancel).click()
    assert win.isVisible() and ed.editor.toPlainText() == "Ticket about {{ topic }}, urgently."
    ed.save()
    assert not ed.has_unsaved_changes() and nb.prompt_version("ticket").version == 2
    win.close()  # nothing unsaved, nothing running: it closes without asking
    assert not win.isVisible() and win.close_guard.dialog is None


# -- dropping files -----------------------------------------------------------------------------


def _drag(win, *paths: Path) -> tuple[bool, QMimeData]:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    enter.ignore()
    QApplication.sendEvent(win, enter)
    return enter.isAccepted(), mime


def _drop(win, mime: QMimeData) -> None:
    drop = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(win, drop)


def test_dropping_a_table_imports_it_and_a_notebook_opens_it(qtbot, window, nb, tmp_path, topics_csv):
    from app.store.notebook import Notebook

    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert _drag(window, notes)[0] is False  # not something the window takes
    accepted, mime = _drag(window, topics_csv)
    assert accepted
    with qtbot.waitSignal(window.runner.sig_finished, timeout=10000):
        _drop(window, mime)
    assert nb.count_records("input") == 20  # the same import File > Import runs
    assert "imported 20 rows" in window.statusBar().currentMessage() and "20 input rows" in window.summary_label.text()

    Notebook.create(tmp_path / "other.db").close()
    accepted, mime = _drag(window, tmp_path / "other.db")
    assert accepted
    _drop(window, mime)
    assert window.nb.path == (tmp_path / "other.db") and "opened" in window.statusBar().currentMessage()


# -- light and dark ------------------------------------------------------------------------------


def _readable_on(colour: QColor, backgrounds: list[QColor], what: str) -> None:
    worst = min(contrast_ratio(colour, b) for b in backgrounds)
    assert worst >= 4.5, f"{what}: {colour.name()} has contrast {worst:.2f} on {[b.name() for b in backgrounds]}"


@pytest.mark.parametrize("name", ["light", "dark"])
def test_the_window_reads_well_in_light_and_dark(qtbot, qapp, tmp_path, theme, name):
    """Renders the sample window in each palette and checks WCAG contrast (>= 4.5:1) for what it draws."""
    import matplotlib.colors
    from matplotlib.text import Text

    from widgets.theme_preview import render

    shot = tmp_path / f"{name}.png"
    win = render(name, shot, folder=tmp_path)
    qtbot.addWidget(win)
    assert shot.stat().st_size > 20_000
    pal = qapp.palette()
    assert is_dark(pal) == (name == "dark")
    for fg, bg in ((Role.WindowText, Role.Window), (Role.Text, Role.Base), (Role.Text, Role.AlternateBase),
                   (Role.ButtonText, Role.Button), (Role.HighlightedText, Role.Highlight),
                   (Role.ToolTipText, Role.ToolTipBase), (Role.Link, Role.Base)):
        _readable_on(pal.color(fg), [pal.color(bg)], f"palette {fg.name} on {bg.name}")
    backgrounds = text_backgrounds(pal)

    # the records table's coloured cells (status, a hand edit) on both row colours
    model = win.model
    coloured = {model.data(model.index(r, c)): model.data(model.index(r, c), Qt.ItemDataRole.ForegroundRole)
                for r in range(model.rowCount()) for c in range(model.columnCount())
                if model.data(model.index(r, c), Qt.ItemDataRole.ForegroundRole) is not None}
    assert {"accepted", "rejected", "flagged", "human-edited"} <= set(coloured)
    for text, colour in coloured.items():
        _readable_on(colour, [pal.color(Role.Base), pal.color(Role.AlternateBase)], f"table text {text!r}")

    # every label styled with a tone (hints, status lines, cell outputs), and the status bar's error line
    win.show_message("could not import broken.csv\nline 3 is not valid UTF-8", error=True)
    styled = [w for w in qapp.allWidgets() if isinstance(w.property("studioStyle"), str)]
    assert win.statusBar() in styled and len(styled) > 10
    for w in styled:
        for colour in HEX.findall(w.styleSheet()):
            _readable_on(QColor(colour), backgrounds, f"{type(w).__name__} {w.styleSheet()!r}")

    # rich text: the lineage panel (an edit's history, old struck out and new), the review card, the prompt's variables
    win.prompt_editor.update_preview()
    win.tabs.setCurrentWidget(win.review)  # the queue is ordered when shown
    win.tabs.setCurrentWidget(win.records_page)  # the table's selection shows its record in the lineage panel
    html = {"lineage": win.detail.toHtml(), "review header": win.review.header.text(),
            "review facts": win.review.facts.text(), "review questions": win.review.questions.text(),
            "prompt variables": win.prompt_editor.variables.text()}
    assert HEX.findall(html["lineage"]) and HEX.findall(html["review header"])
    for where, text in html.items():
        for colour in HEX.findall(text):
            _readable_on(QColor(colour), backgrounds, where)

    # the charts take the window's background and text colours
    from widgets.quality_view import wait_for_summary

    win.tabs.setCurrentWidget(win.quality)  # a chart draws when it is shown
    assert wait_for_summary(win.quality)
    figure = win.quality.figure
    face = QColor(matplotlib.colors.to_hex(figure.get_facecolor()))
    assert face == pal.color(Role.Window)
    texts = [t for t in figure.findobj(Text) if t.get_text().strip() and t.get_visible()]
    assert any("Funnel" in t.get_text() for t in texts)
    for t in texts:
        _readable_on(QColor(matplotlib.colors.to_hex(t.get_color())), [face], f"chart text {t.get_text()!r}")


def test_styled_text_follows_a_palette_change_made_anywhere(qtbot, qapp, theme):
    label = QLabel("failed")
    qtbot.addWidget(label)
    set_tone(label, "error")
    theme("light")
    on_light = label.styleSheet()
    qapp.setPalette(dark_palette())  # another dialog, or the desktop turning dark
    qtbot.waitUntil(lambda: label.styleSheet() != on_light, timeout=2000)
    colour = QColor(HEX.findall(label.styleSheet())[0])
    _readable_on(colour, text_backgrounds(qapp.palette()), "error tone after the switch")


def test_a_machine_without_qts_system_libraries_gets_the_packages_to_install(monkeypatch, capsys):
    """Qt's xcb plugin needs libxcb-cursor0 and friends, which PySide6 does not bring: the launcher
    names the packages instead of letting Qt abort."""
    import ctypes.util

    from widgets import launcher

    monkeypatch.setattr(launcher.sys, "platform", "linux")
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setattr(ctypes.util, "find_library",
                        lambda name: None if name in ("xcb-cursor", "xcb-xkb") else f"lib{name}.so")
    assert launcher.main(["gui"]) == 2
    err = capsys.readouterr().err
    assert "sudo apt install libxcb-cursor0 libxcb-xkb1" in err
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert launcher.missing_qt_libraries() == []
