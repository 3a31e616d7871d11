"""``python -m bench.scale``: the million-records benchmark, every step a user runs on one big notebook.

Writes a CSV of ``--n`` short templated records (``topic``, ``customer``, ``text``; ~60-100 bytes of
text each, a few exact and near copies planted; deterministic by ``--seed``), then runs each step
in a child process of its own, so each line's peak memory (RSS, from ``os.wait4``'s ``ru_maxrss``)
is that step's alone:

- import: ``synth-studio import NB FILE --output-column text``
- the Records table, in one child (its peak is theirs together): what ``RecordsModel`` does on a
  (re)load, i.e. the field columns, ``count_records`` and the first page of ``record_page``: with
  no filter (first page), sorted by a column, filtered by a status, searched for a word
- ``synth-studio dedupe NB --method exact``
- ``synth-studio dedupe NB2 --method minhash`` on a notebook of its own of ``--near-n`` records
- ``synth-studio validate NB`` (the notebook's default rules), with the file's growth against the
  bytes of the scores it stored
- ``synth-studio metrics NB``, ``synth-studio export NB OUT.jsonl``
- the window on NB: ``run_gui`` offscreen (``QT_QPA_PLATFORM=offscreen``) until the window is shown
  and its event loop has processed its first events

CLI steps are timed from the command's start to its exit (the interpreter's start-up included;
the header says how long that is). A step over its time limit is killed and the bench goes on.

Targets: import < 60 s, first page < 200 ms, near duplicates < 60 s, validate's growth < 2x the
scores' bytes and the window < 3 s are the product's; search < 100 ms is bench.fts's; sort and
filter < 1 s and the other CLI steps < 60 s are this bench's, so a regression shows. Every step's
peak must stay under 2 GiB.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE = 200  # widgets/records_table.py PAGE
PEAK_LIMIT_MIB = 2048
SEARCH_WORD = "refund"  # a prefix of words in about one text in four

# -- the input file --------------------------------------------------------------------------------

TOPICS = {
    "billing": ["invoice", "statement", "charge", "card", "plan", "receipt"],
    "refunds": ["refund", "return label", "credit note", "chargeback", "exchange", "voucher"],
    "login": ["password", "account", "two-factor code", "session", "profile", "email link"],
    "shipping": ["parcel", "delivery", "tracking page", "courier", "box", "address"],
    "payroll": ["payslip", "bonus", "tax form", "overtime", "salary", "timesheet"],
    "exports": ["CSV export", "report", "backup", "spreadsheet", "archive", "download"],
    "banking": ["transfer", "IBAN", "standing order", "deposit", "loan", "overdraft"],
    "support": ["ticket", "chat", "callback", "case", "complaint", "request"],
}
TEMPLATES = [
    "My {item} from order {num} arrived {state}; please {action} it by {day}.",
    "Why was I charged {amount} twice for the {item} on {day}? Please {action} it.",
    "The {item} page shows {state} since {day} and {person} cannot {action} it.",
    "Can you {action} my {item}? Ticket {num} has been {state} since {day}.",
    "{person} says the {item} was {state} on {day}; we need to {action} it today.",
    "Order {num}: the {item} is {state}, so I asked for a refund of {amount}.",
    "Hi, {person} here. My {item} is {state}; could you {action} it before {day}?",
]
STATES = ["missing", "late", "broken", "wrong", "blocked", "pending", "stuck", "duplicated", "cancelled",
          "expired", "locked", "unreadable", "incomplete", "on hold"]
ACTIONS = ["fix", "check", "resend", "refund", "cancel", "update", "unlock", "replace", "escalate", "reopen"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "yesterday",
        "last week", "the 3rd", "the 17th", "payday"]
PEOPLE = ["Anna", "my manager", "our accountant", "Tom", "Priya", "the courier", "my wife", "Kenji",
          "support", "Lucía", "the bank", "Omar"]


def record_texts(n: int, seed: int) -> Iterator[tuple[str, str, str]]:
    """``n`` (topic, customer, text) rows, ~3% exact copies and ~3% one-word edits of a recent text."""
    rng = random.Random(seed)
    topics = list(TOPICS)
    recent: list[str] = []
    for _ in range(n):
        topic = topics[rng.randrange(len(topics))]
        roll = rng.random()
        if recent and roll < 0.03:
            text = rng.choice(recent)
        elif recent and roll < 0.06:
            words = rng.choice(recent).split()
            words[rng.randrange(len(words))] = rng.choice(STATES + ACTIONS)
            text = " ".join(words)
        else:
            text = rng.choice(TEMPLATES).format(
                item=rng.choice(TOPICS[topic]), num=rng.randint(100_000, 999_999), state=rng.choice(STATES),
                action=rng.choice(ACTIONS), day=rng.choice(DAYS), person=rng.choice(PEOPLE),
                amount=f"${rng.randint(2, 900)}.{rng.randint(0, 99):02d}")
        if len(recent) < 1000:
            recent.append(text)
        else:
            recent[rng.randrange(1000)] = text
        yield topic, f"c{rng.randint(1, max(n // 20, 1))}", text


def write_csv(path: Path, n: int, seed: int) -> tuple[int, float]:
    """Stream ``n`` rows to ``path``; returns (bytes, mean text bytes)."""
    text_bytes = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["topic", "customer", "text"])
        for topic, customer, text in record_texts(n, seed):
            text_bytes += len(text.encode())
            w.writerow([topic, customer, text])
    return path.stat().st_size, text_bytes / max(n, 1)


# -- children and their peak memory ------------------------------------------------------------------


@dataclass
class Child:
    seconds: float
    peak_mib: float
    rc: int
    timed_out: bool
    output: str

    def json(self) -> dict[str, Any] | None:
        """The last line of its output that is a JSON object (what the ``--child`` modes print)."""
        for line in reversed(self.output.splitlines()):
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    return dict(json.loads(line))
        return None

    def last_line(self) -> str:
        lines = [ln.strip() for ln in self.output.replace("\r", "\n").splitlines() if ln.strip()]
        return lines[-1][:160] if lines else ""


def run_child(cmd: Sequence[str], *, timeout: float, log: Path, env: dict[str, str] | None = None) -> Child:
    """Run ``cmd`` (output to ``log``) and reap it with ``os.wait4``: its wall time and its own peak RSS.
    It gets a session of its own, so a timeout kills it and anything it started."""
    with log.open("w+b") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
                                env={**os.environ, **(env or {})})
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C: stop the step too
            kill()
            os.wait4(proc.pid, 0)
            raise
        finally:
            timer.cancel()
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        with contextlib.suppress(ProcessLookupError):  # anything it left running
            os.killpg(proc.pid, signal.SIGKILL)
        out.seek(0)
        output = out.read().decode("utf-8", "replace")
    return Child(seconds, usage.ru_maxrss / 1024, proc.returncode, timed_out.is_set(), output)


def cli() -> list[str]:
    """The ``synth-studio`` command of this environment."""
    script = Path(sys.executable).with_name("synth-studio")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli.main"]


def child_mode(mode: str) -> list[str]:
    return [sys.executable, "-m", "bench.scale", "--child", mode]


# -- what the children run ----------------------------------------------------------------------------


def queries_child(nb_path: str) -> None:
    """Time what the Records table does on a (re)load (RecordsModel.reload: the field columns, the count,
    the first page) for a few filters and sorts; the first run of each (what a person waits for) and the
    median of three more. Prints one JSON line."""
    from app.generate.structured import field_columns
    from app.store.notebook import Notebook
    from app.store.queries import RecordFilter, count_records, record_page

    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    nb = Notebook.open(nb_path)
    out["open_ms"] = (time.perf_counter() - t0) * 1000
    cases = {
        "first page": RecordFilter(),
        "sort": RecordFilter(order_by="output", descending=True),
        "filter": RecordFilter(status="flagged"),
        "search": RecordFilter(text=SEARCH_WORD),
    }
    for name, flt in cases.items():
        times, count, rows = [], 0, 0
        for _ in range(4):
            t = time.perf_counter()
            field_columns(nb, flt.prompt, flt.prompt_version_id)
            count = count_records(nb, flt)
            rows = len(record_page(nb, 0, PAGE, flt))
            times.append((time.perf_counter() - t) * 1000)
        out[name] = {"first_ms": times[0], "median_ms": statistics.median(times[1:]), "count": count, "rows": rows}
    nb.close()
    print(json.dumps(out), flush=True)


def window_child(nb_path: str) -> None:
    """``run_gui`` on the notebook, offscreen, until the window is shown and its event loop has run a
    zero-delay timer; prints one JSON line (seconds since this function started, imports included)."""
    t0 = time.perf_counter()
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from widgets.main_window import MainWindow, run_gui

    out: dict[str, Any] = {"import_s": time.perf_counter() - t0}
    app = QApplication(sys.argv[:1])  # run_gui uses this one

    def first_events() -> None:
        shown = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        if not shown:  # fired in a nested event loop before the window was shown: wait for it
            QTimer.singleShot(0, first_events)
            return
        out["shown_s"] = time.perf_counter() - t0
        out["rows_loaded"] = shown[0].model.rowCount()
        out["total"] = shown[0].model.total
        print(json.dumps(out), flush=True)  # now: quitting may wait for background counts
        app.quit()

    QTimer.singleShot(0, first_events)
    out["run_gui_from_s"] = time.perf_counter() - t0
    run_gui(nb_path)


# -- the bench ----------------------------------------------------------------------------------------------


@dataclass
class Line:
    name: str
    seconds: float | None  # None: no figure (failed or stopped)
    peak_mib: float | None
    limit_s: float  # the time target
    note: str = ""
    problem: str = ""  # why there is no figure
    extra_ok: bool = True  # another target of the step (validate's growth)
    extra_target: str = ""
    shared_peak: bool = False

    @property
    def met(self) -> bool:
        return (not self.problem and self.seconds is not None and self.seconds < self.limit_s and self.extra_ok
                and (self.peak_mib or 0) < PEAK_LIMIT_MIB)

    def target(self) -> str:
        t = f"< {self.limit_s * 1000:.0f} ms" if self.limit_s < 1 else f"< {self.limit_s:.0f} s"
        return ", ".join(x for x in (t, self.extra_target, f"peak < {PEAK_LIMIT_MIB} MiB") if x)

    def text(self) -> str:
        secs = f"{self.seconds:9.3f} s" if self.seconds is not None else f"{'-':>9}  "
        peak = f"{self.peak_mib:7.0f} MiB" if self.peak_mib is not None else f"{'-':>7}    "
        peak += "*" if self.shared_peak else " "
        verdict = "ok" if self.met else "MISSED"
        tail = self.problem or self.note
        return f"  {self.name:<16} {secs}  peak {peak} [{self.target()}] {verdict:<6}  {tail}"


@dataclass
class Bench:
    args: argparse.Namespace
    tmp: Path
    lines: list[Line] = field(default_factory=list)

    def emit(self, line: Line) -> None:
        self.lines.append(line)
        print(line.text(), flush=True)

    def step(self, name: str, cmd: Sequence[str], limit_s: float, *, timeout: float | None = None,
             env: dict[str, str] | None = None, note: Callable[[Child], str] | None = None,
             show: bool = True) -> tuple[Child, Line]:
        """Run one step in a child; its line is printed unless ``show`` is False (the caller adds to it first)."""
        timeout = timeout or self.args.timeout
        child = run_child(cmd, timeout=timeout, log=self.tmp / f"{name.replace(' ', '-')}.log", env=env)
        problem = ""
        if child.timed_out:
            problem = f"over the limit, stopped after {timeout:.0f} s"
        elif child.rc != 0:
            problem = f"failed (exit {child.rc}): {child.last_line()}"
        line = Line(name, None if problem else child.seconds, child.peak_mib, limit_s,
                    note=(note(child) if note and not problem else child.last_line()), problem=problem)
        if show:
            self.emit(line)
        return child, line


def notebook_bytes(path: Path) -> int:
    """The notebook file and its write-ahead log, as they are on disk."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def score_payload(path: Path) -> tuple[int, int]:
    """(scores, bytes of their values): integers and reals 8 bytes, text its UTF-8 bytes, NULL nothing.
    A measurement the app has no query for, so it reads the file directly, read-only."""
    if not path.exists():
        return 0, 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(scores)")]
        size = " + ".join(f"CASE typeof({c}) WHEN 'null' THEN 0 WHEN 'integer' THEN 8 WHEN 'real' THEN 8 "
                          f"ELSE length(CAST({c} AS BLOB)) END" for c in cols)
        n, total = conn.execute(f"SELECT COUNT(*), COALESCE(SUM({size}), 0) FROM scores").fetchone()
    finally:
        conn.close()
    return int(n), int(total)


def mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


def header(args: argparse.Namespace, tmp: Path) -> None:
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                   if ln.startswith("MemTotal"))
        mem = f", {kib / 2**20:.0f} GiB RAM"
    print(f"bench.scale: N = {args.n:,} records (near duplicates: {args.near_n:,}), seed {args.seed}")
    print(f"machine: {os.cpu_count()} cores{mem}, {platform.system()} {platform.machine()}, "
          f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}; files in {tmp}")


def run(args: argparse.Namespace, tmp: Path) -> int:
    b = Bench(args, tmp)
    header(args, tmp)
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    os.environ["SYNTH_STUDIO_HOME"] = str(home)  # the children's settings and logs, never the user's
    nb, near_nb = tmp / "scale.db", tmp / "near.db"
    src, near_src = tmp / "records.csv", tmp / "near.csv"
    for p in (nb, near_nb):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{p}{suffix}").unlink(missing_ok=True)

    t0 = time.perf_counter()
    size, mean = write_csv(src, args.n, args.seed)
    print(f"input: {src.name}, {args.n:,} records, {mib(size)}, text {mean:.0f} bytes on average "
          f"(written in {time.perf_counter() - t0:.1f} s, not a step)")
    baseline = run_child([*cli(), "new", str(nb)], timeout=120, log=tmp / "new.log")
    print(f"CLI start-up (synth-studio new NB, the empty notebook): {baseline.seconds:.2f} s, "
          f"peak {baseline.peak_mib:.0f} MiB (included in each CLI step)")
    print(f"  {'step':<16} {'seconds':>11}  {'peak RSS':>16} [target] verdict")

    b.step("import", [*cli(), "import", str(nb), str(src), "--output-column", "text"], 60,
           note=lambda c: f"{c.last_line()}; notebook {mib(notebook_bytes(nb))}")

    q = run_child(child_mode("queries") + [str(nb)], timeout=args.timeout, log=tmp / "queries.log")
    got = q.json() if q.rc == 0 and not q.timed_out else None
    limits = {"first page": 0.2, "sort": 1.0, "filter": 1.0, "search": 0.1}
    what = {"first page": "no filter", "sort": "by output, descending", "filter": "status = flagged",
            "search": f"the word {SEARCH_WORD!r}"}
    for name, limit in limits.items():
        if got is None:
            problem = (f"over the limit, stopped after {args.timeout:.0f} s" if q.timed_out
                       else f"failed (exit {q.rc}): {q.last_line()}")
            b.emit(Line(name, None, q.peak_mib, limit, problem=problem, shared_peak=True))
            continue
        r = got[name]
        note = (f"{what[name]}: count + first {PAGE} rows, {r['count']:,} match; "
                f"again: {r['median_ms']:.0f} ms (median of 3)")
        if name == "first page":
            note += f"; Notebook.open {got['open_ms']:.0f} ms"
        b.emit(Line(name, r["first_ms"] / 1000, q.peak_mib, limit, note=note, shared_peak=True))

    b.step("exact dedupe", [*cli(), "dedupe", str(nb), "--method", "exact"], 60)

    t0 = time.perf_counter()
    write_csv(near_src, args.near_n, args.seed + 1)
    run_child([*cli(), "new", str(near_nb)], timeout=120, log=tmp / "near-new.log")
    setup = run_child([*cli(), "import", str(near_nb), str(near_src), "--output-column", "text"],
                      timeout=args.timeout, log=tmp / "near-import.log")
    print(f"  (near-duplicate notebook: {args.near_n:,} records written and imported in "
          f"{time.perf_counter() - t0:.1f} s, not a step: {setup.last_line()})", flush=True)
    b.step("near dedupe", [*cli(), "dedupe", str(near_nb), "--method", "minhash"], 60,
           timeout=args.near_timeout, note=lambda c: f"{args.near_n:,} records: {c.last_line()}")

    before = notebook_bytes(nb)
    n0, bytes0 = score_payload(nb)
    child, line = b.step("validate", [*cli(), "validate", str(nb), "--json"], 60, show=False)
    after = notebook_bytes(nb)
    n1, bytes1 = score_payload(nb)
    stored = bytes1 - bytes0
    growth = after - before
    ratio = growth / stored if stored else float("inf")
    line.extra_target = "growth < 2x scores"
    line.extra_ok = ratio < 2
    if child.rc == 0 and not child.timed_out:
        line.note = (f"{n1 - n0:,} scores of {mib(stored)}; notebook {mib(before)} -> {mib(after)} "
                     f"(+{mib(growth)}, {ratio:.1f}x the scores)")
    b.emit(line)

    b.step("metrics", [*cli(), "metrics", str(nb)], 60)
    out = tmp / "export.jsonl"
    b.step("export", [*cli(), "export", str(nb), str(out)], 60,
           note=lambda c: f"{c.last_line()}; {mib(out.stat().st_size) if out.exists() else 'no file'}")

    from bench.cold_start import compile_sources

    compile_sources()  # as installed: the modules' bytecode is there before the first start
    w = run_child(child_mode("window") + [str(nb)], timeout=args.window_timeout, log=tmp / "window.log",
                  env={"QT_QPA_PLATFORM": "offscreen"})
    shown = w.json() if not w.timed_out else None
    if shown is None or "shown_s" not in shown:
        problem = (f"over the limit, stopped after {args.window_timeout:.0f} s" if w.timed_out
                   else f"failed (exit {w.rc}): {w.last_line()}")
        b.emit(Line("window", None, w.peak_mib, 3, problem=problem))
    else:
        b.emit(Line("window", shown["shown_s"], w.peak_mib, 3,
                    note=f"imports {shown['import_s']:.2f} s, then run_gui -> shown {shown['shown_s'] - shown['run_gui_from_s']:.2f} s; "
                         f"{shown['rows_loaded']} of {shown['total']:,} rows loaded"))

    print("* the table's four queries ran in one child: its peak is theirs together")
    met = [ln.name for ln in b.lines if ln.met]
    missed = [ln.name for ln in b.lines if not ln.met]
    print(f"summary: {len(met)} of {len(b.lines)} targets met"
          + (f"; missed: {', '.join(missed)}" if missed else "")
          + (f"; met: {', '.join(met)}" if met else ""))
    return 0 if not missed else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="records in the big notebook")
    ap.add_argument("--near-n", type=int, default=200_000, help="records in the near-duplicate notebook")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=600, help="seconds a step may run before it is stopped")
    ap.add_argument("--near-timeout", type=float, default=300, help="the same, for the near-duplicate dedupe")
    ap.add_argument("--window-timeout", type=float, default=120, help="the same, for the window")
    ap.add_argument("--keep", metavar="DIR", help="keep the notebooks, files and step logs in DIR")
    ap.add_argument("--child", choices=["queries", "window"], help=argparse.SUPPRESS)
    ap.add_argument("notebook", nargs="?", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        (queries_child if args.child == "queries" else window_child)(args.notebook)
        return 0
    if args.keep:
        keep = Path(args.keep).resolve()
        keep.mkdir(parents=True, exist_ok=True)
        return run(args, keep)
    tmp = Path(tempfile.mkdtemp(prefix="synth-bench-scale-"))
    try:
        return run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
