"""A run over many rows starts at once: prompts render as they are generated, not all first."""

from __future__ import annotations

import pytest

import app.generate.runs as runs
from app.core.errors import Cancelled, StudioError
from app.core.tasks import TaskState
from app.generate.runs import CHECK_ROWS, CHUNK, create_run, execute_run, prepare_run


def test_a_big_plan_renders_only_what_it_generates(nb, fake, monkeypatch):
    n = 3000
    nb.add_imported_rows([({"topic": f"topic {i}"}, None) for i in range(n)], origin="real", source="t")
    nb.add_prompt_version("p", "Write about {{ topic }}.")
    calls = [0]
    real = runs.render

    def counting(*a, **kw):
        calls[0] += 1
        return real(*a, **kw)

    monkeypatch.setattr(runs, "render", counting)
    plan = prepare_run(nb, "p", samples=2, seed=3)
    assert calls[0] <= CHECK_ROWS  # planning checks the first rows only
    calls[0] = 0
    task = TaskState()

    def first(_record_id):
        task.request_interruption()  # stop at the first record: how much was rendered by then?

    run = execute_run(nb, create_run(nb, plan, fake.info), fake, task, on_record=first)
    assert run.status == "cancelled"
    assert 0 < calls[0] <= CHUNK

    # resumed, it makes exactly the missing samples, as an uninterrupted run of the same plan does
    calls[0] = 0
    missing = 2 * n - len(nb.done_slots(run.id))
    done = execute_run(nb, run, fake)
    assert done.status == "completed" and calls[0] == missing
    assert len(nb.done_slots(run.id)) == 2 * n
    again = execute_run(nb, create_run(nb, plan, fake.info), fake)
    a = {(r["row_index"], r["sample_index"]): r["output"] for r in runs.iter_run_records(nb, run.id)}
    b = {(r["row_index"], r["sample_index"]): r["output"] for r in runs.iter_run_records(nb, again.id)}
    assert a == b and len(a) == 2 * n


def test_a_template_error_on_a_later_row_stops_the_run_with_its_message(nb, fake):
    rows = [({"n": str(i + 1)}, None) for i in range(CHECK_ROWS + CHUNK + 10)]
    rows[-1] = ({"n": "0"}, None)  # only this row's prompt cannot be rendered
    nb.add_imported_rows(rows, origin="real", source="t")
    nb.add_prompt_version("p", "Share 100 apples among {{ n }}: {{ 100 // (n | int) }} each.")
    plan = prepare_run(nb, "p", samples=1, seed=1)
    with pytest.raises(StudioError, match="division") as info:
        execute_run(nb, create_run(nb, plan, fake.info), fake)
    assert not isinstance(info.value, Cancelled)
    run = nb.runs()[-1]
    assert run.status == "failed" and len(nb.done_slots(run.id)) >= CHUNK
