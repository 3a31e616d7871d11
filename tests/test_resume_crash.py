"""A generation killed with SIGKILL mid-run loses nothing committed, and --resume finishes it."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

from app.cli import main
from tests.conftest import REPO, SAMPLE


def count(path):
    conn = sqlite3.connect(path, timeout=10)
    try:
        return conn.execute("SELECT COUNT(*) FROM records WHERE role = 'sample'").fetchone()[0]
    finally:
        conn.close()


def test_sigkill_mid_run_then_resume(tmp_path, topics_csv, capsys):
    book = tmp_path / "nb.db"
    assert main(["new", str(book)]) == 0
    assert main(["import", str(book), str(topics_csv)]) == 0
    assert main(["prompt", "add", str(book), "ticket", "--template", str(SAMPLE / "support_ticket.j2")]) == 0
    env = {**os.environ, "SYNTH_STUDIO_FAKE_DELAY": "0.01"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "widgets.launcher", "generate", str(book), "--prompt", "ticket",
         "--samples", "3", "--backend", "fake", "--quiet"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while count(book) < 8:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "generation made no progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    conn = sqlite3.connect(book)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    kept = conn.execute("SELECT id, output FROM records WHERE role = 'sample'").fetchall()
    status = conn.execute("SELECT status FROM runs").fetchall()
    conn.close()
    assert 8 <= len(kept) < 60
    assert status == [("running",)]  # the process died without a chance to say anything

    capsys.readouterr()
    assert main(["generate", str(book), "--prompt", "ticket", "--backend", "fake", "--resume", "--quiet"]) == 0
    conn = sqlite3.connect(book)
    rows = conn.execute("SELECT row_index, sample_index FROM records WHERE role = 'sample'").fetchall()
    assert len(rows) == 60 and len(set(rows)) == 60  # 20 rows x 3 samples, no duplicates
    still = dict(conn.execute("SELECT id, output FROM records WHERE role = 'sample'").fetchall())
    assert all(still[i] == out for i, out in kept)  # nothing committed before the kill changed
    assert conn.execute("SELECT status FROM runs").fetchall() == [("completed",)]
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
