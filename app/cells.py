"""The notebook's cells: Data → Prompt → Generate → Quality → Map → Review → Export.

A cell is a kind, its settings and whether it is collapsed, kept in the notebook
file (table ``cells``) in order. Running a cell is a plain job (no Qt): it calls the
same ``app.jobs`` functions the rest of the studio uses and returns a one-line
summary, which is stored as the cell's last output. The window lays the cells out
top to bottom and runs one, or all from one downwards, on the compute queue.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.errors import StudioError
from app.core.tasks import TaskState
from app.store import cells as cell_table
from app.store.cells import StoredCell
from app.store.notebook import Notebook
from app.store.queries import prompt_names, run_record_count

KINDS = ("data", "prompt", "generate", "quality", "map", "review", "export")
TITLES = {"data": "Data", "prompt": "Prompt", "generate": "Generate", "quality": "Quality", "map": "Map",
          "review": "Review", "export": "Export"}
DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {"file": "", "output_column": ""},
    "prompt": {"prompt": "", "row": 1},
    "generate": {"prompt": "", "samples": 2, "rows": 5, "seed": 1, "temperature": 0.8, "max_tokens": 120,
                 "keep_best": 0,  # best-of: keep the k most likely samples per row (0 = keep all)
                 # a chain: run over another prompt's samples ("prompt:NAME", "run:ID"); "" = the input rows
                 "over": "", "over_kept": False,
                 # several models: "a.gguf b.gguf=2" spreads the samples over them ("" = the notebook's model)
                 "models": ""},
    "quality": {"validate": True, "judge": False, "dedupe": True},
    "map": {"method": "auto"},
    "review": {},
    "export": {"file": "", "format": "plain"},
}
CHOICES = {"format": ("plain", "sft", "dpo", "dpo-chat"), "method": ("auto", "umap", "pca")}


@dataclass
class Cell:
    id: int  # always a stored cell's id (cells are made with add_cell)
    kind: str
    settings: dict[str, Any] = field(default_factory=dict)
    collapsed: bool = False
    position: int = 0
    last_output: str = ""
    last_run: str | None = None

    @property
    def title(self) -> str:
        return TITLES[self.kind]


def _cell(s: StoredCell) -> Cell:
    settings = copy.deepcopy(DEFAULTS[s.kind]) | s.settings
    return Cell(id=s.id, kind=s.kind, settings=settings, collapsed=s.collapsed, position=s.position,
                last_output=s.last_output, last_run=s.last_run)


def list_cells(nb: Notebook) -> list[Cell]:
    return [_cell(s) for s in cell_table.list_cells(nb)]


def ensure_cells(nb: Notebook) -> list[Cell]:
    """The notebook's cells; a notebook without any gets one of each kind, pre-filled."""
    cells = list_cells(nb)
    if cells:
        return cells
    from app.core.settings import load_settings

    prompts = prompt_names(nb)
    chosen = load_settings()[0].generate  # the person's generate defaults (Preferences) start a new notebook
    for i, kind in enumerate(KINDS):
        settings = copy.deepcopy(DEFAULTS[kind])
        if "prompt" in settings and prompts:
            settings["prompt"] = prompts[0]
        if kind == "generate":
            settings.update(samples=chosen.samples, rows=chosen.rows, temperature=chosen.temperature,
                            max_tokens=chosen.max_tokens)
        add_cell(nb, kind, settings, position=i)
    return list_cells(nb)


def add_cell(nb: Notebook, kind: str, settings: dict[str, Any] | None = None, position: int | None = None) -> Cell:
    if kind not in KINDS:
        raise StudioError(f"unknown cell kind {kind!r}; kinds: {', '.join(KINDS)}")
    cell_id = cell_table.add_cell(nb, kind, settings or DEFAULTS[kind], position)
    return next(x for x in list_cells(nb) if x.id == cell_id)


def save_cell(nb: Notebook, cell: Cell) -> None:
    cell_table.save_cell(nb, cell.id, settings=cell.settings, collapsed=cell.collapsed,
                         last_output=cell.last_output, last_run=cell.last_run)


def delete_cell(nb: Notebook, cell_id: int) -> None:
    cell_table.delete_cell(nb, cell_id)


def move_cell(nb: Notebook, cell_id: int, delta: int) -> list[Cell]:
    """Move a cell up (-1) or down (+1); positions are renumbered 0..n-1."""
    cells = list_cells(nb)
    i = next(k for k, c in enumerate(cells) if c.id == cell_id)
    j = max(0, min(len(cells) - 1, i + delta))
    cells.insert(j, cells.pop(i))
    cell_table.set_cell_order(nb, [x.id for x in cells])
    return list_cells(nb)


def insert_cell(nb: Notebook, kind: str, *, after: int | None = None,
                settings: dict[str, Any] | None = None) -> Cell:
    """A new cell of ``kind`` right after cell ``after`` (at the end when None), pre-filled."""
    cells = list_cells(nb)
    settings = copy.deepcopy(settings if settings is not None else DEFAULTS.get(kind, {}))
    if "prompt" in settings and not settings["prompt"]:
        names = prompt_names(nb)
        settings["prompt"] = names[0] if names else ""
    new = add_cell(nb, kind, settings, position=len(cells))
    order = [c.id for c in cells]
    at = order.index(after) + 1 if after in order else len(order)
    order.insert(at, new.id)
    cell_table.set_cell_order(nb, order)
    return next(c for c in list_cells(nb) if c.id == new.id)


def duplicate_cell(nb: Notebook, cell_id: int) -> Cell:
    """A copy of a cell's settings right below it (e.g. a second Generate cell for a chain)."""
    cell = next((c for c in list_cells(nb) if c.id == cell_id), None)
    if cell is None:
        raise StudioError(f"no cell {cell_id}")
    return insert_cell(nb, cell.kind, after=cell_id, settings=cell.settings)


def remove_cell(nb: Notebook, cell_id: int) -> Cell:
    """Remove a cell; returns it as it was (kind, settings, position) so it can be put back."""
    cell = next((c for c in list_cells(nb) if c.id == cell_id), None)
    if cell is None:
        raise StudioError(f"no cell {cell_id}")
    cell_table.delete_cell(nb, cell_id)
    cell_table.set_cell_order(nb, [c.id for c in list_cells(nb)])
    return cell


def restore_cell(nb: Notebook, cell: Cell) -> Cell:
    """Put a removed cell back where it was (a new id, the same kind, settings and last output)."""
    cells = list_cells(nb)
    new = add_cell(nb, cell.kind, cell.settings, position=len(cells))
    order = [c.id for c in cells]
    order.insert(min(cell.position, len(order)), new.id)
    cell_table.set_cell_order(nb, order)
    new.last_output, new.collapsed = cell.last_output, cell.collapsed
    save_cell(nb, new)
    return new


def record_output(notebook_path: str | Path, cell_id: int, output: str) -> None:
    with Notebook.open(notebook_path) as nb:
        cell_table.record_output(nb, cell_id, output)


# -- running ------------------------------------------------------------------------------


def run_cell(notebook_path: str | Path, cell: Cell, *, backend: str = "llama-cpp", task: TaskState,
             worker: Any = None) -> str:
    """Run one cell; returns its one-line output (also stored on the cell)."""
    from app import jobs
    from app.generate.model_choice import job_model_args

    s = cell.settings
    with Notebook.open(notebook_path) as nb:
        model = job_model_args(nb) if backend == "llama-cpp" else {"model_path": None, "model_options": {}}
    if cell.kind == "data":
        out = _run_data_cell(notebook_path, s, task)
    elif cell.kind == "prompt":
        from app.generate.runs import preview

        with Notebook.open(notebook_path) as nb:
            name = s.get("prompt") or _first_prompt(nb)
            row = int(s.get("row") or 1)
            text, _ = preview(nb, name, row=row)
        out = f"{name}: renders {len(text)} characters for row {row}: {' '.join(text.split())[:160]}"
    elif cell.kind == "generate":
        from app.generate.runs import parse_model_weights, spread_group
        from backends.protocols import SamplerSettings

        with Notebook.open(notebook_path) as nb:
            name = s.get("prompt") or _first_prompt(nb)
        models = parse_model_weights(str(s.get("models")).split()) if str(s.get("models") or "").strip() else None
        keep = int(s.get("keep_best") or 0)
        if keep and keep >= int(s["samples"]):  # checked before anything is made
            raise StudioError("Generate: keep best must be smaller than samples (it keeps the best k of n)")
        done = None
        if models:
            if int(s.get("keep_best") or 0):
                raise StudioError("Generate: keep best ranks one model's samples; clear models or keep best")
            model = {"model_path": None, "model_options": model["model_options"]}
        else:
            done = jobs.made_before(
                notebook_path, name, samples=int(s["samples"]), limit_rows=int(s["rows"]) or None,
                seed=int(s["seed"]), settings=SamplerSettings(temperature=float(s["temperature"]),
                                                              max_tokens=int(s["max_tokens"])),
                model_path=model["model_path"], backend=backend, over=str(s.get("over") or "").strip() or None,
                over_kept=bool(s.get("over_kept")))
            if done is not None and done.status == "completed":
                out = (f"run {done.id} already made these samples (same prompt version, rows, seed, settings and "
                       f"model): nothing to do. Change the seed or a setting to make more")
                if cell.id is not None:
                    record_output(notebook_path, cell.id, out)
                return out
        resume = not models and done is not None and nb_latest_unfinished(notebook_path, name) == done.id
        run = jobs.generate_job(
            notebook_path, name, samples=int(s["samples"]), limit_rows=int(s["rows"]) or None, seed=int(s["seed"]),
            settings=SamplerSettings(temperature=float(s["temperature"]), max_tokens=int(s["max_tokens"])),
            over=str(s.get("over") or "").strip() or None, over_kept=bool(s.get("over_kept")),
            backend=backend, models=models, resume=resume, task=task, worker=worker, **model)
        with Notebook.open(notebook_path) as nb:
            group = spread_group(nb, nb.run(run.id))
            made = sum(run_record_count(nb, r.id) for r in group)
            out = f"run {run.id} {run.status}: {made} samples from {name}"
            if run.status != "completed":
                from app.generate.runs import planned_samples

                planned = sum(planned_samples(r) for r in group)
                out = (f"run {run.id} stopped ({made} of {planned} made) from {name}: run this cell again to "
                       "finish it (what was made is kept)")
            if len(group) > 1:
                run = group[-1] if all(r.status == "completed" for r in group) else next(
                    r for r in group if r.status != "completed")
                out = (f"runs {', '.join(str(r.id) for r in group)} {run.status}: {made} samples from {name} "
                       f"over {len(group)} models")
            if run.settings.get("over"):
                out += f" (chained over {run.settings['over']})"
            if keep and run.status == "completed":
                from app.generate.best_of import select_best

                res = select_best(nb, run.id, "likelihood", keep=keep)
                out += (f"; best-of by likelihood kept {res.kept}, rejected {res.rejected} "
                        f"(linked to their row's winner; export DPO pairs from the Export cell)")
    elif cell.kind == "quality":
        parts = []
        for step in ("validate", "judge", "dedupe"):
            if s.get(step):
                task.check()
                parts.append(jobs.quality_job(notebook_path, step, backend=backend, task=task, **model))
        if not parts:
            raise StudioError("Quality: tick at least one of validate, judge, dedupe")
        from app.quality.funnel import funnel

        with Notebook.open(notebook_path) as nb:
            stages = funnel(nb)
        kept = " → ".join(f"{st['stage']} {st['kept']}" for st in stages) if stages else ""
        out = "; ".join(parts) + (f" | funnel: {kept}" if kept else "")
    elif cell.kind == "map":
        out = str(jobs.map_job(notebook_path, method=s.get("method", "auto"), task=task))
    elif cell.kind == "review":
        with Notebook.open(notebook_path) as nb:
            out = live_summary(nb, "review") or ""
    elif cell.kind == "export":
        if not s.get("file"):  # not an error: Run all goes on; the line says what to do
            out = "no file chosen: nothing exported (choose a .jsonl, .csv or .parquet file to write)"
            if cell.id is not None:
                record_output(notebook_path, cell.id, out)
            return out
        out = jobs.export_job(notebook_path, s["file"], fmt=s.get("format", "plain"), task=task)
    else:
        raise StudioError(f"unknown cell kind {cell.kind!r}")
    if cell.id is not None:
        record_output(notebook_path, cell.id, out)
    return out


def live_summary(nb: Notebook, kind: str) -> str | None:
    """What a Map or Review cell says about the notebook as it is now (not as it was when the cell
    last ran): the window shows this line whenever the notebook changes. None for other kinds."""
    if kind == "map":
        from app.map.staleness import map_staleness
        from app.store.maps import latest_map, map_counts

        stored = latest_map(nb)
        if stored is None:
            return "no map yet: run this cell to embed the samples and draw them"
        points, clusters = map_counts(nb, stored.id)
        line = f"{points} samples on the map, {stored.method.upper()}, {clusters} clusters"
        stale = map_staleness(nb, stored.id)
        return line + (f" · {stale.message()}: run this cell to recompute" if stale and not stale.current else "")
    if kind == "review":
        from app.review.queue import review_line

        return review_line(nb)
    return None


def nb_latest_unfinished(notebook_path: str | Path, prompt: str) -> int | None:
    with Notebook.open(notebook_path) as nb:
        run = nb.latest_unfinished_run(prompt)
    return None if run is None else run.id


def _run_data_cell(notebook_path: str | Path, s: dict[str, Any], task: TaskState) -> str:
    """Import the cell's file, once: a file whose content is already in the notebook is not
    imported again (Run all stays safe to repeat), and no file is fine when rows are loaded."""
    from app import jobs
    from app.data.importer import already_imported

    file = str(s.get("file") or "").strip()
    with Notebook.open(notebook_path) as nb:
        inputs, records = nb.count_records("input"), nb.count_records("sample")
        if not file:
            if inputs or records:
                return (f"{inputs} input rows and {records} records are in the notebook; choose a file to "
                        "import more")
            raise StudioError("Data: choose a file to import (CSV, TSV, JSONL, JSON or Parquet)")
        if not Path(file).exists():
            raise StudioError(f"Data: {file} does not exist")
        before = already_imported(nb, file)
    if before is not None:
        return (f"{Path(file).name} is already imported ({before['rows']} rows, as {before['source']}, "
                f"{str(before['at'])[:16].replace('T', ' ')}): nothing to do")
    return jobs.import_job(notebook_path, file, output_column=s.get("output_column") or None, task=task)


def _first_prompt(nb: Notebook) -> str:
    names = prompt_names(nb)
    if not names:
        raise StudioError("no prompt yet: write one in the Prompt tab (or synth-studio prompt add)")
    return names[0]


# -- the chain sample: question -> answer -> judge, as successive cells ------------------------------

@dataclass(frozen=True)
class Starter:
    """A task a new notebook can start from (resources/starters/<key>/: rows.csv, prompt.j2, criteria.toml)."""

    key: str
    title: str
    blurb: str
    prompt: str  # the prompt's name in the notebook


STARTERS = (
    Starter("qa", "Q&A pairs", "A question and its answer per topic, as JSON records (question, answer), "
            "with a sampled difficulty level; a judge for clear answers.", "qa-pair"),
    Starter("support", "Support tickets", "Customer tickets per product topic, varied by persona, mood and "
            "details; a judge for \"reads like a customer\".", "support-ticket"),
    Starter("classification", "Classification examples", "Labelled messages for a text classifier: one per "
            "label and channel, as JSON (text, label); a judge for realistic messages.", "labelled-message"),
    Starter("chat", "Chat turns", "A user message and a helpful assistant reply per persona and goal, as JSON "
            "(user, assistant), ready for chat SFT export; a judge for helpful replies.", "chat-turn"),
)


def create_starter_notebook(path: str | Path, key: str) -> Notebook:
    """A new notebook for one of the STARTERS: its rows imported, its prompt and criteria saved, and
    the cells Data -> Prompt -> Generate -> Quality -> Map -> Review -> Export filled in for it,
    so Run all works at once. An existing file is never overwritten."""
    from app.core.paths import resources_dir
    from app.data.importer import import_file
    from app.quality.criteria import import_file as import_criteria

    starter = next((s for s in STARTERS if s.key == key), None)
    if starter is None:
        raise StudioError(f"no starter {key!r}; starters: {', '.join(s.key for s in STARTERS)}")
    if Path(path).exists():
        raise StudioError(f"{path} already exists; choose a new file name for the notebook")
    folder = resources_dir() / "starters" / key
    nb = Notebook.create(path)
    try:
        import_file(nb, folder / "rows.csv", origin="real")
        nb.add_prompt_version(starter.prompt, (folder / "prompt.j2").read_text(encoding="utf-8"))
        import_criteria(nb, folder / "criteria.toml")
        nb.set_meta("title", f"{starter.title} (starter)")
        for i, kind in enumerate(KINDS):
            settings = copy.deepcopy(DEFAULTS[kind])
            if "prompt" in settings:
                settings["prompt"] = starter.prompt
            if kind == "data":
                settings["file"] = str(folder / "rows.csv")
            if kind == "generate":
                settings.update(samples=1, rows=6, max_tokens=200)
            add_cell(nb, kind, settings, position=i)
    except BaseException:
        nb.close()
        Path(path).unlink(missing_ok=True)
        raise
    return nb


def create_chain_notebook(path: str | Path) -> Notebook:
    """A notebook that shows a chain (resources/chain): a table of quiz topics, a structured
    ``question`` prompt with a sampled, targeted ``difficulty``, an ``answer`` prompt that runs
    over the questions (reading ``{{ output.question }}``), a judge criterion for the answers,
    and the cells Data -> Generate(question) -> Generate(answer, over the questions) ->
    Quality -> Map -> Review -> Export. ``customers.csv`` beside it is the tabular example
    (``synth-studio tabular NB --given region --rows 20`` on a notebook that imported it)."""
    from app.core.paths import resources_dir
    from app.data.importer import import_file
    from app.quality.criteria import import_file as import_criteria

    folder = resources_dir() / "chain"
    nb = Notebook.create(path)
    import_file(nb, folder / "quiz_topics.csv", origin="real")
    for name in ("question", "answer"):
        nb.add_prompt_version(name, (folder / f"{name}.j2").read_text(encoding="utf-8"))
    import_criteria(nb, folder / "criteria.toml")
    nb.set_meta("title", "Quiz questions and answers (chain sample)")
    base = {**DEFAULTS["generate"], "samples": 1, "rows": 12, "max_tokens": 160}
    cells: list[tuple[str, dict[str, Any]]] = [
        ("data", {**DEFAULTS["data"], "file": str(folder / "quiz_topics.csv")}),
        ("generate", {**base, "prompt": "question"}),
        ("generate", {**base, "prompt": "answer", "over": "prompt:question", "rows": 0}),
        ("quality", {"validate": True, "judge": True, "dedupe": False}),
        ("map", dict(DEFAULTS["map"])),
        ("review", {}),
        ("export", dict(DEFAULTS["export"])),
    ]
    for i, (kind, settings) in enumerate(cells):
        add_cell(nb, kind, settings, position=i)
    return nb
