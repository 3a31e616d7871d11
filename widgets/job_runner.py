"""The one way a view runs long work off the UI thread.

Modelled on Orange3's ``ConcurrentWidgetMixin`` (``start()`` cancels and disconnects
the previous task) and superqt's ``create_worker``, written for this studio:

A view owns one :class:`JobRunner` (``self.runner = JobRunner(self)``).
``runner.start(fn, *args, compute=..., **kwargs)`` runs a plain ``app`` function on
a ``QThreadPool`` as ``fn(*args, task=TaskState, worker=emitter, **kwargs)``; the
function reports progress through the task and typed partial results
(``app.jobs.RecordMade`` ...) through ``worker.emit``. The runner turns those into
its signals, delivered on the UI thread:

    sig_started()                   the job began (after waiting in its lane's queue)
    sig_progress(done, total, msg)  the job called ``task.set_progress``
    sig_partial(event)              the job emitted a typed event
    sig_finished(result)            the job returned ``result``
    sig_errored(message)            it raised: a StudioError as its one line, anything
                                    else with its traceback for the user to report
    sig_cancelled()                 it stopped because it was asked to (it raised
                                    ``Cancelled``, or was cancelled before it began)
    sig_done()                      the runner has no job any more (after one of the three above)

Exactly one of finished/errored/cancelled ends a job. ``start()`` while a job runs
asks that job to stop (cooperatively, ``TaskState.request_interruption``; one still
waiting in its queue is taken out and never runs) and forgets it: nothing it emits
afterwards reaches the view, which is checked on the UI thread by job identity.
Jobs never touch widgets, and nothing is ever terminated.

Lanes: ``compute=True`` (model calls, embeddings, maps) queues on the one
single-thread compute pool, so two such jobs never run at once (llama.cpp threads
spin-wait; two jobs that both take every core run far slower than one after the
other); :attr:`JobRunner.queued` says when a job waits behind another view's.
``compute=False`` (imports, exports, light steps) runs at once on the global pool.
"""

from __future__ import annotations

import gc
import logging
import os
import sqlite3
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import (
    QCoreApplication,
    QObject,
    Qt,
    QThread,
    QThreadPool,
    QTimer,
    Signal,
    Slot,
)

from app.core.errors import Cancelled, StudioError, environment_problem
from app.core.scheduler import yield_background
from app.core.tasks import TaskState

_lock = threading.Lock()
_compute_in_flight = 0  # compute jobs in the compute lane, running or waiting (guarded by _lock)
_relay: _Relay | None = None

log = logging.getLogger(__name__)

_STARTED, _PROGRESS, _PARTIAL = "started", "progress", "partial"
PROGRESS_S = 0.05  # the most often a job's progress reaches its view
_FINISHED, _ERRORED, _CANCELLED = "finished", "errored", "cancelled"


_lanes: dict[str, QThreadPool] = {}


def one_thread_lane(name: str) -> QThreadPool:
    """A pool of one thread, the same for every caller that names it: its jobs run one after the other."""
    lane = _lanes.get(name)
    if lane is None:
        lane = _lanes[name] = QThreadPool()
        lane.setMaxThreadCount(1)
    return lane


def compute_pool() -> QThreadPool:
    """The one lane for work that uses every core (model calls, embeddings, maps)."""
    return one_thread_lane("compute")


def compute_busy() -> bool:
    """A compute job is running or waiting in the compute lane."""
    with _lock:
        return _compute_in_flight > 0


class _Relay(QObject):
    """Carries every job's events from pool threads to the UI thread.

    It lives as long as the application, so a job that outlives its view (a window
    closed mid-run) never emits on a deleted object; events for a runner that is gone
    are dropped here.
    """

    sig_event = Signal(object, str, object)  # job, kind, payload

    def __init__(self) -> None:
        super().__init__()
        # queued even when emitted on the UI thread: cancelling a queued job reports later, not inside cancel()
        self.sig_event.connect(self._on_event, Qt.ConnectionType.QueuedConnection)

    @Slot(object, str, object)
    def _on_event(self, job: _Job, kind: str, payload: Any) -> None:
        runner = job.runner()
        if runner is not None and shiboken6.isValid(runner):
            runner._on_job_event(job, kind, payload)


class _Collector(QObject):
    """Python's cyclic garbage collection, made on the UI thread only.

    Left to itself, a collection runs on whichever thread happens to allocate: a job's or a chart's
    worker thread. A widget that became garbage (a window a test dropped, a dialog closed) is then
    destroyed on that thread, which Qt does not allow: the application's list of widgets is left
    dangling and the next walk over it crashes (seen, now and then, in QApplication.allWidgets).
    So automatic collection is off once the first job runner exists, and this timer collects, on
    the UI thread, whenever Python's own thresholds say it would have."""

    def __init__(self) -> None:
        super().__init__()
        gc.disable()
        self.timer = QTimer(self)
        self.timer.setInterval(COLLECT_MS)
        self.timer.timeout.connect(self.collect)
        self.timer.start()

    last_full = 0.0

    @Slot()
    def collect(self) -> None:
        t0, t1, t2 = gc.get_threshold()
        c0, c1, c2 = gc.get_count()
        if c0 <= t0:
            return
        # a full collection walks every object: at most every FULL_S (Python's own rule is as sparing)
        if c2 > t2 and time.monotonic() - self.last_full > FULL_S:
            self.last_full = time.monotonic()
            gc.collect(2)
        else:
            gc.collect(1 if c1 > t1 else 0)


COLLECT_MS = 200
FULL_S = 10.0
_collector: _Collector | None = None


def _get_relay() -> _Relay:
    global _relay, _collector
    if _relay is None:
        app = QCoreApplication.instance()
        if app is None or shiboken6.getCppPointer(QThread.currentThread()) != shiboken6.getCppPointer(app.thread()):
            raise RuntimeError("create JobRunners on the UI thread, after the QApplication")
        _relay = _Relay()
        _collector = _Collector()
    return _relay


class _Job:
    """One call of a job function, handed to a pool as a callable (the pool lets go of it
    once it ran; a QRunnable kept by Python would be kept by PySide's pool for good).
    It is also the ``worker`` the function emits its events through."""

    def __init__(self, runner: JobRunner, fn: Callable[..., Any], args: tuple, kwargs: dict, compute: bool) -> None:
        self.runner = weakref.ref(runner)
        self.fn, self.args, self.kwargs, self.compute = fn, args, kwargs, compute
        self.relay = _get_relay()
        self.task = TaskState(self._progress)
        self._last_progress = (0.0, "")  # when the view was last told, and with which message
        self.behind = False  # it was queued behind another compute job when started
        self._state = "waiting"  # -> "began" (its pool thread) or "taken" (cancelled first), whichever comes first
        self._state_lock = threading.Lock()

    @property
    def began(self) -> bool:
        return self._state == "began"

    def claim(self, state: str) -> bool:
        """Move a waiting job to ``state``; False if it has already begun or been taken."""
        with self._state_lock:
            if self._state != "waiting":
                return False
            self._state = state
            return True

    def take(self) -> bool:
        """Cancel the job before it begins; True if it will never run (the pool then finds it taken)."""
        global _compute_in_flight
        if not self.claim("taken"):
            return False
        if self.compute:
            with _lock:
                _compute_in_flight -= 1
        return True

    def _progress(self, done: int, total: int, message: str) -> None:
        """At most one progress event per PROGRESS_S reaches the UI thread (plus a new message and the
        last step): a judge over 20k records reports 120k steps, which held the window for seconds."""
        now = time.monotonic()
        last, last_message = self._last_progress
        if now - last < PROGRESS_S and message == last_message and not (total and done >= total):
            return
        self._last_progress = (now, message)
        self.relay.sig_event.emit(self, _PROGRESS, (done, total, message))

    def emit(self, event: Any) -> None:
        """For the job function: hand a typed partial result to the view (e.g. ``RecordMade``)."""
        self.relay.sig_event.emit(self, _PARTIAL, event)

    def _notebook(self) -> str | None:
        """The notebook the job works on: a job's first argument is its path, by the jobs' convention."""
        first = self.args[0] if self.args else None
        return str(first) if isinstance(first, (str, os.PathLike)) else None

    def __call__(self) -> None:  # on a pool thread
        global _compute_in_flight
        if not self.claim("began"):
            return  # taken out before it began: nothing runs, nothing is reported
        kind, payload = _CANCELLED, None
        try:
            if not self.task.is_interruption_requested():
                self.relay.sig_event.emit(self, _STARTED, None)
                kind, payload = _FINISHED, self.fn(*self.args, task=self.task, worker=self, **self.kwargs)
        except Cancelled:  # the user asked it to stop: not an error
            kind, payload = _CANCELLED, None
        except StudioError as exc:
            kind, payload = _ERRORED, str(exc)
        except Exception as exc:  # noqa: BLE001 (a bug: keep the traceback for the user to report)
            # a full disk or a file it may not write is said in one line (as the CLI says it), not a bug
            problem = environment_problem(exc, notebook=self._notebook()) if isinstance(exc, (OSError, sqlite3.Error)) else None
            kind, payload = _ERRORED, problem or f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"
        finally:
            if self.compute:  # before the end is reported, so a job started in reply does not count this one
                with _lock:
                    _compute_in_flight -= 1
        try:
            self.relay.sig_event.emit(self, kind, payload)
        except RuntimeError:  # the application is gone (quit while a background job ran): nobody to tell
            pass


class JobRunner(QObject):
    """Runs one job at a time for the view that owns it; see the module docstring."""

    sig_started = Signal()
    sig_progress = Signal(int, int, str)
    sig_partial = Signal(object)
    sig_finished = Signal(object)
    sig_errored = Signal(str)
    sig_cancelled = Signal()
    sig_done = Signal()

    def __init__(self, parent: QObject | None = None, *, background: bool = False,
                 pool: QThreadPool | None = None) -> None:
        super().__init__(parent)
        _get_relay()
        self._job: _Job | None = None
        self.background = background  # work nobody waits for (a warm-up): closing the window does not ask about it
        self.pool = pool  # a lane of its own for light jobs (the charts' renders); None: the global pool

    # -- state ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """A job was started and has not ended yet (it may still be queued)."""
        return self._job is not None

    @property
    def queued(self) -> bool:
        """The job waits in the compute lane behind another job that is using the cores."""
        job = self._job
        return job is not None and job.behind and not job.began

    @property
    def cancelling(self) -> bool:
        """Cancel was asked for the current job, which has not stopped yet."""
        return self._job is not None and self._job.task.is_interruption_requested()

    # -- control --------------------------------------------------------------------------

    def start(self, fn: Callable[..., Any], *args: Any, compute: bool = False, **kwargs: Any) -> None:
        """Run ``fn(*args, task=..., worker=..., **kwargs)``, replacing any job this runner still has."""
        global _compute_in_flight
        old, self._job = self._job, None
        if old is not None:  # forgotten: whatever it reports from now on is dropped
            old.task.request_interruption()
            old.take()
        job = _Job(self, fn, args, kwargs, compute)
        if compute:
            yield_background()  # a warm-up steps aside the moment the person starts work
            with _lock:
                job.behind = _compute_in_flight > 0
                _compute_in_flight += 1
        self._job = job
        (compute_pool() if compute else self.pool or QThreadPool.globalInstance()).start(job)

    def cancel(self) -> None:
        """Ask the job to stop; it reports how it ended (one still queued reports cancelled and never runs)."""
        job = self._job
        if job is None:
            return
        job.task.request_interruption()
        if job.take():
            job.relay.sig_event.emit(job, _CANCELLED, None)  # queued: arrives after cancel() returns

    def _on_job_event(self, job: _Job, kind: str, payload: Any) -> None:
        if job is not self._job:
            return  # an older job's late event: the view has moved on
        if kind == _STARTED:
            self.sig_started.emit()
        elif kind == _PROGRESS:
            self.sig_progress.emit(*payload)
        elif kind == _PARTIAL:
            self.sig_partial.emit(payload)
        else:
            self._job = None  # idle before the view hears the end, so its handler may start the next job
            if kind == _FINISHED:
                self.sig_finished.emit(payload)
            elif kind == _ERRORED:  # every failed job reaches the log file (app.core.logs), whichever view ran it
                log.error("%s failed: %s", getattr(job.fn, "__qualname__", repr(job.fn)), payload)
                self.sig_errored.emit(payload)
            else:
                self.sig_cancelled.emit()
            if self._job is None:
                self.sig_done.emit()
