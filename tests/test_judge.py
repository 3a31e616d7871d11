"""LLM judges and their sanity checks, with the fake (chance-level) judge and an oracle."""

import pytest

from app.quality.judge import Criterion, judge_notebook, load_criteria, score_texts
from app.quality.rulefile import RuleFileError
from app.quality.sanity import rank_test_p_value, sanity_check, sanity_notebook
from app.store.scores import scores_for
from backends.fake import FakeGenerator
from backends.protocols import ChoiceResult, ModelInfo


class OracleJudge:
    """Answers yes exactly when the text contains 'GOOD' (a judge that knows the answer)."""

    info = ModelInfo("oracle", None, "oracle-v1")

    def choice_probs(self, requests, cancel=None):
        for r in requests:
            good = "GOOD" in (r.raw_prompt or r.messages[-1]["content"])
            labels = [label for label, _ in r.choices]
            if labels == ["yes", "no"]:
                probs = {"yes": 0.9, "no": 0.1} if good else {"yes": 0.2, "no": 0.8}
            else:  # rubric digits: good texts get mostly 5s
                probs = {d: (0.8 if d == "5" else 0.05) if good else (0.8 if d == "1" else 0.05) for d in labels}
            yield ChoiceResult(r.key, probs, 0.95)


def test_default_constitution_loads():
    from app.core.paths import resources_dir

    c = load_criteria(resources_dir() / "quality" / "default_constitution.toml")
    assert c.name == "support-tickets"
    kinds = {x.name: x.type for x in c.criteria}
    assert kinds == {"not-rude": "yes_no", "english": "yes_no", "helpfulness": "rubric", "ticket-points": "additive"}
    assert c.criteria[0].invert and len(c.criteria[0].good) == 3


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[criterion]]\nname = "a"\nquestion = "Is it?"\n\n[[criterion]]\nname = "b"\ntype = "vibes"\n',
         "c.toml:5: criterion 2: type must be one of yes_no, rubric, additive"),
        ('[[criterion]]\nname = "a"\n', "c.toml:1: criterion 1: needs a question"),
        ('[[criterion]]\nname = "a"\ntype = "rubric"\nquestion = "How?"\nlevels = {1 = "x", 2 = "y"}\n',
         "needs a description for each level 1, 2, 3, 4 and 5"),
        ('[[criterion]]\nname = "a"\ntype = "additive"\n', "needs points"),
        ('[[criterion]]\nname = "a"\nquestion = "Is it?"\ngood = "one"\n', "good must be a list"),
        ('[[criterion]]\nname = "a"\nquestion = "Is it?"\nquestoin = "x"\n', "unknown setting questoin"),
        ('[[criterion]]\nname = "a"\nquestion = "Is it?"\n[[criterion]]\nname = "a"\nquestion = "Is it?"\n',
         "two criteria are named 'a'"),
        ('[[criterion]\nname = "a"\n', "c.toml:1: invalid TOML"),
        ('name = "x"\n', "declares no criteria"),
    ],
)
def test_malformed_criteria_files_name_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(RuleFileError) as info:
        load_criteria(path)
    assert message in str(info.value).replace(str(tmp_path) + "/", "")


def _nb_with(nb, texts):
    nb.add_imported_rows([({}, t) for t in texts], origin="synthetic", source="t")
    return [r["id"] for r in nb.records()]


def test_judging_stores_scores_with_the_judge_model(nb, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('name = "c"\n[[criterion]]\nname = "good"\nquestion = "Is it good?"\n'
                    '[[criterion]]\nname = "stars"\ntype = "rubric"\nquestion = "How good?"\n'
                    'levels = {1 = "a", 2 = "b", 3 = "c", 4 = "d", 5 = "e"}\n'
                    '[[criterion]]\nname = "pts"\ntype = "additive"\npoints = ["A?", "B?", "C?"]\n')
    ids = _nb_with(nb, ["GOOD text", "bad text", "another GOOD one"])
    counts = judge_notebook(nb, OracleJudge(), load_criteria(path))
    assert counts == {"good": (2, 1), "stars": (2, 1), "pts": (2, 1)}
    s = {x.name: x for x in scores_for(nb, ids[0])}
    assert s["judge:good"].value == pytest.approx(0.9) and s["judge:good"].passed
    assert s["judge:good"].model_sha256 == "oracle-v1"
    assert s["judge:stars"].value == pytest.approx(5 * 0.8 + 0.05 * (1 + 2 + 3 + 4))
    assert s["judge:pts"].value == pytest.approx(2.7) and s["judge:pts"].kind == "additive"
    bad = {x.name: x for x in scores_for(nb, ids[1])}
    assert not bad["judge:good"].passed and bad["judge:good"].value == pytest.approx(0.2)


def test_invert_scores_the_no_answer():
    c = Criterion("not-bad", "Is it bad?", invert=True)
    vals = score_texts(OracleJudge(), c, [("a", "GOOD"), ("b", "meh")])
    assert vals == {"a": pytest.approx(0.1), "b": pytest.approx(0.8)}


def test_rank_test_p_values():
    assert rank_test_p_value([3, 4, 5], [0, 1, 2]) == pytest.approx(1 / 20)
    assert rank_test_p_value([0, 1, 2], [3, 4, 5]) == pytest.approx(1.0)
    assert 0.3 < rank_test_p_value([1, 1, 1], [1, 1, 1]) <= 1.0
    big = rank_test_p_value(list(range(20, 40)), list(range(0, 20)))
    assert big < 1e-6  # normal approximation for large sets


def test_a_judge_that_knows_passes_its_sanity_check():
    c = Criterion("g", "Is it good?", good=("GOOD a", "GOOD b", "GOOD c", "GOOD d"), bad=("x", "y", "z", "w"))
    r = sanity_check(OracleJudge(), c)
    assert not r.flagged and r.auc == 1.0 and r.accuracy == 1.0 and r.p_value < 0.05
    assert "better than chance" in r.verdict


def test_a_chance_level_judge_is_flagged():
    texts = [f"Ticket number {i} about billing and invoices." for i in range(12)]
    c = Criterion("nonsense", "Does this text smell purple?", good=tuple(texts[:6]), bad=tuple(texts[6:]))
    r = sanity_check(FakeGenerator(), c)
    assert r.flagged and "no better than chance" in r.verdict
    assert 0 <= r.auc <= 1 and r.p_value >= 0.1


def test_too_few_examples_is_flagged_as_unchecked():
    r = sanity_check(OracleJudge(), Criterion("g", "Is it good?", good=("GOOD",)))
    assert r.flagged and r.auc is None and "unchecked" in r.verdict


def test_a_persons_labels_count_as_examples_but_statuses_do_not(nb):
    from app.quality.judge import Constitution
    from app.store.trust import set_label

    ids = _nb_with(nb, ["GOOD one", "GOOD two", "nope", "also nope", "GOOD but rejected", "accepted nope"])
    for rid, value in zip(ids[:4], (True, True, False, False)):
        set_label(nb, rid, "g", value)
    nb.edit_record(ids[4], "status", "rejected")  # a status is not an answer to this criterion's question
    nb.edit_record(ids[5], "status", "accepted")
    [r] = sanity_notebook(nb, OracleJudge(), Constitution("c", (Criterion("g", "Is it good?"),)))
    assert (r.n_good, r.n_bad, r.n_labels) == (2, 2, 4) and r.auc == 1.0
    assert {d["source"] for d in r.details} == {f"your label on record {i}" for i in ids[:4]}
    assert r.agreement_on == "your labels" and r.kappa == 1.0


def test_sanity_and_judge_cli_with_fake_backend(tmp_path, capsys):
    import json

    from app.cli import main
    from app.store.notebook import Notebook

    book = tmp_path / "nb.db"
    with Notebook.create(book) as nb:
        _nb_with(nb, ["Thanks for your help.", "Fix it now."])
    assert main(["judge", str(book), "--backend", "fake", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert set(counts) == {"not-rude", "english", "helpfulness", "ticket-points"}
    assert all(v["passed"] + v["failed"] == 2 for v in counts.values())
    assert main(["sanity", str(book), "--backend", "fake", "--json"]) == 0
    reports = {r["criterion"]: r for r in json.loads(capsys.readouterr().out)}
    assert reports["helpfulness"]["flagged"] and "unchecked" in reports["helpfulness"]["verdict"]
