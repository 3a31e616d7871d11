"""The notebook: one SQLite file that is the single source of truth.

One writer connection (guarded by a lock, so a worker thread and the UI thread
can both ask for writes), WAL mode so readers never block it, and every record
committed the moment it exists. Every change to a record's text or status goes
through :meth:`Notebook.edit_record`, which writes the edit history in the same
transaction as the change.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.errors import NotebookBusy, NotebookError, StudioError, environment_problem
from app.store.migrations import applied, foreign_schema, migrate, newer_studio_message, now, unknown_migrations

SQLITE_MAGIC = b"SQLite format 3\x00"
RECORD_STATUSES = ("new", "accepted", "rejected", "flagged")
ORIGINS = ("synthetic", "real", "human-edited")
EDITABLE_FIELDS = ("output", "variables", "status")
TEXT_FIELDS = ("output", "variables")
IMPORTED_FILES = "imported_files"  # notebook_meta key: [{sha256, source, rows, at}], oldest first
# From this many new records on, an insert indexes their text for search in one pass after the
# rows are in, instead of one trigger call per row (1M short records: 34 s instead of 78 s).
BULK_RECORDS = 5_000
VISIBLE_ROLES = "('input', 'sample')"  # app.store.staged: an import's rows have another role until it is done
_json_text = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(x, ensure_ascii=False), made once


@dataclass(frozen=True)
class PromptVersion:
    id: int
    name: str
    version: int
    template: str
    hash: str
    parent_id: int | None
    created: str

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


@dataclass(frozen=True)
class Run:
    id: int
    prompt_version_id: int
    backend: str
    model_path: str | None
    model_sha256: str | None
    settings: dict[str, Any]
    seed: int
    samples_per_row: int
    plan: list[int | None]
    status: str
    error: str | None
    created: str
    finished: str | None


@dataclass(frozen=True)
class Edit:
    id: int
    record_id: int
    field: str
    old: str | None
    new: str | None
    author: str
    created: str
    reverts: int | None


def template_hash(template: str) -> str:
    return hashlib.sha256(template.encode("utf-8")).hexdigest()


# Notebook files this process has open through SQLite, and how many times. Their header is not read
# again: closing any other descriptor of a file drops every POSIX lock this process holds on it, the
# SQLite connections' included, and another process (the window's reader, a CLI run) could then
# write or checkpoint under them: "database disk image is malformed" (sqlite.org/howtocorrupt.html).
_open_here: dict[str, int] = {}
_open_lock = threading.Lock()


def _file_key(path: Path) -> str:
    return os.path.realpath(path)


def _note_open(path: Path, delta: int) -> None:
    key = _file_key(path)
    with _open_lock:
        n = _open_here.get(key, 0) + delta
        if n > 0:
            _open_here[key] = n
        else:
            _open_here.pop(key, None)


def _check_is_notebook_file(path: Path) -> None:
    if not path.exists():
        raise NotebookError(f"no such notebook: {path} (create one with: synth-studio new {path})")
    if path.is_dir():
        raise NotebookError(f"{path} is a folder, not a notebook file")
    if _file_key(path) in _open_here:
        return  # open here already, so a notebook; reading its header would drop our locks (above)
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise NotebookError(f"cannot read {path} ({exc.strerror})") from exc
    if head and head != SQLITE_MAGIC:
        raise NotebookError(f"{path} is not a Synth Studio notebook (not an SQLite database)")


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a file that is not a notebook this studio can safely write. Reads only, so a refused
    file is left exactly as it was (not even switched to WAL mode)."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return  # an empty database: it becomes a notebook
    if "_migrations" not in tables:
        raise NotebookError(f"{path} is an SQLite database but not a Synth Studio notebook")
    unknown = unknown_migrations(applied(conn))
    if unknown:
        raise NotebookError(f"{path} was {newer_studio_message(unknown)}")
    foreign = foreign_schema(conn)
    if foreign:
        raise NotebookError(
            f"{path} has {', '.join(foreign)}, which Synth Studio did not make; it does not open notebooks "
            "that would run someone else's SQL (remove them with sqlite3 if you trust the file)"
        )


def _error_code(exc: sqlite3.Error) -> int:
    """SQLite's primary result code (SQLITE_BUSY for SQLITE_BUSY_SNAPSHOT...); -1 when it has none."""
    code = getattr(exc, "sqlite_errorcode", None)
    return -1 if code is None else code & 0xFF


def _is_busy(exc: sqlite3.Error) -> bool:
    return _error_code(exc) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


WAIT_SLACK_S = 1.0  # a wait of BUSY_TIMEOUT_S that ran a little over still counts as one turn


# How long in all a write keeps waiting for another program's write, a BUSY_TIMEOUT_S turn at a
# time, each turn heard by ``on_wait(path, seconds waited)`` (which may raise to stop waiting).
# One turn (None) by default: the window's own thread must never wait minutes. The CLI
# (:func:`waiting_for_writers`) and the window's jobs (:meth:`Notebook.wait_for_writers`) wait
# longer and say so: another program's long write (a million records' scores copied in) is
# waited out, not turned into "the notebook is busy".
WriterWait = tuple[float | None, Callable[[Path, float], None] | None]
_writer_wait: WriterWait = (None, None)


@contextmanager
def waiting_for_writers(seconds: float | None, on_wait: Callable[[Path, float], None] | None) -> Iterator[None]:
    """Notebooks opened inside wait up to ``seconds`` for another program's write (the CLI's
    commands: a terminal, not a window, waits). Restored afterwards."""
    global _writer_wait
    before, _writer_wait = _writer_wait, (seconds, on_wait)
    try:
        yield
    finally:
        _writer_wait = before


def busy_error(path: Path) -> NotebookBusy:
    return NotebookBusy(
        f"the notebook is busy: another program (a second Synth Studio, a job still running, or a tool "
        f"such as sqlite3 or Datasette) is writing {path}; try again when it has finished"
    )


class Notebook:
    """An open notebook file. Use :meth:`create` or :meth:`open`."""

    # how long a write waits for another connection's write to finish before giving up (SQLite's
    # busy_timeout): a job's commit takes milliseconds, so only a stuck writer runs into it
    BUSY_TIMEOUT_S = 10.0

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        self._db: Any = None
        # results worked out from this notebook's state, with the state they were computed at
        # ((data_version, total_changes): see app.quality.funnel.compute_funnel)
        self.memo: dict[str, tuple[tuple[int, int], Any]] = {}
        self._write_lock = threading.RLock()
        self.write_wait_s, self.on_wait = _writer_wait  # see waiting_for_writers
        self._patient = False  # inside patience(): one short wait, as asked
        _note_open(path, +1)

    def wait_for_writers(self, seconds: float | None, on_wait: Callable[[Path, float], None] | None) -> None:
        """Let this connection's writes wait up to ``seconds`` for another program's write, telling
        ``on_wait`` at every BUSY_TIMEOUT_S turn (for a job on a worker thread, never the UI's)."""
        self.write_wait_s, self.on_wait = seconds, on_wait

    @property
    def db(self) -> Any:
        """The notebook as a ``sqlite_utils.Database`` on the same connection, for scripts and
        notebooks that read it (imported on first use: sqlite-utils loads pandas, which costs the
        window's and the CLI's start-up most of a second)."""
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    # -- opening -----------------------------------------------------------------

    @classmethod
    def _connect(cls, path: Path, *, check: bool) -> sqlite3.Connection:
        """The writer connection, checked (``check``: an existing file) before anything is written to it."""
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=cls.BUSY_TIMEOUT_S)
        conn.row_factory = sqlite3.Row
        try:
            if check:
                _check_schema(conn, path)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable against a crashed or killed process in WAL mode; only a
            # power cut can lose the last transactions, never corrupt the file.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            migrate(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if _is_busy(exc):
                raise busy_error(path) from exc
            if _error_code(exc) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
                raise NotebookError(
                    f"{path} is damaged or incomplete ({exc}); if it is a copy, copy it again "
                    "(with the studio closed, or with File > Save a copy…)"
                ) from exc
            raise  # anything else is a bug (in a migration, say): keep its traceback
        except BaseException:
            conn.close()
            raise
        return conn

    @classmethod
    def create(cls, path: str | Path, *, exist_ok: bool = False) -> Notebook:
        path = Path(path)
        if path.is_dir():
            raise NotebookError(f"{path} is a folder; choose a file name for the notebook")
        if path.exists() and path.stat().st_size > 0:
            if not exist_ok:
                raise NotebookError(f"{path} already exists; open it instead, or choose another name")
            return cls.open(path)
        if not path.parent.exists():
            raise NotebookError(f"folder {path.parent} does not exist")
        nb = cls(path, cls._connect(path, check=False))
        nb.set_meta("created", now())
        return nb

    @classmethod
    def open(cls, path: str | Path) -> Notebook:
        path = Path(path)
        _check_is_notebook_file(path)
        return cls(path, cls._connect(path, check=True))

    def close(self) -> None:
        """Close the notebook, folding its write-ahead log into the file first, so that the .db alone
        is the whole notebook when a person copies it.

        Only a connection that wrote checkpoints: emptying the log counts as a commit to every other
        connection (``data_version`` moves), so a read (one of the window's counts) closing with a
        checkpoint told the window that the notebook had changed, which counted again: a refresh
        every two seconds, for ever, on an idle window."""
        if self.closed:
            return
        if self.conn.total_changes:
            self.checkpoint()
        self.conn.close()
        self.closed = True
        _note_open(self.path, -1)

    def checkpoint(self) -> bool:
        """Move every committed change from the -wal file into the notebook file and empty the log;
        returns whether it did.

        Best effort and never waits: while another connection reads or writes, SQLite keeps the
        log and folds it in later (the notebook is complete either way, only split in two files).
        A write of our own in another thread is not waited for either.
        """
        if self.closed or not self._write_lock.acquire(blocking=False):
            return False
        try:
            self.conn.execute("PRAGMA busy_timeout = 0")
            try:
                busy = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            except sqlite3.OperationalError:  # locked, e.g. by a statement of ours still reading
                busy = 1
            finally:
                self.conn.execute(f"PRAGMA busy_timeout = {int(self.BUSY_TIMEOUT_S * 1000)}")
            return not busy
        finally:
            self._write_lock.release()

    @contextmanager
    def patience(self, seconds: float) -> Iterator[None]:
        """Writes inside wait at most ``seconds`` for another program's write (not BUSY_TIMEOUT_S):
        the window's own thread must not freeze for 10 s behind someone else's long transaction.
        Held with the write lock, so another thread's write on this connection keeps its wait."""
        with self._write_lock:
            self.conn.execute(f"PRAGMA busy_timeout = {max(0, int(seconds * 1000))}")
            patient, self._patient = self._patient, True
            try:
                yield
            finally:
                self._patient = patient
                self.conn.execute(f"PRAGMA busy_timeout = {int(self.BUSY_TIMEOUT_S * 1000)}")

    def save_copy(self, dest: str | Path, *, overwrite: bool = False) -> Path:
        """Write a copy of the notebook to ``dest`` as one complete file, while it stays open.

        SQLite's backup API copies a consistent snapshot (writes by jobs meanwhile are either
        all in it or not at all) from a read-only connection, so nothing of ours waits for it. The copy
        is written beside ``dest`` and moved into place, so ``dest`` is never half written.
        """
        dest = Path(dest)
        if dest.exists() and os.path.samefile(dest, self.path):
            raise NotebookError(f"{dest} is this notebook; choose another name for the copy")
        if dest.is_dir():
            raise NotebookError(f"{dest} is a folder; choose a file name for the copy")
        if not dest.parent.is_dir():
            raise NotebookError(f"folder {dest.parent} does not exist")
        if dest.exists() and not overwrite:
            raise NotebookError(f"{dest} already exists; choose another name")
        wal = dest.with_name(dest.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:  # SQLite would replay that log onto the copy
            raise NotebookError(f"{dest} is open in another program (it has a {wal.name}); close it first")
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            source = self.reader()
            target = sqlite3.connect(tmp)
            try:
                source.backup(target)
            finally:
                target.close()
                source.close()
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return dest

    closed = False

    def __enter__(self) -> Notebook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reader(self) -> sqlite3.Connection:
        """A separate read-only connection for another thread (WAL lets it read while we write)."""
        uri = self.path.resolve().as_uri() + "?mode=ro"  # as_uri escapes a '?' or '#' in the path
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            self._begin_write()
            with self._commit_or_roll_back():
                yield self.conn

    def _begin_write(self) -> None:
        """BEGIN IMMEDIATE, waiting for another program's write a BUSY_TIMEOUT_S turn at a time
        for up to ``write_wait_s`` in all (see WRITE_WAIT_S)."""
        start = time.monotonic()
        while True:
            turn = time.monotonic()
            try:
                self.conn.execute("BEGIN IMMEDIATE")  # waits up to BUSY_TIMEOUT_S for another writer
                return
            except sqlite3.OperationalError as exc:
                waited = time.monotonic() - start
                if (not _is_busy(exc) or self._patient or self.write_wait_s is None
                        or waited + self.BUSY_TIMEOUT_S > self.write_wait_s + WAIT_SLACK_S):
                    self._raise_in_words(exc)  # busy past the wait, read-only, a lost file...
                    raise
                if time.monotonic() - turn < 0.1:  # refused at once (SQLite recovering its log): not a spin
                    time.sleep(0.1)
                if self.on_wait is not None:
                    self.on_wait(self.path, waited)

    @contextmanager
    def scratch(self) -> Iterator[sqlite3.Connection]:
        """A transaction for this connection's temporary tables (``temp.*``): it takes no lock on the
        notebook file, so another writer is never kept waiting by it. For work staged on a
        connection one thread uses (a job's own, the CLI's) before a short real transaction; a
        failure rolls it back and is said in words (a full temporary folder)."""
        self.conn.execute("BEGIN")
        with self._commit_or_roll_back():
            yield self.conn

    @contextmanager
    def _commit_or_roll_back(self) -> Iterator[None]:
        """The end of a begun transaction: COMMIT after the body, ROLLBACK when it (or the commit: a
        full disk or a lost file shows there too) fails, an SQLite failure said in words."""
        try:
            yield
        except BaseException as exc:
            self._rollback()
            if isinstance(exc, sqlite3.Error):
                self._raise_in_words(exc)
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            self._raise_in_words(exc)
            raise

    def _rollback(self) -> None:
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.OperationalError:  # SQLite already rolled it back (some I/O and full-disk errors do)
            pass

    def _raise_in_words(self, exc: sqlite3.Error) -> None:
        """A write the disk, the file's permissions or another program stopped is a NotebookError in
        one line ("the notebook is read-only: ...", "cannot write ...: the disk is full"): the window
        and the CLI say it, and nothing is reported as done. Anything else (an SQL mistake) is left
        to propagate as the bug it is."""
        if _is_busy(exc):
            raise busy_error(self.path) from exc
        problem = environment_problem(exc, notebook=str(self.path))
        if problem is not None:
            raise NotebookError(problem) from exc

    @contextmanager
    def records_in_bulk(self, c: sqlite3.Connection, n: int) -> Iterator[None]:
        """Inside the caller's transaction ``c``: ``n`` records are about to be inserted. From
        ``BULK_RECORDS`` on, the search index's insert trigger is dropped for the inserts and the
        new records' text goes into the index with one INSERT ... SELECT after them; the trigger is
        made again from its own SQL. All of it is in ``c``: a failure or a kill rolls back the
        rows, the index and the trigger together."""
        row = (c.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'records_ai'").fetchone()
               if n >= BULK_RECORDS else None)
        if row is None:
            yield
            return
        last = int(c.execute("SELECT coalesce(max(id), 0) FROM records").fetchone()[0])
        c.execute("DROP TRIGGER records_ai")
        yield
        # new rows take ids after the largest one (INTEGER PRIMARY KEY, no explicit ids here)
        c.execute("INSERT INTO records_fts (rowid, output, variables) "
                  "SELECT id, output, variables FROM records WHERE id > ?", (last,))
        c.execute(row[0])

    # -- meta --------------------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        with self.transaction() as c:
            _write_meta(c, key, value)

    def remember_import(self, c: sqlite3.Connection, imported: dict[str, Any]) -> None:
        """Append an imported file ({sha256, source, rows}) to the notebook's list, inside the caller's
        transaction ``c``: the rows and the memory of their file commit together or not at all."""
        row = c.execute("SELECT value FROM notebook_meta WHERE key = ?", (IMPORTED_FILES,)).fetchone()
        files = json.loads(row[0]) if row else []
        files.append({**imported, "at": now()})
        _write_meta(c, IMPORTED_FILES, files)

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM notebook_meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def data_version(self) -> int:
        """SQLite's counter of commits made by other connections to this file (another process, a
        job's own connection): when it changes, something else wrote the notebook."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def change_mark(self) -> tuple[int, int]:
        """Moves whenever anything is committed to the notebook: by another connection
        (``data_version``) or by this one (its total changes). Equal marks: nothing was written
        between them (what a count over the notebook depends on)."""
        return self.data_version(), self.conn.total_changes

    def migrations(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM _migrations ORDER BY rowid")]

    # -- prompt versions -----------------------------------------------------------

    def add_prompt_version(self, name: str, template: str) -> tuple[PromptVersion, bool]:
        """Save ``template`` under ``name``; returns (version, created).

        Saving an unchanged template returns the latest version and ``False``.
        """
        if not name.strip():
            raise StudioError("a prompt needs a name")
        h = template_hash(template)
        with self.transaction() as c:
            latest = c.execute(
                "SELECT * FROM prompt_versions WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)
            ).fetchone()
            if latest is not None and latest["hash"] == h:
                return PromptVersion(**dict(latest)), False
            version = 1 if latest is None else latest["version"] + 1
            parent = None if latest is None else latest["id"]
            cur = c.execute(
                "INSERT INTO prompt_versions (name, version, template, hash, parent_id, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, version, template, h, parent, now()),
            )
            row = c.execute("SELECT * FROM prompt_versions WHERE id = ?", (cur.lastrowid,)).fetchone()
        return PromptVersion(**dict(row)), True

    def prompt_version(self, name: str, version: int | None = None) -> PromptVersion:
        if version is None:
            row = self.conn.execute(
                "SELECT * FROM prompt_versions WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)
            ).fetchone()
        else:
            row = self.conn.execute(
                "SELECT * FROM prompt_versions WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
        if row is None:
            names = [p.name for p in self.prompt_versions(latest_only=True)]
            hint = f" (prompts here: {', '.join(names)})" if names else " (this notebook has no prompts yet)"
            what = name if version is None else f"{name} v{version}"
            raise StudioError(f"no prompt named {what!r}{hint}")
        return PromptVersion(**dict(row))

    def prompt_version_by_id(self, pv_id: int) -> PromptVersion:
        row = self.conn.execute("SELECT * FROM prompt_versions WHERE id = ?", (pv_id,)).fetchone()
        if row is None:
            raise StudioError(f"no prompt version with id {pv_id}")
        return PromptVersion(**dict(row))

    def prompt_versions(self, latest_only: bool = False) -> list[PromptVersion]:
        sql = "SELECT * FROM prompt_versions ORDER BY name, version"
        if latest_only:
            sql = (
                "SELECT * FROM prompt_versions p WHERE version = "
                "(SELECT MAX(version) FROM prompt_versions q WHERE q.name = p.name) ORDER BY name"
            )
        return [PromptVersion(**dict(r)) for r in self.conn.execute(sql)]

    # -- imported rows -----------------------------------------------------------------

    def add_imported_rows(
        self, rows: Iterable[tuple[dict[str, Any], str | None]], *, origin: str, source: str,
        imported: dict[str, Any] | None = None, progress: Callable[[int], None] | None = None,
    ) -> tuple[int, int]:
        """Insert (variables, text) rows; returns (inputs, samples). ``imported`` (the file's
        {sha256, source, rows}) is remembered with them.

        Whole or absent, without holding the write lock for the whole file: the rows are staged a
        chunk per transaction and all appear in one short last one (:mod:`app.store.staged`).
        ``progress`` hears the rows staged so far and may raise to stop (the staged rows are removed)."""
        from app.store.staged import staged_chunks, staging

        if origin not in ORIGINS:
            raise StudioError(f"origin must be one of {', '.join(ORIGINS)}, not {origin!r}")
        ts = now()
        counts = {"input": 0, "sample": 0}
        with staging(self) as staged:
            roles = {role: staged.role(role) for role in counts}

            def values(rows: Iterable[tuple[dict[str, Any], str | None]]) -> Iterator[tuple[Any, ...]]:
                for variables, text in rows:
                    role = "sample" if text not in (None, "") else "input"
                    counts[role] += 1
                    yield roles[role], _json_text(variables), text or None, origin, source, ts, ts

            # each chunk's rows are made before its transaction: the time that takes is another
            # writer's turn (SQLite's waiters poll; a writer that begins again at once starves them)
            for chunk in staged_chunks(values(rows), progress):
                with staged.chunk(len(chunk)) as c:
                    c.executemany(
                        "INSERT INTO records (role, variables, output, origin, status, source, created, updated) "
                        "VALUES (?, ?, ?, ?, 'new', ?, ?, ?)", chunk)
            staged.publish(imported)
        return counts["input"], counts["sample"]

    def input_rows(self, limit: int | None = None) -> list[tuple[int, dict[str, Any]]]:
        sql = "SELECT id, variables FROM records WHERE role = 'input' ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [(r["id"], json.loads(r["variables"])) for r in self.conn.execute(sql)]

    # -- runs ----------------------------------------------------------------------------

    def create_run(
        self,
        *,
        prompt_version_id: int,
        backend: str,
        model_path: str | None,
        model_sha256: str | None,
        settings: dict[str, Any],
        seed: int,
        samples_per_row: int,
        plan: Sequence[int | None],
    ) -> Run:
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO runs (prompt_version_id, backend, model_path, model_sha256, settings, seed, "
                "samples_per_row, plan, status, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)",
                (
                    prompt_version_id, backend, model_path, model_sha256,
                    json.dumps(settings, sort_keys=True), seed, samples_per_row, json.dumps(plan), now(),
                ),
            )
        return self.run(inserted_id(cur))

    def set_run_status(self, run_id: int, status: str, error: str | None = None) -> None:
        finished = None if status == "running" else now()
        with self.transaction() as c:
            c.execute(
                "UPDATE runs SET status = ?, error = ?, finished = ? WHERE id = ?",
                (status, error, finished, run_id),
            )

    @staticmethod
    def _run_from_row(row: sqlite3.Row) -> Run:
        d = dict(row)
        d["settings"] = json.loads(d["settings"])
        d["plan"] = json.loads(d["plan"])
        return Run(**d)

    def run(self, run_id: int) -> Run:
        row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StudioError(f"no run with id {run_id}")
        return self._run_from_row(row)

    def runs(self) -> list[Run]:
        return [self._run_from_row(r) for r in self.conn.execute("SELECT * FROM runs ORDER BY id")]

    def latest_unfinished_run(self, prompt_name: str) -> Run | None:
        row = self.conn.execute(
            "SELECT r.* FROM runs r JOIN prompt_versions p ON p.id = r.prompt_version_id "
            "WHERE p.name = ? AND r.status != 'completed' ORDER BY r.id DESC LIMIT 1",
            (prompt_name,),
        ).fetchone()
        return None if row is None else self._run_from_row(row)

    def done_slots(self, run_id: int) -> set[tuple[int, int]]:
        return {
            (r[0], r[1])
            for r in self.conn.execute(
                "SELECT row_index, sample_index FROM records WHERE run_id = ?", (run_id,)
            )
        }

    # -- records -------------------------------------------------------------------------

    def add_generated_record(
        self,
        *,
        run_id: int,
        prompt_version_id: int,
        input_record_id: int | None,
        row_index: int,
        sample_index: int,
        seed: int,
        variables: dict[str, Any],
        prompt: str,
        output: str,
        prompt_tokens: int,
        completion_tokens: int,
        token_logprobs: Sequence[float],
        finish_reason: str,
        derivation: str | None = None,
    ) -> int:
        """Commit one generated sample. With a ``derivation`` (e.g. a transform), the
        input record is the sample it was derived from and becomes its parent."""
        lp = np.asarray(token_logprobs, dtype=np.float32)
        mean_lp = float(lp.mean()) if lp.size else None
        ts = now()
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO records (role, run_id, prompt_version_id, input_record_id, row_index, "
                "sample_index, seed, variables, prompt, output, prompt_tokens, completion_tokens, "
                "mean_logprob, token_logprobs, finish_reason, origin, status, created, updated, "
                "parent_record_id, derivation) "
                "VALUES ('sample', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'synthetic', 'new', ?, ?, ?, ?)",
                (
                    run_id, prompt_version_id, input_record_id, row_index, sample_index, seed,
                    json.dumps(variables, ensure_ascii=False), prompt, output, prompt_tokens,
                    completion_tokens, mean_lp, lp.tobytes(), finish_reason, ts, ts,
                    input_record_id if derivation else None, derivation,
                ),
            )
        return inserted_id(cur)

    def record(self, record_id: int) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM records WHERE id = ?", (record_id,)).fetchone()
        if row is None:
            raise StudioError(f"no record with id {record_id}")
        return record_dict(row)

    def records(
        self,
        *,
        role: str | None = "sample",
        statuses: Iterable[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        where: list[str] = [f"role IN {VISIBLE_ROLES}"]  # None: both (staged rows are nobody's yet)
        params: list[Any] = []
        if role is not None:
            where.append("role = ?")
            params.append(role)
        if statuses is not None:
            statuses = list(statuses)
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            params.extend(statuses)
        sql = "SELECT * FROM records WHERE " + " AND ".join(where) + " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        return [record_dict(r) for r in self.conn.execute(sql, params)]

    def count_records(self, role: str | None = "sample") -> int:
        """Samples, input rows (``role``) or both (None)."""
        count: int
        if role is None:
            count = self.conn.execute(f"SELECT COUNT(*) FROM records WHERE role IN {VISIBLE_ROLES}").fetchone()[0]
        else:
            count = self.conn.execute("SELECT COUNT(*) FROM records WHERE role = ?", (role,)).fetchone()[0]
        return count

    # -- edits -----------------------------------------------------------------------------

    def edit_record(self, record_id: int, field: str, new: Any, *, author: str = "user",
                    reverts: int | None = None) -> Edit | None:
        """Change one field of a record, writing the edit history in the same transaction.

        Editing the text (output or variables) marks the record ``human-edited``.
        An edit that changes nothing is not recorded (returns ``None``).
        """
        if field not in EDITABLE_FIELDS:
            raise StudioError(f"cannot edit {field!r}; editable fields: {', '.join(EDITABLE_FIELDS)}")
        if field == "variables":
            if isinstance(new, str):
                try:
                    new = json.loads(new)
                except json.JSONDecodeError as exc:
                    raise StudioError(f"variables must be a JSON object: {exc}") from exc
            if not isinstance(new, dict):
                raise StudioError("variables must be a JSON object")
            new_text: str | None = json.dumps(new, ensure_ascii=False)
        else:
            new_text = None if new is None else str(new)
        if field == "status" and new_text not in RECORD_STATUSES:
            raise StudioError(f"status must be one of {', '.join(RECORD_STATUSES)}, not {new_text!r}")
        if new_text is not None:
            try:
                new_text.encode("utf-8")
            except UnicodeEncodeError as exc:
                bad = new_text[exc.start]
                raise StudioError(f"the new {field} holds U+{ord(bad):04X} at character {exc.start + 1}, half of a "
                                  "character (a lone surrogate) that cannot be stored as UTF-8; nothing was "
                                  "changed") from None
        ts = now()
        with self.transaction() as c:
            row = c.execute(f"SELECT {field}, origin FROM records WHERE id = ?", (record_id,)).fetchone()
            if row is None:
                raise StudioError(f"no record with id {record_id}")
            old = row[0]
            if old == new_text:
                return None
            cur = c.execute(
                "INSERT INTO edits (record_id, field, old, new, author, created, reverts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record_id, field, old, new_text, author, ts, reverts),
            )
            edit_id = inserted_id(cur)
            c.execute(f"UPDATE records SET {field} = ?, updated = ? WHERE id = ?", (new_text, ts, record_id))
            if field in TEXT_FIELDS:
                self._update_origin(c, record_id, row["origin"], author, ts)
            if field == "output":  # scores and likelihood now describe the old text until recomputed
                c.execute("UPDATE scores SET stale = 1 WHERE record_id = ?", (record_id,))
                c.execute("UPDATE records SET likelihood_stale = 1 WHERE id = ? AND mean_logprob IS NOT NULL",
                          (record_id,))
        return self.edit(edit_id)

    @staticmethod
    def _update_origin(c: sqlite3.Connection, record_id: int, origin: str, author: str, ts: str) -> None:
        """Keep ``origin`` honest: human-edited while the text differs from what was made.

        The origin change is itself an edit, so the history explains it; reverting
        every text edit puts the original origin back.
        """
        first_origin = c.execute(
            "SELECT old FROM edits WHERE record_id = ? AND field = 'origin' ORDER BY id LIMIT 1", (record_id,)
        ).fetchone()
        original_origin = first_origin[0] if first_origin else origin
        changed = False
        for f in TEXT_FIELDS:
            first = c.execute(
                "SELECT old FROM edits WHERE record_id = ? AND field = ? ORDER BY id LIMIT 1", (record_id, f)
            ).fetchone()
            if first is not None:
                current = c.execute(f"SELECT {f} FROM records WHERE id = ?", (record_id,)).fetchone()[0]
                changed |= current != first[0]
        target = "human-edited" if changed else original_origin
        if target != origin:
            c.execute(
                "INSERT INTO edits (record_id, field, old, new, author, created) VALUES (?, 'origin', ?, ?, ?, ?)",
                (record_id, origin, target, author, ts),
            )
            c.execute("UPDATE records SET origin = ? WHERE id = ?", (target, record_id))

    def edit(self, edit_id: int) -> Edit:
        row = self.conn.execute("SELECT * FROM edits WHERE id = ?", (edit_id,)).fetchone()
        if row is None:
            raise StudioError(f"no edit with id {edit_id}")
        return Edit(**dict(row))

    def history(self, record_id: int) -> list[Edit]:
        return [
            Edit(**dict(r))
            for r in self.conn.execute("SELECT * FROM edits WHERE record_id = ? ORDER BY id", (record_id,))
        ]

    def revert_edit(self, edit_id: int, *, author: str = "user") -> Edit | None:
        """Put back the value an edit replaced, as a new edit (history is never rewritten)."""
        e = self.edit(edit_id)
        if e.field not in EDITABLE_FIELDS:
            raise StudioError(f"edit {edit_id} is a bookkeeping change of {e.field!r}; revert the text edit instead")
        old: Any = e.old
        if e.field == "variables" and old is not None:
            old = json.loads(old)
        return self.edit_record(e.record_id, e.field, old, author=author, reverts=e.id)


def inserted_id(cur: sqlite3.Cursor) -> int:
    """The id of the row an INSERT on ``cur`` just made."""
    if cur.lastrowid is None:  # sqlite3 always sets it after a successful INSERT
        raise RuntimeError("the INSERT did not report the id of the row it made")
    return cur.lastrowid


def record_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["variables"] = json.loads(d["variables"]) if d.get("variables") else {}
    blob = d.pop("token_logprobs", None)
    d["token_logprobs"] = np.frombuffer(blob, dtype=np.float32).tolist() if blob else []
    return d


def _write_meta(c: sqlite3.Connection, key: str, value: Any) -> None:
    c.execute("INSERT INTO notebook_meta (key, value) VALUES (?, ?) "
              "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, json.dumps(value)))
