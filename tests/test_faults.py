"""Every write path survives SIGKILL at a random point: import, generate, validate, dedupe, edit,
version and export.

Each command runs as ``synth-studio`` in a subprocess on a copy of a small notebook and is killed
at a time drawn from a seeded RNG within its measured work: the clock starts when the command opens
the notebook, so the kill lands in its work rather than in the interpreter's start-up. Some kills
come at a chosen moment instead: the instant the command's first row lands, where a step written
in two transactions is half made (``FIRST_ROW``); the instant an export starts writing its file
(``MID_WRITE``); the instant an export's new file replaces an older export's. After the kill:

- ``PRAGMA integrity_check`` is ok;
- every record that was there before is there unchanged, and what the command committed is whole
  (a whole import or none of it, whole edits, whole generated records);
- no step shows as done when it is half written (a validate step with part of its scores, a
  dedupe step without its groups, a version without its records);
- an export's files are absent or whole and agree with each other (never a truncated file under
  the target's name);
- the same command run again (``--resume`` for generate) ends where an uninterrupted run on a copy
  of the starting notebook ends: the same records, edits, scores, groups, verdicts and versions,
  byte-identical export files.

``tests/test_resume_crash.py`` kills generate at a fixed point; the generate case here adds seeded
kill times and compares the resumed run with an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from app.export.versions import content_hash
from app.store.versions import VersionRecord
from tests.conftest import REPO, SAMPLE

pytestmark = pytest.mark.timeout(300)

SEEDS = (0, 1)
FIRST_ROW = "first-row"  # not a seed: the kill comes the instant the command's first row of its own is committed
MID_WRITE = "mid-write"  # not a seed: the kill comes the instant an export starts writing a file
N_SYNTHETIC = 3000  # samples in the starting notebooks: validate, dedupe, version and export work for about a second
N_MORE = 6000  # the rows the import case imports (over BULK_RECORDS: the one-pass search index)
FAKE_DELAY = "0.002"  # seconds per token: generating 40 samples takes about two seconds
POLL_S = 0.001


# -- notebooks ----------------------------------------------------------------------------------------------


def synthetic_jsonl(path: Path, n: int, seed: int, notes: int = 0) -> Path:
    """``n`` records with text: some too short for the length rule, some exact and some near duplicates;
    each with a ``notes`` variable of that many characters."""
    rng = random.Random(seed)
    words = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
             "sigma tau upsilon phi chi psi omega").split()
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 40)))
            if i % 9 == 0:
                text = f"the same answer number {i % 7} for every one of these questions"
            elif i % 13 == 0:
                text = f"the same answer number {i % 7} for nearly every one of these questions"
            fh.write(json.dumps({"topic": f"topic {i}", "notes": "n" * notes, "output": text}) + "\n")
    return path


def copy_book(src: Path, dest: Path) -> Path:
    """A copy of a closed notebook (its -wal too, should one be left)."""
    for suffix in ("", "-wal"):
        if Path(f"{src}{suffix}").exists():
            shutil.copyfile(f"{src}{suffix}", f"{dest}{suffix}")
    return dest


def query(book: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(book, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# -- what a notebook holds ------------------------------------------------------------------------------------

RECORD_COLUMNS = ("id, role, run_id, prompt_version_id, input_record_id, row_index, sample_index, seed, variables, "
                  "prompt, output, mean_logprob, completion_tokens, origin, status, source, parent_record_id, "
                  "derivation")
OUTPUT, STATUS = 10, 14  # where they sit in RECORD_COLUMNS


def records(book: Path) -> dict[int, tuple[Any, ...]]:
    """Every record as stored, when it was made included (not when it was last touched); not the
    rows an import has staged and not yet shown (app.store.staged), which no reader sees."""
    return {r[0]: r for r in query(book, f"SELECT {RECORD_COLUMNS}, created FROM records "
                                         "WHERE role IN ('input', 'sample')")}


def end_state(book: Path) -> dict[str, Any]:
    """What a person sees of a notebook, without the ids and times of the steps that made it: a killed
    run leaves step rows of its own, and a rerun makes its records at another time."""
    meta = query(book, "SELECT value FROM notebook_meta WHERE key = 'imported_files'")
    return {
        "records": query(book, f"SELECT {RECORD_COLUMNS} FROM records ORDER BY id"),  # staged rows too
        "edits": query(book, "SELECT record_id, field, old, new, author, reverts FROM edits ORDER BY id"),
        "scores": query(book, "SELECT record_id, name, kind, value, passed, reason, stale FROM scores "
                              "ORDER BY record_id, name"),
        "duplicates": query(book, "SELECT record_id, method, group_id, representative_id FROM duplicates "
                                  "ORDER BY method, record_id"),
        "verdicts": query(book, "SELECT * FROM verdicts ORDER BY record_id"),
        "runs": query(book, "SELECT id, status, samples_per_row, plan FROM runs ORDER BY id"),
        "versions": query(book, "SELECT v.tag, v.message, p.tag, v.content_hash, v.manifest FROM dataset_versions v "
                                "LEFT JOIN dataset_versions p ON p.id = v.parent_id ORDER BY v.id"),
        "version_records": query(book, "SELECT v.tag, r.record_id, r.text_hash, r.output, r.status, r.scores, "
                                       "r.cluster FROM version_records r JOIN dataset_versions v "
                                       "ON v.id = r.version_id ORDER BY v.id, r.record_id"),
        "imported_files": [{k: v for k, v in f.items() if k != "at"} for f in json.loads(meta[0][0])] if meta else [],
    }


def step_score_names(kind: str, settings: dict[str, Any]) -> list[str]:
    """The score names a validate or score step writes for every sample."""
    if kind == "validate":
        return [f"validator:{r.get('name', r['type'])}" for r in settings["rules"] if not r.get("automatic")]
    return [f"score:{name}" for name in settings["scorers"]]


def assert_sound(book: Path) -> None:
    """Integrity, and no step that looks done but is half written."""
    assert query(book, "PRAGMA integrity_check") == [("ok",)]
    assert query(book, "PRAGMA foreign_key_check") == []
    # the search index matches the records, and its insert trigger is there (a bulk insert drops it
    # for its rows and makes it again, in the same transaction)
    query(book, "INSERT INTO records_fts (records_fts, rank) VALUES ('integrity-check', 1)")
    assert query(book, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name = 'records_ai'") == [(1,)]
    n = query(book, "SELECT COUNT(*) FROM records WHERE role = 'sample' AND output IS NOT NULL")[0][0]
    # a step's scores are all there or none are (a step with none shows nowhere: no funnel stage, no
    # manifest entry; a rerun overwrites the scores of an earlier step, leaving it none)
    for step_id, kind, settings in query(book, "SELECT id, kind, settings FROM steps "
                                               "WHERE kind IN ('validate', 'score')"):
        names = step_score_names(kind, json.loads(settings))
        got = dict(query(book, "SELECT name, COUNT(*) FROM scores WHERE step_id = ? GROUP BY name", (step_id,)))
        assert {name: got.get(name, 0) for name in names} in ({name: 0 for name in names},
                                                              {name: n for name in names}), (
            f"{kind} step {step_id} is half written: {got} of {n} samples")
    # the funnel shows each dedupe method with its latest step: the groups stored must be that
    # step's (every method finds duplicates in these notebooks, so a step without groups is half made)
    for method, latest in query(book, "SELECT name, MAX(id) FROM steps WHERE kind = 'dedupe' GROUP BY name"):
        stored = query(book, "SELECT DISTINCT step_id FROM duplicates WHERE method = ?", (method,))
        assert stored == [(latest,)], f"dedupe:{method} shows step {latest}, but its groups are from {stored}"
    # a version is exactly its records: their number and content hash agree with its manifest
    for vid, tag, chash, manifest in query(book, "SELECT id, tag, content_hash, manifest FROM dataset_versions"):
        frozen = [VersionRecord(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in query(
            book, "SELECT record_id, text_hash, output, status, scores, cluster FROM version_records "
                  "WHERE version_id = ?", (vid,))]
        spec = json.loads(manifest)
        assert len(frozen) == spec["totals"]["records"] > 0, f"version {tag} lacks records"
        assert content_hash(frozen, spec) == chash, f"version {tag} does not hash to its content hash"
    # a generated record is whole when it exists; a completed run has all of its records
    assert query(book, "SELECT COUNT(*) FROM records WHERE run_id IS NOT NULL AND (output IS NULL OR "
                       "completion_tokens IS NULL)") == [(0,)]
    for run_id, plan, per_row in query(book, "SELECT id, plan, samples_per_row FROM runs WHERE status = 'completed'"):
        made = query(book, "SELECT COUNT(*) FROM records WHERE run_id = ?", (run_id,))[0][0]
        assert made == len(json.loads(plan)) * per_row, f"run {run_id} is completed with {made} records"


def assert_kept(before: dict[int, tuple[Any, ...]], book: Path, *, changed: frozenset[int] = frozenset()) -> None:
    """Every record that was there before is still there, unchanged (but for those in ``changed``)."""
    after = records(book)
    assert set(before) <= set(after), f"records lost: {sorted(set(before) - set(after))[:10]}"
    differ = [rid for rid, row in before.items() if after[rid] != row and rid not in changed]
    assert not differ, f"records changed: {differ[:10]}"


# -- running and killing a command --------------------------------------------------------------------------


Args = Callable[[Path, Path], list[str]]  # (notebook, output folder) -> the command line
Trigger = Callable[[], bool]


def cli(*args: object) -> list[str]:
    return [sys.executable, "-m", "widgets.launcher", *map(str, args)]


def rerun(args: list[str]) -> int:
    """The same command again, in this process (quicker; its start-up is not what is tested)."""
    return main(args[3:])


@contextmanager
def on_open(book: Path) -> Iterator[Trigger]:
    """Fires once the command opens ``book`` (SQLite makes its -wal file; a closed notebook has none):
    the interpreter's start-up is over and the command's work begins."""
    wal = Path(f"{book}-wal")
    assert not wal.exists(), "the notebook is open elsewhere"
    yield wal.exists


@contextmanager
def on_change(book: Path, sql: str) -> Iterator[Trigger]:
    """Fires once another connection commits a change to what ``sql`` reads (a step row, an edit)."""
    conn = sqlite3.connect(book, timeout=10, isolation_level=None)
    try:
        first = conn.execute(sql).fetchall()
        yield lambda: conn.execute(sql).fetchall() != first
    finally:
        conn.close()


@contextmanager
def on_partial(out: Path) -> Iterator[Trigger]:
    """Fires once an export starts writing a file into ``out`` (under its temporary name)."""
    yield lambda: any(out.glob("*.partial"))


@dataclass(frozen=True)
class Timing:
    started: float  # seconds from launch until the command opened the notebook
    work: float  # seconds from then until it exited


def launch(args: list[str], err: Path, extra_env: dict[str, str]) -> subprocess.Popen[bytes]:
    with err.open("wb") as fh:  # a file, not a pipe: a full pipe would stall the command
        return subprocess.Popen(args, cwd=REPO, env={**os.environ, **extra_env}, stdout=subprocess.DEVNULL,
                                stderr=fh)


def wait_for(proc: subprocess.Popen[bytes], fired: Trigger, t0: float) -> float:
    while not fired() and proc.poll() is None:
        assert time.monotonic() - t0 < 120, "the command hung"
        time.sleep(POLL_S)
    return time.monotonic() - t0


def run_whole(args: list[str], book: Path, err: Path, extra_env: dict[str, str]) -> Timing:
    """Run the command to its end, timing its work."""
    t0 = time.monotonic()
    with on_open(book) as fired:
        proc = launch(args, err, extra_env)
        started = wait_for(proc, fired, t0)
    assert proc.wait(timeout=120) == 0, err.read_text()
    return Timing(started, time.monotonic() - t0 - started)


def run_killed(args: list[str], c: Case, when: int | str, ref: Reference, first_row: str | None = None) -> int:
    """Run the command on ``c`` and SIGKILL it at seed ``when``'s time into its work; or (``FIRST_ROW``)
    the instant what the ``first_row`` query reads changes; or (``MID_WRITE``) the instant a temporary
    export file appears. Returns its exit status (0: it finished first)."""
    delay = 0.0
    if when == FIRST_ROW:
        assert first_row is not None
        trigger = on_change(c.book, first_row)
    elif when == MID_WRITE:
        trigger = on_partial(c.out)
    else:  # drawn within the work that the uninterrupted run measured
        trigger, delay = on_open(c.book), random.Random(f"{ref.name}:{when}").uniform(0.0, 0.95 * ref.timing.work)
    err = c.out.parent / "stderr"
    t0 = time.monotonic()
    with trigger as fired:
        proc = launch(args, err, ref.env)
        wait_for(proc, fired, t0)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    code = proc.wait(timeout=30)
    assert code in (0, -signal.SIGKILL), err.read_text()
    return code


@dataclass
class Reference:
    """A command's uninterrupted run on a copy of its starting notebook."""

    name: str
    base: Path  # the starting notebook
    timing: Timing
    state: dict[str, Any]
    out: Path  # the folder it wrote its files to
    env: dict[str, str]


@dataclass
class Bench:
    """The starting notebooks, made once: ``plain`` (input rows, a generated run, imported samples, an
    edit) and ``quality`` (the same, validated, deduplicated and frozen as version v0); and each
    command's reference run, made the first time a test asks for it."""

    root: Path
    plain: Path
    quality: Path
    more: Path  # a table to import
    references: dict[str, Reference] = field(default_factory=dict)

    def reference(self, name: str, base: Path, args: Args, **extra_env: str) -> Reference:
        if name not in self.references:
            folder = self.root / f"ref-{name}"
            out = folder / "out"
            out.mkdir(parents=True)
            book = copy_book(base, folder / "nb.db")
            timing = run_whole(args(book, out), book, folder / "stderr", extra_env)
            assert_sound(book)
            self.references[name] = Reference(name, base, timing, end_state(book), out, extra_env)
        return self.references[name]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    root = tmp_path_factory.mktemp("faults")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYNTH_STUDIO_HOME", str(tmp_path_factory.mktemp("faults-home")))
        plain = root / "plain.db"
        for argv in (["new", plain], ["import", plain, SAMPLE / "support_topics.csv"],
                     ["prompt", "add", plain, "ticket", "--template", SAMPLE / "support_ticket.j2"],
                     ["generate", plain, "--prompt", "ticket", "--samples", "2", "--backend", "fake", "--quiet"],
                     ["import", plain, synthetic_jsonl(root / "synthetic.jsonl", N_SYNTHETIC, 0),
                      "--origin", "synthetic"],
                     ["edit", plain, "25", "--output", "an answer a person rewrote", "--status", "accepted"]):
            assert main([str(a) for a in argv]) == 0
        quality = copy_book(plain, root / "quality.db")
        for argv in (["validate", quality], ["dedupe", quality, "--method", "exact"],
                     ["version", quality, "--tag", "v0"]):
            assert main([str(a) for a in argv]) == 0
        # long notes make a big file, so hashing it takes a while: the import hashes it before its
        # rows go in, and remembers it in their transaction (FIRST_ROW checks both are in together)
        yield Bench(root, plain, quality, synthetic_jsonl(root / "more.jsonl", N_MORE, 1, notes=1500))


@dataclass
class Case:
    """One killed run: its notebook (a copy of the reference's start) and what was there before."""

    book: Path
    out: Path
    before: dict[int, tuple[Any, ...]]


def start(ref: Reference, tmp_path: Path) -> Case:
    book = copy_book(ref.base, tmp_path / "nb.db")
    out = tmp_path / "out"
    out.mkdir()
    return Case(book, out, records(book))


# -- the write paths ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("when", [*SEEDS, FIRST_ROW])
def test_validate_killed(bench, tmp_path, when):
    """``FIRST_ROW`` kills validate the instant its step row is written, before its scores."""

    def args(book: Path, _out: Path) -> list[str]:
        return cli("validate", book)

    ref = bench.reference("validate", bench.plain, args)
    c = start(ref, tmp_path)
    run_killed(args(c.book, c.out), c, when, ref, "SELECT COUNT(*) FROM steps WHERE kind = 'validate'")
    assert_sound(c.book)
    assert_kept(c.before, c.book)
    assert rerun(args(c.book, c.out)) == 0
    assert_sound(c.book)
    assert end_state(c.book) == ref.state


@pytest.mark.parametrize("when", [*SEEDS, FIRST_ROW])
def test_dedupe_killed(bench, tmp_path, when):
    """``FIRST_ROW`` kills dedupe the instant its step row is written, before its groups."""

    def args(book: Path, _out: Path) -> list[str]:
        return cli("dedupe", book, "--method", "minhash")

    ref = bench.reference("dedupe", bench.quality, args)
    c = start(ref, tmp_path)
    exact = "SELECT * FROM duplicates WHERE method = 'exact' ORDER BY record_id"
    exact_before = query(c.book, exact)
    run_killed(args(c.book, c.out), c, when, ref, "SELECT COUNT(*) FROM steps WHERE kind = 'dedupe'")
    assert_sound(c.book)
    assert_kept(c.before, c.book)
    assert query(c.book, exact) == exact_before  # another method's groups are untouched
    assert rerun(args(c.book, c.out)) == 0
    assert_sound(c.book)
    assert end_state(c.book) == ref.state


@pytest.mark.parametrize("when", [*SEEDS, FIRST_ROW])
def test_edit_killed(bench, tmp_path, when):
    """Changing a record's text and status is two edits, each whole or absent: the value, its history
    row, the origin and the text's scores marked stale. ``FIRST_ROW`` kills it the instant the first
    edit lands (often before the second)."""
    rid = query(bench.quality, "SELECT MIN(id) FROM records WHERE run_id IS NOT NULL")[0][0]

    def args(book: Path, _out: Path) -> list[str]:
        return cli("edit", book, rid, "--output", "a better answer, by hand", "--status", "rejected",
                   "--author", "ana")

    ref = bench.reference("edit", bench.quality, args)
    c = start(ref, tmp_path)
    edits_before = query(c.book, "SELECT * FROM edits ORDER BY id")
    run_killed(args(c.book, c.out), c, when, ref, "SELECT COUNT(*) FROM edits")
    assert_sound(c.book)
    assert_kept(c.before, c.book, changed=frozenset({rid}))
    edits = query(c.book, "SELECT * FROM edits ORDER BY id")
    assert edits[: len(edits_before)] == edits_before
    made = {e[2]: e[4] for e in edits[len(edits_before):]}  # field -> new value, of the edits the command made
    output, status, origin = query(c.book, "SELECT output, status, origin FROM records WHERE id = ?", (rid,))[0]
    assert output == made.get("output", c.before[rid][OUTPUT])
    assert status == made.get("status", c.before[rid][STATUS])
    assert (origin == "human-edited") == ("output" in made)
    stale = {s for (s,) in query(c.book, "SELECT DISTINCT stale FROM scores WHERE record_id = ?", (rid,))}
    assert stale == ({1} if "output" in made else {0})
    assert rerun(args(c.book, c.out)) == 0
    assert_sound(c.book)
    assert end_state(c.book) == ref.state


@pytest.mark.parametrize("seed", SEEDS)
def test_version_killed(bench, tmp_path, seed):
    def args(book: Path, _out: Path) -> list[str]:
        return cli("version", book, "--tag", "v1", "-m", "after the kill")

    ref = bench.reference("version", bench.quality, args)
    c = start(ref, tmp_path)
    run_killed(args(c.book, c.out), c, seed, ref)
    assert_sound(c.book)
    assert_kept(c.before, c.book)
    frozen = query(c.book, "SELECT tag FROM dataset_versions ORDER BY id")
    assert frozen in ([("v0",)], [("v0",), ("v1",)])
    # a tag is never frozen twice: when the killed run got as far as its commit, the rerun is refused
    assert rerun(args(c.book, c.out)) == (0 if frozen == [("v0",)] else 2)
    assert_sound(c.book)
    assert end_state(c.book) == ref.state


@pytest.mark.parametrize("when", [*SEEDS, FIRST_ROW])
def test_import_killed(bench, tmp_path, when):
    """An import is whole or absent. Killed before its rows were shown, run again it ends as one import
    does (it removes the rows the killed one staged); once they are shown, it is done (running it
    again would import the rows twice, as after any import), and the notebook must remember the
    file, so that Run all does not import it again. ``FIRST_ROW`` kills it the instant its rows are
    in the file, staged and not yet shown."""

    def args(book: Path, _out: Path) -> list[str]:
        return cli("import", book, bench.more, "--origin", "synthetic")

    ref = bench.reference("import", bench.plain, args)
    c = start(ref, tmp_path)
    run_killed(args(c.book, c.out), c, when, ref, "SELECT COUNT(*) FROM records")
    assert_sound(c.book)
    assert_kept(c.before, c.book)
    added = len(records(c.book)) - len(c.before)
    assert added in (0, N_MORE)
    if added == 0:
        assert rerun(args(c.book, c.out)) == 0
    state, expected = end_state(c.book), dict(ref.state)
    memo, expected_memo = state.pop("imported_files"), expected.pop("imported_files")
    assert state == expected
    assert memo == expected_memo  # the rows are never in without the memory of their file


@pytest.mark.parametrize("seed", SEEDS)
def test_generate_killed_then_resumed(bench, tmp_path, seed):
    def args(book: Path, _out: Path) -> list[str]:
        return cli("generate", book, "--prompt", "ticket", "--samples", "2", "--seed", "7", "--backend", "fake",
                   "--quiet")

    ref = bench.reference("generate", bench.plain, args, SYNTH_STUDIO_FAKE_DELAY=FAKE_DELAY)
    c = start(ref, tmp_path)
    code = run_killed(args(c.book, c.out), c, seed, ref)
    assert_sound(c.book)
    assert_kept(c.before, c.book)
    made = {rid: row for rid, row in records(c.book).items() if rid not in c.before}
    if query(c.book, "SELECT status FROM runs ORDER BY id DESC LIMIT 1") == [("running",)]:
        assert code == -signal.SIGKILL  # only a killed run stays running (a whole one says completed)
        assert rerun([*args(c.book, c.out), "--resume"]) == 0
    assert_sound(c.book)
    assert_kept({**c.before, **made}, c.book)  # what the killed run made is kept as it was
    assert end_state(c.book) == ref.state  # the same texts, seeds and slots as one whole run


# -- exports: files absent or whole, never a truncated file under the target's name -----------------------

EXPORTS: dict[str, Args] = {
    "kept-parquet": lambda book, out: cli("export", book, out / "data.parquet"),
    "card-jsonl": lambda book, out: cli("export", book, out / "data.jsonl", "--card"),
    "version-csv": lambda book, out: cli("export", book, out / "data.csv", "--version", "v0"),
}


def export_files(out: Path) -> dict[str, bytes]:
    """The files under their own names, each checked whole and valid, the manifest against the data
    file beside it and the dataset card against both."""
    import pandas as pd
    import yaml

    files = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.endswith(".partial")}
    data = next((name for name in files if name.startswith("data.") and "manifest" not in name), None)
    rows: list[Any] = []
    if data is not None:
        path = out / data
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in files[data].decode("utf-8").splitlines()]
        elif path.suffix == ".csv":
            rows = pd.read_csv(path).to_dict("records")
        else:
            rows = pd.read_parquet(path).to_dict("records")
        assert rows, f"{data} holds no rows"
        assert path.suffix == ".parquet" or files[data].endswith(b"\n"), f"{data} ends mid-line"
    if "data.manifest.json" in files:
        assert data is not None, "a manifest without its data file"
        described = json.loads(files["data.manifest.json"])["files"][0]
        assert described["path"] == data and described["rows"] == len(rows)
        assert described["sha256"] == hashlib.sha256(files[data]).hexdigest(), "the manifest describes another file"
    if "README.md" in files:
        assert "data.manifest.json" in files, "a dataset card without its manifest"
        card = files["README.md"].decode("utf-8")
        assert card.startswith("---\n")
        assert yaml.safe_load(card.split("---\n")[1])["configs"][0]["data_files"][0]["path"] == data
    return files


@pytest.mark.parametrize("when", [*SEEDS, MID_WRITE])
@pytest.mark.parametrize("kind", list(EXPORTS))
def test_export_killed(bench, tmp_path, kind, when):
    """``MID_WRITE`` kills the export the instant it starts writing its data file."""
    args = EXPORTS[kind]
    ref = bench.reference(f"export-{kind}", bench.quality, args)
    c = start(ref, tmp_path)
    code = run_killed(args(c.book, c.out), c, when, ref)
    assert_sound(c.book)
    assert_kept(c.before, c.book)
    files = export_files(c.out)
    if when == MID_WRITE and code != 0:
        # killed as it began writing: nothing under the target's names; on a loaded machine the kill
        # can land after a rename, and then that file is whole (never truncated)
        ref_files = export_files(ref.out)
        partial = sorted(name for name, data in files.items() if data != ref_files.get(name))
        assert not partial, f"a killed write left {partial} under the target's names, not whole"
    assert rerun(args(c.book, c.out)) == 0
    assert export_files(c.out) == export_files(ref.out)
    assert not list(c.out.glob("*.partial")), "the rerun leaves no temporary file behind"
    assert end_state(c.book) == ref.state


@contextmanager
def on_replaced(path: Path) -> Iterator[Trigger]:
    """Fires once ``path`` is another file (an export renamed its new file over it)."""
    first = path.stat().st_ino
    yield lambda: path.stat().st_ino != first


def test_export_killed_over_an_older_export(bench, tmp_path):
    """Exported again into the folder of an older export (its data file, manifest and card), and
    killed the instant the new data file replaces the old one: no manifest or card is left that
    describes a file other than the one beside it."""
    args = EXPORTS["card-jsonl"]
    ref = bench.reference("export-card-jsonl", bench.quality, args)
    c = start(ref, tmp_path)
    data = c.out / "data.jsonl"
    assert rerun(cli("export", c.book, data, "--version", "v0", "--format", "sft")) == 0
    old = export_files(c.out)
    assert set(old) == {"data.jsonl", "data.manifest.json", "README.md"}
    t0 = time.monotonic()
    with on_replaced(data) as fired:
        proc = launch(args(c.book, c.out), tmp_path / "stderr", ref.env)
        wait_for(proc, fired, t0)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) in (0, -signal.SIGKILL)
    assert_sound(c.book)
    assert export_files(c.out)["data.jsonl"] != old["data.jsonl"]
    assert rerun(args(c.book, c.out)) == 0
    assert export_files(c.out) == export_files(ref.out)
    assert end_state(c.book) == ref.state
