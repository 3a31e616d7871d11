"""One owner of the CPU cores at a time.

llama.cpp's threads spin-wait between operations, numba and BLAS use every core
too: two such jobs at once were measured ~100x slower each, not 2x. So every job
that uses all cores (a local model generating, judging or embedding; a UMAP fit)
runs inside :func:`hold_cores`. Within a process a lock serialises them; across
processes (the window and a CLI run in a terminal) an advisory file lock in the
cache folder does. A job that has to wait says so through its task's progress
("waiting for the cores: <what holds them>") and can be cancelled while it waits.
The same thread may nest holds (a job that calls another compute function).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypedDict

from app.core.errors import Cancelled
from app.core.paths import cache_dir

try:
    import fcntl
except ImportError:  # Windows: the in-process lock only
    fcntl = None  # type: ignore[assignment]

POLL_SECONDS = 0.1

_lock = threading.Lock()
_state = threading.local()


class _Holder(TypedDict):
    label: str  # what holds the cores ('' when none)
    since: float  # time.monotonic() when it took them


_holder: _Holder = {"label": "", "since": 0.0}


def current_holder() -> str:
    """What holds the cores in this process ('' when none)."""
    return _holder["label"] if _lock.locked() else ""


def _lock_path() -> str:
    return str(cache_dir() / "cores.lock")


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
    reported = False
    while not _lock.acquire(timeout=POLL_SECONDS):
        if _cancelled(task):
            raise Cancelled()
        if not reported:
            _report_wait(task, _holder["label"])
            reported = True
    fd = None
    try:
        if fcntl is not None:
            fd = os.open(_lock_path(), os.O_RDWR | os.O_CREAT, 0o644)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if _cancelled(task):
                        raise Cancelled() from None
                    if not reported:
                        try:
                            other = os.pread(fd, 200, 0).decode("utf-8", errors="replace").strip()
                        except OSError:
                            other = ""
                        _report_wait(task, f"{other} (another process)" if other else "another process")
                        reported = True
                    time.sleep(POLL_SECONDS)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{label} (pid {os.getpid()})".encode(), 0)
        _holder["label"], _holder["since"] = label, time.monotonic()
        _state.depth = 1
        yield
    finally:
        _state.depth = 0
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        _holder["label"] = ""
        _lock.release()
