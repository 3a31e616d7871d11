"""The funnel, counted for the window's views without holding the UI thread.

On a small notebook the count takes milliseconds and is done at once (the views show the
notebook as it is the moment they ask). Beyond ``COUNT_HERE`` samples it runs on a background
runner (``app.jobs.funnel_job``: its own connection, the verdicts written there), and asks that
arrive while it counts are folded into one more count when it ends: a generation adding records
every second never queues a count per record. ``sig_counted(stages)`` carries each result; the
views that draw the funnel or filter by verdict listen to it.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from app.jobs import funnel_job
from app.quality.funnel import funnel
from app.store.notebook import Notebook
from widgets.job_runner import JobRunner

# up to this many records the funnel is counted at once (a few ms); beyond, on a runner
COUNT_HERE = 2000


class FunnelCounter(QObject):
    sig_counted = Signal(object)  # list of stage dicts (app.quality.funnel.funnel)
    sig_failed = Signal(str)

    def __init__(self, nb: Notebook, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.nb = nb
        self.stages: list[dict[str, Any]] | None = None  # the last count (None: none yet)
        self._again = False
        self.runner = JobRunner(self, background=True)
        self.runner.sig_finished.connect(self._on_counted)
        self.runner.sig_errored.connect(self._on_failed)

    @property
    def counting(self) -> bool:
        return self.runner.running

    def request(self) -> None:
        """Count the funnel as the notebook is now: at once when small, else on the runner."""
        if self.nb.closed:
            return
        if self.nb.count_records() <= COUNT_HERE:
            self._publish(funnel(self.nb))
        elif self.runner.running:
            self._again = True
        else:
            self.runner.start(funnel_job, self.nb.path)

    def set_notebook(self, nb: Notebook) -> None:
        self.nb, self.stages, self._again = nb, None, False
        self.runner.cancel()

    def _publish(self, stages: list[dict[str, Any]]) -> None:
        self.stages = stages
        self.sig_counted.emit(stages)

    def _on_counted(self, stages: object) -> None:
        if isinstance(stages, list):
            self._publish(stages)
        self._again_if_asked()

    def _on_failed(self, message: str) -> None:
        self.sig_failed.emit(message)
        self._again_if_asked()

    def _again_if_asked(self) -> None:
        if self._again and not self.nb.closed:
            self._again = False
            self.runner.start(funnel_job, self.nb.path)
