"""Transforms make new records linked to their source, with the usual lineage."""

import pytest

from app.cli import main
from app.core.tasks import TaskState
from app.generate.runs import execute_run, resumable_run
from app.generate.transform import bucket_difficulty, rewrite
from app.store.scores import scores_for
from backends.fake import FakeGenerator


@pytest.fixture
def texts(nb):
    nb.add_imported_rows([({"topic": "billing"}, "Please, if you could, maybe at some point, refund the invoice."),
                          ({"topic": "login"}, "I cannot log in after the reset."),
                          ({"topic": "x"}, "Rejected text.")], origin="synthetic", source="t")
    ids = [r["id"] for r in nb.records()]
    nb.edit_record(ids[2], "status", "rejected")
    return ids


def test_rewrite_creates_linked_records_with_lineage(nb, texts, fake):
    run = rewrite(nb, fake, "succinct")
    assert run.status == "completed"
    new = [r for r in nb.records() if r["run_id"] == run.id]
    assert len(new) == 2  # the rejected record is not a source
    for r in new:
        src = nb.record(r["parent_record_id"])
        assert r["derivation"] == "transform:succinct" and r["input_record_id"] == src["id"]
        assert src["output"] in r["prompt"] and "succinct" in r["prompt"]
        assert r["variables"]["text"] == src["output"]
    assert nb.prompt_version("transform:succinct").version == 1
    # running again transforms the originals only, not the rewrites
    run2 = rewrite(nb, fake, "succinct")
    assert {r["parent_record_id"] for r in nb.records() if r["run_id"] == run2.id} == set(texts[:2])


def test_tone_is_part_of_the_saved_prompt(nb, texts, fake):
    run = rewrite(nb, fake, "tone", tone="formal legal")
    r = next(r for r in nb.records() if r["run_id"] == run.id)
    assert "formal legal tone" in r["prompt"]


def test_a_cancelled_transform_resumes_like_any_run(nb, texts):
    gen = FakeGenerator(delay=0.001)
    task = TaskState()
    task._on_progress = lambda done, total, msg: done >= 1 and task.request_interruption()
    run = rewrite(nb, gen, "steps", task=task)
    assert run.status == "cancelled"
    assert len([r for r in nb.records() if r["run_id"] == run.id]) == 1
    execute_run(nb, resumable_run(nb, "transform:steps", gen.info), gen)
    made = [r for r in nb.records() if r["run_id"] == run.id]
    assert len(made) == 2 and all(r["derivation"] == "transform:steps" for r in made)
    assert nb.run(run.id).status == "completed"


def test_difficulty_buckets_are_scores(nb, texts, fake):
    counts = bucket_difficulty(nb, fake)
    assert sum(counts.values()) == 3 and set(counts) == {"easy", "medium", "hard"}
    s = {x.name: x for x in scores_for(nb, texts[0])}
    assert 1 <= s["difficulty"].value <= 3 and s["difficulty"].reason.split(" ")[0] in counts


def test_transform_cli(tmp_path, capsys):
    from app.store.notebook import Notebook

    book = tmp_path / "nb.db"
    with Notebook.create(book) as nb:
        nb.add_imported_rows([({}, "Some long text to shorten.")], origin="synthetic", source="t")
    assert main(["transform", str(book), "--op", "succinct", "--backend", "fake"]) == 0
    assert "1 new records (transform:succinct)" in capsys.readouterr().out
    assert main(["transform", str(book), "--op", "difficulty", "--backend", "fake"]) == 0
    assert "difficulty:" in capsys.readouterr().out
