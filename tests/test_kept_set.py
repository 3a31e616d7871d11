"""The funnel decides the dataset: one kept set, used by export, the Records filter and the map;
untrusted judges do not filter; a person's accept overrides a drop; edits make scores stale."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from app.cli import main
from app.core.tasks import TaskState
from app.data.importer import import_file
from app.export.formats import export
from app.generate.runs import create_run, execute_run, prepare_run
from app.quality.dedupe import normalise
from app.quality.funnel import compute_funnel, kept_ids
from app.quality.judge import Constitution, Criterion, judge_notebook
from app.quality.stale import recompute_stale
from app.quality.steps import dedupe, validate
from app.quality.validators import load_rules
from app.store.queries import RecordFilter, count_records
from app.store.scores import failed_scores
from app.store.trust import set_override, stale_record_ids, stale_score_names


@pytest.fixture
def funnelled(nb, topics_csv, fake, tmp_path):
    """A notebook where every kind of drop happens: validator, duplicate, a person's rejection,
    and a person's accept of a record a validator dropped."""
    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Ticket about {{ topic }}.")
    execute_run(nb, create_run(nb, prepare_run(nb, "ticket", limit_rows=10, samples=2), fake.info), fake)
    recs = nb.records()
    words = sorted(len(r["output"].split()) for r in recs)
    cut = words[len(words) // 3]  # about a third of the texts are shorter than this
    rules = tmp_path / "rules.toml"
    rules.write_text(f'[[rule]]\nname = "long-enough"\ntype = "length"\nunit = "words"\nmin = {cut}\n')
    nb.edit_record(recs[5]["id"], "output", recs[4]["output"].upper())  # an exact duplicate (case only)
    validate(nb, load_rules(rules), source=str(rules))
    dedupe(nb, "exact")
    short = [r["id"] for r in recs if len(nb.record(r["id"])["output"].split()) < cut]
    assert short, "the fixture needs records the validator drops"
    nb.edit_record(short[0], "status", "accepted")  # a person keeps one anyway
    long_ = [r["id"] for r in recs if r["id"] not in short and r["id"] not in (recs[4]["id"], recs[5]["id"])]
    nb.edit_record(long_[0], "status", "rejected")
    return nb, short, long_[0], (recs[4]["id"], recs[5]["id"])


def test_the_kept_set_follows_every_stage(funnelled):
    nb, short, rejected, (dup_a, dup_b) = funnelled
    result = compute_funnel(nb)
    kept = set(result.kept_ids)
    assert short[0] in kept  # a person's accept overrides the validator
    assert result.verdicts[short[0]].reason.startswith("accepted by a person over validator:long-enough")
    assert not set(short[1:]) & kept
    assert rejected not in kept and result.verdicts[rejected].stage == "review"
    assert (dup_a in kept) != (dup_b in kept)  # a duplicate group keeps its representative
    dropped_dup = dup_b if dup_a in kept else dup_a
    assert result.verdicts[dropped_dup].stage == "dedupe:exact"
    assert result.stages[-1]["stage"] == "accepted by a person" and result.stages[-1]["rescued"] == 1
    assert result.stages[-1]["kept"] == len(kept)


@pytest.mark.parametrize("ext", [".jsonl", ".csv", ".parquet"])
@pytest.mark.parametrize("fmt", ["plain", "sft"])
def test_export_writes_exactly_the_kept_set(funnelled, tmp_path, ext, fmt):
    datasets = pytest.importorskip("datasets")
    nb = funnelled[0]
    out = tmp_path / f"out{ext}"
    written, skipped = export(nb, out, fmt=fmt)
    kind = {".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}[ext]
    ds = datasets.load_dataset(kind, data_files=str(out), split="train", cache_dir=str(tmp_path / "hf"))
    assert sorted(ds["id"]) == kept_ids(nb) and written == len(ds) and skipped == 0
    if fmt == "plain":  # the scores and the verdict travel as columns
        assert "validator:long-enough" in ds.column_names and all(ds["kept"])
        assert "score" not in ds.column_names


def test_export_all_carries_the_verdict_and_status_still_selects(funnelled, tmp_path):
    nb, short, rejected, _ = funnelled
    export(nb, tmp_path / "all.csv", select="all")
    df = pd.read_csv(tmp_path / "all.csv")
    assert len(df) == nb.count_records("sample")
    row = df.set_index("id").loc[short[1]]
    assert not row["kept"] and row["dropped_at"] == "validator:long-enough"
    assert row["validator:long-enough"] == len(nb.record(short[1])["output"].split())  # the score's value
    written, _ = export(nb, tmp_path / "rej.jsonl", statuses=["rejected"])
    assert written == 1 and json.loads((tmp_path / "rej.jsonl").read_text())["id"] == rejected


def test_the_records_filter_and_the_map_read_the_same_verdicts(funnelled):
    from app.store.queries import map_values, verdict_choices

    nb, short, *_ = funnelled
    kept = kept_ids(nb)
    assert count_records(nb, RecordFilter(verdict="kept")) == len(kept)
    dropped = nb.count_records("sample") - len(kept)
    assert count_records(nb, RecordFilter(verdict="dropped")) == dropped
    assert count_records(nb, RecordFilter(verdict="dropped:validator:long-enough")) == len(short) - 1
    assert ("dropped at review (1)", "dropped:review") in verdict_choices(nb)
    colours = map_values(nb, "funnel verdict", [short[0], short[1]])
    assert colours == {short[0]: "kept", short[1]: "dropped at validator:long-enough"}


def test_an_unchecked_judge_lists_what_it_would_drop_but_changes_nothing_until_trusted(funnelled, fake):
    nb = funnelled[0]
    before = kept_ids(nb)
    picky = Criterion(name="picky", question="Is this text perfect?", threshold=0.99)  # the fake fails most
    judge_notebook(nb, fake, Constitution("c", (picky,)))
    stages = {s["stage"]: s for s in compute_funnel(nb).stages}
    assert stages["judge:picky"]["active"] is False and stages["judge:picky"]["would_drop"] > 0
    assert stages["judge:picky"]["trust"] == "unchecked"
    assert kept_ids(nb) == before
    set_override(nb, "picky", True, reason="I read twenty of them")
    failing = {rid for rid, _ in failed_scores(nb, "judge:picky")}
    accepted = funnelled[1][0]  # a person's accept still wins over the judge
    assert kept_ids(nb) == [k for k in before if k not in failing or k == accepted] != before
    assert {s["stage"]: s for s in compute_funnel(nb).stages}["judge:picky"]["trust"] == "trusted by you"


def test_the_cli_export_defaults_to_the_kept_set(funnelled, tmp_path, capsys):
    nb = funnelled[0]
    out = tmp_path / "k.jsonl"
    assert main(["export", str(nb.path), str(out)]) == 0
    assert "(the funnel's kept set)" in capsys.readouterr().out
    assert sorted(json.loads(x)["id"] for x in out.read_text().splitlines()) == kept_ids(nb)
    assert main(["export", str(nb.path), str(tmp_path / "a.jsonl"), "--all"]) == 0
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == nb.count_records("sample")


def test_an_edit_marks_scores_and_likelihood_stale_until_recomputed(funnelled, fake, tmp_path):
    nb = funnelled[0]
    rid = kept_ids(nb)[0]
    assert stale_score_names(nb, rid) == []
    nb.edit_record(rid, "output", "A short new text.")
    assert "validator:long-enough" in stale_score_names(nb, rid) and rid in stale_record_ids(nb)
    assert nb.record(rid)["likelihood_stale"] == 1
    stale = stale_record_ids(nb)  # the fixture's duplicate was edited too (before it was validated)
    rules = load_rules(tmp_path / "rules.toml")
    got = recompute_stale(nb, fake, rules=rules, constitution=None, task=TaskState())
    assert got.likelihoods == len(stale) == 2 and got.scores == 1 and got.left == []
    assert stale_record_ids(nb) == [] and stale_score_names(nb, rid) == []
    rec = nb.record(rid)
    assert rec["mean_logprob"] == pytest.approx(sum(-0.1 * len(w) for w in rec["output"].split()) / 4)
    assert rid not in kept_ids(nb)  # now too short: the recomputed validator drops it


def test_human_edits_and_review_choices_export_as_trl_dpo_pairs(nb, topics_csv, fake, tmp_path):
    datasets = pytest.importorskip("datasets")
    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Ticket about {{ topic }}.")
    execute_run(nb, create_run(nb, prepare_run(nb, "ticket", limit_rows=3, samples=2), fake.info), fake)
    recs = nb.records()
    original = recs[0]["output"]
    nb.edit_record(recs[0]["id"], "output", "My bank feed has not synced since Monday; I reconnected it twice.")
    a, b = [r for r in recs if r["row_index"] == 1]  # two samples of one input row
    nb.edit_record(a["id"], "status", "accepted")
    nb.edit_record(b["id"], "status", "rejected")
    for fmt in ("dpo", "dpo-chat"):
        out = tmp_path / f"{fmt}.jsonl"
        written, _ = export(nb, out, fmt=fmt)
        ds = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "hf"))
        assert written == len(ds) == 2 and {"prompt", "chosen", "rejected"} <= set(ds.column_names)
        by_source = {r["source"]: r for r in ds}
        edit, review = by_source["edit"], by_source["review"]
        if fmt == "dpo":  # TRL's standard format: strings
            assert edit["chosen"].startswith("My bank feed") and edit["rejected"] == original
            assert review["chosen"] == a["output"] and review["rejected"] == b["output"]
        else:  # TRL's conversational format: message lists
            assert edit["prompt"] == [{"role": "user", "content": recs[0]["prompt"]}]
            assert edit["chosen"][0]["role"] == "assistant" and edit["rejected"] == [
                {"role": "assistant", "content": original}]
    assert normalise(original) != normalise(nb.record(recs[0]["id"])["output"])


@pytest.mark.integration
def test_the_likelihood_of_an_unedited_text_recomputes_as_generated(nb, smollm, topics_csv):
    from backends.protocols import SamplerSettings

    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Write a long support ticket about {{ topic }}.")
    plan = prepare_run(nb, "ticket", limit_rows=2, settings=SamplerSettings(temperature=0, max_tokens=8))
    execute_run(nb, create_run(nb, plan, smollm.info), smollm)
    for rec in nb.records():
        assert rec["finish_reason"] == "length"  # no end-of-text token in the mean
        [lps] = smollm.text_logprobs([(({"role": "user", "content": rec["prompt"]},), rec["output"])])
        assert len(lps) == rec["completion_tokens"]
        assert sum(lps) / len(lps) == pytest.approx(rec["mean_logprob"], abs=1e-4)


def test_export_by_split_writes_each_split_of_the_kept_set_to_its_own_file(nb, tmp_path, capsys):
    from app.data.splits import split_notebook

    nb.add_imported_rows([({"topic": f"t{i % 3}"}, f"Real text number {i} about topic {i % 3} and its details.")
                          for i in range(20)], origin="real", source="r.csv")
    split_notebook(nb, eval_share=0.2, holdout_share=0.1, by="topic", seed=1)
    out = tmp_path / "data.jsonl"
    assert main(["export", str(nb.path), str(out), "--by-split"]) == 0
    assert "by split to" in capsys.readouterr().out
    got = {s: [json.loads(x) for x in (tmp_path / f"data.{s}.jsonl").read_text().splitlines()]
           for s in ("train", "eval", "holdout")}
    assert [len(got[s]) for s in ("train", "eval", "holdout")] == [14, 4, 2]
    for split, rows in got.items():
        assert {r["split"] for r in rows} == {split}
    assert sorted(r["id"] for rows in got.values() for r in rows) == kept_ids(nb)
    assert main(["export", str(nb.path), str(tmp_path / "p.jsonl"), "--by-split", "--format", "dpo"]) == 2


def test_rescore_recomputes_with_the_notebooks_own_rules(nb, topics_csv, fake, capsys):
    from app.quality.criteria import notebook_rules

    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Ticket about {{ topic }}.")
    execute_run(nb, create_run(nb, prepare_run(nb, "ticket", limit_rows=3), fake.info), fake)
    validate(nb, notebook_rules(nb))
    rid = nb.records()[0]["id"]
    nb.edit_record(rid, "output", "Too short.")
    assert "validator:length" in stale_score_names(nb, rid)
    assert main(["rescore", str(nb.path), "--backend", "fake"]) == 0
    assert "likelihoods of 1 edited records" in capsys.readouterr().out
    assert stale_record_ids(nb) == [] and rid not in kept_ids(nb)  # too short now: the length rule drops it
    assert main(["rescore", str(nb.path), "--backend", "fake"]) == 0
    assert "nothing is stale" in capsys.readouterr().out


def test_a_comparison_run_is_outside_the_kept_set_and_cannot_knock_its_duplicates_out(nb, topics_csv, fake, tmp_path):
    from app.review.compare import adopt_comparison, run_versions

    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Ticket about {{ topic }}.")
    nb.add_prompt_version("ticket", "A polite ticket about {{ topic }}.")
    ra, rb = run_versions(nb, "ticket", 1, 2, fake, limit_rows=3)
    # then the ordinary run of version 1 on the same rows and seeds: the fake writes the very same texts
    run = execute_run(nb, create_run(nb, prepare_run(nb, "ticket", limit_rows=3, prompt_version=1), fake.info), fake)
    ordinary = sorted(r["id"] for r in nb.records() if r["run_id"] == run.id)
    compared = sorted(r["id"] for r in nb.records() if r["run_id"] == ra.id)
    assert [nb.record(i)["output"] for i in ordinary] == [nb.record(i)["output"] for i in compared]
    dedupe(nb, "exact")  # each comparison sample (the lower id) represents its group
    result = compute_funnel(nb)
    assert result.kept_ids == ordinary
    assert {result.verdicts[i].stage for i in compared} == {"comparison"}
    assert count_records(nb, RecordFilter(verdict="dropped:comparison")) == 6
    assert count_records(nb, RecordFilter(verdict="kept")) == 3
    export(nb, tmp_path / "out.jsonl")
    assert sorted(json.loads(x)["id"] for x in (tmp_path / "out.jsonl").read_text().splitlines()) == ordinary
    adopt_comparison(nb, ra.id)  # now the group's lowest id in the dataset represents it again
    result = compute_funnel(nb)
    assert result.kept_ids == compared
    assert {result.verdicts[i].reason for i in ordinary} == {f"exact duplicate of #{c}" for c in compared}


def test_the_funnel_is_counted_again_only_when_the_notebook_changed(nb, monkeypatch):
    """The window asks for the funnel from several views; it is counted once per notebook state,
    and again after any write, by this connection or by another process."""
    import app.quality.funnel as funnel_module
    from app.quality.funnel import compute_funnel
    from app.store.notebook import Notebook

    nb.add_imported_rows([({}, "first answer"), ({}, "second answer")], origin="synthetic", source="t")
    counted = []
    real = funnel_module._count_funnel
    monkeypatch.setattr(funnel_module, "_count_funnel", lambda *a, **kw: counted.append(1) or real(*a, **kw))
    first = compute_funnel(nb)
    assert compute_funnel(nb) is first and len(counted) == 1
    rid = first.kept_ids[0]
    nb.edit_record(rid, "status", "rejected")  # a write on this connection
    assert rid not in compute_funnel(nb).kept_ids and len(counted) == 2
    with Notebook.open(nb.path) as other:  # another connection (another process reads the same)
        other.edit_record(rid, "status", "accepted")
    assert rid in compute_funnel(nb).kept_ids and len(counted) == 3
    compute_funnel(nb)
    assert len(counted) == 3
