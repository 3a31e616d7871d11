"""``make screenshots``: the window on the sample notebook after a short real generation.

Usage: python -m widgets.screenshots OUT_DIR   (run under xvfb-run; the Makefile does)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def save_grab(app, widget, path: Path) -> None:
    """Let the widget settle, then save what it shows."""
    for _ in range(10):
        app.processEvents()
    widget.grab().save(str(path))
    print(f"saved {path}")


def main(out_dir: str = "screenshots") -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SYNTH_STUDIO_HOME", tempfile.mkdtemp(prefix="synth-shots-"))

    from PySide6.QtWidgets import QApplication

    from app.data.demo import create_sample_notebook
    from app.generate.runs import create_run, execute_run, prepare_run
    from backends.llama_cpp_backend import LlamaCppGenerator
    from backends.protocols import SamplerSettings
    from widgets.main_window import MainWindow
    from widgets.notebook_view import FileField
    from widgets.quality_view import wait_for_summary

    app = QApplication.instance() or QApplication(sys.argv)
    nb = create_sample_notebook(Path(tempfile.mkdtemp()) / "sample.db")
    v1 = nb.prompt_version("support-ticket").template
    nb.add_prompt_version("support-ticket", v1.replace("under 120 words", "under 60 words, and end with a question"))
    gen = LlamaCppGenerator(n_ctx=1024)
    plan = prepare_run(nb, "support-ticket", samples=2, limit_rows=6, seed=1, prompt_version=1,
                       settings=SamplerSettings(temperature=0.8, max_tokens=80))
    execute_run(nb, create_run(nb, plan, gen.info), gen)
    from app.review.compare import compare_runs, run_versions

    ra, rb = run_versions(nb, "support-ticket", 1, 2, gen, limit_rows=3, seed=2,
                          settings=SamplerSettings(temperature=0.8, max_tokens=80))
    comparison = compare_runs(nb, ra.id, rb.id)
    # a bigger batch for the map (decoded 32 at a time)
    plan = prepare_run(nb, "support-ticket", samples=4, limit_rows=20, seed=5, prompt_version=2,
                       settings=SamplerSettings(temperature=0.9, max_tokens=60))
    execute_run(nb, create_run(nb, plan, gen.info), gen)
    gen.close()
    from app.map.embed import embed_notebook
    from app.map.projection import compute_map
    from backends.embedder import LlamaEmbedder

    emb = LlamaEmbedder()
    embed_notebook(nb, emb)
    emb.close()
    compute_map(nb)
    recs = nb.records()
    nb.edit_record(recs[1]["id"], "output", recs[1]["output"] + " (edited by hand)")
    nb.edit_record(recs[0]["id"], "status", "accepted")
    nb.edit_record(recs[2]["id"], "status", "rejected")
    win = MainWindow(nb)
    win.resize(1500, 900)
    win.show()
    win.table.selectRow(1)

    def shot(name: str) -> None:
        save_grab(app, win, out / f"{name}.png")

    from app.cells import list_cells, record_output, run_cell
    from app.core.tasks import TaskState
    from app.store.queries import run_record_count

    for cell in list_cells(nb):
        if cell.kind in ("prompt", "quality", "map", "review"):
            run_cell(nb.path, cell, task=TaskState())
        elif cell.kind == "generate":
            made = run_record_count(nb, 4)
            record_output(nb.path, cell.id, f"run 4 completed: {made} samples from support-ticket")
        elif cell.kind == "data":
            cell.settings["file"] = "resources/sample/support_topics.csv"
            record_output(nb.path, cell.id, "imported 20 rows from support_topics.csv: 20 input rows")
    win.notebook_view.reload()
    for w in win.notebook_view.cells:
        if w.cell.kind == "data":
            file_field = w.editors["file"]
            assert isinstance(file_field, FileField)
            file_field.line.setText("resources/sample/support_topics.csv")
        if w.cell.kind == "review":
            w.toggle.click()
    win.tabs.setCurrentWidget(win.notebook_view)
    shot("notebook")
    for w in win.notebook_view.cells:  # each cell on its own
        if w.cell.collapsed:
            w.toggle.click()
        save_grab(app, w, out / f"cell-{w.cell.kind}.png")
    win.tabs.setCurrentWidget(win.records_page)
    shot("main-window")
    win.tabs.setCurrentWidget(win.review)
    win.review.move(1)
    shot("review-queue")
    from app.core.paths import resources_dir
    from app.quality.steps import dedupe, score_heuristics, validate_file

    validate_file(nb, resources_dir() / "quality" / "default_rules.toml")
    score_heuristics(nb)
    dedupe(nb, "minhash")
    win.tabs.setCurrentWidget(win.quality)
    wait_for_summary(win.quality)
    shot("quality")
    # judges on the real model; a person's labels for one criterion; each judge's sanity check
    from app.jobs import SanityReady
    from app.quality.judge import judge_notebook
    from app.quality.sanity import sanity_notebook
    from app.store.trust import set_label

    judge = LlamaCppGenerator(n_ctx=1024)
    judge_notebook(nb, judge, record_ids=[r["id"] for r in nb.records()[:40]])  # enough to show, quick
    for i, r in enumerate(nb.records()[:12]):  # as answered with Y/N in the review queue
        set_label(nb, r["id"], "not-rude", i % 4 != 3)
    reports = sanity_notebook(nb, judge)
    judge.close()
    win.quality._on_partial(SanityReady(tuple(reports)))
    wait_for_summary(win.quality)
    win.quality.lower_tabs.setCurrentIndex(0)
    shot("quality-funnel")
    win.quality.lower_tabs.setCurrentWidget(win.quality.criteria)
    win.quality.criteria.refresh()
    win.quality.criteria.select("criterion", "not-rude")
    shot("criteria-editor")
    from widgets.duplicates_view import DuplicatesDialog

    dialog = DuplicatesDialog(nb, win)
    dialog.resize(1100, 600)
    dialog.show()
    save_grab(app, dialog, out / "duplicates.png")
    dialog.close()
    win.tabs.setCurrentWidget(win.review)
    win.review.reload(keep_position=False)
    shot("review-queue-ordered")
    # two dataset versions and their diff
    from app.export.versions import diff, freeze

    freeze(nb, "v1", "first cut")
    later = nb.records()
    nb.edit_record(later[5]["id"], "output", later[5]["output"].split(".")[0] + ". Please call me back today.")
    for r in later[6:9]:
        nb.edit_record(r["id"], "status", "rejected")
    freeze(nb, "v2", "after review")
    win.tabs.setCurrentWidget(win.versions_view)
    win.versions_view.reload()
    win.versions_view.show_diff(diff(nb, "v1", "v2"))
    shot("versions-diff")
    # real records to compare with: passages of Python's documentation (the report says how far off they are)
    from app.jobs import report_job
    from app.quality.planted import real_passages

    nb.add_imported_rows([({}, p.text) for p in real_passages()[:40]], origin="real", source="python-docs")
    emb = LlamaEmbedder()
    embed_notebook(nb, emb)
    emb.close()
    compute_map(nb)
    win.tabs.setCurrentWidget(win.report_view)
    win.report_view.show_report(report_job(nb.path, task=TaskState()))
    shot("report")
    win.tabs.setCurrentWidget(win.prompt_editor)
    win.prompt_editor.name.setCurrentText("support-ticket")
    win.prompt_editor.row.setValue(3)
    win.prompt_editor.update_preview()
    shot("prompt-editor")
    win.tabs.setCurrentWidget(win.compare)
    win.compare.show_comparison(comparison)
    shot("compare-versions")
    win.tabs.setCurrentWidget(win.map_view)
    win.map_view.refresh()
    win.map_view.axis.setCurrentText("perplexity")
    m = win.map_view.map
    assert m is not None  # refresh() loaded the map computed above
    sizes = m.sizes()
    biggest = max((c for c in sizes if c >= 0), key=sizes.__getitem__, default=None)
    if biggest is not None:
        win.map_view.select_indices([i for i, c in enumerate(m.clusters) if c == biggest])
    shot("map")
    tab_tour(app, win, out)
    win.close()
    structured_shots(app, out)
    return 0


SIZES = ((1280, 800), (1920, 1080))


def tab_tour(app, win, out: Path) -> None:
    """Every tab at a laptop's 1280x800 and a desktop's 1920x1080 (out/1280x800/NN-tab.png), and the
    starter wizard: the window must fit both with nothing cut off."""
    from widgets.starter_wizard import StarterWizard

    for w, h in SIZES:
        folder = out / f"{w}x{h}"
        folder.mkdir(parents=True, exist_ok=True)
        win.showNormal()
        win.resize(w, h)
        for _ in range(10):
            app.processEvents()
        for i in range(win.tabs.count()):
            win.tabs.setCurrentIndex(i)
            for _ in range(10):
                app.processEvents()
            name = win.tabs.tabText(i).lower().replace(" ", "-")
            path = folder / f"{i + 1:02d}-{name}.png"
            win.grab().save(str(path))
            print(f"saved {path} ({win.width()}x{win.height()})")
    wizard = StarterWizard(Path(tempfile.mkdtemp()), win)
    wizard.show()
    save_grab(app, wizard, out / "starter-wizard.png")
    wizard.close()


def structured_shots(app, out: Path, *, fake: bool = False) -> None:
    """The chain sample on the real model: structured questions (a sampled difficulty), answers
    chained over them; the Records table with the outputs' fields as columns and an answer's
    chain in the side panel, the coverage against the difficulty targets, the map by a field."""
    from app.cells import create_chain_notebook
    from app.generate.runs import create_run, execute_run, prepare_run
    from app.quality.steps import validate
    from backends.protocols import SamplerSettings
    from widgets.main_window import MainWindow
    from widgets.quality_view import wait_for_summary

    nb = create_chain_notebook(Path(tempfile.mkdtemp()) / "chain.db")
    gen: Any
    if fake:
        from backends.fake import FakeGenerator

        gen = FakeGenerator()
    else:
        from backends.llama_cpp_backend import LlamaCppGenerator

        gen = LlamaCppGenerator(n_ctx=1024)
    try:
        settings = SamplerSettings(temperature=0.7, max_tokens=140)
        for prompt, over in (("question", None), ("answer", "prompt:question")):
            plan = prepare_run(nb, prompt, samples=1 if over else 2, limit_rows=None if over else 10, seed=3,
                               settings=settings, over=over)
            execute_run(nb, create_run(nb, plan, gen.info), gen)
    finally:
        gen.close()
    validate(nb, [])
    win = MainWindow(nb)
    win.resize(1500, 900)
    win.show()

    def shot(name: str) -> None:
        save_grab(app, win, out / f"{name}.png")

    win.tabs.setCurrentWidget(win.records_page)
    win.refresh()
    shot("structured-records")  # every prompt's fields as columns
    at = win.version_filter.findText("answer v1")
    if at >= 0:  # the answers only: their own fields, and an answer's chain back to its question
        win.version_filter.setCurrentIndex(at)
        win.apply_filter()
        win.table.selectRow(min(3, win.model.rowCount() - 1))
    shot("structured-chain")
    win.tabs.setCurrentWidget(win.quality)
    wait_for_summary(win.quality)
    win.quality.lower_tabs.setCurrentWidget(win.quality.coverage)
    shot("coverage")
    win.close()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
