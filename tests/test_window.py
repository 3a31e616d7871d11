"""The first window: it shows the notebook's records and each record's lineage."""

import os
import shutil

import pytest

pytest.importorskip("PySide6")

from app.data.importer import import_file  # noqa: E402
from app.generate.runs import create_run, execute_run, prepare_run  # noqa: E402


@pytest.fixture
def filled(nb, topics_csv, fake):
    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Ticket about {{ topic }}.")
    execute_run(nb, create_run(nb, prepare_run(nb, "ticket", samples=2, limit_rows=5), fake.info), fake)
    return nb


def test_window_lists_records_and_shows_lineage(qtbot, filled):
    from widgets.main_window import MainWindow

    win = MainWindow(filled)
    qtbot.addWidget(win)
    assert win.model.rowCount() == 10
    assert "10 samples" in win.summary_label.text()
    win.table.selectRow(3)
    rec = win.model.record_at(3)
    text = win.detail.toPlainText()
    assert f"Record {rec['id']}" in text
    assert "ticket v1" in text and "fake-model-v1" in text and f"{rec['seed']}" in text


def test_records_model_pages_instead_of_loading_everything(qtbot, nb):
    from widgets.records_table import PAGE, RecordsModel

    nb.add_imported_rows([({"i": i}, f"text {i}") for i in range(PAGE * 3 + 7)], origin="real", source="s")
    model = RecordsModel(nb)
    assert model.rowCount() == 0 and model.canFetchMore()
    model.fetchMore()
    assert model.rowCount() == PAGE
    while model.canFetchMore():
        model.fetchMore()
    assert model.rowCount() == PAGE * 3 + 7
    assert model.data(model.index(5, 4)) == "text 5"


@pytest.fixture
def window(qtbot, nb, topics_csv):
    from widgets.main_window import MainWindow

    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Ticket about {{ topic }}.")
    nb.add_prompt_version("broken", "About {{ no_such_column }}.")
    win = MainWindow(nb)
    qtbot.addWidget(win)
    return win


def test_generating_from_the_window_keeps_the_event_loop_running(qtbot, window, monkeypatch):
    from PySide6.QtCore import QTimer

    monkeypatch.setenv("SYNTH_STUDIO_FAKE_DELAY", "0.02")
    bar = window.generate_bar
    bar.backend = "fake"
    bar.prompt.setCurrentText("ticket")
    bar.samples.setValue(2)
    bar.rows.setValue(4)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    with qtbot.waitSignal(bar.sig_run_finished, timeout=30000) as blocker:
        bar.start_generation()
        assert not bar.run_button.isEnabled() and bar.cancel_button.isEnabled()
    timer.stop()
    run = blocker.args[0]
    assert run.status == "completed"
    assert len(ticks) > 5  # the UI thread kept processing events while the model worked
    assert window.model.rowCount() == 8  # records appeared as they were committed
    assert "8 samples" in window.summary_label.text()
    assert bar.run_button.isEnabled()


def test_cancel_from_the_window_keeps_finished_samples(qtbot, window, monkeypatch):
    monkeypatch.setenv("SYNTH_STUDIO_FAKE_DELAY", "0.01")
    bar = window.generate_bar
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
    kept = window.nb.count_records()
    assert 0 < kept < 100
    assert "cancelled" in bar.status.text()


def test_a_template_error_is_shown_in_the_bar_and_changes_nothing(qtbot, window):
    bar = window.generate_bar
    bar.backend = "fake"
    bar.prompt.setCurrentText("broken")
    with qtbot.waitSignal(bar.sig_run_finished, timeout=10000):
        bar.start_generation()
    assert "no_such_column" in bar.status.text()
    assert window.nb.runs() == [] and window.nb.count_records() == 0


def test_choosing_a_bad_model_file_says_why(qtbot, window, tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_text("not a model")
    window.generate_bar.set_model(str(bad))
    assert "not a GGUF model file" in window.generate_bar.status.text()
    assert window.generate_bar.model_path is None


@pytest.mark.integration
def test_cancel_during_a_real_generation_in_the_window(qtbot, window):
    from app.jobs import TokenStreamed

    bar = window.generate_bar
    bar.prompt.setCurrentText("ticket")
    bar.samples.setValue(3)
    bar.rows.setValue(3)
    bar.max_tokens.setValue(200)
    tokens = []
    bar.runner.sig_partial.connect(lambda event: tokens.append(event) if isinstance(event, TokenStreamed) else None)
    with qtbot.waitSignal(bar.sig_run_finished, timeout=120000) as blocker:
        bar.start_generation()
        qtbot.waitUntil(lambda: len(tokens) >= 3, timeout=60000)
        bar.cancel()
    assert blocker.args[0].status == "cancelled"
    assert window.nb.count_records() < 9


def test_inline_edit_goes_through_history_with_undo_and_redo(qtbot, filled):
    from PySide6.QtCore import Qt

    from widgets.main_window import MainWindow

    win = MainWindow(filled)
    qtbot.addWidget(win)
    model = win.model
    idx = model.index(2, 4)  # output column
    rid = model.record_at(2)["id"]
    original = filled.record(rid)["output"]
    assert model.flags(idx) & Qt.ItemFlag.ItemIsEditable
    assert not model.flags(model.index(2, 0)) & Qt.ItemFlag.ItemIsEditable  # id is not editable
    assert model.setData(idx, "A better ticket, fixed by hand.")
    rec = filled.record(rid)
    assert rec["output"] == "A better ticket, fixed by hand." and rec["origin"] == "human-edited"
    assert model.data(model.index(2, 2)) == "human-edited"
    model.undo_stack.undo()
    rec = filled.record(rid)
    assert rec["output"] == original and rec["origin"] == "synthetic"
    assert model.data(idx) == original.replace("\n", " ")[:200]
    model.undo_stack.redo()
    assert filled.record(rid)["output"] == "A better ticket, fixed by hand."
    fields = [(e.field, e.author) for e in filled.history(rid)]
    assert fields.count(("output", "user")) == 2 and ("output", "user (undo)") in fields  # nothing rewritten


def test_status_keys_accept_reject_flag_with_undo(qtbot, filled):
    from PySide6.QtCore import Qt

    from widgets.main_window import MainWindow

    win = MainWindow(filled)
    qtbot.addWidget(win)
    win.show()
    win.table.setFocus()
    win.table.selectRow(1)
    rid = win.model.record_at(1)["id"]
    qtbot.keyClick(win.table, Qt.Key.Key_A)
    assert filled.record(rid)["status"] == "accepted"
    qtbot.keyClick(win.table, Qt.Key.Key_R)
    assert filled.record(rid)["status"] == "rejected"
    assert "rejected 1" in win.summary_label.text()
    assert win.undo_action.shortcut().toString() == "Ctrl+Z"
    win.undo_action.trigger()
    assert filled.record(rid)["status"] == "accepted"
    win.redo_action.trigger()
    assert filled.record(rid)["status"] == "rejected"


def test_filters_run_in_sql_and_page(qtbot, nb):
    from app.store.queries import RecordFilter, count_records, record_page
    from widgets.main_window import MainWindow
    from widgets.records_table import PAGE

    rows = [({"i": i}, f"ticket {i} about {'billing' if i % 3 == 0 else 'login'} 100%") for i in range(PAGE * 2 + 10)]
    nb.add_imported_rows(rows, origin="synthetic", source="s")
    assert count_records(nb, RecordFilter(text="billing")) == len([r for r in rows if "billing" in r[1]])
    assert count_records(nb, RecordFilter(text="100%")) == len(rows)  # LIKE wildcards are escaped
    assert count_records(nb, RecordFilter(text="0%")) == len(rows)
    assert count_records(nb, RecordFilter(text="_")) == 0
    win = MainWindow(nb)
    qtbot.addWidget(win)
    first = win.model.record_at(0)["id"]
    win.model.edit(first, "status", "flagged")
    win.status_filter.setCurrentText("flagged")
    assert win.model.rowCount() == 1 and win.shown_label.text() == "1 shown"
    win.status_filter.setCurrentIndex(0)
    win.search.setText("billing")
    qtbot.waitUntil(lambda: win.shown_label.text() == f"{count_records(nb, RecordFilter(text='billing'))} shown")
    assert all("billing" in win.model.record_at(i)["output"] for i in range(win.model.rowCount()))
    assert record_page(nb, 0, 5, RecordFilter(origin="real")) == []


def test_history_shows_old_and_new_and_reverts_an_old_edit(qtbot, filled):
    from PySide6.QtCore import QUrl

    from widgets.main_window import MainWindow

    win = MainWindow(filled)
    qtbot.addWidget(win)
    win.table.selectRow(0)
    rid = win.model.record_at(0)["id"]
    original = filled.record(rid)["output"]
    win.model.edit(rid, "output", "second version")
    win.model.edit(rid, "output", "third version")
    first_edit = filled.history(rid)[0]
    html_text = win.detail.toHtml()
    assert f"revert:{first_edit.id}" in html_text and "third version" in win.detail.toPlainText()
    win.detail.anchorClicked.emit(QUrl(f"revert:{first_edit.id}"))
    assert filled.record(rid)["output"] == original
    win.undo_action.trigger()  # the revert itself can be undone
    assert filled.record(rid)["output"] == "third version"


def test_review_queue_is_keyboard_first(qtbot, filled):
    from PySide6.QtCore import Qt

    from app.store.scores import Score, save_scores
    from widgets.main_window import MainWindow

    ids = [r["id"] for r in filled.records()]
    save_scores(filled, [Score(ids[0], "validator:length", "validator", 3, False, "3 words < min 8"),
                         Score(ids[0], "judge:polite", "judge", 0.8, True, "")], None)
    win = MainWindow(filled)
    qtbot.addWidget(win)
    win.show()
    win.tabs.setCurrentWidget(win.review)
    q = win.review
    order = list(q.ids)  # the queue's order (app.review.queue): the failing record first
    assert sorted(order) == sorted(ids) and order[0] == ids[0]
    assert f"Record {ids[0]}" in q.header.text() and "1 of 10" in q.header.text()
    assert "length (3 words &lt; min 8)" in q.facts.text() or "length (3 words < min 8)" in q.facts.text()
    assert "judge:polite 0.8" in q.facts.text()
    qtbot.keyClick(q, Qt.Key.Key_A)
    assert filled.record(ids[0])["status"] == "accepted" and q.current_id() == order[1]
    qtbot.keyClick(q, Qt.Key.Key_R)
    qtbot.keyClick(q, Qt.Key.Key_F)
    assert [filled.record(i)["status"] for i in order[:3]] == ["accepted", "rejected", "flagged"]
    assert "30% reviewed" in q.header.text()
    qtbot.keyClick(q, Qt.Key.Key_K)
    assert q.current_id() == order[2]
    qtbot.keyClick(q, Qt.Key.Key_J)
    qtbot.keyClick(q, Qt.Key.Key_E)
    assert q.stack.currentWidget() is q.editor
    q.editor.setPlainText("Rewritten in review.")
    q.save_edit()
    assert filled.record(order[3])["output"] == "Rewritten in review."
    assert filled.record(order[3])["origin"] == "human-edited"
    win.undo_action.trigger()
    assert filled.record(order[3])["origin"] == "synthetic"
    assert win.model.data(win.model.index(0, 1)) == "accepted"  # the table saw the review's changes


def test_model_manager_reads_real_gguf_metadata_and_sets_the_notebook_default(qtbot, nb, tmp_path, monkeypatch,
                                                                             smollm_path):
    from app.generate.model_choice import find_models, notebook_model
    from widgets.main_window import MainWindow
    from widgets.model_manager import COLUMNS, ModelManager

    home = tmp_path / "home"
    hub = home / ".cache" / "huggingface" / "hub" / "models--x--tiny" / "snapshots" / "abc"
    hub.mkdir(parents=True)
    try:  # a second, distinct file with the same content (a symlink would be recognised as the bundled one)
        os.link(smollm_path, hub / "tiny.Q4_1.gguf")
    except OSError:
        shutil.copy(smollm_path, hub / "tiny.Q4_1.gguf")
    (hub / "broken.gguf").write_text("not a model")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    entries = find_models()
    assert [e.source for e in entries] == ["bundled", "Hugging Face cache", "Hugging Face cache"]
    win = MainWindow(nb)
    qtbot.addWidget(win)
    dialog = ModelManager(nb, win)
    qtbot.addWidget(dialog)
    row = {dialog.table.item(r, COLUMNS.index("path")).text(): r for r in range(dialog.table.rowCount())}
    bundled = row[str(smollm_path)]
    cell = lambda r, c: dialog.table.item(r, COLUMNS.index(c)).text()  # noqa: E731
    assert (cell(bundled, "architecture"), cell(bundled, "parameters"), cell(bundled, "quantisation"),
            cell(bundled, "context"), cell(bundled, "chat template")) == ("llama", "135M", "Q4_1", "8192", "yes")
    broken = next(r for r in range(dialog.table.rowCount()) if cell(r, "name") == "broken.gguf")
    assert cell(broken, "architecture") == "unreadable" and "not a GGUF" in cell(broken, "path")
    planted = next(r for r in range(dialog.table.rowCount()) if cell(r, "name") != "broken.gguf" and r != bundled)
    dialog.table.selectRow(planted)
    dialog.n_ctx.setValue(4096)
    dialog.use_selected()
    choice = notebook_model(nb)
    assert choice.path.endswith("tiny.Q4_1.gguf") and choice.n_ctx == 4096
    win.generate_bar.apply_choice(choice)
    assert win.generate_bar.model_button.text() == "tiny.Q4_1.gguf" and win.generate_bar.n_ctx == 4096


def test_compare_tab_runs_two_versions_side_by_side(qtbot, nb, topics_csv):
    from widgets.main_window import MainWindow

    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Ticket about {{ topic }}.")
    win = MainWindow(nb)
    qtbot.addWidget(win)
    view = win.compare
    assert not view.run_button.isEnabled() and "second version" in view.status.text()
    nb.add_prompt_version("ticket", "A polite ticket about {{ topic }}.")
    win.tabs.setCurrentWidget(view)
    assert (view.version_a.currentText(), view.version_b.currentText()) == ("1", "2")
    view.backend = "fake"
    view.rows.setValue(3)
    with qtbot.waitSignal(view.sig_compared, timeout=30000) as blocker:
        view.start()
    cmp = blocker.args[0]
    assert cmp is not None and len(cmp["pairs"]) == 3
    assert view.pairs.rowCount() == 3 and view.pairs.item(0, 0).text() == cmp["pairs"][0]["a"]
    assert "+A polite ticket about {{ topic }}." in view.diff.toPlainText()
    assert view.metrics.item(0, 0).text() == "mean words"
    assert "same rows, same seeds" in view.status.text()
    assert (view.prompt.currentText(), view.version_a.currentText(), view.version_b.currentText()) == ("ticket", "1", "2")


def test_sorting_is_done_in_sql_across_all_pages(qtbot, nb):
    from PySide6.QtCore import Qt

    from app.store.queries import RECORD_COLUMNS
    from widgets.main_window import MainWindow
    from widgets.records_table import PAGE

    n = PAGE * 2 + 5
    nb.add_imported_rows([({"i": i}, f"text {i:04d}") for i in range(n)], origin="real", source="s")
    win = MainWindow(nb)
    qtbot.addWidget(win)
    col = RECORD_COLUMNS.index("output")
    win.table.sortByColumn(col, Qt.SortOrder.DescendingOrder)
    assert win.model.rowCount() == PAGE  # still paged
    assert win.model.record_at(0)["output"] == f"text {n - 1:04d}"  # the last record overall, not of page 1
    win.search.setText("text 00")
    win.apply_filter()
    assert win.model.filter.order_by == "output" and win.model.filter.descending
    assert win.model.record_at(0)["output"] == "text 0099"


def test_import_export_new_and_open_from_the_window(qtbot, nb, tmp_path, topics_csv):
    import json

    from widgets.main_window import MainWindow

    win = MainWindow(nb)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.runner.sig_done, timeout=10000):
        win.import_data(str(topics_csv))
    assert "imported 20 rows" in win.statusBar().currentMessage()
    assert "20 input rows" in win.summary_label.text()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"topic\ncaf\xe9\n")
    with qtbot.waitSignal(win.runner.sig_done, timeout=10000):
        win.import_data(str(bad))
    assert win.statusBar().currentMessage().startswith("error: ") and "not valid UTF-8" in win.statusBar().currentMessage()
    assert nb.count_records("input") == 20  # nothing half-imported

    nb.add_imported_rows([({"q": "hi"}, "hello there")], origin="real", source="t")
    out = tmp_path / "out.jsonl"
    with qtbot.waitSignal(win.runner.sig_done, timeout=10000):
        win.export_records(str(out))
    assert "wrote 1 records" in win.statusBar().currentMessage()
    assert json.loads(out.read_text().splitlines()[0])["output"] == "hello there"

    text_file = tmp_path / "notes.db"
    text_file.write_text("not a notebook")
    assert not win.open_notebook(str(text_file))
    assert "not a Synth Studio notebook" in win.statusBar().currentMessage()
    assert win.nb.path == nb.path  # still on the notebook we had
    assert win.open_notebook(str(tmp_path / "fresh.db"), create=True)
    assert win.nb.path.name == "fresh.db" and win.model.rowCount() == 0 and "0 samples" in win.summary_label.text()


def test_a_window_import_shows_its_progress_and_cancel_leaves_nothing(qtbot, nb, tmp_path, monkeypatch):
    import threading

    import app.data.importer as importer
    import app.store.staged as staged
    from widgets.main_window import MainWindow

    monkeypatch.setattr(staged, "CHUNK_ROWS", 100)
    big = tmp_path / "big.csv"
    big.write_text("topic\n" + "".join(f"topic {i}\n" for i in range(1000)), encoding="utf-8")
    cancelled = threading.Event()
    real_import = importer.import_table

    def held_import(nb_, file, *, progress, **kw):  # the real import, held after its first chunk until Cancel
        def hold(done, total):
            progress(done, total)  # the next chunk's call hears the stop
            if done:
                cancelled.wait(10)
        return real_import(nb_, file, progress=hold, **kw)

    monkeypatch.setattr(importer, "import_table", held_import)
    win = MainWindow(nb)
    qtbot.addWidget(win)
    win.show()
    seen: list[str] = []
    win.runner.sig_progress.connect(lambda d, t, m: seen.append(m))
    win.import_data(str(big))
    assert win.job_status.isVisible() and win.job_status.label.text() == "importing big.csv"
    qtbot.waitUntil(lambda: "100 of 1,000 rows in" in seen, timeout=10000)
    assert win.job_status.bar.maximum() == 1000 and win.job_status.bar.value() == 100
    win.export_records(str(tmp_path / "out.jsonl"))  # a second file job waits: it would stop the import
    assert "still importing big.csv" in win.statusBar().currentMessage()
    assert not (tmp_path / "out.jsonl").exists()
    with qtbot.waitSignal(win.runner.sig_done, timeout=10000):
        win.job_status.cancel_button.click()
        assert not win.job_status.cancel_button.isEnabled()
        cancelled.set()
    assert win.statusBar().currentMessage() == "cancelled importing big.csv: nothing was added"
    assert not win.job_status.isVisible()
    assert nb.count_records(None) == 0 and nb.count_records("input") == 0
    assert staged.pending_owners(nb) == set()  # the staged chunk is gone too

    monkeypatch.setattr(importer, "import_table", real_import)
    with qtbot.waitSignal(win.runner.sig_done, timeout=10000):
        win.import_data(str(big))
    assert "imported 1000 rows" in win.statusBar().currentMessage() and nb.count_records("input") == 1000


def test_prompt_editor_previews_live_and_saves_versions(qtbot, nb, topics_csv):
    from widgets.main_window import MainWindow

    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Ticket about {{ topic }}.")
    win = MainWindow(nb)
    qtbot.addWidget(win)
    ed = win.prompt_editor
    win.tabs.setCurrentWidget(ed)
    assert ed.name.currentText() == "ticket" and ed.versions.count() == 1
    assert ed.preview.toPlainText() == "Ticket about invoice PDF shows the wrong currency symbol."
    ed.row.setValue(2)
    qtbot.waitUntil(lambda: "recurring invoice" in ed.preview.toPlainText(), timeout=3000)
    ed.editor.setPlainText("Ticket about {{ topic }} for {{ nope }}.")
    qtbot.waitUntil(lambda: "nope" in ed.error.text(), timeout=3000)
    assert "uses nope but input row 2 has no such column" in ed.error.text()
    ed.save()  # a template may use a column the data does not have yet: it saves (runs will refuse it)
    assert ed.message.text() == "saved ticket v2"
    ed.editor.setPlainText("Ticket about {{ topic }} for {{ product }}.\n{% if %}")
    qtbot.waitUntil(lambda: "syntax error" in ed.error.text(), timeout=3000)
    ed.save()
    assert "not saved" in ed.message.text()
    ed.editor.setPlainText("Polite ticket about {{ topic }} for {{ product }}.")
    ed.save()
    assert ed.message.text() == "saved ticket v3" and ed.versions.count() == 3
    assert nb.prompt_version("ticket").template == "Polite ticket about {{ topic }} for {{ product }}."
    assert win.generate_bar.prompt.currentText() == "ticket"
    ed.save()
    assert "unchanged" in ed.message.text()
    ed.versions.setCurrentRow(0)
    assert ed.editor.toPlainText() == "Ticket about {{ topic }}."


def test_quality_tab_runs_steps_and_draws_the_funnel(qtbot, nb):
    from widgets.main_window import MainWindow

    nb.add_imported_rows([({}, "Open settings, then billing, then download the invoice again please."),
                          ({}, "open settings then billing then download the invoice again please"),
                          ({}, "As an AI language model I cannot help with that request at all."),
                          ({}, "Short.")], origin="synthetic", source="t")
    win = MainWindow(nb)
    qtbot.addWidget(win)
    win.show()  # a chart draws when it is seen
    q = win.quality
    q.backend = "fake"
    win.tabs.setCurrentWidget(q)
    qtbot.waitUntil(lambda: bool(q.stages), timeout=10000)  # counted off the UI thread
    assert [s["stage"] for s in q.stages] == ["generated", "review"]
    for step in ("validate", "dedupe", "judge", "sanity"):
        with qtbot.waitSignals([q.sig_step_finished, q.sig_summary_ready], timeout=30000):
            q.run_step(step)
        assert not q.status.styleSheet(), q.status.text()
    stages = {s["stage"]: s for s in q.stages}
    assert stages["validator:length"]["dropped"] == 1 and stages["validator:banned_phrases"]["dropped"] == 1
    assert "judge:english" in stages and "dedupe:minhash" in stages
    from widgets.chart import charts_drawn

    qtbot.waitUntil(lambda: charts_drawn(q), timeout=20000)  # drawn off the UI thread
    ax = q.figure.axes[0]
    assert [t.get_text().split("  [")[0] for t in ax.get_yticklabels()] == [s["stage"] for s in q.stages]
    untrusted = [t.get_text() for t in ax.get_yticklabels() if "  [" in t.get_text()]
    assert untrusted and all(not stages[u.split("  [")[0]]["active"] for u in untrusted)  # marked, not filtering
    assert q.sanity.rowCount() == 4 and "FLAGGED" in q.sanity.item(2, 1).text()  # rubric without examples
    assert "4 records" in q.metrics.text()


def test_compute_jobs_queue_one_after_the_other(qtbot, window, monkeypatch):
    monkeypatch.setenv("SYNTH_STUDIO_FAKE_DELAY", "0.003")
    bar, q = window.generate_bar, window.quality
    bar.backend = q.backend = "fake"
    bar.prompt.setCurrentText("ticket")
    bar.samples.setValue(2)
    bar.rows.setValue(5)
    window.nb.add_imported_rows([({}, "an existing record to judge")], origin="synthetic", source="t")
    events = []
    bar.runner.sig_started.connect(lambda: events.append("generate started"))
    bar.runner.sig_finished.connect(lambda _r: events.append("generate finished"))
    q.runner.sig_started.connect(lambda: events.append("judge started"))
    with qtbot.waitSignals([bar.sig_run_finished, q.sig_step_finished], timeout=60000):
        bar.start_generation()
        q.run_step("judge")
        assert q.runner.queued and "queued" in q.status.text()  # the generation holds the compute lane
    assert events.index("judge started") > events.index("generate finished")


def test_history_shows_the_changed_stretch_of_a_long_text():
    from widgets.main_window import _change_html

    old = "x" * 500 + " the invoice was wrong " + "y" * 500
    new = "x" * 500 + " the invoice was right " + "y" * 500
    out = _change_html(old, new)
    assert "wr" in out and "ri" in out and "line-through" in out
    assert len(out) < 600  # context, not the whole text


def test_filter_by_prompt_version_run_and_score_range(qtbot, nb, topics_csv, fake):
    from app.store.queries import RecordFilter, count_records
    from app.store.scores import Score, save_scores
    from widgets.main_window import MainWindow

    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Ticket about {{ topic }}.")
    r1 = execute_run(nb, create_run(nb, prepare_run(nb, "ticket", limit_rows=4), fake.info), fake)
    nb.add_prompt_version("ticket", "Polite ticket about {{ topic }}.")
    r2 = execute_run(nb, create_run(nb, prepare_run(nb, "ticket", limit_rows=3), fake.info), fake)
    ids = [r["id"] for r in nb.records()]
    save_scores(nb, [Score(i, "judge:polite", "judge", v, v >= 0.5) for i, v in zip(ids, [0.1, 0.4, 0.6, 0.9, 0.2])], None)
    assert count_records(nb, RecordFilter(run_id=r2.id)) == 3
    assert count_records(nb, RecordFilter(prompt_version_id=nb.prompt_version("ticket", 1).id)) == 4
    assert count_records(nb, RecordFilter(score="judge:polite", score_max=0.4)) == 3
    assert count_records(nb, RecordFilter(score="judge:polite", score_min=0.3, score_max=0.7)) == 2
    win = MainWindow(nb)
    qtbot.addWidget(win)
    win.run_filter.setCurrentIndex(win.run_filter.findData(r1.id))
    assert win.shown_label.text() == "4 shown"
    win.run_filter.setCurrentIndex(0)
    win.score_filter.setCurrentIndex(win.score_filter.findData("judge:polite"))
    assert win.shown_label.text() == "5 shown"  # every scored record
    win.score_max.setText("0.4")
    win.apply_filter()
    assert win.shown_label.text() == "3 shown"
    assert {win.model.record_at(i)["id"] for i in range(3)} == {ids[0], ids[1], ids[4]}


def test_file_open_recent_lists_and_opens_notebooks(qtbot, tmp_path):
    from app.store.notebook import Notebook
    from widgets.main_window import MainWindow, recent_notebooks

    a, b = tmp_path / "a.db", tmp_path / "b.db"
    Notebook.create(a).close()
    Notebook.create(b).close()
    win = MainWindow(Notebook.open(a))
    qtbot.addWidget(win)
    assert win.open_notebook(str(a)) and win.open_notebook(str(b))
    assert recent_notebooks()[:2] == [str(b.resolve()), str(a.resolve())]
    win._fill_recent()
    actions = {act.text(): act for act in win.recent_menu.actions()}
    assert str(a.resolve()) in actions
    actions[str(a.resolve())].trigger()
    assert win.nb.path.resolve() == a.resolve()
    b.unlink()  # a notebook that is gone drops out of the list
    assert str(b.resolve()) not in recent_notebooks()


def test_model_manager_can_point_the_notebook_at_a_server(qtbot, nb):
    from app.generate.model_choice import notebook_model
    from widgets.model_manager import ModelManager

    dialog = ModelManager(nb)
    qtbot.addWidget(dialog)
    dialog.server.setText("gpu-box:8080")  # no scheme: refused with a hint, nothing stored
    dialog.use_server()
    assert "http://" in dialog.message.text() and notebook_model(nb).path is None
    dialog.parallel.setValue(8)
    dialog.server.setText("http://127.0.0.1:8080/v1#qwen")
    dialog.use_server()
    choice = notebook_model(nb)
    assert choice.is_server and choice.path == "http://127.0.0.1:8080/v1#qwen"


def test_the_window_reopens_the_last_notebook_at_its_size(qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QApplication

    import app.map.projection
    from app.core.settings import load_settings
    from app.store.notebook import Notebook
    from widgets.main_window import MainWindow, run_gui

    a, b = tmp_path / "a.db", tmp_path / "b.db"
    Notebook.create(a).close()
    Notebook.create(b).close()
    first = MainWindow(Notebook.open(b))
    qtbot.addWidget(first)
    first.open_notebook(str(a))
    first.resize(1234, 777)
    geometry = first.saveGeometry().data()
    first.close()  # keeps its geometry in the settings file
    settings, warnings = load_settings()
    assert warnings == [] and settings.last_notebook == str(a.resolve()) and settings.window_geometry

    # start the studio again, without its event loop, font or UMAP warm-up; the offscreen
    # screen clamps sizes, so check what the window is asked to restore, not its size
    monkeypatch.setattr(QApplication, "exec", lambda *args: 0)
    monkeypatch.setattr(os, "_exit", lambda rc: None)  # a count still running would end the test process
    monkeypatch.setattr(QApplication, "setFont", lambda *args: None)
    monkeypatch.setattr(app.map.projection, "warm_up", lambda: None)
    restored = []
    monkeypatch.setattr(MainWindow, "restoreGeometry", lambda self, g: restored.append(g.data()) or True)
    assert run_gui() == 0
    (win,) = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
    qtbot.addWidget(win)
    assert win.nb.path.resolve() == a.resolve()
    assert restored == [geometry]


def test_the_quality_tab_counts_its_numbers_off_the_ui_thread(qtbot, nb, monkeypatch):
    """The funnel and the diversity metrics read every record: on a big notebook that took the window
    seconds, so they are counted on a runner and the view only draws them."""
    import threading

    import app.quality.diversity
    import app.quality.funnel
    from widgets.quality_view import QualityView

    threads = []
    for module, name in ((app.quality.diversity, "notebook_metrics"), (app.quality.funnel, "funnel")):
        real = getattr(module, name)

        def spy(*a, _real=real, _name=name, **kw):
            threads.append((_name, threading.current_thread() is threading.main_thread()))
            return _real(*a, **kw)

        monkeypatch.setattr(module, name, spy)
    nb.add_imported_rows([({}, "one answer"), ({}, "another answer")], origin="synthetic", source="t")
    view = QualityView(nb)
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.sig_summary_ready, timeout=10000):
        view.refresh()
    assert {name for name, _ in threads} == {"notebook_metrics", "funnel"}
    assert not any(on_ui for _, on_ui in threads)
    assert "2 records" in view.metrics.text()
    # asked again (the window's start and a tab change both ask) with nothing written: not counted again
    with qtbot.waitSignal(view.sig_summary_ready, timeout=10000):
        view.refresh()  # (the first count wrote the funnel's verdicts: a write, counted once more)
    counted = len(threads)
    with qtbot.waitSignal(view.sig_summary_ready, timeout=1000):
        view.refresh()
    assert len(threads) == counted and not view.summary_runner.running
    nb.add_imported_rows([({}, "a third")], origin="synthetic", source="t")  # a write: counted again
    with qtbot.waitSignal(view.sig_summary_ready, timeout=10000):
        view.refresh()
    assert len(threads) > counted and "3 records" in view.metrics.text()


def test_a_big_notebooks_funnel_is_counted_off_the_ui_thread(qtbot, filled, monkeypatch, main_thread_calls):
    """Beyond COUNT_HERE records the funnel (it reads every score) is counted on a runner: the window
    opens without it, then the kept/dropped menu and the Quality cell's chart follow; a change asked
    for while it counts is counted once more at its end."""
    import app.quality.funnel
    import widgets.funnel_counter as fc
    from widgets.main_window import MainWindow

    threads = main_thread_calls(app.quality.funnel, "_count_funnel")
    monkeypatch.setattr(fc, "COUNT_HERE", 0)
    win = MainWindow(filled)
    qtbot.addWidget(win)
    counter = win.funnel_counter
    qtbot.waitUntil(lambda: counter.stages is not None and not counter.counting, timeout=20000)
    assert threads and not any(threads)  # never on the UI thread
    assert counter.stages[0]["kept"] == 10
    assert win.notebook_view._drawn_stages == counter.stages  # the Quality cell's chart shows this count
    menu = [win.verdict_filter.itemText(i) for i in range(win.verdict_filter.count())]
    assert "kept (10)" in menu
    # the side summary is counted the same way (its counts scan every record)
    qtbot.waitUntil(lambda: win.summary_counter.result is not None and not win.summary_counter.counting,
                    timeout=20000)
    assert "10 samples (new 10)" in win.summary_label.text()

    rejected = win.model.record_at(0)["id"]
    filled.edit_record(win.model.record_at(1)["id"], "status", "accepted")  # kept as before
    before = len(threads)
    counter.request()  # a count of the notebook as it is...
    assert counter.counting
    filled.edit_record(rejected, "status", "rejected")  # ... which changes while it counts
    for _ in range(4):  # asked four times meanwhile: one more count, not four
        counter.request()
    qtbot.waitUntil(lambda: not counter.counting and counter.stages[-1]["kept"] == 9, timeout=20000)
    # the one started and one for the four asks that came meanwhile (plus, at most, one more when the
    # window's check for other writers sees the first count's verdicts), never one count per ask
    assert 2 <= len(threads) - before <= 3
    # asked again with nothing written since: the last count is given again, not counted (once the
    # count that wrote the rejection's verdict has been followed by one that wrote nothing)
    counter.request()
    qtbot.waitUntil(lambda: not counter.counting, timeout=20000)
    before = len(threads)
    with qtbot.waitSignal(counter.sig_counted, timeout=1000) as got:
        counter.request()
    assert got.args[0].stages[-1]["kept"] == 9 and len(threads) == before and not counter.counting
    menu = [win.verdict_filter.itemText(i) for i in range(win.verdict_filter.count())]
    assert "kept (9)" in menu and "dropped at review (1)" in menu
    win.verdict_filter.setCurrentIndex(win.verdict_filter.findData("dropped"))
    win.apply_filter()
    assert win.model.rowCount() == 1 and win.model.record_at(0)["id"] == rejected


def test_an_idle_window_does_not_count_again_and_again(qtbot, filled, monkeypatch):
    """The window watches for other programs' writes. Its own counts (on their own connections) only
    read: their closing must not look like a write, or every count asks for the next one, for ever
    (it did: a core kept busy by an idle window, the Quality tab's numbers late by up to a minute)."""
    import widgets.funnel_counter as fc
    from app.store.notebook import Notebook
    from widgets.main_window import MainWindow

    monkeypatch.setattr(fc, "COUNT_HERE", 0)  # every count on a runner, with its own connection
    win = MainWindow(filled)
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: win.funnel_counter.result is not None and not win.funnel_counter.counting
                    and win.summary_counter.result is not None and not win.summary_counter.counting,
                    timeout=20000)
    win._check_outside_writes()  # the first counts' own writes (the funnel's verdicts) are seen now...
    qtbot.wait(400)  # ... and counted once more
    qtbot.waitUntil(lambda: not win.funnel_counter.counting and not win.summary_counter.counting, timeout=20000)
    win._check_outside_writes()  # (seen, whenever the window's two-second watch would have)
    changes = []
    monkeypatch.setattr(win, "_on_notebook_changed", lambda: changes.append(1))
    win._changed_timer.timeout.disconnect()
    win._changed_timer.timeout.connect(win._on_notebook_changed)
    win._watch_timer.setInterval(50)
    for _ in range(3):  # ask three times, as a job's end would; each time nothing was written
        win.funnel_counter.request()
        win.summary_counter.request()
        qtbot.wait(400)
    assert changes == []
    with Notebook.open(filled.path) as other:  # a real write by another connection is still seen
        other.add_imported_rows([({}, "from another connection")], origin="real", source="t")
    qtbot.waitUntil(lambda: bool(changes), timeout=5000)
