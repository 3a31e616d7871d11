"""Long record writes in short transactions: an import of any size holds the notebook's write lock
for a chunk at a time, never for the whole file.

Each chunk is committed under a *pending* role (``pending:<owner>:sample``) that no reader asks
for: every query of records names its role (``input`` or ``sample``). A reader, the window or
another program sees none of the rows until :meth:`StagedRecords.publish` gives them their real
role and remembers the file, in one transaction: the import is whole or absent, as before, and
between chunks another writer (an edit in the window, a generation) gets its turn.

The owner is this machine and process. A process killed while it staged leaves pending rows that
nobody can see; :func:`discard_abandoned` removes those of owners that are no longer running
before the next import, so a rerun ends as an uninterrupted import does (the same ids, too:
records take the id after the largest one).
"""

from __future__ import annotations

import itertools
import os
import platform
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.store.notebook import Notebook

PENDING = "pending:"
ROLES = ("input", "sample")
# rows per transaction while staging: 10k short records hold the lock for 0.2-0.5 s on a 2-core machine
CHUNK_ROWS = 10_000
# rows per transaction while an abandoned import's rows are removed (each removal updates the search index)
DISCARD_ROWS = 20_000

Progress = Callable[[int], None]  # rows staged so far; may raise to stop (a cancelled job)

_serial = itertools.count(1)
_active: set[str] = set()  # owners of this process staging now


def _host() -> str:
    return platform.node().replace(":", "_") or "localhost"


class StagedRecords:
    """One import's rows, written chunk by chunk, invisible until published."""

    def __init__(self, nb: Notebook) -> None:
        self.nb = nb
        self.owner = f"{_host()}/{os.getpid()}.{next(_serial)}"
        _active.add(self.owner)

    def role(self, role: str) -> str:
        """What a row of ``role`` is stored as until :meth:`publish`."""
        return _stored(self.owner, role)

    @contextmanager
    def chunk(self, n: int) -> Iterator[sqlite3.Connection]:
        """A transaction for about ``n`` more rows (the search index is filled in one pass from
        ``BULK_RECORDS`` on)."""
        with self.nb.transaction() as c, self.nb.records_in_bulk(c, n):
            yield c

    def publish(self, imported: dict[str, Any] | None) -> None:
        """Every staged row takes its real role, and the file is remembered, in one transaction."""
        with self.nb.transaction() as c:
            for role in ROLES:
                c.execute("UPDATE records SET role = ? WHERE role = ?", (role, self.role(role)))
            if imported is not None:
                self.nb.remember_import(c, imported)
        _active.discard(self.owner)

    def discard(self) -> None:
        """Remove what was staged (a failed or cancelled import), a chunk per transaction."""
        _delete_pending(self.nb, self.owner)
        _active.discard(self.owner)


@contextmanager
def staging(nb: Notebook) -> Iterator[StagedRecords]:
    """A new import's staging, after the rows of abandoned ones are removed; the body stages its
    chunks and publishes. A failure (a stop, a busy notebook) removes what it staged and goes on up."""
    discard_abandoned(nb)
    staged = StagedRecords(nb)
    try:
        yield staged
    except BaseException:
        with suppress(Exception):  # what stays is invisible, and removed by the next import
            staged.discard()
        raise


def staged_chunks(rows: Iterable[Any], progress: Progress | None = None) -> Iterator[list[Any]]:
    """``rows`` in lists of CHUNK_ROWS, reporting the rows handed out before each next list."""
    it = iter(rows)
    done = 0
    while chunk := list(itertools.islice(it, CHUNK_ROWS)):
        yield chunk
        done += len(chunk)
        if progress is not None:
            progress(done)


def pending_owners(nb: Notebook) -> set[str]:
    """Owners with staged rows in the notebook (read through the role index: cheap when none)."""
    rows = nb.conn.execute("SELECT DISTINCT role FROM records WHERE role >= ? AND role < ?",
                           (PENDING, PENDING[:-1] + chr(ord(PENDING[-1]) + 1))).fetchall()
    return {r[0][len(PENDING):].rpartition(":")[0] for r in rows}


def _running(owner: str) -> bool:
    """Whether the process that staged under ``owner`` may still be running (another machine's: assume so)."""
    host, _, rest = owner.rpartition("/")
    if host != _host():
        return True
    try:
        pid = int(rest.split(".")[0])
    except ValueError:
        return False
    if pid == os.getpid():
        return owner in _active  # this process's own import, staging now in another thread
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: someone else's running process
        return True
    return True


def discard_abandoned(nb: Notebook) -> int:
    """Remove the staged rows of imports whose process is gone (killed, crashed); returns how many."""
    removed = 0
    for owner in pending_owners(nb):
        if not _running(owner):
            removed += _delete_pending(nb, owner)
    return removed


def _stored(owner: str, role: str) -> str:
    return f"{PENDING}{owner}:{role}"


def _delete_pending(nb: Notebook, owner: str) -> int:
    removed = 0
    # samples first: they may point at a staged input row (input_record_id)
    for role in ("sample", "input"):
        stored = _stored(owner, role)
        while True:
            with nb.transaction() as c:
                n = c.execute("DELETE FROM records WHERE id IN (SELECT id FROM records WHERE role = ? LIMIT ?)",
                              (stored, DISCARD_ROWS)).rowcount
            removed += n
            if n < DISCARD_ROWS:
                break
    return removed
