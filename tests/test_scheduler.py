"""One compute job at a time: threads in a process and separate processes queue."""

import subprocess
import sys
import threading
import time

import pytest

from app.core.errors import Cancelled
from app.core.scheduler import current_holder, hold_cores
from app.core.tasks import TaskState


def test_two_threads_take_turns_and_the_waiter_says_why():
    order, messages = [], []
    started = threading.Event()

    def first():
        with hold_cores("generating"):
            started.set()
            order.append("a-in")
            time.sleep(0.4)
            order.append("a-out")

    t = threading.Thread(target=first)
    t.start()
    started.wait(5)
    task = TaskState(lambda d, n, m: messages.append(m))
    with hold_cores("judging", task):
        order.append("b-in")
        assert current_holder() == "judging"
    t.join()
    assert order == ["a-in", "a-out", "b-in"]
    assert messages and "waiting for the cores: generating" in messages[0]
    assert current_holder() == ""


def test_the_same_thread_may_nest():
    with hold_cores("outer"):
        with hold_cores("inner"):
            assert current_holder() == "outer"
    assert current_holder() == ""


def test_a_waiting_job_can_be_cancelled():
    release = threading.Event()
    held = threading.Event()

    def holder():
        with hold_cores("long job"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    task = TaskState()
    threading.Timer(0.3, task.request_interruption).start()
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        with hold_cores("second", task):
            pass
    assert time.monotonic() - t0 < 3
    release.set()
    t.join()


def test_another_process_holding_the_cores_makes_us_wait(tmp_path, monkeypatch):
    code = (
        "import time, sys\n"
        "from app.core.scheduler import hold_cores\n"
        "with hold_cores('cli generate'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(1.0)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    messages = []
    t0 = time.monotonic()
    with hold_cores("window judge", TaskState(lambda d, n, m: messages.append(m))):
        waited = time.monotonic() - t0
    proc.wait(10)
    assert waited > 0.5
    assert messages and "cli generate" in messages[0] and "another process" in messages[0]


def test_the_cross_process_lock_is_a_filelock_and_names_its_holder():
    """The lock is filelock's (flock on POSIX, LockFileEx on Windows): any holder of it makes a job wait."""
    from filelock import FileLock

    from app.core.scheduler import _holder_path, _lock_path

    with hold_cores("map"):
        assert _holder_path().read_text().startswith("map (pid ")
        with pytest.raises(TimeoutError):  # filelock.Timeout: the file really is locked
            FileLock(_lock_path()).acquire(timeout=0)
    assert _holder_path().read_text() == ""

    other = FileLock(_lock_path())
    other.acquire()
    messages, entered = [], threading.Event()

    def job():
        with hold_cores("window judge", TaskState(lambda d, n, m: messages.append(m))):
            entered.set()

    t = threading.Thread(target=job)
    t.start()
    assert not entered.wait(0.5)
    assert messages == ["waiting for the cores: another process"]
    other.release()
    assert entered.wait(5)
    t.join()
