"""Long work off the UI thread (after superqt's ``create_worker`` / napari's ``thread_worker``).

A :class:`Worker` runs a plain function from ``app`` on ``QThreadPool`` with a
:class:`~app.tasks.TaskState`, and reports through signals: progress, yielded
items, errors (a :class:`StudioError` as its one-line message), finished. It
never touches widgets; cancel is cooperative via the task's flag.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from app.errors import Cancelled, StudioError
from app.tasks import TaskState


class WorkerSignals(QObject):
    sig_started = Signal()
    sig_progress = Signal(int, int, str)
    sig_yielded = Signal(object)
    sig_errored = Signal(str)
    sig_finished = Signal(object)


class Worker(QRunnable):
    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the owner keeps it to cancel it
        self.signals = WorkerSignals()
        self.task = TaskState(lambda d, t, m: self.signals.sig_progress.emit(d, t, m))
        self._fn, self._args, self._kwargs = fn, args, kwargs

    def cancel(self) -> None:
        self.task.request_interruption()

    def emit(self, item: Any) -> None:
        """For the function to hand partial results to the UI (e.g. each new record id)."""
        self.signals.sig_yielded.emit(item)

    def run(self) -> None:
        self.signals.sig_started.emit()
        try:
            result = self._fn(*self._args, task=self.task, worker=self, **self._kwargs)
        except Cancelled:  # the user asked it to stop: not an error
            self.signals.sig_finished.emit(None)
            return
        except StudioError as exc:
            self.signals.sig_errored.emit(str(exc))
            self.signals.sig_finished.emit(None)
            return
        except Exception as exc:  # a bug: keep the traceback for the user to report
            self.signals.sig_errored.emit(f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
            self.signals.sig_finished.emit(None)
            return
        self.signals.sig_finished.emit(result)


_compute_pool: QThreadPool | None = None


def compute_pool() -> QThreadPool:
    """The one lane for work that uses every core (model calls, embeddings, maps).

    llama.cpp threads spin-wait: two such jobs at once run far slower than one after
    the other, so compute jobs queue here, one at a time, in the order they were asked for.
    """
    global _compute_pool
    if _compute_pool is None:
        _compute_pool = QThreadPool()
        _compute_pool.setMaxThreadCount(1)
    return _compute_pool


def compute_busy() -> bool:
    return compute_pool().activeThreadCount() > 0


def start(worker: Worker, compute: bool = False) -> Worker:
    """Run ``worker``; ``compute=True`` queues it behind any other compute job."""
    (compute_pool() if compute else QThreadPool.globalInstance()).start(worker)
    return worker
