"""The window's counts read in a child process (app.core.reader): same results, errors in words,
a dead child replaced."""

from __future__ import annotations

import json
import os
import signal

import pytest

from app.core.errors import NotebookError
from app.core.reader import read_apart, reader
from app.core.tasks import TaskState
from app.jobs import funnel_job, quality_summary_job, summary_job


@pytest.fixture
def filled(nb):
    nb.add_imported_rows([({"i": i}, f"sample {i} about invoices and refunds " * (1 + i % 4)) for i in range(60)],
                         origin="synthetic", source="t")
    return nb


def test_a_count_read_apart_equals_the_count_made_here(filled):
    here = summary_job(filled.path, task=TaskState())
    apart = read_apart(summary_job, filled.path, task=TaskState())
    assert apart == here
    assert read_apart(funnel_job, filled.path, task=TaskState()) == funnel_job(filled.path, task=TaskState())
    pid = reader().pid
    assert pid is not None and pid != os.getpid()  # it ran in the child, which stays for the next count
    read_apart(summary_job, filled.path, task=TaskState())
    assert reader().pid == pid


def test_errors_come_back_in_words(tmp_path):
    with pytest.raises(NotebookError, match="no such notebook"):  # the studio's own error, as it is
        read_apart(summary_job, tmp_path / "missing.db", task=TaskState())
    with pytest.raises(RuntimeError, match="TypeError") as bug:  # a bug: with the child's traceback
        read_apart(json.loads, "{}", task=TaskState())
    assert "Traceback" in str(bug.value)


def test_a_dead_child_is_replaced(filled):
    read_apart(summary_job, filled.path, task=TaskState())
    pid = reader().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    got = read_apart(summary_job, filled.path, task=TaskState())
    assert got == summary_job(filled.path, task=TaskState())
    assert reader().pid not in (None, pid)


def test_a_cancelled_count_is_not_sent(filled):
    task = TaskState()
    task.request_interruption()
    from app.core.errors import Cancelled

    with pytest.raises(Cancelled):
        read_apart(summary_job, filled.path, task=task)


def test_the_quality_view_counts_a_big_notebook_apart(qtbot, filled, monkeypatch):
    """From APART_AT records the Quality tab's numbers come from the reader process, the same as here."""
    pytest.importorskip("PySide6")
    import app.core.reader
    from widgets.quality_view import QualityView

    monkeypatch.setattr(app.core.reader, "APART_AT", 10)
    reader().close()
    view = QualityView(filled)
    qtbot.addWidget(view)
    qtbot.waitUntil(lambda: bool(view.stages), timeout=30000)
    assert reader().pid is not None  # the child was started for it
    here = quality_summary_job(filled.path, task=TaskState())
    assert view.stages == here.stages
    assert [e.name for e in view.criteria.entries] == [e.name for e in here.criteria]

