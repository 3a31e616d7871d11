"""Eval splits: the real records split train/eval/holdout, seeded and stratified; few-shot never
shows the model an eval or holdout record; decontamination flags a synthetic record that copies
an eval item; export rows carry the split and can be written one file per split."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from app.cli import main
from app.core.errors import StudioError
from app.data.splits import split_notebook
from app.export.splits import split_paths, write_by_split
from app.quality.copying import decontaminate
from app.quality.funnel import compute_funnel
from app.store.notebook import Notebook
from app.store.records import FEW_SHOT_SOURCES, export_rows, few_shot_samples
from app.store.scores import scores_for
from app.store.splits import real_records

TIERS = {"free": 31, "pro": 14, "business": 6, "enterprise": 2, "partner": 1}
WORDS = ("invoice refund login export payroll billing shipping tracking password report chart tax "
         "currency discount reminder schedule backup import receipt overtime").split()


def _ticket(i: int) -> str:
    # distinct texts: no eight words in a row shared between two tickets
    return f"Ticket {i}: " + " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] + str(i) for k in range(14)) + "."


@pytest.fixture
def real_nb(nb):
    tiers = [tier for tier, count in TIERS.items() for _ in range(count)]
    nb.add_imported_rows([({"tier": tier, "n": i}, _ticket(i)) for i, tier in enumerate(tiers)], origin="real",
                         source="real.csv")
    nb.add_imported_rows([({"topic": f"topic {i}", "tier": "pro"}, None) for i in range(4)], origin="real",
                         source="inputs.csv")
    return nb


def test_split_is_seeded_and_stratified_within_one_record_per_category(real_nb):
    nb = real_nb
    result = split_notebook(nb, eval_share=0.1, holdout_share=0.1, by="tier", seed=0)
    total = sum(TIERS.values()) + 4  # the input rows are real records too
    assert sum(result.counts.values()) == total
    assert result.counts["eval"] == round(total * 0.1) and result.counts["holdout"] == round(total * 0.1)
    sizes = Counter(r.variables.get("tier") for r in real_records(nb))
    for tier, counts in result.by_category.items():
        for split in ("eval", "holdout"):
            assert abs(counts[split] - sizes[tier] * 0.1) < 1, (tier, split, counts)
    assert result.by_category["partner"] == {"train": 1, "eval": 0, "holdout": 0}  # one record stays in train
    first = {r.id: r.split for r in real_records(nb)}
    again = split_notebook(nb, eval_share=0.1, holdout_share=0.1, by="tier", seed=0)
    assert again.changed == 0 and {r.id: r.split for r in real_records(nb)} == first
    other = split_notebook(nb, eval_share=0.1, holdout_share=0.1, by="tier", seed=1)
    assert other.changed > 0 and other.counts == result.counts


@pytest.mark.parametrize("args, message", [
    (["--eval", "0.7", "--holdout", "0.5"], "add up to more than all the records"),
    (["--eval", "-0.1"], "between 0 and 1"),
    (["--by", "colour"], "no real record has a column 'colour' (columns: n, tier, topic)"),
])
def test_split_command_refuses_bad_settings(real_nb, capsys, args, message):
    real_nb.close()
    assert main(["split", str(real_nb.path), *args]) == 2
    assert message in capsys.readouterr().err


def test_split_command_reports_per_category(real_nb, capsys):
    real_nb.close()
    assert main(["split", str(real_nb.path), "--eval", "0.2", "--holdout", "0.1", "--by", "tier", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("split 58 real records: train 40  eval 12  holdout 6")
    assert "free" in out and "partner" in out


def test_few_shot_never_draws_an_eval_or_holdout_record(real_nb, tmp_path, capsys):
    nb = real_nb
    split_notebook(nb, eval_share=0.3, holdout_share=0.2, by="tier", seed=0)
    held = {r.id: r.output for r in real_records(nb) if r.split in ("eval", "holdout") and r.output}
    train = {r.id: r.output for r in real_records(nb) if r.split == "train" and r.output}
    assert len(held) > 10 and train
    for source in FEW_SHOT_SOURCES:  # every source leaves them out
        assert not {rid for rid, _, _ in few_shot_samples(nb, source, 1000)} & set(held)
    template = tmp_path / "ticket.j2"
    template.write_text("---\nfew_shot: {k: 4, from: real}\n---\nWrite a ticket for the {{ topic }}.\n"
                        "{{ few_shot() }}\nNow yours:")
    path = str(nb.path)
    nb.close()
    assert main(["prompt", "add", path, "ticket", "--template", str(template)]) == 0
    assert main(["generate", path, "--prompt", "ticket", "--samples", "10", "--backend", "fake", "--quiet"]) == 0
    capsys.readouterr()
    with Notebook.open(path) as again:
        prompts = [r["prompt"] for r in again.records() if r["origin"] == "synthetic"]
    assert len(prompts) == 40
    shown = Counter(rid for p in prompts for rid, text in train.items() if text in p)
    assert sum(shown.values()) == 40 * 4  # every prompt shows four train records ...
    assert not [rid for p in prompts for rid, text in held.items() if text in p]  # ... and never a held-out one


def test_decontamination_flags_a_record_that_copies_an_eval_item(real_nb, capsys):
    nb = real_nb
    with pytest.raises(StudioError, match="run synth-studio split first"):
        decontaminate(nb)
    split_notebook(nb, eval_share=0.2, holdout_share=0.0, seed=0)
    (eval_id, eval_text), *_ = [(r.id, r.output) for r in real_records(nb) if r.split == "eval" and r.output]
    (train_text,) = [r.output for r in real_records(nb) if r.split == "train" and r.output][:1]
    pv, _ = nb.add_prompt_version("p", "Write a ticket.")
    run = nb.create_run(prompt_version_id=pv.id, backend="fake", model_path=None, model_sha256="fake", settings={},
                        seed=0, samples_per_row=3, plan=[None])
    made = [nb.add_generated_record(run_id=run.id, prompt_version_id=pv.id, input_record_id=None, row_index=0,
                                    sample_index=i, seed=i, variables={}, prompt="Write a ticket.", output=text,
                                    prompt_tokens=1, completion_tokens=1, token_logprobs=[], finish_reason="stop")
            for i, text in enumerate([f"Hello. {eval_text} Thanks.", train_text + " Please help.",
                                      "A ticket of my own about a login that fails after a password reset."])]
    nb.close()
    assert main(["decontam", str(nb.path)]) == 0
    out = capsys.readouterr().out
    # the greeting and the thanks add n-grams of its own: 9 of its 11 8-grams are the eval item's
    assert f"record {made[0]}: 82% of its 8-grams in eval/holdout (mostly record {eval_id})" in out
    assert "1 of 3 synthetic records overlap" in out
    with Notebook.open(nb.path) as again:
        score = {s.name: s for s in scores_for(again, made[0])}["contamination:eval"]
        assert score.kind == "validator" and score.passed is False and score.value == pytest.approx(9 / 11)
        assert f"record #{eval_id}" in score.reason
        for rid in made[1:]:
            assert {s.name: s for s in scores_for(again, rid)}["contamination:eval"].passed
        verdicts = compute_funnel(again).verdicts
        assert verdicts[made[0]].stage == "contamination:eval" and verdicts[made[1]].kept


def test_export_rows_carry_the_split_and_write_one_file_per_split(real_nb, tmp_path):
    nb = real_nb
    split_notebook(nb, eval_share=0.2, holdout_share=0.1, seed=0)
    rows = export_rows(nb, ["new"])
    assert {r["split"] for r in rows} == {"train", "eval", "holdout"}
    rows.append({"id": 999, "output": "a synthetic record", "split": None})
    written: dict[str, list[int]] = {}

    def writer(items, path):
        written[path.name] = [r["id"] for r in items]
        path.write_text("\n".join(json.dumps(r) for r in items))

    out = tmp_path / "data.jsonl"
    result = write_by_split(rows, out, writer)
    assert split_paths(out) == {s: tmp_path / f"data.{s}.jsonl" for s in ("train", "eval", "holdout")}
    assert {s: n for s, (_, n) in result.items()} == dict(Counter(r["split"] or "train" for r in rows))
    assert 999 in written["data.train.jsonl"]
    assert all(p.exists() for p, _ in result.values())
