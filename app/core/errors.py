"""Errors a user can act on.

Anything raised as a :class:`StudioError` is shown to the user as one clear line
(the CLI prints it and exits non-zero; the window shows it in the cell). Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class StudioError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class NotebookError(StudioError):
    """The notebook file is missing, not SQLite, or not a Synth Studio notebook."""


class NotebookBusy(NotebookError):
    """Another program kept the notebook's write lock for longer than the studio waits for it."""


class TemplateError(StudioError):
    """A prompt template that does not parse or does not render."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}" if line else message)


class ModelError(StudioError):
    """A model file that is missing, not GGUF, truncated, or fails to load."""


class ImportDataError(StudioError):
    """A data file that cannot be read as a table."""


class Cancelled(Exception):
    """Raised inside long work when the user asked it to stop."""
