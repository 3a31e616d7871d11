"""A warm-up never delays the person's work: it runs as a child process at the lowest priority
only while the cores are free, and is stopped the moment a job takes them (a local model, the
map) or the window starts one; the generation starts at once."""

from __future__ import annotations

import sys
import threading
import time

from app.core.scheduler import cores_free, hold_cores, run_yielding, yield_background

SLEEPER = [sys.executable, "-c", "import time; time.sleep(30)"]


def _in_thread(fn):
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    return t, out


def _wait_running(timeout=10.0):
    from app.core import scheduler

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with scheduler._background_lock:
            if any(p.poll() is None for p in scheduler._background):
                return True
        time.sleep(0.02)
    return False


def test_a_job_taking_the_cores_stops_the_warm_up_at_once():
    t, out = _in_thread(lambda: run_yielding(SLEEPER))
    assert _wait_running()
    t0 = time.monotonic()
    with hold_cores("a generation"):
        waited = time.monotonic() - t0
    t.join(5)
    assert out == ["yielded"]
    assert waited < 1.0  # the job never waited for the warm-up


def test_a_warm_up_does_not_start_while_a_job_holds_the_cores():
    with hold_cores("a generation"):
        assert not cores_free()
        assert run_yielding(SLEEPER) == "skipped"
    assert cores_free()


def test_a_finished_or_failed_warm_up_says_so():
    assert run_yielding([sys.executable, "-c", "pass"]) == "done"
    assert run_yielding([sys.executable, "-c", "raise SystemExit('no umap here')"]).startswith("failed: no umap")
    assert yield_background() == 0  # nothing left behind


def test_the_window_starting_a_generation_stops_the_warm_up_and_starts_within_a_second(qtbot, nb, topics_csv):
    """The window's background map warm-up, then Generate: the warm-up child is gone and the first
    record arrives well within a second (the fake backend makes records at once)."""
    from app.data.importer import import_file
    from app.jobs import generate_job
    from widgets.job_runner import JobRunner

    import_file(nb, topics_csv)
    nb.add_prompt_version("t", "A ticket about {{ topic }}.")
    warm = JobRunner(background=True)
    warm.start(lambda *, task, worker: run_yielding(SLEEPER, task))
    assert _wait_running()
    gen = JobRunner()
    made: list[float] = []
    gen.sig_partial.connect(lambda _e: made.append(time.monotonic()))
    t0 = time.monotonic()
    with qtbot.waitSignal(warm.sig_finished, timeout=5000) as warm_end:
        gen.start(generate_job, nb.path, "t", limit_rows=2, backend="fake", compute=True)
    assert warm_end.args == ["yielded"]
    qtbot.waitUntil(lambda: bool(made), timeout=5000)
    assert made[0] - t0 < 1.0
    qtbot.waitUntil(lambda: not gen.running, timeout=5000)
