"""Jobs the window starts: plain functions taking a task handle (no Qt here).

Each opens its own notebook connection (the window's stays on the UI thread) and
loads the model inside the job, so the window never waits for either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from app.core.errors import ModelError
from app.core.tasks import TaskState
from app.generate.runs import create_run, execute_run, prepare_run
from app.store.notebook import Notebook, Run
from backends.protocols import ModelInfo, SamplerSettings, TextGenerator

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from app.export.versions import VersionDiff
    from app.map.axes import AxisSummary
    from app.map.projection import MapResult
    from app.quality.coverage import Coverage, Round, TopUp
    from app.quality.criteria import CriterionEntry
    from app.quality.sanity import SanityReport
    from app.report.html import ReportPage
    from app.store.versions import DatasetVersion


# -- what a job hands the window while it runs (partial results) ----------------------------


@dataclass(frozen=True)
class RecordMade:
    """A generated record was committed."""

    record_id: int


@dataclass(frozen=True)
class TokenStreamed:
    """A piece of text a sequence being generated just produced; ``key`` tells the sequences apart."""

    key: Any
    piece: str


@dataclass(frozen=True)
class SanityReady:
    """The judges' sanity reports, one per criterion."""

    reports: tuple[SanityReport, ...]


JobEvent = RecordMade | TokenStreamed | SanityReady


class Emitter(Protocol):
    """Where a job sends its partial results (the window's job runner; None from the CLI)."""

    def emit(self, event: JobEvent) -> None: ...


JOB_WRITE_WAIT_S = 300.0  # a job (on a worker thread, never the UI's) waits out another program's long write


def _open(notebook_path: str | Path, task: TaskState) -> Notebook:
    """The job's own connection to the notebook: in the window, its writes wait for another
    program's write as long as JOB_WRITE_WAIT_S, saying so in the job's progress, and a stop asked
    meanwhile is heard."""
    nb = Notebook.open(notebook_path)

    def waiting(path: Path, seconds: float) -> None:
        task.check()
        task.set_progress(0, 0, f"waiting for another program's write to {path.name} ({seconds:.0f} s)")

    if nb.write_wait_s is None:  # in the window (the CLI waits as long as it says, in its own words)
        nb.wait_for_writers(JOB_WRITE_WAIT_S, waiting)
    return nb


def generate_job(
    notebook_path: str | Path,
    prompt_name: str,
    *,
    samples: int = 1,
    limit_rows: int | None = None,
    seed: int = 0,
    settings: SamplerSettings | None = None,
    model_path: str | None = None,
    backend: str = "llama-cpp",
    model_options: dict[str, Any] | None = None,
    resume: bool = False,
    over: str | None = None,
    over_kept: bool = False,
    models: Sequence[tuple[str, float]] | None = None,
    task: TaskState,
    worker: Emitter | None = None,
) -> Run:
    """Generate (or, with ``resume``, finish the prompt's last unfinished run); the CLI and the window.
    ``over`` chains the prompt onto another's samples (``run:12``, ``prompt:NAME@v2``); with
    ``over_kept`` only onto those the funnel keeps. ``models`` [(path, weight)] spreads the
    samples over several models (one run each, see app.generate.runs.spread_parts); the first
    run of the generation is returned."""
    import backends
    from app.generate.runs import resumable_run, resumable_spread

    with _open(notebook_path, task) as nb:
        spread = resumable_spread(nb, prompt_name) if resume else None
        if models or spread:
            return _generate_spread(nb, prompt_name, spread, models or [], samples=samples, limit_rows=limit_rows,
                                    seed=seed, settings=settings, backend=backend, model_options=model_options,
                                    over=over, over_kept=over_kept, task=task, worker=worker)
        # Cheap checks first (model file, template, rows): bad input changes nothing and costs no model load.
        known = _describe_local_model(backend, model_path)
        run = resumable_run(nb, prompt_name, known) if resume and known else None
        only = _kept_parents(nb, over, over_kept and not resume)
        plan = None if resume else prepare_run(nb, prompt_name, samples=samples, limit_rows=limit_rows, seed=seed,
                                               settings=settings, over=over, only=only)
        total = len(plan.plan) * samples if plan else 0
        task.set_progress(0, total, "loading model")
        generator = backends.load_generator(backend, known.path if known else model_path, **(model_options or {}))
        try:
            if plan is not None:
                run = create_run(nb, plan, generator.info)
            elif run is None:
                run = resumable_run(nb, prompt_name, generator.info)
            on_record = (lambda rid: worker.emit(RecordMade(rid))) if worker else None
            on_token = (lambda key, piece: worker.emit(TokenStreamed(key, piece))) if worker else None
            return execute_run(nb, run, generator, task, on_record=on_record, on_token=on_token)
        finally:
            generator.close()


def made_before(notebook_path: str | Path, prompt_name: str, *, samples: int = 1, limit_rows: int | None = None,
                seed: int = 0, settings: SamplerSettings | None = None, model_path: str | None = None,
                backend: str = "llama-cpp", over: str | None = None, over_kept: bool = False) -> Run | None:
    """The run that already made exactly what ``generate_job`` with these arguments would make
    (same plan, same model), or None; cheap (no model load: a local file's hash is cached)."""
    from app.generate.runs import matching_run

    with Notebook.open(notebook_path) as nb:
        only = _kept_parents(nb, over, over_kept)
        plan = prepare_run(nb, prompt_name, samples=samples, limit_rows=limit_rows, seed=seed, settings=settings,
                           over=over, only=only)
        known = _describe_local_model(backend, model_path)
        if known is not None:
            sha: str | None = known.sha256
        elif backend == "fake":
            from backends.fake import FakeGenerator

            sha = FakeGenerator(model_path).info.sha256
        else:
            sha = None  # a server: matched by its address
        return matching_run(nb, plan, model_sha256=sha, model_path=model_path)


def _generate_spread(nb: Notebook, prompt_name: str, resume: list[Run] | None, models: Sequence[tuple[str, float]],
                     *, samples: int, limit_rows: int | None, seed: int, settings: SamplerSettings | None,
                     backend: str, model_options: dict[str, Any] | None, over: str | None, over_kept: bool,
                     task: TaskState, worker: Emitter | None) -> Run:
    """One generation spread over several models: every model is checked (and, for a file, hashed)
    before anything is written, then each model is loaded in turn (one in memory at a time) and
    makes its share of the slots. A resume finishes each unfinished part with the file it began
    with, refusing a file whose content changed."""
    import backends
    from app.generate.runs import create_spread_runs, planned_samples, spread_group

    if resume is not None:
        runs = resume
        for r in runs:
            known = _describe_local_model(r.backend, r.model_path)
            if known is not None and known.sha256 != r.model_sha256:
                raise ModelError(f"run {r.id} was made with {r.model_path}, whose content has changed since "
                                 f"(sha256 {str(r.model_sha256)[:12]}...); it cannot be resumed with it")
        paths = [r.model_path for r in runs]
        backend_of = [r.backend for r in runs]
        everyone = spread_group(nb, runs[0])
    else:
        only = _kept_parents(nb, over, over_kept)
        plan = prepare_run(nb, prompt_name, samples=samples, limit_rows=limit_rows, seed=seed, settings=settings,
                           over=over, only=only)
        infos = []
        for model_path, weight in models:
            info = _describe_local_model(backend, model_path)
            if info is None:  # a server (or another backend): ask it what it is, without keeping it loaded
                probe = backends.load_generator(backend, model_path, **(model_options or {}))
                info = probe.info
                probe.close()
            infos.append((info, weight))
        runs = everyone = create_spread_runs(nb, plan, infos)
        paths = [info.path for info, _ in infos]
        backend_of = [info.backend for info, _ in infos]
    total = sum(planned_samples(r) for r in everyone)
    before = total - sum(planned_samples(r) - len(nb.done_slots(r.id)) for r in runs)
    on_record = (lambda rid: worker.emit(RecordMade(rid))) if worker else None
    on_token = (lambda key, piece: worker.emit(TokenStreamed(key, piece))) if worker else None
    for i, (run, path, kind) in enumerate(zip(runs, paths, backend_of)):
        task.check()
        spread = run.settings["spread"]
        label = f"run {run.id} ({spread['models'][spread['part']]}, model {i + 1} of {len(runs)})"
        task.set_progress(before, total, f"loading {label}")
        generator = backends.load_generator(kind, path, **(model_options or {}))
        try:
            done = execute_run(nb, run, generator, task, on_record=on_record, on_token=on_token,
                               group=(before, total, label))
        finally:
            generator.close()
        if done.status != "completed":
            return everyone[0]
        before = total - sum(planned_samples(r) - len(nb.done_slots(r.id)) for r in runs)
    return everyone[0]


def _kept_parents(nb: Notebook, over: str | None, kept_only: bool) -> list[int] | None:
    """For a chain with ``--over-kept``: the parent samples the funnel keeps (None: every parent)."""
    if over is None or not kept_only:
        return None
    from app.quality.funnel import kept_ids

    return kept_ids(nb)


def _describe_local_model(backend: str, model_path: str | None) -> ModelInfo | None:
    """A local GGUF checked and hashed without loading it; None for servers and other backends."""
    from backends import is_server_url

    if backend != "llama-cpp" or is_server_url(model_path):
        return None
    from backends.llama_cpp_backend import describe_model

    return describe_model(model_path)


def compare_job(
    notebook_path: str | Path,
    prompt_name: str,
    a: int,
    b: int,
    *,
    samples: int,
    limit_rows: int | None,
    seed: int,
    settings: SamplerSettings,
    model_path: str | None = None,
    backend: str = "llama-cpp",
    model_options: dict[str, Any] | None = None,
    task: TaskState,
    worker: Emitter | None = None,
) -> dict[str, Any]:
    import backends
    from app.review.compare import compare_runs, run_versions

    with _open(notebook_path, task) as nb:
        generator = backends.load_generator(backend, model_path, **(model_options or {}))
        try:
            ra, rb = run_versions(nb, prompt_name, a, b, generator, samples=samples, limit_rows=limit_rows,
                                  seed=seed, settings=settings, task=task)
        finally:
            generator.close()
        return compare_runs(nb, ra.id, rb.id)


def import_job(notebook_path: str | Path, file: str | Path, *, origin: str = "real",
               output_column: str | None = None, task: TaskState, worker: Emitter | None = None) -> str:
    from app.data.importer import import_table

    def progress(done: int, total: int) -> None:
        task.check()  # between chunks: a cancelled import leaves nothing in
        task.set_progress(done, total, f"{done:,} of {total:,} rows in")

    task.set_progress(0, 1, "reading")
    with _open(notebook_path, task) as nb:
        result = import_table(nb, file, origin=origin, output_column=output_column, progress=progress)
    task.set_progress(1, 1, "done")
    return result.message(Path(file).name)


def export_job(notebook_path: str | Path, out: str | Path, *, fmt: str = "plain", task: TaskState,
               worker: Emitter | None = None) -> str:
    from app.export.formats import export

    def progress(done: int, total: int) -> None:
        task.check()  # between pages: a cancelled export leaves no file under its name
        task.set_progress(done, total, f"{done:,} of {total:,} records written")

    task.set_progress(0, 1, "reading")
    with _open(notebook_path, task) as nb:
        written, skipped = export(nb, out, fmt=fmt, progress=progress)
    note = f" ({skipped} without a prompt skipped)" if skipped else ""
    what = "records" if fmt in ("plain", "sft") else "preference pairs"
    return f"wrote {written} {what} (the funnel's kept set) to {Path(out).resolve()}{note}"


def version_job(notebook_path: str | Path, tag: str, *, message: str = "", task: TaskState,
                worker: Emitter | None = None) -> DatasetVersion:
    """Freeze the funnel's kept set as dataset version ``tag`` (a tag that exists is refused, nothing written)."""
    from app.export.versions import freeze

    task.set_progress(0, 1, "freezing the kept set")
    with _open(notebook_path, task) as nb:
        version = freeze(nb, tag, message)
    task.set_progress(1, 1, f"froze {version.tag}")
    return version


def diff_job(notebook_path: str | Path, before: str, after: str = "current", *, task: TaskState,
             worker: Emitter | None = None) -> VersionDiff:
    """What changed from version ``before`` to ``after`` (a tag, or ``current``: the kept set now)."""
    from app.export.versions import diff

    task.set_progress(0, 1, f"comparing {before} with {after}")
    with _open(notebook_path, task) as nb:
        result = diff(nb, before, after)
    task.set_progress(1, 1, "compared")
    return result


@dataclass(frozen=True)
class ReviewQueueReady:
    """The review queue in order, and its filter menu's choices (their failing counts read every score)."""

    choices: list[tuple[str, str]]
    items: list[Any]


def review_queue_job(notebook_path: str | Path, view: str = "all", *, task: TaskState,
                     worker: Emitter | None = None) -> ReviewQueueReady:
    """The review queue in order (app.review.queue.build_queue) and the menu of views, off the UI
    thread: both read every pass/fail score, which takes seconds on a big notebook."""
    from app.review.queue import build_queue, view_choices

    with _open(notebook_path, task) as nb:
        task.set_progress(0, 0, "ordering the review queue")
        choices = view_choices(nb)
        task.check()
        return ReviewQueueReady(choices, list(build_queue(nb, view=view)))


def axis_summary_job(notebook_path: str | Path, *, axis: str, k: int, task: TaskState,
                     worker: Emitter | None = None) -> AxisSummary:
    """The map's extremes and histogram for ``axis`` (app.map.axes.axis_summary) on the job's own
    connection: it reads every sample's value, most of a second at a million records."""
    from app.map.axes import axis_summary

    with _open(notebook_path, task) as nb:
        task.set_progress(0, 0, f"reading every sample's {axis}")
        return axis_summary(nb, axis, k)


@dataclass(frozen=True)
class FunnelCount:
    """The funnel's stages and the kept/dropped menu's choices with their counts."""

    stages: list[dict[str, Any]]
    verdict_choices: list[tuple[str, Any]]


def funnel_count(nb: Notebook) -> FunnelCount:
    """Count the funnel (the verdicts written) and read the verdict menu's counts."""
    from app.quality.funnel import funnel
    from app.store.queries import verdict_choices

    return FunnelCount(funnel(nb), verdict_choices(nb))


def funnel_job(notebook_path: str | Path, *, task: TaskState, worker: Emitter | None = None) -> FunnelCount:
    """:func:`funnel_count` on the job's own connection: on a big notebook the count reads millions
    of scores, seconds the window must not wait."""
    with _open(notebook_path, task) as nb:
        task.set_progress(0, 0, "counting the funnel")
        return funnel_count(nb)


@dataclass(frozen=True)
class WindowSummary:
    """What the window's side summary and the Review cell's line say about the whole notebook."""

    summary: dict[str, Any]
    review_line: str


def window_summary(nb: Notebook) -> WindowSummary:
    from app.review.queue import review_line
    from app.store.queries import summary

    return WindowSummary(summary(nb), review_line(nb))


def summary_job(notebook_path: str | Path, *, task: TaskState, worker: Emitter | None = None) -> WindowSummary:
    """:func:`window_summary` on the job's own connection (each of its counts scans every record)."""
    with _open(notebook_path, task) as nb:
        task.set_progress(0, 0, "counting the records")
        return window_summary(nb)


@dataclass(frozen=True)
class QualitySummary:
    """What the Quality tab draws: the funnel's stages, the records' lengths in words (up to
    ``SUMMARY_LENGTHS`` of them) and the diversity metrics per prompt version."""

    stages: list[dict[str, Any]]
    lengths: list[int]
    metrics: list[dict[str, Any]]
    criteria: list[CriterionEntry] = field(default_factory=list)  # every criterion and rule, with its trust
    coverage: list[Coverage] = field(default_factory=list)  # the prompts with targets, against the funnel


SUMMARY_LENGTHS = 20000


def quality_summary_job(notebook_path: str | Path, *, task: TaskState, worker: Emitter | None = None) -> QualitySummary:
    """The Quality tab's numbers, computed off the UI thread (metrics read every record)."""
    from app.quality.coverage import notebook_coverage
    from app.quality.criteria import list_entries
    from app.quality.diversity import notebook_metrics
    from app.quality.funnel import funnel

    with _open(notebook_path, task) as nb:
        task.set_progress(0, 3, "counting the funnel")
        stages = funnel(nb)
        task.check()
        task.set_progress(1, 3, "measuring lengths")
        lengths = [len((r["output"] or "").split()) for r in nb.records(limit=SUMMARY_LENGTHS)]
        task.check()
        task.set_progress(2, 3, "measuring diversity")
        metrics = notebook_metrics(nb)
        task.check()
        return QualitySummary(stages, lengths, metrics, list_entries(nb), notebook_coverage(nb))


def quality_job(notebook_path: str | Path, step: str, *, criteria: str | Path | None = None,
                rules: str | Path | None = None, model_path: str | None = None, backend: str = "llama-cpp",
                model_options: dict[str, Any] | None = None, task: TaskState,
                worker: Emitter | None = None) -> str:
    """One quality step from the window: validate, judge, sanity, dedupe (near duplicates) or rescore (stale).

    Validators and judges are the notebook's active rules and criteria unless a ``rules`` /
    ``criteria`` file is given.
    """
    if step == "rescore":
        return rescore_job(notebook_path, criteria=criteria, rules=rules, model_path=model_path, backend=backend,
                           model_options=model_options, task=task)
    with _open(notebook_path, task) as nb:
        if step == "validate":
            from app.quality.steps import score_heuristics, validate, validate_file

            counts = validate_file(nb, rules, task) if rules else validate(nb, None, task)
            score_heuristics(nb)
            failed = sum(f for _, f in counts.values())
            return f"validated with {len(counts)} rules: {failed} failures"
        if step == "dedupe":
            from app.quality.steps import NEAR_DUPLICATES, dedupe

            groups = dedupe(nb, NEAR_DUPLICATES)
            return f"near-duplicates: {len(groups)} groups, {sum(len(m) - 1 for m in groups.values())} marked"
        import backends
        from app.quality.criteria import notebook_constitution
        from app.quality.judge import judge_notebook, load_criteria
        from app.quality.sanity import sanity_notebook

        constitution = load_criteria(criteria) if criteria else notebook_constitution(nb)
        source = str(criteria) if criteria else "notebook"
        judge = backends.load_judge(backend, model_path, **(model_options or {}))
        try:
            if step == "judge":
                counts = judge_notebook(nb, judge, constitution, task, source=source)
                return "judged: " + ", ".join(f"{k} {p}/{p + f} pass" for k, (p, f) in counts.items())
            if step == "sanity":
                reports = sanity_notebook(nb, judge, constitution, task)
                if worker is not None:
                    worker.emit(SanityReady(tuple(reports)))
                flagged = [r.criterion for r in reports if r.flagged]
                return f"sanity: {len(reports) - len(flagged)} beat chance, not shown to: {', '.join(flagged) or 'none'}"
        finally:
            judge.close()
    raise ValueError(f"unknown quality step {step!r}")


@dataclass(frozen=True)
class MapDone:
    """A map job's line, and the map as stored, read on the job's thread (the window shows it
    without reading 20k points on its own)."""

    line: str
    map: MapResult | None

    def __str__(self) -> str:
        return self.line


def map_job(notebook_path: str | Path, *, method: str = "auto", embedder_path: str | None = None,
            load: bool = False, task: TaskState, worker: Emitter | None = None) -> str | MapDone:
    """Embed what is missing, then compute (or fetch from the cache) the map; its line, or with
    ``load`` the line and the map read back (:class:`MapDone`)."""
    from app.map.apart import compute_map_apart, made, worth_a_process
    from app.map.embed import embed_notebook
    from app.map.projection import compute_map, latest_map
    from backends.embedder import LlamaEmbedder

    with _open(notebook_path, task) as nb:
        task.set_progress(0, 0, "loading the embedder")
        emb = LlamaEmbedder(embedder_path)
        try:
            done, had = embed_notebook(nb, emb, task)
        finally:
            emb.close()
        # a big map in a child process: UMAP and HDBSCAN hold Python's lock, which froze the window
        apart = worth_a_process(nb)
        m = (compute_map_apart(notebook_path, method=method, task=task) if apart
             else made(compute_map(nb, method=method, task=task)))
        line = (f"{m.samples} samples ({done} newly embedded), {m.method.upper()}, "
                f"{m.clusters} clusters{' (cached)' if m.cached else ''}")
        return MapDone(line, latest_map(nb)) if load else line


def rescore_job(notebook_path: str | Path, *, criteria: str | Path | None = None, rules: str | Path | None = None,
                model_path: str | None = None, backend: str = "llama-cpp", model_options: dict[str, Any] | None = None,
                task: TaskState, worker: Emitter | None = None) -> str:
    """Recompute what edits made stale: scores (validators, heuristics, judges) and likelihoods."""
    import backends
    from app.quality.criteria import notebook_constitution, notebook_rules
    from app.quality.judge import load_criteria
    from app.quality.stale import recompute_stale
    from app.quality.validators import load_rules
    from app.store.trust import stale_record_ids

    with _open(notebook_path, task) as nb:
        if not stale_record_ids(nb):
            return "nothing is stale: every score and likelihood describes the current text"
        # the notebook's own criteria and rules unless files are named
        rule_list = load_rules(rules) if rules else notebook_rules(nb)
        constitution = load_criteria(criteria) if criteria else notebook_constitution(nb)
        task.set_progress(0, 0, "loading model")
        model = backends.load_judge(backend, model_path, **(model_options or {}))
        try:
            r = recompute_stale(nb, model, rules=rule_list, constitution=constitution, task=task)
        finally:
            model.close()
    left = f"; still stale (no rule or criterion of that name now): {', '.join(r.left)}" if r.left else ""
    return f"recomputed {r.scores} scores and {r.likelihoods} likelihoods of {r.records} edited records{left}"


def report_job(notebook_path: str | Path, *, synthetic: str = "kept", version: str | None = None, k: int = 5,
               task: TaskState, worker: Emitter | None = None) -> ReportPage:
    """Real vs synthetic: the report and its self-contained HTML page.

    The synthetic records are the kept set (``synthetic="kept"``), every synthetic sample
    (``"all"``), or a frozen dataset version's records (``version``: a tag, or ``current``).
    """
    from app.report.compute import compute_report
    from app.report.html import ReportPage, render_html

    with _open(notebook_path, task) as nb:
        ids, label = None, None
        if version:
            from app.export.versions import load

            ids, label = [r.record_id for r in load(nb, version).records], f"version {version}"
        report = compute_report(nb, synthetic=synthetic, record_ids=ids, label=label, k=k, task=task)
        task.set_progress(0, 0, "drawing the report")
        page = render_html(report, title=f"Real vs synthetic: {nb.get_meta('title') or nb.path.stem}", task=task)
    return ReportPage(report, page)


def topup_job(notebook_path: str | Path, prompt_name: str, *, targets: Sequence[str] = (), per_row: int | None = None,
              rules: str | Path | None = None, rounds: int = 5, seed: int = 0, settings: SamplerSettings | None = None,
              model_path: str | None = None, backend: str = "llama-cpp", model_options: dict[str, Any] | None = None,
              on_round: Callable[[Round], None] | None = None, task: TaskState,
              worker: Emitter | None = None) -> TopUp:
    """Top up a target mix (``targets``: ``COLUMN=N`` / ``COLUMN:VALUE=N``, default the prompt's
    front-matter targets; ``per_row``: kept records wanted per input row) by rounds of pinned
    runs, each validated (``rules``, default the notebook's active rules) and counted by the
    funnel. The model loads only when a round has something to make."""
    import backends
    from app.generate.targets import parse_target_args
    from app.quality.coverage import topup
    from app.quality.validators import load_rules

    asked = parse_target_args(targets)
    rule_list = load_rules(rules) if rules else None  # a malformed file fails before anything is written
    known = _describe_local_model(backend, model_path)  # and so does a bad model file
    loaded: list[TextGenerator] = []

    def generator() -> TextGenerator:
        if not loaded:
            task.set_progress(0, 0, "loading model")
            loaded.append(backends.load_generator(backend, known.path if known else model_path,
                                                  **(model_options or {})))
        return loaded[0]

    on_record = (lambda rid: worker.emit(RecordMade(rid))) if worker else None
    with _open(notebook_path, task) as nb:
        try:
            return topup(nb, generator, prompt_name, asked=asked, per_row=per_row, rules=rule_list,
                         rules_source=str(rules or ""), rounds=rounds, seed=seed, settings=settings, task=task,
                         on_round=on_round, on_record=on_record)
        finally:
            for g in loaded:
                g.close()
