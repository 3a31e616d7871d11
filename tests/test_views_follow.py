"""Views that follow the notebook: after generate, import, edit, undo and a new notebook, every
view's summary matches the store (the Records summary and table, the Notebook tab's cells, the
Map banner, the Quality funnel), and Help lists the keys the window really binds."""

from __future__ import annotations

import re

import pytest

from app.core.tasks import TaskState
from app.jobs import generate_job, import_job
from app.quality.funnel import funnel
from app.store.notebook import Notebook


@pytest.fixture
def win(qtbot, nb, topics_csv):
    from widgets.main_window import MainWindow

    nb.add_prompt_version("t", "A ticket about {{ topic }}.")
    w = MainWindow(nb)
    w.generate_bar.backend = "fake"
    qtbot.addWidget(w)
    w.show()
    return w


def _summary_numbers(win) -> tuple[int, int, int]:
    m = re.search(r"(\d+) input rows · (\d+) samples .* (\d+) runs?\b", win.summary_label.text())
    assert m, win.summary_label.text()
    return int(m[1]), int(m[2]), int(m[3])


def _check(win, nb: Notebook, qtbot) -> None:
    """Every view's summary against the store (once the coalesced "notebook changed" has reached them)."""
    qtbot.waitUntil(lambda: not win._changed_timer.isActive(), timeout=3000)
    assert _summary_numbers(win) == (nb.count_records("input"), nb.count_records("sample"), len(nb.runs()))
    assert win.model.total == nb.count_records("sample") + nb.count_records("input") or win.model.total == \
        nb.count_records("sample")
    review = win.notebook_view.cell_widget("review").output.text()
    n = nb.count_records("sample")
    assert (review.startswith(f"0 of {n} samples reviewed") if n else "nothing to review" in review), review
    stages = funnel(nb)
    assert stages[0]["kept"] == n if stages else n == 0


def test_every_view_follows_generate_import_edit_undo_and_a_new_notebook(qtbot, win, nb, topics_csv, tmp_path):
    _check(win, nb, qtbot)
    import_job(nb.path, topics_csv, task=TaskState())  # as File > Import runs it
    win.refresh()
    _check(win, nb, qtbot)
    with qtbot.waitSignal(win.generate_bar.runner.sig_finished, timeout=20000):
        win.generate_bar.prompt.setCurrentText("t")
        win.generate_bar.rows.setValue(3)
        win.generate_bar.samples.setValue(1)
        win.generate_bar.run_button.click()
    qtbot.waitUntil(lambda: _summary_numbers(win)[1] == 3, timeout=5000)
    _check(win, nb, qtbot)
    rid = nb.records()[0]["id"]
    win.model.edit(rid, "status", "accepted")
    qtbot.waitUntil(lambda: "accepted 1" in win.summary_label.text(), timeout=3000)
    assert win.notebook_view.cell_widget("review").output.text().startswith("1 of 3 samples reviewed")
    win.undo_action.trigger()
    qtbot.waitUntil(lambda: "accepted" not in win.summary_label.text(), timeout=3000)
    assert nb.record(rid)["status"] == "new"
    _check(win, nb, qtbot)
    generate_job(nb.path, "t", limit_rows=2, seed=9, backend="fake", task=TaskState())  # another process wrote
    qtbot.waitUntil(lambda: _summary_numbers(win)[1] == 5, timeout=5000)  # noticed without a Reload
    assert win.model.total == 5
    _check(win, nb, qtbot)
    assert win.open_notebook(str(tmp_path / "fresh.db"), create=True)
    fresh = win.nb
    _check(win, fresh, qtbot)
    assert win.map_view.map is None and not win.map_view.stale_banner.isVisible()
    assert win.model.total == 0


def test_help_lists_the_keys_the_window_binds(win):
    rows = dict(win.shortcut_rows())
    assert any("Redo" in a for a in rows) and "Ctrl+Y" in next(k for a, k in rows.items() if "Redo" in a)
    assert any("New from a starter" in a for a in rows)
    win.show_shortcuts()
    assert "Ctrl+Shift+Z" in win.shortcuts_box.text()


def test_an_export_message_gives_the_full_path_and_open_folder(win, tmp_path):
    from app.jobs import export_job

    out = tmp_path / "set.jsonl"
    message = export_job(win.nb.path, out, task=TaskState())
    assert str(out.resolve()) in message
    win.show_message(message)
    assert win.open_folder_button.isVisible() and win.written == out.resolve()
    win.show_message("something else")
    assert not win.open_folder_button.isVisible()


def test_the_generate_bar_and_the_generate_cell_are_one_set_of_settings(qtbot, win, nb):
    """The bar is a shortcut to the notebook's Generate cell: a change in either shows in the other,
    and a run from the bar uses the cell's seed and temperature (which the bar has no box for)."""
    from app.cells import list_cells

    gen_cell = lambda: next(c for c in list_cells(nb) if c.kind == "generate")  # noqa: E731
    bar, cw = win.generate_bar, win.notebook_view.cell_widget("generate")
    bar.samples.setValue(4)
    assert gen_cell().settings["samples"] == 4 and cw.editors["samples"].value() == 4
    cw.editors["rows"].setValue(9)  # as typed in the cell
    cw.editors["seed"].setValue(7)
    cw.editors["temperature"].setValue(0.3)
    assert bar.rows.value() == 9 and bar.seed == 7 and bar.temperature == pytest.approx(0.3)
    assert gen_cell().settings["rows"] == 9


def test_preview_against_row_follows_an_import_and_the_prompt_cell_has_one_selector(qtbot, win, nb, topics_csv):
    import_job(nb.path, topics_csv, task=TaskState())
    win.refresh()
    qtbot.waitUntil(lambda: not win._changed_timer.isActive(), timeout=3000)
    assert win.prompt_editor.row.maximum() == 20  # not capped at 1 after the import
    cw = win.notebook_view.cell_widget("prompt")
    assert cw.editor is not None and cw.editor.row.maximum() == 20
    assert not cw.editors["prompt"].isVisibleTo(cw) and not cw.editors["row"].isVisibleTo(cw)
    cw.editor.row.setValue(7)
    from app.cells import list_cells

    assert next(c for c in list_cells(nb) if c.kind == "prompt").settings["row"] == 7
