"""Two prompt versions on the same rows and seeds: aligned outputs, template diff, metric deltas."""

import json

import pytest

from app.cli import main
from app.core.errors import StudioError
from app.data.importer import import_file
from app.export.formats import export
from app.export.versions import freeze, load
from app.generate.runs import create_run, execute_run, prepare_run
from app.quality.funnel import compute_funnel, kept_ids
from app.quality.steps import validate
from app.quality.validators import make_rule
from app.review.compare import adopt_comparison, compare_runs, run_versions


@pytest.fixture
def versions(nb, topics_csv):
    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Write a ticket about {{ topic }}.")
    nb.add_prompt_version("ticket", "Write a short, polite ticket about {{ topic }} for {{ product }}.")
    return nb


def test_versions_run_on_the_same_rows_and_seeds(versions, fake):
    ra, rb = run_versions(versions, "ticket", 1, 2, fake, samples=2, limit_rows=3, seed=4)
    assert ra.plan == rb.plan and ra.seed == rb.seed
    assert versions.prompt_version_by_id(ra.prompt_version_id).version == 1
    assert versions.prompt_version_by_id(rb.prompt_version_id).version == 2
    validate(versions, [make_rule({"type": "length", "unit": "words", "min": 10}, ValueError)])
    cmp = compare_runs(versions, ra.id, rb.id)
    assert len(cmp["pairs"]) == 6
    assert all(p["seed"] == p["seed_b"] for p in cmp["pairs"])
    assert "-Write a ticket about {{ topic }}." in cmp["diff"]
    assert "+Write a short, polite ticket about {{ topic }} for {{ product }}." in cmp["diff"]
    ma, mb = cmp["metrics_a"], cmp["metrics_b"]
    assert cmp["delta"]["mean_words"] == pytest.approx(mb["mean_words"] - ma["mean_words"])
    assert set(cmp["delta"]["pass_rates"]) == {"validator:length"}
    assert 0 <= ma["pass_rates"]["validator:length"] <= 1


def _exported_ids(nb, path):
    export(nb, path)
    return {json.loads(line)["id"] for line in path.read_text().splitlines()}


def test_comparison_runs_stay_out_of_the_dataset_until_a_person_adds_one(versions, fake, tmp_path):
    ordinary = execute_run(versions, create_run(versions, prepare_run(versions, "ticket", limit_rows=4), fake.info),
                           fake)
    mine = {r["id"] for r in versions.records() if r["run_id"] == ordinary.id}
    ra, rb = run_versions(versions, "ticket", 1, 2, fake, limit_rows=3, seed=4)
    assert ra.settings["purpose"] == rb.settings["purpose"] == "compare"
    a_ids = {r["id"] for r in versions.records() if r["run_id"] == ra.id}
    b_ids = {r["id"] for r in versions.records() if r["run_id"] == rb.id}
    assert len(mine) == 4 and len(a_ids) == len(b_ids) == 3

    assert set(kept_ids(versions)) == mine
    assert _exported_ids(versions, tmp_path / "before.jsonl") == mine
    assert {r.record_id for r in load(versions, freeze(versions, "v1").tag).records} == mine
    result = compute_funnel(versions)
    generated = result.stages[0]
    assert generated["stage"] == "generated" and generated["kept"] == 4 and generated["excluded"] == 6
    assert f"6 comparison samples (runs {ra.id}, {rb.id}) not in the dataset" in generated["reasons"][0]
    assert "--adopt RUN" in generated["reasons"][0]
    assert result.verdicts[min(a_ids)].stage == "comparison" and not result.verdicts[min(a_ids)].kept
    assert compare_runs(versions, ra.id, rb.id)["in_dataset_b"] is False

    assert adopt_comparison(versions, rb.id) is True
    assert versions.run(rb.id).settings["purpose"] == "compare-adopted"
    assert adopt_comparison(versions, rb.id) is False and adopt_comparison(versions, ordinary.id) is False
    assert set(kept_ids(versions)) == mine | b_ids
    assert _exported_ids(versions, tmp_path / "after.jsonl") == mine | b_ids
    generated = compute_funnel(versions).stages[0]
    assert generated["kept"] == 7 and generated["excluded"] == 3 and f"(run {ra.id})" in generated["reasons"][0]
    assert compare_runs(versions, ra.id, rb.id)["in_dataset_b"] is True


def test_a_person_accepting_a_comparison_sample_keeps_it(versions, fake):
    ra, _rb = run_versions(versions, "ticket", 1, 2, fake, limit_rows=2)
    first = next(r["id"] for r in versions.records() if r["run_id"] == ra.id)
    versions.edit_record(first, "status", "accepted")
    result = compute_funnel(versions)
    assert result.kept_ids == [first]
    assert result.stages[-1]["reasons"] == ["kept over comparison (1)"]


def test_same_version_twice_is_refused(versions, fake):
    with pytest.raises(StudioError, match="two different versions"):
        run_versions(versions, "ticket", 1, 1, fake)


def test_compare_cli(tmp_path, topics_csv, capsys):
    from app.store.notebook import Notebook

    book = tmp_path / "nb.db"
    with Notebook.create(book) as nb:
        import_file(nb, topics_csv)
        nb.add_prompt_version("ticket", "Ticket about {{ topic }}.")
        nb.add_prompt_version("ticket", "Polite ticket about {{ topic }}.")
    assert main(["compare", str(book), "ticket", "--a", "1", "--b", "2", "--limit-rows", "2", "--backend", "fake",
                 "--json"]) == 0
    cmp = json.loads(capsys.readouterr().out)
    assert (cmp["a"], cmp["b"]) == ("ticket v1", "ticket v2") and len(cmp["pairs"]) == 2
    assert main(["compare", str(book), "ticket", "--runs", str(cmp["run_a"]), str(cmp["run_b"])]) == 0
    out = capsys.readouterr().out
    assert "+Polite ticket about {{ topic }}." in out and "mean_words" in out
    assert f"runs {cmp['run_a']} and {cmp['run_b']} are comparisons: not in the dataset" in out
    assert main(["funnel", str(book)]) == 0
    assert "4 comparison samples" in capsys.readouterr().out
    assert main(["compare", str(book), "other", "--adopt", str(cmp["run_b"])]) == 2
    assert "not a run of prompt 'other'" in capsys.readouterr().err
    assert main(["compare", str(book), "ticket", "--adopt", str(cmp["run_b"])]) == 0
    assert capsys.readouterr().out.startswith(f"run {cmp['run_b']}: added to the dataset")
    with Notebook.open(book) as nb:
        assert len(kept_ids(nb)) == 2 and nb.run(cmp["run_b"]).settings["purpose"] == "compare-adopted"
    assert main(["compare", str(book), "ticket", "--a", "1", "--b", "7", "--backend", "fake"]) == 2
    assert "no prompt named 'ticket v7'" in capsys.readouterr().err


def test_jobs_use_the_notebooks_whole_model_choice(nb, smollm_path):
    from app.generate.model_choice import ModelChoice, job_model_args, set_notebook_model

    assert job_model_args(nb) == {"model_path": None,
                                  "model_options": {"n_ctx": 2048, "n_threads": None, "n_gpu_layers": 0, "parallel": None}}
    set_notebook_model(nb, ModelChoice(path=str(smollm_path), n_ctx=4096, threads=1, n_gpu_layers=3, parallel=4))
    assert job_model_args(nb) == {"model_path": str(smollm_path),
                                  "model_options": {"n_ctx": 4096, "n_threads": 1, "n_gpu_layers": 3, "parallel": 4}}


def test_compare_view_adds_a_run_to_the_dataset(qtbot, versions, fake):
    from widgets.compare_view import CompareView

    ra, rb = run_versions(versions, "ticket", 1, 2, fake, limit_rows=2)
    view = CompareView(versions)
    qtbot.addWidget(view)
    assert not view.adopt_button.isEnabled()  # nothing shown yet
    view.show_comparison(compare_runs(versions, ra.id, rb.id))
    assert view.adopt_button.isEnabled() and f"not in the dataset: run {ra.id} and {rb.id}" in view.status.text()
    assert [a.text() for a in view.adopt_menu.actions()] == [f"ticket v1 (run {ra.id})", f"ticket v2 (run {rb.id})"]
    assert kept_ids(versions) == []
    with qtbot.waitSignal(view.sig_run_adopted, timeout=1000) as blocker:
        view.adopt_menu.actions()[1].trigger()
    assert blocker.args == [rb.id]
    assert kept_ids(versions) == sorted(r["id"] for r in versions.records() if r["run_id"] == rb.id)
    assert [a.text() for a in view.adopt_menu.actions()] == [f"ticket v1 (run {ra.id})"]
    assert f"not in the dataset: run {ra.id}" in view.status.text()
