"""The CLI when the world gets in the way: a read-only file or folder, another program writing the
notebook, a full disk, a missing notebook, Ctrl-C. Each ends in one line on stderr and exit code 2
(130 for Ctrl-C), never a traceback, and leaves the notebook as it was.

Running as root, file permissions do not apply: there SQLite's own read-only switch
(``PRAGMA query_only``) stands in for a read-only file, and a hand-raised "unable to open database
file" for a folder nobody may write to. A full notebook is a real SQLite "database or disk is
full" (``PRAGMA max_page_count``), a full disk for an export a real ENOSPC from ``/dev/full``.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path

import pytest

from app.cli import main
from app.core.logs import log_path
from app.store.notebook import Notebook
from tests.conftest import REPO, SAMPLE

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def snapshot(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture
def book(tmp_path, topics_csv):
    path = tmp_path / "nb.db"
    assert main(["new", str(path)]) == 0
    assert main(["import", str(path), str(topics_csv)]) == 0
    assert main(["prompt", "add", str(path), "ticket", "--template", str(SAMPLE / "support_ticket.j2")]) == 0
    return path


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def with_pragmas(monkeypatch, *pragmas: str) -> None:
    """Every notebook connection the command opens runs ``pragmas`` once the store has set it up
    (SQLite's own switches for a read-only file, a full disk, a short wait for a lock)."""
    connect = Notebook._connect

    def tuned(*args, **kwargs):
        conn = connect(*args, **kwargs)
        for pragma in pragmas:
            conn.execute(pragma)
        return conn

    monkeypatch.setattr(Notebook, "_connect", staticmethod(tuned))


@pytest.fixture
def restore_modes():
    """Give write permission back (pytest must be able to remove tmp_path)."""
    changed: list[tuple[Path, int]] = []
    yield changed
    for p, mode in changed:
        p.chmod(mode)


def make_read_only(monkeypatch, restore_modes, *paths: Path) -> None:
    """``paths`` (files or folders) read-only: by permission, or as root (whom permissions do not
    stop) by SQLite's query_only, which fails every write as a read-only file does."""
    if AS_ROOT:
        with_pragmas(monkeypatch, "PRAGMA query_only = ON")
        return
    for p in paths:
        restore_modes.append((p, p.stat().st_mode))
        p.chmod(0o555 if p.is_dir() else 0o444)


# -- a missing notebook --------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["records", "NB"], ["generate", "NB", "--prompt", "ticket", "--backend", "fake"],
                                     ["validate", "NB"], ["export", "NB", "OUT"], ["prompt", "list", "NB"]])
def test_a_missing_notebook_is_one_line(tmp_path, capsys, command):
    missing, out = tmp_path / "missing.db", tmp_path / "out.jsonl"
    code, _, err = run_cli(capsys, *[{"NB": missing, "OUT": out}.get(a, a) for a in command])
    assert code == 2
    assert one_line(err) == f"error: no such notebook: {missing} (create one with: synth-studio new {missing})"
    assert not missing.exists() and not out.exists()


# -- read-only ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["prompt", "add", "NB", "other", "--template", SAMPLE / "support_ticket.j2"],
                                     ["generate", "NB", "--prompt", "ticket", "--backend", "fake", "--quiet"],
                                     ["import", "NB", SAMPLE / "support_topics.csv"]])
def test_a_read_only_notebook_file_is_one_line_and_still_reads(book, capsys, monkeypatch, restore_modes, command):
    before = snapshot(book)
    make_read_only(monkeypatch, restore_modes, book)
    code, _, err = run_cli(capsys, *[book if a == "NB" else a for a in command])
    assert code == 2
    assert one_line(err) == f"error: the notebook is read-only: {book} (you may not write to it, or to its folder)"
    assert run_cli(capsys, "records", book)[0] == 0  # reading it still works
    assert snapshot(book) == before


def test_a_new_notebook_in_a_folder_nobody_may_write_to(tmp_path, capsys, monkeypatch, restore_modes):
    folder = tmp_path / "locked"
    folder.mkdir()
    path = folder / "nb.db"
    if AS_ROOT:  # what SQLite says when it may not create the file
        def refuse(*a, **k):
            raise sqlite3.OperationalError("unable to open database file")
        monkeypatch.setattr(sqlite3, "connect", refuse)
    else:
        restore_modes.append((folder, folder.stat().st_mode))
        folder.chmod(0o555)
    code, _, err = run_cli(capsys, "new", path)
    assert code == 2
    line = one_line(err)
    assert line.startswith("error: cannot ") and str(path) in line
    if not AS_ROOT:
        assert line == f"error: cannot write {path}: you may not write to the folder {folder}"
    assert not path.exists()


def test_a_notebook_in_a_read_only_folder(book, capsys, monkeypatch, restore_modes):
    before = snapshot(book)
    make_read_only(monkeypatch, restore_modes, book.parent)
    code, _, err = run_cli(capsys, "prompt", "add", book, "other", "--template", SAMPLE / "support_ticket.j2")
    assert code == 2
    # (SQLite keeps its write-ahead log beside the notebook, so opening it for writing fails already)
    assert one_line(err) == f"error: the notebook is read-only: {book} (you may not write to it, or to its folder)"
    for p, mode in restore_modes:
        p.chmod(mode)
    restore_modes.clear()
    assert snapshot(book) == before


# -- another program writing ----------------------------------------------------------------------


@pytest.mark.parametrize("command", [["prompt", "add", "NB", "other", "--template", SAMPLE / "support_ticket.j2"],
                                     ["generate", "NB", "--prompt", "ticket", "--backend", "fake", "--quiet",
                                      "--limit-rows", "2"],
                                     ["edit", "NB", "1", "--status", "accepted"]])
def test_a_notebook_another_program_is_writing_is_waited_for_then_busy_then_works(book, capsys, monkeypatch,
                                                                                  command):
    """A command waits for another program's write, a line on stderr per turn (the store waits 10 s a
    turn and the CLI 300 s in all; the test, 0.05 s and 0.6 s), then gives up in one line with
    nothing changed; a writer that finishes meanwhile is waited out and the command works."""
    import importlib
    import threading

    cli_main = importlib.import_module("app.cli.main")

    monkeypatch.setattr(Notebook, "BUSY_TIMEOUT_S", 0.05, raising=False)
    monkeypatch.setattr(cli_main, "WRITE_WAIT_S", 0.6)
    with_pragmas(monkeypatch, "PRAGMA busy_timeout = 50")
    args = [book if a == "NB" else a for a in command]
    other = sqlite3.connect(book, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # what the window, or a second synth-studio, holds while it writes
        before = snapshot(book)
        started = time.monotonic()
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and time.monotonic() - started < 5
        *waits, line = err.strip().splitlines()
        assert waits and all(w.startswith(f"waiting for another program's write to {book.name} to finish (")
                             for w in waits), err
        assert line.startswith("error: the notebook is busy: another program") and book.name in line
        assert "try again" in line and "Traceback" not in err
        assert snapshot(book) == before
    finally:
        other.execute("ROLLBACK")
    monkeypatch.setattr(cli_main, "WRITE_WAIT_S", 30.0)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.5, other.execute, args=("ROLLBACK",)).start()  # their write ends: ours goes through
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    assert "waiting for another program's write" in err and "error" not in err
    other.close()


# -- a full disk ----------------------------------------------------------------------------------


def test_a_full_disk_under_the_notebook_keeps_what_was_committed(book, capsys, monkeypatch):
    conn = sqlite3.connect(book)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    # a few pages of room: the run starts, makes some samples, then the disk is full
    with_pragmas(monkeypatch, f"PRAGMA max_page_count = {pages + 6}")
    code, _, err = run_cli(capsys, "generate", book, "--prompt", "ticket", "--samples", 5, "--backend", "fake",
                           "--quiet")
    assert code == 2
    assert one_line(err) == f"error: cannot write {book}: the disk is full"
    monkeypatch.undo()
    with Notebook.open(book) as nb:  # still a sound notebook; what was committed is there
        assert nb.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        made = len(nb.records())
    assert 0 < made < 20 * 5 + 20
    assert run_cli(capsys, "generate", book, "--prompt", "ticket", "--samples", 5, "--backend", "fake", "--quiet",
                   "--resume")[0] == 0


def test_a_full_disk_under_an_export_leaves_no_file(book, capsys, monkeypatch, tmp_path):
    assert run_cli(capsys, "generate", book, "--prompt", "ticket", "--limit-rows", 2, "--backend", "fake",
                   "--quiet")[0] == 0
    out = tmp_path / "out.jsonl"
    if Path("/dev/full").exists():  # every write there fails with ENOSPC
        (tmp_path / "out.jsonl.partial").symlink_to("/dev/full")
    else:
        def full(*a, **k):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr("app.export.formats._write", full)
    code, _, err = run_cli(capsys, "export", book, out, "--all")
    assert code == 2
    assert one_line(err) == f"error: cannot write {out}: the disk is full"
    assert not out.exists() and not (tmp_path / "out.jsonl.partial").exists()


def test_a_full_disk_under_the_log_file_still_ends_in_one_line(book, capsys, monkeypatch):
    """The log file lives on the same disk: failing to log the error must not print logging's own traceback."""
    def full(self, record):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(RotatingFileHandler, "shouldRollover", full)
    code, _, err = run_cli(capsys, "export", book, book.parent / "out.xlsx")
    assert code == 2 and one_line(err).startswith("error: ")


# -- Ctrl-C ---------------------------------------------------------------------------------------


def test_ctrl_c_inside_a_command_is_one_line_and_130(book, capsys, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("app.export.formats.export", interrupted)
    code, _, err = run_cli(capsys, "export", book, book.parent / "out.jsonl")
    assert code == 130
    assert one_line(err) == "cancelled: everything finished before the stop is kept"


def test_ctrl_c_while_the_commands_load_is_one_line_and_130(capsys, monkeypatch, tmp_path):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(sys.modules["app.cli.main"], "stages", interrupted)  # app.cli.main is also the function
    code, _, err = run_cli(capsys, "records", tmp_path / "nb.db")
    assert code == 130 and one_line(err).startswith("cancelled: ")


def _synth_studio() -> list[str]:
    script = Path(sys.executable).parent / "synth-studio"
    return [str(script)] if script.exists() else [sys.executable, "-m", "widgets.launcher"]


def test_ctrl_c_stops_a_real_generation_within_two_seconds(book):
    env = {**os.environ, "SYNTH_STUDIO_FAKE_DELAY": "0.05"}
    started = time.monotonic()
    proc = subprocess.Popen([*_synth_studio(), "generate", str(book), "--prompt", "ticket", "--backend", "fake"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # the signal goes in once the run is generating (and at least ~1 s in), not while Python starts
        while _run_status(book) != "running" or time.monotonic() - started < 1.0:
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() - started < 60, "the run never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stopped = time.monotonic()
        _, err = proc.communicate(timeout=10)
        took = time.monotonic() - stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err.decode()
    assert proc.returncode == 130, text
    assert took < 2.0, f"took {took:.1f} s to stop"
    assert "Traceback" not in text
    assert text.strip().splitlines()[-1].startswith("run 1 cancelled: ")
    assert _run_status(book) == "cancelled"


def _run_status(path: Path) -> str | None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute("SELECT status FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()
    return row[0] if row else None


# -- a bug is not dressed up as a user error ------------------------------------------------------


def test_a_mistake_in_the_studios_own_sql_still_raises_and_is_logged(book, capsys, monkeypatch):
    def broken(*a, **k):
        raise sqlite3.OperationalError("no such column: made_up")

    monkeypatch.setattr("app.export.formats.export", broken)
    with pytest.raises(sqlite3.OperationalError, match="made_up"):
        main(["export", str(book), str(book.parent / "out.jsonl")])
    for h in logging.getLogger().handlers:
        h.flush()
    assert "synth-studio export failed" in log_path().read_text(encoding="utf-8")
