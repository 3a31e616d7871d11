"""One generation spread over several models: each model makes its share of the slots (one run
per model, so every record keeps its own model's lineage), with the seeds a one-model run would
use; metrics and the map split by model; a stopped generation resumes each part with its own
model. Logic on named fakes (each name is another "model"); exactness on the bundled SmolLM2."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from app.core.errors import StudioError
from app.core.tasks import TaskState
from app.generate.runs import parse_model_weights, planned_samples, spread_group, spread_parts
from app.jobs import generate_job
from app.quality.diversity import notebook_metrics
from app.store.notebook import Notebook
from app.store.queries import map_values

TEMPLATE = "Write a short support ticket about {{ topic }}."
TOPICS = ["billing", "login", "shipping", "refund", "password", "invoice", "mobile app"]


def _notebook(path: Path) -> Path:
    with Notebook.create(path) as nb:
        nb.add_imported_rows([({"topic": t}, None) for t in TOPICS], origin="real", source="topics")
        nb.add_prompt_version("ticket", TEMPLATE)
    return path


def _slots(path: Path, run_ids: list[int]) -> dict[tuple[int, int], tuple[int, str, str]]:
    """(row, sample) -> (seed, output, run's model sha256) over the given runs."""
    with Notebook.open(path) as nb:
        out = {}
        for rid in run_ids:
            run = nb.run(rid)
            for r in nb.conn.execute("SELECT row_index, sample_index, seed, output FROM records WHERE run_id = ?",
                                     (rid,)):
                assert (r[0], r[1]) not in out, "a slot was made twice"
                out[(r[0], r[1])] = (r[2], r[3], run.model_sha256)
    return out


def test_weights_give_exact_interleaved_shares():
    parts = spread_parts([2, 1], 30)
    assert Counter(parts) == {0: 20, 1: 10}
    assert parts == spread_parts([2, 1], 30)  # a resume recomputes the same split
    assert max(len(run) for run in "".join(map(str, parts)).split("1")) <= 2  # interleaved, not 20 then 10
    assert spread_parts([1, 1, 1], 6) == [0, 1, 2, 0, 1, 2]  # equal weights: round-robin
    assert Counter(spread_parts([0.5, 1.5], 8)) == {0: 2, 1: 6}
    with pytest.raises(StudioError, match="positive"):
        spread_parts([1, 0], 3)


@pytest.mark.parametrize("specs, message", [
    (["a.gguf"], "at least two models"),
    (["a.gguf", "a.gguf=3"], "named twice"),
    (["a.gguf", "b.gguf=-1"], "positive number"),
    (["a.gguf", "=2"], "write a model path"),
])
def test_bad_model_lists_are_refused(specs, message):
    with pytest.raises(StudioError, match=message):
        parse_model_weights(specs)


def test_model_weights_parse():
    assert parse_model_weights(["a.gguf", "b.gguf=2", "x=y.gguf"]) == [("a.gguf", 1.0), ("b.gguf", 2.0),
                                                                       ("x=y.gguf", 1.0)]


def test_a_spread_generation_splits_slots_by_weight_with_one_model_seeds(tmp_path):
    path = _notebook(tmp_path / "nb.db")
    first = generate_job(path, "ticket", samples=3, seed=5, backend="fake",
                         models=[("fake-a", 1.0), ("fake-b", 2.0)], task=TaskState())
    with Notebook.open(path) as nb:
        runs = spread_group(nb, nb.run(first.id))
        assert [r.model_path for r in runs] == ["fake-a", "fake-b"]
        assert len({r.model_sha256 for r in runs}) == 2  # each run keeps its own model's lineage
        assert [planned_samples(r) for r in runs] == [7, 14]
        assert all(r.status == "completed" for r in runs)
    spread = _slots(path, [r.id for r in runs])
    assert set(spread) == {(row, s) for row in range(len(TOPICS)) for s in range(3)}  # every slot once
    assert Counter(sha for _, _, sha in spread.values()) == {runs[0].model_sha256: 7, runs[1].model_sha256: 14}

    # the same slot has the same seed as a one-model run; the text is each model's own
    one_a = generate_job(path, "ticket", samples=3, seed=5, backend="fake", model_path="fake-a", task=TaskState())
    one_b = generate_job(path, "ticket", samples=3, seed=5, backend="fake", model_path="fake-b", task=TaskState())
    alone = {"a": _slots(path, [one_a.id]), "b": _slots(path, [one_b.id])}
    for slot, (seed, text, sha) in spread.items():
        who = "a" if sha == runs[0].model_sha256 else "b"
        assert alone[who][slot][:2] == (seed, text)
    assert any(alone["a"][s][1] != alone["b"][s][1] for s in spread)  # the fakes really are two models

    with Notebook.open(path) as nb:
        by_model = {m["group"]: m["records"] for m in notebook_metrics(nb, by="model")}
        assert by_model == {"fake-a": 7 + 21, "fake-b": 14 + 21}
        ids = [i for (i,) in nb.conn.execute("SELECT id FROM records WHERE run_id = ?", (runs[1].id,))]
        assert set(map_values(nb, "model", ids).values()) == {"fake-b"}
        with pytest.raises(StudioError, match="prompt or model"):
            notebook_metrics(nb, by="colour")


class _StopAfter(TaskState):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def set_progress(self, done: int, total: int, message: str = "") -> None:
        super().set_progress(done, total, message)
        if done >= self.left and message.startswith("run"):
            self.request_interruption()


def test_a_stopped_spread_resumes_each_part_with_its_own_model(tmp_path):
    path = _notebook(tmp_path / "nb.db")
    models = [("fake-a", 1.0), ("fake-b", 1.0), ("fake-c", 1.0)]
    stopped = generate_job(path, "ticket", samples=2, seed=1, backend="fake", models=models, task=_StopAfter(3))
    with Notebook.open(path) as nb:
        runs = spread_group(nb, nb.run(stopped.id))
        assert len(runs) == 3
        assert runs[0].status == "cancelled" and [r.status for r in runs[1:]] == ["running", "running"]
        made_before = nb.conn.execute("SELECT COUNT(*) FROM records WHERE role = 'sample'").fetchone()[0]
    assert 0 < made_before < 14
    # --resume needs no --model: each part comes back with the model it began with
    generate_job(path, "ticket", backend="fake", resume=True, task=TaskState())
    resumed = _slots(path, [r.id for r in runs])

    other = _notebook(tmp_path / "other.db")
    whole = generate_job(other, "ticket", samples=2, seed=1, backend="fake", models=models, task=TaskState())
    with Notebook.open(other) as nb:
        straight = _slots(other, [r.id for r in spread_group(nb, nb.run(whole.id))])
    assert {k: v[:2] for k, v in resumed.items()} == {k: v[:2] for k, v in straight.items()}
    with Notebook.open(path) as nb:
        assert all(r.status == "completed" for r in spread_group(nb, nb.run(stopped.id)))


def test_cli_spreads_and_splits_metrics_by_model(tmp_path, capsys):
    from app.cli.main import main

    path = _notebook(tmp_path / "nb.db")
    assert main(["generate", str(path), "--prompt", "ticket", "--backend", "fake", "--quiet",
                 "--models", "fake-a", "fake-b=3", "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "14 samples spread over 2 models" in out
    assert "4 samples from fake-a" in out and "10 samples from fake-b" in out
    assert main(["metrics", str(path), "--by", "model"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["fake-a", "fake-b"]
    assert main(["generate", str(path), "--prompt", "ticket", "--backend", "fake", "--model", "x",
                 "--models", "fake-a", "fake-b"]) == 2
    assert "either --model" in capsys.readouterr().err


@pytest.mark.integration
def test_spreading_over_copies_of_one_model_changes_no_token(tmp_path, smollm_path):
    """Two paths to the same bundled file make the same tokens as one model, slot for slot:
    the split only decides which loaded model makes a slot, never its seed or prompt."""
    copy = tmp_path / "copy.gguf"
    try:
        os.link(smollm_path, copy)
    except OSError:
        shutil.copyfile(smollm_path, copy)
    path = _notebook(tmp_path / "nb.db")
    opts = {"n_ctx": 512}
    from backends.protocols import SamplerSettings

    settings = SamplerSettings(temperature=0.8, max_tokens=12)
    one = generate_job(path, "ticket", samples=2, limit_rows=3, seed=2, settings=settings, model_path=str(smollm_path),
                       model_options=opts, task=TaskState())
    spread = generate_job(path, "ticket", samples=2, limit_rows=3, seed=2, settings=settings,
                          models=[(str(smollm_path), 1.0), (str(copy), 1.0)], model_options=opts, task=TaskState())
    with Notebook.open(path) as nb:
        runs = spread_group(nb, nb.run(spread.id))
        assert [planned_samples(r) for r in runs] == [3, 3]
        assert runs[0].model_sha256 == runs[1].model_sha256  # the same content, two places
    alone = _slots(path, [one.id])
    both = _slots(path, [r.id for r in runs])
    assert {k: v[:2] for k, v in both.items()} == {k: v[:2] for k, v in alone.items()}


def test_a_generate_cell_spreads_over_its_models(tmp_path):
    from app.cells import ensure_cells, run_cell

    path = _notebook(tmp_path / "nb.db")
    with Notebook.open(path) as nb:
        cell = next(c for c in ensure_cells(nb) if c.kind == "generate")
    cell.settings.update(prompt="ticket", samples=2, rows=3, models="fake-a fake-b")
    out = run_cell(path, cell, backend="fake", task=TaskState())
    assert "6 samples from ticket over 2 models" in out
    with Notebook.open(path) as nb:
        assert [r.model_path for r in nb.runs()] == ["fake-a", "fake-b"]
    cell.settings.update(keep_best=1)
    with pytest.raises(StudioError, match="keep best"):
        run_cell(path, cell, backend="fake", task=TaskState())
