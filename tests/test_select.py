"""Best-of-N with DPO export, pairwise preference with both orders, self-consistency."""

import json

import pytest

from app.cli import main
from app.data.importer import import_file
from app.export.dpo import dpo_pairs
from app.export.formats import export
from app.generate.best_of import final_answer, majority_vote, select_best, self_consistency
from app.generate.runs import create_run, execute_run, prepare_run
from app.quality.pairwise import pairwise_preference, round_robin
from app.store.notebook import Notebook
from backends.protocols import ChoiceResult, ModelInfo
from tests.conftest import SAMPLE


@pytest.fixture
def candidates(nb, topics_csv, fake):
    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Ticket about {{ topic }}.")
    run = execute_run(nb, create_run(nb, prepare_run(nb, "ticket", samples=4, limit_rows=3), fake.info), fake)
    return nb, run


def test_best_of_keeps_the_top_k_and_links_the_rest(candidates):
    nb, run = candidates
    result = select_best(nb, run.id, "likelihood", keep=1)
    assert (result.rows, result.kept, result.rejected) == (3, 3, 9)
    for row in range(3):
        recs = [r for r in nb.records() if r["run_id"] == run.id and r["row_index"] == row]
        best = max(recs, key=lambda r: r["mean_logprob"])
        assert best["status"] == "new" and best["derivation"] == "best-of:kept"
        for r in recs:
            if r["id"] != best["id"]:
                assert r["status"] == "rejected" and r["parent_record_id"] == best["id"]
                assert nb.history(r["id"])[-1].author == "best-of"


def test_dpo_pairs_are_best_and_worst_and_load_in_datasets(candidates, tmp_path):
    datasets = pytest.importorskip("datasets")
    nb, run = candidates
    select_best(nb, run.id, "likelihood", keep=1)
    pairs = dpo_pairs(nb)
    assert len(pairs) == 3
    for p in pairs:
        chosen, rejected = nb.record(p["chosen_id"]), nb.record(p["rejected_id"])
        group = [r for r in nb.records() if r["run_id"] == run.id and r["row_index"] == chosen["row_index"]]
        assert chosen["mean_logprob"] == max(r["mean_logprob"] for r in group)
        assert rejected["mean_logprob"] == min(r["mean_logprob"] for r in group)
        assert p["prompt"] == chosen["prompt"]
    out = tmp_path / "dpo.jsonl"
    assert export(nb, out, fmt="dpo")[0] == 3
    ds = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "hf"))
    assert {"prompt", "chosen", "rejected"} <= set(ds.column_names) and len(ds) == 3


def test_ranking_by_a_missing_score_is_a_clear_error(candidates):
    from app.core.errors import StudioError

    nb, run = candidates
    with pytest.raises(StudioError, match="no 'judge:polite' score yet"):
        select_best(nb, run.id, "judge:polite")
    assert all(r["status"] == "new" for r in nb.records())


def test_gated_ranking_puts_validator_failures_last(candidates):
    from app.quality.steps import validate
    from app.quality.validators import make_rule

    nb, run = candidates
    recs = [r for r in nb.records() if r["run_id"] == run.id and r["row_index"] == 0]
    best = max(recs, key=lambda r: r["mean_logprob"])
    nb.edit_record(best["id"], "output", "FORBIDDEN " + best["output"])
    validate(nb, [make_rule({"type": "regex", "must_not_match": "FORBIDDEN"}, ValueError)])
    select_best(nb, run.id, "gated:likelihood")
    assert nb.record(best["id"])["status"] == "rejected"


class PositionBiasedJudge:
    """Prefers the longer text, but also likes whatever is shown first."""

    info = ModelInfo("biased", None, "biased-v1")

    def choice_probs(self, requests, cancel=None):
        for r in requests:
            a = r.raw_prompt.split("Response A: ")[1].split("\n\nResponse B: ")[0]
            b = r.raw_prompt.split("Response B: ")[1].split("\n\nQuestion:")[0]
            p_a = (0.7 if len(a) > len(b) else 0.3) + 0.2  # +0.2 for being first
            yield ChoiceResult(r.key, {"A": p_a, "B": 1 - p_a}, 1.0)


def test_pairwise_uses_both_orders_so_position_bias_cancels():
    p = pairwise_preference(PositionBiasedJudge(), "task", "a much longer answer", "short")
    assert p.p_a_first == pytest.approx(0.9) and p.p_a_second == pytest.approx(0.5)
    assert p.p_a == pytest.approx(0.7)
    assert p.position_bias == pytest.approx(0.2)
    rates = round_robin(PositionBiasedJudge(), "task", ["s", "medium one", "the longest answer of all"])
    assert rates == sorted(rates)


def test_self_consistency_majority_and_agreement(candidates):
    assert final_answer("We add them.\nAnswer: 42") == "42"
    assert final_answer("2 + 2 makes 4") == "4"
    assert majority_vote(["Answer: 4", "so it is 4", "The result is 5", "Answer: 4"]) == ("4", 0.75)
    assert majority_vote(["", ""]) == (None, 0.0)
    nb, run = candidates
    out = self_consistency(nb, run.id)
    assert set(out) == {0, 1, 2}
    assert all(0 < agreement <= 1 for _, agreement in out.values())


def test_best_of_cli_with_fake_backend(tmp_path, capsys):
    book = tmp_path / "nb.db"
    for args in (["new", book], ["import", book, SAMPLE / "support_topics.csv"],
                 ["prompt", "add", book, "ticket", "--template", SAMPLE / "support_ticket.j2"]):
        assert main([str(a) for a in args]) == 0
    best_of = ["best-of", str(book), "--prompt", "ticket", "--n", "3", "--keep", "1", "--limit-rows", "2",
               "--by", "judge:english", "--backend", "fake"]
    assert main(best_of) == 2  # an unchecked judge may not rank: refused before anything is generated
    assert "criteria trust nb.db english" in capsys.readouterr().err
    assert main(["criteria", "trust", str(book), "english", "--reason", "test"]) == 0
    assert main(best_of) == 0
    assert "kept 2, rejected 4" in capsys.readouterr().out
    out = tmp_path / "pairs.jsonl"
    assert main(["export", str(book), str(out), "--format", "dpo"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    # the judge now filters too (trusted by the person): a winner it fails leaves the kept set, and its pair
    from app.quality.funnel import kept_ids

    with Notebook.open(book) as nb:
        kept = set(kept_ids(nb))
        winners = [r["id"] for r in nb.records() if r["derivation"] == "best-of:kept"]
    assert len(rows) == len([w for w in winners if w in kept]) >= 1
    assert all({"prompt", "chosen", "rejected"} <= set(r) and r["chosen_id"] in kept for r in rows)
    assert main(["best-of", str(book), "--prompt", "ticket", "--n", "2", "--keep", "2", "--backend", "fake"]) == 2
    assert "--keep must be smaller than --n" in capsys.readouterr().err
