"""An import stages its rows a chunk per transaction (app.store.staged): nobody sees them until
the last one, another writer gets its turn in between, and a cancelled or killed import leaves
nothing anyone sees, removed by the next import."""

import json
import sqlite3
import subprocess
import sys

import pytest

from app.core.errors import Cancelled
from app.data.importer import already_imported, import_table
from app.store import staged
from app.store.notebook import Notebook
from app.store.search import search_records
from app.store.splits import real_records

CHUNK = 7
ROWS = 30  # five chunks


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(staged, "CHUNK_ROWS", CHUNK)
    monkeypatch.setattr(staged, "DISCARD_ROWS", 4)


def _table(tmp_path, n=ROWS, name="t.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps({"topic": f"topic {i}", "output": f"word{i} text {i}"}) + "\n"
                            for i in range(n)))
    return path


def _raw(nb):
    """Every row of the records table, staged ones included (what no reader of the studio asks for)."""
    with sqlite3.connect(nb.path) as c:
        return c.execute("SELECT id, role FROM records ORDER BY id").fetchall()


def test_staged_rows_are_invisible_until_the_end_and_other_writers_get_turns(nb, tmp_path, small_chunks):
    other = Notebook.open(nb.path)
    seen, edited = [], []
    other.add_imported_rows([({"topic": "mine"}, "my own text")], origin="real", source="x")
    existing = 1
    mine = other.records()[0]["id"]

    def progress(done, total):
        seen.append((done, total, other.count_records(None), len(_raw(nb))))
        assert search_records(other, "word1", role=None) == []  # staged text is in the search index, not found
        assert [r.id for r in real_records(other)] == [mine]  # the import is of real records too
        # another connection writes between two chunks without waiting: the lock is free
        with other.patience(0):
            other.edit_record(mine, "output", f"edited after {done}")
        edited.append(done)

    result = import_table(nb, _table(tmp_path), output_column="output", progress=progress)
    assert (result.inputs, result.samples) == (0, ROWS)
    assert [s[0] for s in seen] == [7, 14, 21, 28, 30] and {s[1] for s in seen} == {ROWS}
    assert all(s[2] == 1 for s in seen)  # only the record that was there before
    assert [s[3] for s in seen] == [1 + s[0] for s in seen]  # ...while the staged rows are in the file
    assert nb.count_records() == ROWS + existing and other.count_records() == ROWS + existing
    assert other.record(mine)["output"] == "edited after 30"
    assert {r[1] for r in _raw(nb)} == {"sample"}  # nothing left staged
    assert [r["id"] for r in search_records(nb, "word17")] == [r["id"] for r in nb.records()
                                                              if r["output"] == "word17 text 17"]
    assert already_imported(nb, tmp_path / "t.jsonl")["rows"] == ROWS
    other.close()


def test_a_cancelled_import_leaves_nothing(nb, tmp_path, small_chunks):
    def progress(done, total):
        if done >= 14:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        import_table(nb, _table(tmp_path), output_column="output", progress=progress)
    assert _raw(nb) == []
    assert already_imported(nb, tmp_path / "t.jsonl") is None
    assert import_table(nb, _table(tmp_path), output_column="output").samples == ROWS


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _stage_as(nb, owner, n):
    with sqlite3.connect(nb.path) as c:
        c.executemany("INSERT INTO records (role, variables, output, origin, status, source, created, updated) "
                      "VALUES (?, '{}', ?, 'real', 'new', 'killed.csv', 't', 't')",
                      [(f"{staged.PENDING}{owner}:sample", f"half {i}") for i in range(n)])


def test_the_next_import_removes_rows_a_killed_import_staged_but_not_a_running_ones(nb, tmp_path, small_chunks):
    fresh = Notebook.create(tmp_path / "fresh.db")
    import_table(fresh, _table(tmp_path), output_column="output")
    expected = [(r["id"], r["output"]) for r in fresh.records()]
    fresh.close()

    host = staged._host()
    _stage_as(nb, f"{host}/{_dead_pid()}.1", 10)  # killed mid-import
    assert nb.count_records(None) == 0 and nb.records(role=None) == []
    import_table(nb, _table(tmp_path), output_column="output")
    assert staged.pending_owners(nb) == set()
    # the killed import's rows had the largest ids: once removed, the import takes the same ids as in a fresh notebook
    assert [(r["id"], r["output"]) for r in nb.records()] == expected

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _stage_as(nb, f"{host}/{sleeper.pid}.3", 2)  # another program importing now
        _stage_as(nb, f"elsewhere/{sleeper.pid}.1", 1)  # another machine's (a shared folder): cannot tell
        import_table(nb, _table(tmp_path, 1, "one.jsonl"), output_column="output")
        assert staged.pending_owners(nb) == {f"{host}/{sleeper.pid}.3", f"elsewhere/{sleeper.pid}.1"}
    finally:
        sleeper.kill()
        sleeper.wait()
    import_table(nb, _table(tmp_path, 1, "two.jsonl"), output_column="output")  # now the sleeper is gone too
    assert staged.pending_owners(nb) == {f"elsewhere/{sleeper.pid}.1"}
    assert nb.count_records() == ROWS + 2


def test_preference_pairs_share_their_input_row_across_chunks(nb, tmp_path, small_chunks):
    path = tmp_path / "pairs.jsonl"
    # 12 pairs, 24 records in chunks of 7: the 4th pair's two sides fall into different chunks
    path.write_text("".join(json.dumps({"prompt": f"prompt {i % 4}", "chosen": f"good {i}", "rejected": f"bad {i}"})
                            + "\n" for i in range(12)))
    result = import_table(nb, path)
    assert result.samples == 24 and nb.count_records("input") == 12
    inputs = {r["output"]: r["input_record_id"] for r in nb.records()}
    assert all(inputs[f"good {i}"] == inputs[f"bad {i}"] for i in range(12))
    assert len(set(inputs.values())) == 12 and None not in inputs.values()
    assert {r[1] for r in _raw(nb)} == {"sample", "input"}


def test_the_import_job_says_its_progress_and_stops_when_asked(nb, tmp_path, small_chunks):
    from app.core.tasks import TaskState
    from app.jobs import import_job

    heard = []

    def on_progress(done, total, message):
        heard.append(message)
        if done >= 14:
            task.request_interruption()

    task = TaskState(on_progress)
    with pytest.raises(Cancelled):
        import_job(nb.path, _table(tmp_path), output_column="output", task=task)
    assert heard[1:] == ["7 of 30 rows in", "14 of 30 rows in"]
    assert _raw(nb) == [] and nb.count_records(None) == 0


def test_a_window_job_waits_out_another_programs_write_and_can_be_stopped_meanwhile(nb, tmp_path, monkeypatch):
    """A job's connection (app.jobs) waits past the store's one turn for another program's write,
    saying so in its progress; a stop asked while it waits ends it with nothing written."""
    import threading

    from app.core.tasks import TaskState
    from app.jobs import import_job
    from app.store.notebook import Notebook

    monkeypatch.setattr(Notebook, "BUSY_TIMEOUT_S", 0.1)
    other = sqlite3.connect(nb.path, isolation_level=None, check_same_thread=False)
    heard: list[str] = []
    task = TaskState(lambda d, t, m: heard.append(m))
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.8, other.execute, args=("ROLLBACK",)).start()
    import_job(nb.path, _table(tmp_path), output_column="output", task=task)
    waits = [m for m in heard if m.startswith("waiting for another program's write to nb.db (")]
    assert len(waits) >= 2 and heard[-1] == "done"
    assert nb.count_records(None) == 30

    other.execute("BEGIN IMMEDIATE")

    def stop_while_waiting(done, total, message):
        if message.startswith("waiting"):
            task.request_interruption()

    task = TaskState(stop_while_waiting)
    with pytest.raises(Cancelled):
        import_job(nb.path, _table(tmp_path, name="again.jsonl"), output_column="output", task=task)
    other.execute("ROLLBACK")
    other.close()
    assert nb.count_records(None) == 30 and staged.pending_owners(nb) == set()
