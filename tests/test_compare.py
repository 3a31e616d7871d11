"""Two prompt versions on the same rows and seeds: aligned outputs, template diff, metric deltas."""

import json

import pytest

from app.cli import main
from app.core.errors import StudioError
from app.data.importer import import_file
from app.quality.steps import validate
from app.quality.validators import make_rule
from app.review.compare import compare_runs, run_versions


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
    assert main(["compare", str(book), "ticket", "--a", "1", "--b", "7", "--backend", "fake"]) == 2
    assert "no prompt named 'ticket v7'" in capsys.readouterr().err


def test_jobs_use_the_notebooks_whole_model_choice(nb, smollm_path):
    from app.generate.model_choice import ModelChoice, job_model_args, set_notebook_model

    assert job_model_args(nb) == {"model_path": None,
                                  "model_options": {"n_ctx": 2048, "n_threads": None, "n_gpu_layers": 0, "parallel": None}}
    set_notebook_model(nb, ModelChoice(path=str(smollm_path), n_ctx=4096, threads=1, n_gpu_layers=3, parallel=4))
    assert job_model_args(nb) == {"model_path": str(smollm_path),
                                  "model_options": {"n_ctx": 4096, "n_threads": 1, "n_gpu_layers": 3, "parallel": 4}}
