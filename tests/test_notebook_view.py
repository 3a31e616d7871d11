"""The Notebook tab (offscreen): cells top to bottom, run one / run all below / stop,
settings and collapsed state saved in the notebook, errors shown in the cell."""

import pytest

from app.cells import list_cells
from widgets.chart import charts_drawn
from widgets.notebook_view import NotebookView


@pytest.fixture
def view(qtbot, nb):
    v = NotebookView(nb)
    v.backend = "fake"
    qtbot.addWidget(v)
    v.resize(1100, 900)
    v.show()
    return v


def _wait_idle(qtbot, view, timeout=20000):
    qtbot.waitUntil(lambda: not view.runner.running and not view.queue, timeout=timeout)


def test_cells_from_data_to_export_run_all_below(qtbot, view, nb, topics_csv, tmp_path):
    assert [w.cell.kind for w in view.cells] == ["data", "prompt", "generate", "quality", "map", "review", "export"]
    data = view.cell_widget("data")
    data.editors["file"].line.setText(str(topics_csv))
    view._run([data])
    _wait_idle(qtbot, view)
    assert "imported 20 rows" in data.output.text()
    nb.add_prompt_version("ticket", "Write a ticket about {{ topic }}.")
    view.reload()  # the prompt menus now list it
    gen = view.cell_widget("generate")
    gen.editors["rows"].setValue(3)
    gen.editors["samples"].setValue(2)
    view.cell_widget("export").editors["file"].line.setText(str(tmp_path / "out.jsonl"))
    view._move(view.cell_widget("review"), -10)  # reorder: review to the top
    assert view.cells[0].cell.kind == "review"
    view.run_from(view.cell_widget("prompt"))  # prompt, generate, quality, map (real embedder), export
    _wait_idle(qtbot, view, timeout=120000)
    assert "ticket: renders" in view.cell_widget("prompt").output.text()
    assert view.cell_widget("generate").output.text().startswith("run 1 completed: 6 samples")
    live = view.cell_widget("generate").live.toPlainText().splitlines()
    assert len(live) == 6 and all(line.startswith("#") for line in live)  # records appeared as they finished
    assert "funnel: generated 6" in view.cell_widget("quality").output.text()
    q = view.cell_widget("quality")
    qtbot.waitUntil(lambda: charts_drawn(view), timeout=20000)  # drawn off the UI thread
    assert q.chart.isVisible() and q.chart_figure.axes[0].get_title().startswith("Funnel: ")  # drawn inline
    assert len(q.chart_figure.axes[0].patches) >= 4  # kept + dropped bars for each stage
    assert "wrote 6 records" in view.cell_widget("export").output.text()
    # settings and last outputs live in the notebook
    stored = {c.kind: c for c in list_cells(nb)}
    assert stored["generate"].settings["rows"] == 3 and stored["export"].last_output.startswith("wrote 6")
    mc = view.cell_widget("map")
    assert "6 samples" in mc.output.text() and "PCA" in mc.output.text()
    assert len(mc.map_view.scatter) == 6  # the map view itself, in the cell
    qtbot.waitUntil(lambda: charts_drawn(view), timeout=20000)
    sizes_ax = mc.map_view.sizes_figure.axes[0]
    assert sum(p.get_height() for p in sizes_ax.patches) == 6  # the cluster-size chart counts every sample
    mc.map_view.select_indices([0, 1])
    assert mc.map_view.sel_label.text() == "2 selected"
    assert [c.kind for c in list_cells(nb)][0] == "review"
    rv = view.cell_widget("review").review  # the review queue itself, in the cell
    rv.reload()
    assert rv.ids and "6" in rv.header.text()
    assert "model:" in view.cell_widget("generate").model_label.text()


def test_collapse_is_saved_and_a_failing_cell_stops_the_run(qtbot, view, nb):
    gen = view.cell_widget("generate")
    gen.toggle.click()
    assert not gen.body.isVisible()
    assert next(c for c in list_cells(nb) if c.kind == "generate").collapsed
    # no data, no prompt: Data fails with a clear message and nothing below runs
    view.run_from(view.cell_widget("data"))
    _wait_idle(qtbot, view)
    assert "choose a file to import" in view.cell_widget("data").output.text()
    assert view.cell_widget("prompt").output.text() == ""


def test_stop_cancels_a_running_generation(qtbot, view, nb, topics_csv, monkeypatch):
    from app.data.importer import import_file

    monkeypatch.setenv("SYNTH_STUDIO_FAKE_DELAY", "0.2")
    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Write a ticket about {{ topic }}.")
    view.reload()
    gen = view.cell_widget("generate")
    gen.editors["rows"].setValue(20)
    view._run([gen])
    qtbot.waitUntil(lambda: nb.conn.execute("SELECT COUNT(*) FROM records WHERE role='sample'").fetchone()[0] >= 2,
                    timeout=20000)
    qtbot.waitUntil(lambda: "writing" in gen.writing.text(), timeout=5000)  # tokens stream into the cell
    view.stop()
    _wait_idle(qtbot, view)
    assert len(gen.live.toPlainText().splitlines()) >= 2
    made = nb.conn.execute("SELECT COUNT(*) FROM records WHERE role='sample'").fetchone()[0]
    assert 2 <= made < 40
    assert "cancelled" in gen.output.text() or "stopped" in gen.output.text()


def test_data_cell_pastes_spreadsheet_rows_and_shows_them(qtbot, view, nb):
    data = view.cell_widget("data")
    view.paste_rows(data, "topic\tcustomer\nrefund\tAna\nlogin\tBo\n")
    assert "pasted 2 rows: 2 input rows" in data.output.text()
    assert data.table.rowCount() == 2 and data.table.item(1, 0).text() == "login"
    assert [v for _, v in nb.input_rows()] == [{"topic": "refund", "customer": "Ana"},
                                               {"topic": "login", "customer": "Bo"}]
    view.paste_rows(data, "   ")  # an empty clipboard: a clear message, nothing imported
    assert "no text" in data.output.text() and len(nb.input_rows()) == 2
    from PySide6.QtWidgets import QApplication

    QApplication.clipboard().setText("topic,customer\nbilling,Cy\n")  # CSV from the real clipboard
    data.paste_button.click()
    assert len(nb.input_rows()) == 3 and "3 input rows now" in data.paste_button.text()


def test_prompt_cell_holds_the_template_editor(qtbot, view, nb, topics_csv):
    from app.data.importer import import_file

    import_file(nb, topics_csv)
    ed = view.cell_widget("prompt").editor
    ed.name.setCurrentText("faq")
    ed.editor.setPlainText("Write a question about {{ topic }}.")
    ed.save()
    assert nb.prompt_version("faq").template == "Write a question about {{ topic }}."
    combo = view.cell_widget("generate").editors["prompt"]
    assert combo.findText("faq") >= 0  # offered to the Generate cell at once
    ed.editor.setPlainText("Write a question about {{ topic }")  # a template error: not saved, says why
    ed.save()
    assert "not saved" in ed.message.text()
    assert nb.prompt_version("faq").template == "Write a question about {{ topic }}."


def test_input_rows_are_edited_in_the_data_cell_with_history_and_undo(qtbot, view, nb):
    data = view.cell_widget("data")
    view.paste_rows(data, "topic\tcustomer\nrefund\tAna\nlogin\tBo\n")
    rid = nb.input_rows()[0][0]
    data.table.item(0, 0).setText("refunds twice")  # what a double-click edit ends with
    assert nb.input_rows()[0][1] == {"topic": "refunds twice", "customer": "Ana"}
    assert [e.field for e in nb.history(rid)][0] == "variables"  # (then origin -> human-edited)
    view.undo_stack.undo()
    assert nb.input_rows()[0][1] == {"topic": "refund", "customer": "Ana"}
    assert data.table.item(0, 0).text() == "refund"  # the cell shows the undone value


def test_invalid_actions_show_a_clear_message_in_the_cell_and_change_nothing(qtbot, view, nb, tmp_path, topics_csv):
    from app.data.importer import import_file

    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"topic\ncaf\xe9\n")
    data = view.cell_widget("data")
    data.editors["file"].line.setText(str(bad))
    view._run([data])
    _wait_idle(qtbot, view)
    assert data.output.text().startswith("⚠") and "UTF-8" in data.output.text()
    assert nb.input_rows() == []
    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Write a ticket about {{ topic }}.")
    nb.set_meta("model", {"path": str(tmp_path / "missing.gguf"), "n_ctx": 512})  # a model file that is gone
    view.backend = "llama-cpp"
    view.reload()
    gen = view.cell_widget("generate")
    view._run([gen])
    _wait_idle(qtbot, view)
    assert gen.output.text().startswith("⚠") and "missing.gguf" in gen.output.text()
    assert nb.conn.execute("SELECT COUNT(*) FROM records WHERE role = 'sample'").fetchone()[0] == 0


def test_running_another_cell_stops_the_running_one_and_drops_its_result(qtbot, view, nb, topics_csv, monkeypatch):
    from app.data.importer import import_file

    monkeypatch.setenv("SYNTH_STUDIO_FAKE_DELAY", "0.05")
    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Write a ticket about {{ topic }}.")
    view.reload()
    gen, prompt = view.cell_widget("generate"), view.cell_widget("prompt")
    gen.editors["rows"].setValue(20)
    view._run([gen])
    qtbot.waitUntil(lambda: "writing" in gen.writing.text(), timeout=20000)
    view._run([prompt])  # no "Stop it first": the generation is cancelled, its samples kept
    assert gen.output.text().startswith("stopped") and gen.run_button.isEnabled()
    _wait_idle(qtbot, view)  # the prompt cell queued behind the generation, so that has ended too
    assert "ticket: renders" in prompt.output.text()
    assert gen.output.text().startswith("stopped")  # the cancelled run's own summary never reached the cell
    assert nb.count_records() < 40


def test_the_map_cell_is_drawn_when_the_notebook_is_shown_not_while_hidden(qtbot, view, nb, monkeypatch):
    """Every notebook change redraws the cells; the Map cell's points and charts (most of a second
    at 20k points) wait while the Notebook tab is hidden, and are drawn once when it is shown."""
    from widgets.map_view import MapView

    refreshed = []
    real = MapView.refresh
    monkeypatch.setattr(MapView, "refresh", lambda self: (refreshed.append(self), real(self))[1])
    mc = view.cell_widget("map")
    view.redraw()
    assert refreshed == [mc.map_view]  # shown: drawn at once
    view.hide()
    refreshed.clear()
    for _ in range(3):
        view.redraw()
    assert refreshed == []
    view.show()
    qtbot.waitExposed(view)
    assert refreshed == [mc.map_view]  # once, for the three changes
