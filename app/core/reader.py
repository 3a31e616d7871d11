"""The window's counts over a big notebook, read in one child process beside it.

A count over every record (the funnel, the window's summary, the Quality tab's metrics, the review
queue's order, an axis's extremes) is pure Python for a second or more at 20k records. On a worker
thread of the window it shares Python's interpreter lock with the UI thread, and the lock is not
fair: with two such threads busy, the UI thread was measured waiting 80 ms and more for it, again
and again (every call from Qt into Python, a paint or a slot, has to take it back). So from
``APART_AT`` records the window's counts run here instead: :func:`read_apart` sends the job (a
plain, importable ``app`` function and its arguments, pickled) to one long-lived child process,
which opens the notebook by path like any job and sends the result back. The worker thread that
asked waits on the pipe, holding no lock. One count at a time (they queue on the pipe), at a
lower priority, so the child never takes both cores from the window.

A child that dies (killed, out of memory) is started again and the count asked of it once more (a
count is a read: asking twice is safe); a count that loses its child twice fails with one line. Progress and cancellation stay in the window: a count nobody wants
any more finishes in the child and its result is dropped.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from functools import partial
from typing import IO, Any

from app.core.errors import StudioError
from app.core.tasks import TaskState

APART_AT = 5000  # records from which the window's counts are read in the child process
CHILD = "from app.core.reader import _child; _child()"
NICE = 10  # the child's lower priority (POSIX)
_HEADER = struct.Struct("<Q")


def _send(stream: IO[bytes], message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError("the pipe closed")
    size = _HEADER.unpack(head)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the pipe closed mid-message")
    return pickle.loads(data)  # noqa: S301 (our own child's reply, over our own pipe)


class Reader:
    """One child process and the lock that gives it one count at a time."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``fn(*args, task=<a fresh TaskState>, worker=None, **kwargs)`` in the child; its result,
        or its exception raised here (a StudioError as it is, anything else as a RuntimeError that
        carries the child's traceback)."""
        with self._lock:
            for attempt in (1, 2):  # a child that died since the last count is replaced, and asked again once
                proc = self._running()
                assert proc.stdin is not None and proc.stdout is not None
                try:
                    _send(proc.stdin, (fn, args, kwargs))
                    ok, payload = _receive(proc.stdout)
                    break
                except (OSError, EOFError, pickle.UnpicklingError) as exc:
                    self._stop()
                    if attempt == 2:
                        raise StudioError(f"the process that counts for the window stopped twice ({exc}); "
                                          "the next count starts a new one") from exc
        if ok:
            return payload
        raise payload

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, env=dict(os.environ))
        return self._proc

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        with self._lock:
            self._stop()


_reader = Reader()


def reader() -> Reader:
    return _reader


def apart_from(records: int, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` as a job runner should run it on a notebook of ``records`` records: in the reader
    process from APART_AT, else as it is (on a thread)."""
    return partial(read_apart, fn) if records >= APART_AT else fn


def read_apart(fn: Callable[..., Any], *args: Any, task: TaskState, worker: Any = None, **kwargs: Any) -> Any:
    """For a job runner: ``fn(*args, **kwargs)`` in the reader process (see the module docstring)."""
    task.check()
    result = _reader.call(fn, args, kwargs)
    task.check()
    return result


def _child() -> None:
    """The child's loop: read a call, run it, send back ``(True, result)`` or ``(False, exception)``."""
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # whatever a job prints must not break the pipe's messages
    if hasattr(os, "nice"):  # background work: the window's own threads come first for the cores
        os.nice(NICE)
    while True:
        try:
            fn, args, kwargs = _receive(inp)
        except EOFError:  # the window is gone
            return
        reply: tuple[bool, Any]
        try:
            reply = (True, fn(*args, task=TaskState(), worker=None, **kwargs))
        except StudioError as exc:
            reply = (False, exc)
        except Exception as exc:  # noqa: BLE001 (a bug: its traceback goes to the window, which shows it)
            reply = (False, RuntimeError(f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"))
        try:
            _send(out, reply)
        except (BrokenPipeError, ValueError):  # the window is gone
            return
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            _send(out, (False, RuntimeError(f"a count's result could not be sent back: {exc}")))
