"""A cancel/progress handle passed into long work (after Orange's ``TaskState``).

Long work in ``app`` is a plain function that takes a :class:`TaskState`. The CLI
drives it with a tqdm bar; the window wraps it in a worker that forwards progress
as signals. Cancel is cooperative: the work checks the flag between tokens or
batches and stops cleanly, keeping everything already committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from app.core.errors import Cancelled

ProgressCallback = Callable[[int, int, str], None]


class TaskState:
    def __init__(self, on_progress: ProgressCallback | None = None) -> None:
        self._cancel = threading.Event()
        self._on_progress = on_progress
        self.done = 0
        self.total = 0
        self.message = ""

    def request_interruption(self) -> None:
        self._cancel.set()

    def is_interruption_requested(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the user asked to stop."""
        if self._cancel.is_set():
            raise Cancelled()

    def set_progress(self, done: int, total: int, message: str = "") -> None:
        self.done, self.total, self.message = done, total, message
        if self._on_progress is not None:
            self._on_progress(done, total, message)
