"""Jobs the window starts: plain functions taking a task handle (no Qt here).

Each opens its own notebook connection (the window's stays on the UI thread) and
loads the model inside the job, so the window never waits for either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from app.pipeline.generate import create_run, execute_run, prepare_run
from app.store.notebook import Notebook, Run
from app.tasks import TaskState
from backends.protocols import SamplerSettings


class Emitter(Protocol):
    def emit(self, item: Any) -> None: ...


def generate_job(
    notebook_path: str | Path,
    prompt_name: str,
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
) -> Run:
    import backends

    with Notebook.open(notebook_path) as nb:
        plan = prepare_run(nb, prompt_name, samples=samples, limit_rows=limit_rows, seed=seed, settings=settings)
        task.set_progress(0, len(plan.plan) * samples, "loading model")
        generator = backends.load_generator(backend, model_path, **(model_options or {}))
        try:
            run = create_run(nb, plan, generator.info)
            on_record = (lambda rid: worker.emit(("record", rid))) if worker else None
            on_token = (lambda key, piece: worker.emit(("token", key, piece))) if worker else None
            return execute_run(nb, run, generator, task, on_record=on_record, on_token=on_token)
        finally:
            generator.close()


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
    from app.compare import compare_runs, run_versions

    with Notebook.open(notebook_path) as nb:
        generator = backends.load_generator(backend, model_path, **(model_options or {}))
        try:
            ra, rb = run_versions(nb, prompt_name, a, b, generator, samples=samples, limit_rows=limit_rows,
                                  seed=seed, settings=settings, task=task)
        finally:
            generator.close()
        return compare_runs(nb, ra.id, rb.id)


def import_job(notebook_path: str | Path, file: str | Path, *, origin: str = "real",
               output_column: str | None = None, task: TaskState, worker: Emitter | None = None) -> str:
    from app.importer import import_file

    task.set_progress(0, 1, "reading")
    with Notebook.open(notebook_path) as nb:
        inputs, samples = import_file(nb, file, origin=origin, output_column=output_column)
    task.set_progress(1, 1, "done")
    return f"imported {inputs + samples} rows from {Path(file).name}: {inputs} input rows, {samples} records with text"


def export_job(notebook_path: str | Path, out: str | Path, *, fmt: str = "plain", task: TaskState,
               worker: Emitter | None = None) -> str:
    from app.export import export

    with Notebook.open(notebook_path) as nb:
        written, skipped = export(nb, out, fmt=fmt)
    note = f" ({skipped} without a prompt skipped)" if skipped else ""
    return f"wrote {written} records to {Path(out).name}{note}"


def quality_job(notebook_path: str | Path, step: str, *, criteria: str | Path | None = None,
                rules: str | Path | None = None, model_path: str | None = None, backend: str = "llama-cpp",
                model_options: dict[str, Any] | None = None, task: TaskState,
                worker: Emitter | None = None) -> str:
    """One quality step from the window: validate, judge, sanity or dedupe (near duplicates)."""
    from app.paths import resources_dir

    quality = resources_dir() / "quality"
    with Notebook.open(notebook_path) as nb:
        if step == "validate":
            from app.quality.run import score_heuristics, validate_file

            counts = validate_file(nb, rules or quality / "default_rules.toml", task)
            score_heuristics(nb)
            failed = sum(f for _, f in counts.values())
            return f"validated with {len(counts)} rules: {failed} failures"
        if step == "dedupe":
            from app.quality.run import dedupe

            groups = dedupe(nb, "minhash")
            return f"near-duplicates: {len(groups)} groups, {sum(len(m) - 1 for m in groups.values())} marked"
        import backends
        from app.quality.judge import judge_notebook, load_criteria, sanity_notebook

        constitution = load_criteria(criteria or quality / "default_constitution.toml")
        judge = backends.load_generator(backend, model_path, **(model_options or {}))
        try:
            if step == "judge":
                counts = judge_notebook(nb, judge, constitution, task)
                return "judged: " + ", ".join(f"{k} {p}/{p + f} pass" for k, (p, f) in counts.items())
            if step == "sanity":
                reports = sanity_notebook(nb, judge, constitution, task)
                if worker is not None:
                    worker.emit(("sanity", reports))
                flagged = [r.criterion for r in reports if r.flagged]
                return f"sanity: {len(reports) - len(flagged)} ok, flagged: {', '.join(flagged) or 'none'}"
        finally:
            judge.close()
    raise ValueError(f"unknown quality step {step!r}")


def map_job(notebook_path: str | Path, *, method: str = "auto", embedder_path: str | None = None,
            task: TaskState, worker: Emitter | None = None) -> str:
    """Embed what is missing, then compute (or fetch from the cache) the map."""
    from app.pipeline.embed import embed_notebook
    from app.pipeline.map import compute_map
    from backends.embedder import LlamaEmbedder

    with Notebook.open(notebook_path) as nb:
        task.set_progress(0, 0, "loading the embedder")
        emb = LlamaEmbedder(embedder_path)
        try:
            done, had = embed_notebook(nb, emb, task)
        finally:
            emb.close()
        m = compute_map(nb, method=method, task=task)
        n_clusters = sum(1 for c in m.sizes() if c >= 0)
        return (f"{len(m.record_ids)} samples ({done} newly embedded), {m.method.upper()}, "
                f"{n_clusters} clusters{' (cached)' if m.cached else ''}")
