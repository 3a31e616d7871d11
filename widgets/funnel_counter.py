"""Counts over every record, made for the window's views without holding the UI thread.

On a small notebook a count takes milliseconds and is done at once (the views show the notebook
as it is the moment they ask). Beyond ``COUNT_HERE`` records it runs on a background runner (the
job opens its own connection), and asks that arrive while it counts are folded into one more
count when it ends: a generation adding records every second never queues a count per record.
An ask when nothing was written since the last count (SQLite's ``data_version`` and this
connection's own changes are the same) gets that count again without counting.
``sig_counted(result)`` carries each result.

:class:`Recount` is the general form (a function of the notebook, and the job running it by path);
:class:`FunnelCounter` counts the funnel (its stages and the kept/dropped menu; the verdicts
are written by the count), :class:`SummaryCounter` the window's side summary.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.core.reader import apart_from
from app.jobs import FunnelCount, WindowSummary, funnel_count, funnel_job, summary_job, window_summary
from app.store.notebook import Notebook
from widgets.job_runner import JobRunner

# up to this many records a count is made at once (a few ms); beyond, on a runner
COUNT_HERE = 2000


class Recount(QObject):
    sig_counted = Signal(object)  # what ``count`` / ``job`` returned
    sig_failed = Signal(str)

    def __init__(self, nb: Notebook, count: Callable[[Notebook], Any], job: Callable[..., Any],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.nb, self.count, self.job = nb, count, job
        self.result: Any = None  # the last count (None: none yet)
        self._again = False
        self._counting: tuple[Any, ...] | None = None  # the notebook's state when the running count began
        self._counted: tuple[Any, ...] | None = None  # ... and when the last result's count began
        self.runner = JobRunner(self, background=True)
        self.runner.sig_finished.connect(self._on_counted)
        self.runner.sig_errored.connect(self._on_failed)

    @property
    def counting(self) -> bool:
        return self.runner.running

    def request(self) -> None:
        """Count as the notebook is now: at once when small, else on the runner."""
        if self.nb.closed:
            return
        records = self.nb.count_records(None)
        if records <= COUNT_HERE:
            self._publish(self.count(self.nb))
        elif self.runner.running:
            self._again = self._again or self._state() != self._counting
        elif self.result is not None and self._state() == self._counted:
            self._publish(self.result)  # nothing written since: the same count
        else:
            self._start(records)

    def _state(self) -> tuple[Any, ...]:
        """What a count depends on: the notebook's commits (others', then ours) and the job's arguments."""
        job = self.job
        what = (job.func, job.args, tuple(sorted(job.keywords.items()))) if isinstance(job, partial) else job
        return (*self.nb.change_mark(), what)

    def _start(self, records: int) -> None:
        self._counting = self._state()
        # a big notebook's in the reader process: not on a thread that shares Python's lock with the window
        self.runner.start(apart_from(records, self.job), self.nb.path)

    def set_notebook(self, nb: Notebook) -> None:
        self.nb, self.result, self._again = nb, None, False
        self._counting = self._counted = None
        self.runner.cancel()

    def _publish(self, result: Any) -> None:
        self.result = result
        self.sig_counted.emit(result)

    def _on_counted(self, result: object) -> None:
        if result is not None:
            self._counted = self._counting
            self._publish(result)
        self._again_if_asked()

    def _on_failed(self, message: str) -> None:
        self.sig_failed.emit(message)
        self._again_if_asked()

    def _again_if_asked(self) -> None:
        if self._again and not self.nb.closed:
            self._again = False
            self._start(self.nb.count_records(None))


class FunnelCounter(Recount):
    """The funnel's stages and the verdict menu's counts (:class:`app.jobs.FunnelCount`)."""

    result: FunnelCount | None

    def __init__(self, nb: Notebook, parent: QObject | None = None) -> None:
        super().__init__(nb, funnel_count, funnel_job, parent)

    @property
    def stages(self) -> list[dict[str, Any]] | None:
        return None if self.result is None else self.result.stages


class SummaryCounter(Recount):
    """The window's summary: records by role and status, runs, prompts, review progress
    (:class:`app.jobs.WindowSummary`)."""

    result: WindowSummary | None

    def __init__(self, nb: Notebook, parent: QObject | None = None) -> None:
        super().__init__(nb, window_summary, summary_job, parent)
