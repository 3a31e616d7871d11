"""Errors a user can act on.

Anything raised as a :class:`StudioError` is shown to the user as one clear line
(the CLI prints it and exits non-zero; the window shows it in the cell). Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path


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


# -- problems with the disk, permissions or another program ------------------------------------

# What SQLite says for each problem, for an error that carries no code (one raised by hand, or by a wrapper).
_SQLITE_MESSAGES = {
    "database is locked": sqlite3.SQLITE_BUSY, "database table is locked": sqlite3.SQLITE_LOCKED,
    "database schema is locked": sqlite3.SQLITE_LOCKED, "readonly database": sqlite3.SQLITE_READONLY,
    "disk i/o error": sqlite3.SQLITE_IOERR, "database disk image is malformed": sqlite3.SQLITE_CORRUPT,
    "database or disk is full": sqlite3.SQLITE_FULL, "unable to open database file": sqlite3.SQLITE_CANTOPEN,
    "file is not a database": sqlite3.SQLITE_NOTADB, "access permission denied": sqlite3.SQLITE_PERM,
}


def _sqlite_problem(exc: sqlite3.Error) -> int | None:
    """SQLite's primary result code for ``exc`` (its extended code's low byte, else read from its
    message), or None."""
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF
    text = str(exc).lower()
    return next((c for words, c in _SQLITE_MESSAGES.items() if words in text), None)


def environment_problem(exc: BaseException, notebook: str | None = None, out: str | Path | None = None) -> str | None:
    """One line for a problem a person fixes outside the studio (a full disk, a read-only file or
    folder, another program writing the notebook), or None when ``exc`` is not one (a bug).

    ``notebook`` (and ``out``, a file being written) name what the work was on: SQLite's errors do
    not say which file they are about. The CLI, the store's writes and the window's jobs say it alike.
    """
    nb = str(notebook) if notebook else "the notebook"
    if isinstance(exc, sqlite3.Error):
        code = _sqlite_problem(exc)
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            # as the store says it (app.store.notebook.busy_error) when the wait runs out in a transaction
            return (f"the notebook is busy: another program (a second Synth Studio, a job still running, or a tool "
                    f"such as sqlite3 or Datasette) is writing {nb}; try again when it has finished")
        if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM):
            return f"the notebook is read-only: {nb} (you may not write to it, or to its folder)"
        if code == sqlite3.SQLITE_FULL:
            return f"cannot write {nb}: the disk is full"
        if code == sqlite3.SQLITE_IOERR:
            return f"cannot read or write {nb}: the disk reported an I/O error ({exc})"
        if code == sqlite3.SQLITE_CANTOPEN:
            folder = Path(nb).parent if notebook else None
            if folder is not None and folder.is_dir() and not os.access(folder, os.W_OK):
                return f"cannot write {nb}: you may not write to the folder {folder}"
            return f"cannot open {nb}: {exc} (does its folder exist, and may you write to it?)"
        if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            return f"{nb} is damaged or not a notebook ({exc}); open a copy you kept"
        return None
    if isinstance(exc, OSError):
        path = exc.filename or out or notebook
        where = f" {path}" if path else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"cannot write{where}: the disk is full"
        if exc.errno == errno.EROFS:
            return f"cannot write{where}: the disk is read-only"
        if exc.errno in (errno.EACCES, errno.EPERM):
            if notebook and path and Path(path) == Path(notebook):
                return f"the notebook is read-only: {nb} (you may not write to it, or to its folder)"
            return f"permission denied:{where}"
        return f"{exc.strerror or exc}:{where}" if path else f"{exc.strerror or exc}"
    return None
