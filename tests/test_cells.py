"""Cells: kept in the notebook in order with their settings; each kind runs headless."""

import pytest

from app.cells import KINDS, add_cell, delete_cell, ensure_cells, list_cells, move_cell, run_cell, save_cell
from app.core.errors import StudioError
from app.core.tasks import TaskState
from app.data.importer import import_file
from app.store.notebook import Notebook


def test_a_new_notebook_gets_one_cell_of_each_kind_and_keeps_edits(tmp_path):
    path = tmp_path / "c.db"
    with Notebook.create(path) as nb:
        cells = ensure_cells(nb)
        assert [c.kind for c in cells] == list(KINDS)
        gen = cells[2]
        gen.settings["samples"] = 7
        gen.collapsed = True
        save_cell(nb, gen)
        move_cell(nb, cells[-1].id, -10)  # export to the top
        extra = add_cell(nb, "quality", {"validate": True, "judge": False, "dedupe": False})
        delete_cell(nb, cells[4].id)  # map
    with Notebook.open(path) as nb:  # reopened: order, settings, collapsed state kept
        cells = list_cells(nb)
        assert [c.kind for c in cells] == ["export", "data", "prompt", "generate", "quality", "review", "quality"]
        g = cells[3]
        assert g.settings["samples"] == 7 and g.collapsed and g.settings["max_tokens"] == 120
        assert cells[-1].id == extra.id
    with pytest.raises(StudioError, match="unknown cell kind"):
        with Notebook.open(path) as nb:
            add_cell(nb, "poetry")


def test_run_cells_top_to_bottom_with_the_fake_backend(tmp_path, topics_csv):
    path = tmp_path / "r.db"
    with Notebook.create(path) as nb:
        cells = {c.kind: c for c in ensure_cells(nb)}
    task = TaskState()
    data = cells["data"]
    data.settings["file"] = str(topics_csv)
    assert "imported 20 rows" in run_cell(path, data, task=task)
    with Notebook.open(path) as nb:
        nb.add_prompt_version("ticket", "Write a ticket about {{ topic }}.")
    prompt = cells["prompt"]
    assert "ticket: renders" in run_cell(path, prompt, task=task)
    gen = cells["generate"]
    gen.settings.update(samples=2, rows=3)
    out = run_cell(path, gen, backend="fake", task=task)
    assert out.startswith("run 1 completed: 6 samples")
    q = run_cell(path, cells["quality"], backend="fake", task=task)
    assert "validated" in q and "funnel: generated 6" in q
    assert "0 of 6 samples reviewed" in run_cell(path, cells["review"], task=task)
    exp = cells["export"]
    exp.settings["file"] = str(tmp_path / "out.jsonl")
    assert "wrote 6 records" in run_cell(path, exp, task=task)
    with Notebook.open(path) as nb:  # each cell remembers its last output
        outs = {c.kind: c.last_output for c in list_cells(nb)}
        assert outs["generate"].startswith("run 1 completed") and outs["export"].startswith("wrote 6")


def test_a_cell_with_missing_settings_says_what_is_missing(tmp_path):
    path = tmp_path / "m.db"
    with Notebook.create(path) as nb:
        cells = {c.kind: c for c in ensure_cells(nb)}
    with pytest.raises(StudioError, match="choose a file to import"):
        run_cell(path, cells["data"], task=TaskState())
    with pytest.raises(StudioError, match="no prompt yet"):
        run_cell(path, cells["generate"], backend="fake", task=TaskState())


def test_generate_cell_best_of_keeps_the_most_likely_per_row(tmp_path, topics_csv):
    path = tmp_path / "b.db"
    with Notebook.create(path) as nb:
        cells = {c.kind: c for c in ensure_cells(nb)}
        import_file(nb, topics_csv)
        nb.add_prompt_version("ticket", "Write a ticket about {{ topic }}.")
    gen = cells["generate"]
    gen.settings.update(prompt="ticket", samples=3, rows=2, keep_best=1)
    out = run_cell(path, gen, backend="fake", task=TaskState())
    assert "best-of by likelihood kept 2, rejected 4" in out
    with Notebook.open(path) as nb:
        for row in (0, 1):
            recs = nb.conn.execute("SELECT status, mean_logprob FROM records WHERE role = 'sample' AND row_index = ? "
                                   "ORDER BY mean_logprob DESC", (row,)).fetchall()
            assert [r[0] for r in recs] == ["new", "rejected", "rejected"]  # the most likely one is kept
    exp = cells["export"]
    exp.settings.update(file=str(tmp_path / "pairs.jsonl"), format="dpo")
    assert "wrote 2 preference pairs" in run_cell(path, exp, task=TaskState())  # one (chosen, rejected) pair per row
    gen.settings.update(keep_best=3)
    with pytest.raises(StudioError, match="smaller than samples"):
        run_cell(path, gen, backend="fake", task=TaskState())
