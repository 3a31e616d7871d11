"""The notebook file under stress: broken or foreign files, SQL it did not write, copies, two writers."""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from app.core.errors import NotebookBusy, NotebookError
from app.store.notebook import Notebook


def _notebook(path: Path, n: int = 50) -> Path:
    with Notebook.create(path) as nb:
        nb.add_imported_rows([({"i": i}, f"text {i} " * 20) for i in range(n)], origin="real", source="s")
    return path


def _refused(path: Path, match: str) -> None:
    """Opening ``path`` fails with ``match`` and leaves the folder exactly as it was, byte for byte."""
    folder = path.parent
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    with pytest.raises(NotebookError, match=match):
        Notebook.open(path)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


# -- broken or foreign files ------------------------------------------------------------------------

def test_random_bytes_are_refused_untouched(tmp_path):
    path = tmp_path / "noise.db"
    path.write_bytes(os.urandom(8192))
    _refused(path, "not a Synth Studio notebook \\(not an SQLite database\\)")


def test_a_truncated_notebook_is_refused_untouched(tmp_path):
    whole = _notebook(tmp_path / "whole.db").read_bytes()
    for size in (4096, len(whole) // 2):
        cut = tmp_path / "cut" / f"cut{size}.db"
        cut.parent.mkdir(exist_ok=True)
        cut.write_bytes(whole[:size])
        _refused(cut, "is damaged or incomplete \\(database disk image is malformed\\); .*copy it again")


def test_an_sqlite_database_that_is_not_a_notebook_is_refused_untouched(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()
    _refused(path, "is an SQLite database but not a Synth Studio notebook")  # not even switched to WAL


def test_a_notebook_from_a_newer_studio_is_refused_untouched(tmp_path):
    path = _notebook(tmp_path / "future.db")
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO _migrations VALUES ('999_from_the_future', 'x')")
    conn.execute("DROP VIEW records_with_scores")  # migrating would make it again: nothing may be written
    conn.commit()
    conn.close()
    _refused(path, "future.db was made by a newer Synth Studio \\(migration 999_from_the_future\\); "
                   "update to open it")


def test_a_folder_and_a_missing_path(tmp_path):
    folder = tmp_path / "looks.db"
    folder.mkdir()
    with pytest.raises(NotebookError, match="is a folder, not a notebook file"):
        Notebook.open(folder)
    with pytest.raises(NotebookError, match="is a folder; choose a file name"):
        Notebook.create(folder)
    assert folder.is_dir() and not any(folder.iterdir())
    missing = tmp_path / "missing.db"
    with pytest.raises(NotebookError, match="no such notebook: .*create one with"):
        Notebook.open(missing)
    assert not missing.exists()  # open never creates; create does
    Notebook.create(missing).close()
    Notebook.open(missing).close()


# -- SQL the studio did not write -----------------------------------------------------------------

def test_a_notebook_with_someone_elses_trigger_is_refused_untouched(tmp_path):
    path = _notebook(tmp_path / "gift.db")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TRIGGER wipe AFTER INSERT ON records BEGIN DELETE FROM records; END")
    conn.close()
    _refused(path, "gift.db has trigger wipe, which Synth Studio did not make")


def test_a_studio_trigger_rewritten_or_an_extra_view_is_refused(tmp_path):
    path = _notebook(tmp_path / "gift.db")
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER records_ai")  # same name as the studio's, other SQL
    conn.execute("CREATE TRIGGER records_ai AFTER INSERT ON records BEGIN DELETE FROM edits; END")
    conn.execute("CREATE VIEW peek AS SELECT output FROM records")
    conn.close()
    _refused(path, "has trigger records_ai, view peek, which Synth Studio did not make")


def test_the_studios_own_triggers_and_scores_view_open(tmp_path):
    from app.store.scores import Score, save_scores

    path = _notebook(tmp_path / "ours.db")
    with Notebook.open(path) as nb:
        rid = nb.records()[0]["id"]
        save_scores(nb, [Score(rid, "it's \"odd\"", "scorer", 1.0, None)], None)  # a name that needs quoting
        assert "it''s" in nb.conn.execute("SELECT sql FROM sqlite_master WHERE type = 'view'").fetchone()[0]
    Notebook.open(path).close()
    conn = sqlite3.connect(path)  # the view gains a clause the studio never writes
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'view'").fetchone()[0]
    conn.execute("DROP VIEW records_with_scores")
    conn.execute(sql.replace("WHERE r.role = 'sample'", "WHERE r.role = 'sample' AND length(r.output) > 0"))
    conn.close()
    _refused(path, "has view records_with_scores, which")


# -- one file whenever a person could copy it ------------------------------------------------------

def test_closing_leaves_one_complete_file_even_with_a_reader_open(tmp_path):
    path = tmp_path / "nb.db"
    nb = Notebook.create(path)
    reader = nb.reader()  # another connection keeps SQLite from folding the log in on its own
    reader.execute("SELECT COUNT(*) FROM records").fetchone()
    nb.add_imported_rows([({"i": i}, f"text {i}") for i in range(30)], origin="real", source="s")
    assert path.with_name("nb.db-wal").stat().st_size > 0
    nb.close()
    wal = path.with_name("nb.db-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    alone = tmp_path / "alone" / "nb.db"  # the .db copied by hand, without its -wal/-shm
    alone.parent.mkdir()
    shutil.copyfile(path, alone)
    with Notebook.open(alone) as copy:
        assert copy.count_records() == 30
    reader.close()


def test_a_reader_closing_tells_no_one_that_the_notebook_changed(tmp_path):
    """Closing a connection that only read must not checkpoint: emptying the log moves every other
    connection's data_version, and the window took that for a write and counted everything again,
    every two seconds, for ever. A connection that wrote still folds the log in on close."""
    window = Notebook.open(_notebook(tmp_path / "nb.db"))
    seen = window.data_version()
    for _ in range(3):  # the window's counts, each on its own connection
        with Notebook.open(window.path) as count:
            count.count_records(None)
    assert window.data_version() == seen
    with Notebook.open(window.path) as writer:
        writer.add_imported_rows([({}, "new")], origin="real", source="s")
    assert window.data_version() != seen
    wal = window.path.with_name("nb.db-wal")
    assert wal.stat().st_size == 0  # the writer's close folded its log in
    window.close()


def test_save_copy_while_the_notebook_stays_open(tmp_path):
    nb = Notebook.open(_notebook(tmp_path / "nb.db"))
    nb.add_imported_rows([({"late": 1}, "still in the log")], origin="real", source="s")
    dest = tmp_path / "out" / "copy.db"
    dest.parent.mkdir()
    assert nb.save_copy(dest) == dest
    assert sorted(p.name for p in dest.parent.iterdir()) == ["copy.db"]  # one file, no temp or -wal left
    with Notebook.open(dest) as copy:
        assert copy.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert [r["output"] for r in copy.records()] == [r["output"] for r in nb.records()]
    nb.add_imported_rows([({"after": 1}, "after the copy")], origin="real", source="s")  # still open, still writes
    assert nb.count_records() == 52

    with pytest.raises(NotebookError, match="already exists; choose another name"):
        nb.save_copy(dest)
    nb.save_copy(dest, overwrite=True)
    with Notebook.open(dest) as copy:
        assert copy.count_records() == 52
    with pytest.raises(NotebookError, match="is this notebook"):
        nb.save_copy(nb.path, overwrite=True)
    with pytest.raises(NotebookError, match="is this notebook"):
        nb.save_copy(tmp_path / "out" / ".." / "nb.db", overwrite=True)
    nb.close()


def test_file_save_a_copy_in_the_window(qtbot, nb, monkeypatch, tmp_path):
    pytest.importorskip("PySide6")
    from PySide6.QtWidgets import QFileDialog

    from widgets.main_window import MainWindow

    nb.add_imported_rows([({"i": 1}, "one")], origin="real", source="s")
    win = MainWindow(nb)
    qtbot.addWidget(win)
    action = next(a for m in win.menuBar().actions() if m.menu() is not None
                  for a in m.menu().actions() if a.text() == "Save a &copy…")
    asked: list[str] = []
    dest = tmp_path / "shared" / "for a friend.db"
    dest.parent.mkdir()

    def answer(_parent, _title, start, _filter):
        asked.append(start)
        return str(dest), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", answer)
    action.trigger()
    assert Path(asked[0]).parent == nb.path.parent  # the dialog starts beside the notebook
    assert win.statusBar().currentMessage() == f"saved a copy of nb.db to {dest}"
    with Notebook.open(dest) as copy:
        assert copy.count_records() == 1


# -- two writers --------------------------------------------------------------------------------------

def test_a_write_waits_for_another_writer_then_says_the_notebook_is_busy(tmp_path, monkeypatch):
    path = tmp_path / "nb.db"
    Notebook.create(path).close()
    monkeypatch.setattr(Notebook, "BUSY_TIMEOUT_S", 0.2)
    nb = Notebook.open(path)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # another program
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(NotebookBusy, match="the notebook is busy: another program .* is writing .*nb.db; try again"):
        nb.set_meta("title", "mine")
    assert not nb.conn.in_transaction
    other.execute("COMMIT")

    monkeypatch.setattr(Notebook, "BUSY_TIMEOUT_S", 10.0)
    nb.close()
    nb = Notebook.open(path)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO notebook_meta (key, value) VALUES ('theirs', '1')")
    committer = threading.Timer(0.3, other.execute, args=("COMMIT",))
    committer.start()
    nb.set_meta("title", "mine")  # waits for their commit instead of failing at once
    committer.join()
    assert (nb.get_meta("title"), nb.get_meta("theirs")) == ("mine", 1)
    nb.close()
    other.close()


def test_a_long_validate_leaves_the_notebook_writable_while_it_checks(tmp_path):
    """Scores made as they stream (validate) are staged off the notebook's lock: another program's
    write in the middle of the checking goes through at once; the scores arrive whole at the end,
    and a validate stopped part-way leaves no step and no score."""
    from app.core.errors import Cancelled
    from app.store.scores import Score, save_step_scores

    path = _notebook(tmp_path / "nb.db", n=40)
    nb = Notebook.open(path)
    ids = [r[0] for r in nb.conn.execute("SELECT id FROM records ORDER BY id")]
    other = sqlite3.connect(path, isolation_level=None, timeout=0)  # another program that does not wait at all
    wrote_between = []

    def checked(stop_at: int | None = None):
        for k, rid in enumerate(ids):
            if k == len(ids) // 2:
                other.execute("BEGIN IMMEDIATE")  # raises "database is locked" if validate held the lock
                other.execute("UPDATE notebook_meta SET value = '\"theirs\"' WHERE key = 'title'")
                other.execute("INSERT OR REPLACE INTO notebook_meta (key, value) VALUES ('between', '1')")
                other.execute("COMMIT")
                wrote_between.append(k)
            if stop_at is not None and k == stop_at:
                raise Cancelled("stopped")
            yield Score(rid, "validator:long", "validator", float(k), k % 3 != 0, "")

    step = save_step_scores(nb, "validate", "rules", {"rules": []}, checked())
    assert wrote_between == [len(ids) // 2]
    assert nb.get_meta("between") == 1
    got = nb.conn.execute("SELECT COUNT(*), MIN(step_id), MAX(step_id) FROM scores WHERE name = 'validator:long'").fetchone()
    assert tuple(got) == (len(ids), step, step)
    assert nb.conn.execute("SELECT COUNT(*) FROM sqlite_temp_master").fetchone()[0] == 0  # nothing staged is left

    steps = nb.conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
    with pytest.raises(Cancelled):
        save_step_scores(nb, "validate", "rules", {"rules": []}, checked(stop_at=30))
    assert nb.conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0] == steps
    assert nb.conn.execute("SELECT COUNT(*), MAX(step_id) FROM scores").fetchone()[:] == (len(ids), step)
    assert not nb.conn.in_transaction
    nb.close()
    other.close()


def test_opening_the_notebook_again_keeps_this_process_locks(tmp_path):
    """Reading the file's header through a second descriptor, and closing it, dropped every POSIX
    lock this process held on the notebook (SQLite's included): another process could then take
    it out of WAL mode, or checkpoint, under the window's open connection, and the notebook read
    as malformed. A notebook open here is not read around SQLite again."""
    import subprocess
    import sys

    path = _notebook(tmp_path / "nb.db")
    with Notebook.open(path) as nb:
        nb.conn.execute("SELECT COUNT(*) FROM records").fetchone()
        Notebook.open(path).close()  # what every job on a window thread does
        other = subprocess.run(
            [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=0)\n"
             "try: print(c.execute('PRAGMA journal_mode=DELETE').fetchone()[0])\n"
             "except sqlite3.OperationalError as e: print(e)", str(path)],
            capture_output=True, text=True, check=True)
        assert other.stdout.strip() == "database is locked"  # not "delete": the window still holds it
        assert nb.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # and a file not open here is still checked before SQLite touches it
    (tmp_path / "junk.db").write_bytes(b"not a notebook at all, just bytes")
    _refused(tmp_path / "junk.db", "not an SQLite database")


def test_a_cli_or_job_write_waits_out_a_long_write_and_says_so(tmp_path, monkeypatch):
    """Past one busy turn a write keeps waiting when its notebook was told to (the CLI, a job), telling
    its listener each turn; the window's default (one turn) and a patient write still give up; a
    listener that raises stops the wait with nothing written."""
    from app.core.errors import Cancelled
    from app.store.notebook import waiting_for_writers

    path = tmp_path / "nb.db"
    Notebook.create(path).close()
    monkeypatch.setattr(Notebook, "BUSY_TIMEOUT_S", 0.2)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # another program
    heard: list[tuple[str, float]] = []
    with waiting_for_writers(30.0, lambda p, s: heard.append((p.name, s))):
        nb = Notebook.open(path)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO notebook_meta (key, value) VALUES ('theirs', '1')")
    committer = threading.Timer(1.0, other.execute, args=("COMMIT",))  # five turns of 0.2 s
    committer.start()
    nb.set_meta("title", "mine")
    committer.join()
    assert (nb.get_meta("title"), nb.get_meta("theirs")) == ("mine", 1)
    assert len(heard) >= 3 and {name for name, _ in heard} == {"nb.db"}
    assert [s for _, s in heard] == sorted(s for _, s in heard) and heard[-1][1] >= 0.5

    other.execute("BEGIN IMMEDIATE")
    with nb.patience(0.2), pytest.raises(NotebookBusy):  # the window's edit: its own short wait
        nb.set_meta("title", "patient")
    window = Notebook.open(path)  # opened outside: one turn, as the window's own connection
    assert window.write_wait_s is None and window.on_wait is None
    with pytest.raises(NotebookBusy):
        window.set_meta("title", "window")

    def stop(_path, _seconds):
        raise Cancelled("stopped")

    nb.wait_for_writers(30.0, stop)
    with pytest.raises(Cancelled):
        nb.set_meta("title", "stopped")
    assert not nb.conn.in_transaction
    other.execute("COMMIT")
    assert nb.get_meta("title") == "mine"
    for c in (nb, window):
        c.close()
    other.close()
