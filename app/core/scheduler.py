"""One owner of the CPU cores at a time.

llama.cpp's threads spin-wait between operations, numba and BLAS use every core
too: two such jobs at once were measured ~100x slower each, not 2x. So every job
that uses all cores (a local model generating, judging or embedding; a UMAP fit)
runs inside :func:`hold_cores`. Within a process a lock serialises them; across
processes (the window and a CLI run in a terminal) a file lock in the cache folder
does (``filelock``: flock on Linux and macOS, LockFileEx on Windows), and the holder
writes what it is beside it, so a waiting process can say what it waits for. A job that has to wait says so through its task's progress
("waiting for the cores: <what holds them>") and can be cancelled while it waits.
The same thread may nest holds (a job that calls another compute function).

Background work nobody waits for (a warm-up) never holds the cores: it runs as a child process
at the lowest priority through :func:`run_yielding`, only while the cores are free, and it is
stopped the moment a job takes them (:func:`hold_cores`) or the window starts one
(:func:`yield_background`), so the person's work never waits for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict

from filelock import FileLock, Timeout

from app.core.errors import Cancelled
from app.core.paths import cache_dir

POLL_SECONDS = 0.1

_lock = threading.Lock()
_state = threading.local()


class _Holder(TypedDict):
    label: str  # what holds the cores ('' when none)
    since: float  # time.monotonic() when it took them


_holder: _Holder = {"label": "", "since": 0.0}


_background: set[subprocess.Popen[bytes]] = set()
_background_lock = threading.Lock()


def cores_free() -> bool:
    """No job holds the cores, in this process or another."""
    if _lock.locked():
        return False
    probe = FileLock(_lock_path())
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return False
    probe.release()
    return True


def yield_background() -> int:
    """Stop every background child process now (a job is about to use the cores); how many were stopped."""
    with _background_lock:
        procs = [p for p in _background if p.poll() is None]
    for p in procs:
        p.kill()
    return len(procs)


def run_yielding(args: Sequence[str], task: Any = None, *, env: dict[str, str] | None = None) -> str:
    """Run ``args`` as a background child process at the lowest priority while no job holds the
    cores: "done", "skipped" (the cores were busy), "yielded" (a job took the cores, the child was
    stopped) or "failed: ..." (it exited with an error; a warm-up that fails only leaves the first
    real use slow). Cancelling ``task`` stops it too."""
    if not cores_free():
        return "skipped"

    def lowest_priority() -> None:  # runs in the child before it starts
        try:
            os.nice(19)
        except OSError:
            pass

    proc = subprocess.Popen(list(args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            preexec_fn=lowest_priority if sys.platform != "win32" else None)
    with _background_lock:
        _background.add(proc)
    try:
        while proc.poll() is None:
            if _cancelled(task) or not cores_free():
                proc.kill()
                proc.wait()
                return "yielded"
            time.sleep(POLL_SECONDS)
        if proc.returncode < 0:
            return "yielded"
        if proc.returncode:
            err = (proc.stderr.read() if proc.stderr else b"").decode("utf-8", "replace").strip().splitlines()
            return f"failed: {err[-1] if err else proc.returncode}"
        return "done"
    finally:
        with _background_lock:
            _background.discard(proc)
        if proc.stderr:
            proc.stderr.close()


def current_holder() -> str:
    """What holds the cores in this process ('' when none)."""
    return _holder["label"] if _lock.locked() else ""


def _lock_path() -> str:
    return str(cache_dir() / "cores.lock")


def _holder_path() -> Path:
    # Not the lock file itself: Windows forbids reading a locked region, and older filelock
    # releases truncate the lock file on every attempt to take it.
    return cache_dir() / "cores.holder"


def _cancelled(task: Any) -> bool:
    return task is not None and task.is_interruption_requested()


def _report_wait(task: Any, holder: str) -> None:
    if task is not None and hasattr(task, "set_progress"):
        task.set_progress(0, 0, f"waiting for the cores: {holder or 'another job'}")


@contextmanager
def hold_cores(label: str, task: Any = None) -> Iterator[None]:
    """Run the body as the only compute job on this machine (see the module doc)."""
    depth = getattr(_state, "depth", 0)
    if depth:
        _state.depth = depth + 1
        try:
            yield
        finally:
            _state.depth -= 1
        return
    yield_background()  # a warm-up steps aside at once
    reported = False
    while not _lock.acquire(timeout=POLL_SECONDS):
        if _cancelled(task):
            raise Cancelled()
        if not reported:
            _report_wait(task, _holder["label"])
            reported = True
    file_lock: FileLock | None = None
    try:
        file_lock = FileLock(_lock_path())
        while True:
            try:
                file_lock.acquire(timeout=0)
                break
            except Timeout:
                if _cancelled(task):
                    raise Cancelled() from None
                if not reported:
                    try:
                        other = _holder_path().read_text(encoding="utf-8", errors="replace").strip()
                    except OSError:
                        other = ""
                    _report_wait(task, f"{other} (another process)" if other else "another process")
                    reported = True
                time.sleep(POLL_SECONDS)
        try:
            _holder_path().write_text(f"{label} (pid {os.getpid()})", encoding="utf-8")
        except OSError:  # only the waiting message loses its detail
            pass
        _holder["label"], _holder["since"] = label, time.monotonic()
        _state.depth = 1
        yield
    finally:
        _state.depth = 0
        if file_lock is not None and file_lock.is_locked:
            try:
                _holder_path().write_text("", encoding="utf-8")
            except OSError:
                pass
            file_lock.release()
        _holder["label"] = ""
        _lock.release()


# -- how many cores the rest of the machine leaves us ----------------------------------------------

def _machine_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine since boot, in clock ticks (Linux only)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def _own_jiffies() -> int | None:
    """User + system CPU time of this process (all its threads), in clock ticks."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            after_name = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(after_name[11]) + int(after_name[12])  # utime, stime (fields 14 and 15)


class FreeCores:
    """How many cores other processes leave this one, measured over the last ``interval`` seconds.

    llama.cpp's threads spin-wait for each other: with one busy process beside it on 2 cores, a
    2-thread decode ran at 0.30x its speed alone and a 1-thread decode at 0.56x. So the backends
    ask :meth:`threads` between decode steps and use as many threads as there are cores nobody
    else is using (at least one, at most ``cores``). Off Linux it always answers ``cores``.
    """

    def __init__(self, cores: int, interval: float = 0.5) -> None:
        self.cores = max(1, cores)
        self.interval = interval
        self.machine_cores = os.cpu_count() or self.cores
        self._last: tuple[float, tuple[int, int], int] | None = None
        self._threads = self.cores
        self._mark()

    def _mark(self) -> None:
        machine, own = _machine_jiffies(), _own_jiffies()
        self._last = (time.monotonic(), machine, own) if machine is not None and own is not None else None

    def threads(self) -> int:
        """The thread count to use now (re-measured at most once per ``interval``)."""
        if self._last is None:
            return self._threads
        t0, (busy0, total0), own0 = self._last
        if time.monotonic() - t0 < self.interval:
            return self._threads
        machine, own = _machine_jiffies(), _own_jiffies()
        if machine is None or own is None:
            return self._threads
        busy, total = machine
        if total > total0:
            others = max(0.0, (busy - busy0) - (own - own0)) / (total - total0) * self.machine_cores
            free = self.machine_cores - others
            self._threads = max(1, min(self.cores, int(free + 0.5)))
        self._last = (time.monotonic(), machine, own)
        return self._threads
