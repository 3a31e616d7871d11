"""Run all is safe to repeat, as a person expects from a notebook: on the sample notebook the
second Run all imports nothing, generates nothing and exports the same bytes; a Data cell with
no file does not stop the run when rows are loaded; a file already imported (same content,
any name) is not imported again."""

from __future__ import annotations

import shutil

import pytest

from app.core.paths import resources_dir
from app.core.tasks import TaskState
from app.data.demo import create_sample_notebook
from app.quality.funnel import kept_ids
from app.store.notebook import Notebook
from widgets.notebook_view import NotebookView

TOPICS = resources_dir() / "sample" / "support_topics.csv"


def _state(nb: Notebook) -> dict:
    """What Run all may change: rows, records (text and status), runs, the kept set."""
    return {
        "inputs": nb.count_records("input"),
        "records": sorted((r["id"], r["output"], r["status"]) for r in nb.records()),
        "runs": [(r.id, r.status) for r in nb.runs()],
        "kept": kept_ids(nb),
    }


@pytest.fixture
def sample(tmp_path):
    nb = create_sample_notebook(tmp_path / "sample.db")
    yield nb
    nb.close()


@pytest.fixture
def view(qtbot, sample):
    v = NotebookView(sample)
    v.backend = "fake"
    qtbot.addWidget(v)
    v.resize(1100, 900)
    v.show()
    return v


def _run_all(qtbot, view, timeout=180000):
    view.run_all.click()
    qtbot.waitUntil(lambda: not view.runner.running and not view.queue, timeout=timeout)


def test_run_all_twice_changes_nothing_the_second_time(qtbot, view, sample, tmp_path):
    out = tmp_path / "dataset.jsonl"
    view.cell_widget("data").editors["file"].line.setText(str(TOPICS))  # the file the sample was made from
    view.cell_widget("export").editors["file"].line.setText(str(out))
    gen = view.cell_widget("generate")
    gen.editors["rows"].setValue(3)
    _run_all(qtbot, view)
    outputs = {w.cell.kind: w.output.text() for w in view.cells}
    assert "already imported" in outputs["data"], outputs["data"]
    assert outputs["generate"].startswith("run 1 completed: 6 samples"), outputs["generate"]
    first, exported = _state(sample), out.read_bytes()
    assert f"wrote {len(first['kept'])} records" in outputs["export"], outputs["export"]
    assert first["inputs"] == 20 and len(first["records"]) == 6

    _run_all(qtbot, view)
    assert _state(sample) == first
    assert out.read_bytes() == exported
    assert "already imported" in view.cell_widget("data").output.text()
    assert "already made these samples" in view.cell_widget("generate").output.text()
    assert "nothing to do" in view.cell_widget("generate").output.text()

    gen.editors["seed"].setValue(2)  # a changed setting makes more, as asked
    view._run([gen])
    qtbot.waitUntil(lambda: not view.runner.running and not view.queue, timeout=60000)
    assert len(_state(sample)["records"]) == 12


def test_a_data_cell_without_a_file_does_not_stop_run_all_when_rows_are_loaded(qtbot, view, sample):
    view.cell_widget("generate").editors["rows"].setValue(2)
    view.run_from(view.cell_widget("data"))
    qtbot.waitUntil(lambda: view.running_cell is not None and view.running_cell.cell.kind != "data", timeout=20000)
    assert "20 input rows" in view.cell_widget("data").output.text()
    qtbot.waitUntil(lambda: not view.runner.running and not view.queue, timeout=180000)
    assert view.cell_widget("generate").output.text().startswith("run 1 completed")


def test_the_same_content_under_another_name_is_not_imported_twice(tmp_path, sample):
    from app.cells import ensure_cells, run_cell

    copy = tmp_path / "renamed.csv"
    shutil.copyfile(TOPICS, copy)
    cell = next(c for c in ensure_cells(sample) if c.kind == "data")
    cell.settings["file"] = str(copy)
    out = run_cell(sample.path, cell, backend="fake", task=TaskState())
    assert "already imported" in out and "support_topics.csv" in out
    assert sample.count_records("input") == 20
    other = tmp_path / "more.csv"
    other.write_text("topic\nrefund delays\n", encoding="utf-8")
    cell.settings["file"] = str(other)
    assert "imported 1 rows" in run_cell(sample.path, cell, backend="fake", task=TaskState())
    assert "already imported" in run_cell(sample.path, cell, backend="fake", task=TaskState())
    assert sample.count_records("input") == 21
    cell.settings["file"] = str(tmp_path / "missing.csv")
    with pytest.raises(Exception, match="does not exist"):
        run_cell(sample.path, cell, backend="fake", task=TaskState())


def test_made_before_matches_only_the_same_plan_and_model(sample):
    from app.jobs import generate_job, made_before

    kw = dict(samples=2, limit_rows=3, seed=4, backend="fake")
    assert made_before(sample.path, "support-ticket", **kw) is None
    run = generate_job(sample.path, "support-ticket", task=TaskState(), **kw)
    assert made_before(sample.path, "support-ticket", **kw).id == run.id
    assert made_before(sample.path, "support-ticket", **{**kw, "seed": 5}) is None
    assert made_before(sample.path, "support-ticket", **{**kw, "limit_rows": 4}) is None
    assert made_before(sample.path, "support-ticket", model_path="fake-b", **kw) is None
    sample.add_prompt_version("support-ticket", "A new version about {{ topic }}.")
    assert made_before(sample.path, "support-ticket", **kw) is None  # the prompt changed


def test_cells_can_be_added_duplicated_removed_and_brought_back(qtbot, view, sample):
    from app.cells import list_cells

    kinds = lambda: [c.kind for c in list_cells(sample)]  # noqa: E731
    assert kinds() == ["data", "prompt", "generate", "quality", "map", "review", "export"]
    gen = view.cell_widget("generate")
    gen.editors["rows"].setValue(4)
    view.cell_action(gen, "duplicate")  # a second Generate cell (e.g. a chain's next step)
    assert kinds() == ["data", "prompt", "generate", "generate", "quality", "map", "review", "export"]
    second = [c for c in list_cells(sample) if c.kind == "generate"][1]
    assert second.settings["rows"] == 4 and second.last_output == ""
    view.cell_action(None, "add:review")  # + Add cell, at the end
    assert kinds()[-1] == "review" and len(view.cells) == 9
    quality = view.cell_widget("quality")
    quality.cell.settings["judge"] = True
    quality.sig_changed.emit(quality)
    view.cell_action(quality, "remove")
    assert "quality" not in kinds()
    view.undo_stack.undo()  # back where it was, with its settings
    assert kinds()[4] == "quality" and list_cells(sample)[4].settings["judge"] is True
    view.undo_stack.redo()
    assert "quality" not in kinds() and len(view.cells) == 8
