"""Starter notebooks: each task makes a notebook with rows, a prompt, a criterion and cells,
and Run all on it works at once (fake backend); the wizard makes one and refuses an existing
file without touching it."""

from __future__ import annotations

import json

import pytest

from app.cells import STARTERS, create_starter_notebook, list_cells, run_cell
from app.core.errors import StudioError
from app.core.tasks import TaskState
from app.prompts.templates import parse_template
from app.quality.criteria import notebook_constitution
from app.store.notebook import Notebook


@pytest.mark.parametrize("key", [s.key for s in STARTERS])
def test_each_starter_makes_a_notebook_that_runs(tmp_path, key):
    starter = next(s for s in STARTERS if s.key == key)
    nb = create_starter_notebook(tmp_path / f"{key}.db", key)
    try:
        assert nb.count_records("input") >= 6
        pt = parse_template(nb.prompt_version(starter.prompt).template)
        rows = [v for _, v in nb.input_rows()]
        assert pt.required_variables <= set(rows[0])  # the rows feed the template
        assert notebook_constitution(nb).criteria  # a judge to check, then trust
        cells = list_cells(nb)
        assert [c.kind for c in cells] == ["data", "prompt", "generate", "quality", "map", "review", "export"]
        outs = {}
        for c in cells:
            if c.kind in ("data", "prompt", "generate", "review", "export"):
                outs[c.kind] = run_cell(nb.path, c, backend="fake", task=TaskState())
        assert "already imported" in outs["data"]  # the rows came in when the notebook was made
        assert outs["generate"].startswith("run 1 completed: 6 samples")
        if pt.output_schema is not None:
            for r in nb.records():
                assert set(json.loads(r["output"])) == set(pt.fields)
    finally:
        nb.close()


def test_a_starter_never_overwrites_a_file(tmp_path):
    path = tmp_path / "mine.db"
    Notebook.create(path).close()
    before = path.read_bytes()
    with pytest.raises(StudioError, match="already exists"):
        create_starter_notebook(path, "qa")
    assert path.read_bytes() == before
    with pytest.raises(StudioError, match="no starter"):
        create_starter_notebook(tmp_path / "x.db", "poems")
    assert not (tmp_path / "x.db").exists()


def test_the_wizard_creates_the_chosen_starter(qtbot, tmp_path):
    from widgets.starter_wizard import StarterWizard

    w = StarterWizard(tmp_path)
    qtbot.addWidget(w)
    w.tasks.setCurrentRow(3)
    assert w.key == "chat" and w.path.text().endswith("chat.db")
    w.create_notebook()
    assert w.created == tmp_path / "chat.db" and w.result() == w.DialogCode.Accepted
    with Notebook.open(w.created) as nb:
        assert nb.prompt_version("chat-turn")
    again = StarterWizard(tmp_path)
    qtbot.addWidget(again)
    again.tasks.setCurrentRow(3)
    assert again.path.text().endswith("chat-2.db")  # a free name
    again.path.setText(str(tmp_path / "chat.db"))
    again.create_notebook()
    assert "already exists" in again.error.text() and again.created is None
