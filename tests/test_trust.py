"""Judges you can trust: sanity from known examples and a person's labels (never statuses), the
confusion matrix and kappa, trust per criterion version and model, a person's override, and
ranking refused for an untrusted judge. One integration test on the bundled SmolLM2."""

import pytest

from app.cli import main
from app.core.errors import StudioError
from app.generate.best_of import select_best
from app.generate.runs import create_run, execute_run, prepare_run
from app.quality.criteria import activate, notebook_constitution, save_spec, set_trust
from app.quality.funnel import kept_ids
from app.quality.judge import Constitution, Criterion, judge_notebook
from app.quality.sanity import cohen_kappa, confusion_matrix, sanity_check, sanity_notebook
from app.quality.trust import judge_trust, require_trusted
from app.store.notebook import Notebook
from app.store.scores import score_values
from app.store.trust import latest_sanity, set_label
from backends.fake import FakeGenerator
from backends.protocols import ChoiceResult, ModelInfo

TICKETS = [f"Ticket number {i} about billing and invoices." for i in range(12)]


class OracleJudge:
    """Answers yes exactly when the text contains 'GOOD'."""

    info = ModelInfo("oracle", None, "oracle-v1")

    def choice_probs(self, requests, cancel=None):
        for r in requests:
            good = "GOOD" in (r.raw_prompt or r.messages[-1]["content"])
            yield ChoiceResult(r.key, {"yes": 0.9, "no": 0.1} if good else {"yes": 0.2, "no": 0.8}, 0.95)


def _records(nb, texts):
    nb.add_imported_rows([({}, t) for t in texts], origin="synthetic", source="t")
    return [r["id"] for r in nb.records()]


def test_confusion_matrix_and_kappa_on_a_hand_made_case():
    good, bad = [0.9, 0.8, 0.3], [0.6, 0.2, 0.1, 0.05]  # labelled yes / labelled no
    m = confusion_matrix(good, bad, 0.5)
    assert m == {"tp": 2, "fn": 1, "fp": 1, "tn": 3}
    # observed agreement 5/7; by chance (3/7)(3/7) + (4/7)(4/7) = 25/49; kappa = (35 - 25) / (49 - 25)
    assert cohen_kappa(m) == pytest.approx(10 / 24)
    assert cohen_kappa({"tp": 3, "fn": 0, "fp": 0, "tn": 4}) == pytest.approx(1.0)
    assert cohen_kappa({"tp": 0, "fn": 3, "fp": 4, "tn": 0}) < 0  # worse than chance
    assert cohen_kappa({"tp": 3, "fn": 0, "fp": 4, "tn": 0}) == pytest.approx(0.0)  # always yes: chance
    assert cohen_kappa({"tp": 3, "fn": 0, "fp": 0, "tn": 0}) is None  # one answer from both: undefined
    r = sanity_check(OracleJudge(), Criterion("g", "Is it good?", good=("GOOD a", "GOOD b", "c"),
                                              bad=("x", "y", "GOOD z", "w")))
    assert r.confusion == {"tp": 2, "fn": 1, "fp": 1, "tn": 3} and r.kappa == pytest.approx(10 / 24)
    assert r.agreement_on == "known examples" and r.threshold == 0.5


@pytest.fixture
def candidates(nb, topics_csv, fake):
    from app.data.importer import import_file

    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Ticket about {{ topic }}.")
    run = execute_run(nb, create_run(nb, prepare_run(nb, "ticket", samples=3, limit_rows=2), fake.info), fake)
    return nb, run


def test_sanity_ignores_automatic_rejections_and_uses_the_persons_labels(candidates):
    nb, run = candidates
    select_best(nb, run.id, "likelihood", keep=1)  # best-of rejects 4 candidates automatically
    rejected = [r["id"] for r in nb.records() if r["status"] == "rejected"]
    assert len(rejected) == 4
    nb.edit_record(rejected[0], "status", "accepted", author="user")  # a status is no answer to a question either
    c = Criterion("g", "Is it good?")
    [r] = sanity_notebook(nb, OracleJudge(), Constitution("c", (c,)))
    assert (r.n_good, r.n_bad) == (0, 0) and r.auc is None and "unchecked" in r.verdict
    assert latest_sanity(nb, "g") is None  # nothing stored: it stays unchecked
    # the person's own answers to this criterion's question are the evidence
    ids = [r["id"] for r in nb.records()]
    for rid, value in zip(ids, (True, True, False, False)):
        set_label(nb, rid, "g", value)
    set_label(nb, ids[4], "other-criterion", False)  # a label for another criterion does not count
    [r] = sanity_notebook(nb, OracleJudge(), Constitution("c", (c,)))
    assert (r.n_good, r.n_bad, r.n_labels) == (2, 2, 4) and r.agreement_on == "your labels"
    bad = {d["source"] for d in r.details if d["label"] == "bad"}
    assert bad == {f"your label on record {rid}" for rid in ids[2:4]}  # not the best-of losers


def test_sanity_is_stored_per_criterion_version_and_model(nb):
    _records(nb, ["GOOD x"])
    v1, _ = save_spec(nb, "criterion", {"name": "g", "question": "Is it good?",
                                        "good": ["GOOD a", "GOOD b", "GOOD c", "GOOD d"], "bad": ["x", "y", "z", "w"]})
    [r] = sanity_notebook(nb, OracleJudge(), notebook_constitution(nb, ["g"]))
    assert r.trusted and r.trust == "trusted" and r.auc == 1.0
    stored = latest_sanity(nb, "g", "oracle-v1", v1.id)
    assert stored.trusted and stored.result["kappa"] == 1.0 and stored.result["confusion"]["tp"] == 4
    judge_notebook(nb, OracleJudge(), notebook_constitution(nb, ["g"]))
    assert judge_trust(nb, "g").state == "trusted"
    v2, _ = save_spec(nb, "criterion", {"name": "g", "question": "Is it really good?",
                                        "good": ["GOOD a", "GOOD b"], "bad": ["x", "y"]})
    judge_notebook(nb, OracleJudge(), notebook_constitution(nb, ["g"]))
    assert judge_trust(nb, "g").state == "unchecked"  # the new question has not been checked
    assert judge_trust(nb, "g", "another-model", v1.id).state == "unchecked"  # nor with another model


def test_an_at_chance_judge_does_not_change_the_kept_set_until_a_person_trusts_it(tmp_path, capsys):
    book = tmp_path / "nb.db"
    with Notebook.create(book) as nb:
        ids = _records(nb, [f"Record {i}: the customer asks about an invoice." for i in range(12)])
        save_spec(nb, "criterion", {"name": "purple", "question": "Does this text smell purple?",
                                    "good": TICKETS[:6], "bad": TICKETS[6:]})
        before = kept_ids(nb)
        judge_notebook(nb, FakeGenerator(), notebook_constitution(nb, ["purple"]))
        failing = [rid for rid, v in score_values(nb, "judge:purple").items() if v < 0.5]
        assert failing and len(failing) < len(ids)  # the fake judge would drop some records
        assert kept_ids(nb) == before == ids  # unchecked: it does not filter
        [r] = sanity_notebook(nb, FakeGenerator(), notebook_constitution(nb, ["purple"]))
        assert r.flagged and r.trust == "untrusted" and "no better than chance" in r.verdict
        assert kept_ids(nb) == ids  # untrusted: still not filtering
    assert main(["criteria", "trust", str(book), "purple", "--reason", "I read them"]) == 0
    assert "trusted by you" in capsys.readouterr().out
    with Notebook.open(book) as nb:
        assert kept_ids(nb) == [i for i in ids if i not in failing]
        assert judge_trust(nb, "purple").label == "trusted by you"
    assert main(["criteria", "reset-trust", str(book), "purple"]) == 0
    with Notebook.open(book) as nb:
        assert kept_ids(nb) == ids
    assert main(["criteria", "distrust", str(book), "purple"]) == 0
    assert "switched off by you" in capsys.readouterr().out
    assert main(["criteria", "trust", str(book), "no-such-criterion"]) == 2


def test_ranking_by_an_untrusted_judge_is_refused_and_names_the_override(candidates):
    nb, run = candidates
    save_spec(nb, "criterion", {"name": "purple", "question": "Does this text smell purple?"})
    ids = [r["id"] for r in nb.records() if r["run_id"] == run.id]
    judge_notebook(nb, FakeGenerator(), notebook_constitution(nb, ["purple"]), record_ids=ids)
    with pytest.raises(StudioError, match=r"'purple' is unchecked.*synth-studio criteria trust nb.db purple"):
        select_best(nb, run.id, "judge:purple", trust_check=require_trusted)
    with pytest.raises(StudioError, match="needs its judge's trust checked"):
        select_best(nb, run.id, "gated:judge:purple")  # no trust check given: judges may not rank
    with pytest.raises(StudioError, match="criteria trust"):
        select_best(nb, run.id, "constitution", trust_check=require_trusted)
    assert all(r["status"] == "new" for r in nb.records())  # refused before anything changed
    set_trust(nb, "purple", True, reason="checked by eye")
    result = select_best(nb, run.id, "judge:purple", trust_check=require_trusted)
    assert (result.rows, result.kept, result.rejected) == (2, 2, 4)


def test_cli_label_and_sanity_report(tmp_path, capsys):
    book = tmp_path / "nb.db"
    with Notebook.create(book) as nb:
        ids = _records(nb, ["GOOD one", "GOOD two", "bad one", "bad two", "GOOD three", "bad three"])
        save_spec(nb, "criterion", {"name": "g", "question": "Is it good?"})
        for name in [c.name for c in notebook_constitution(nb).criteria if c.name != "g"]:
            activate(nb, "criterion", name, False)
    for rid, answer in zip(ids, ("yes", "yes", "no", "no", "yes", "no")):
        assert main(["criteria", "label", str(book), str(rid), "g", answer]) == 0
    assert main(["criteria", "label", str(book), "9999", "g", "yes"]) == 2
    assert main(["criteria", "label", str(book), str(ids[0]), "nope", "yes"]) == 2
    capsys.readouterr()
    with Notebook.open(book) as nb:  # the oracle judge through the same code the CLI prints
        [r] = sanity_notebook(nb, OracleJudge())
    from app.cli.quality import sanity_lines

    text = sanity_lines(r)
    assert r.n_labels == 6 and r.auc == 1.0 and r.kappa == 1.0 and r.trusted
    for part in ("trusted", "AUC 1.00", "kappa 1.00 on your labels", "labelled yes", "suggested"):
        assert part in text
    assert main(["sanity", str(book), "--backend", "fake"]) == 0
    printed = capsys.readouterr().out
    assert "g: 3 good / 3 bad, 6 of them your labels" in printed
    assert "labelled no" in printed and "kappa" in printed and "threshold 0.5 (suggested" in printed


@pytest.mark.integration
def test_a_topic_adherence_question_separates_records_on_the_bundled_model(smollm, nb):
    """A question that reads each record's row ({{ input.topic }}). The 135M model needs a few worked
    examples (guidelines, a shared prefix evaluated once) to do this at all; we measured it separates
    these clear cases (each topic's own ticket outscores the others' tickets for that topic)."""
    texts = {"refund": "I want a refund. Please refund my money, the refund is overdue.",
             "password": "My password does not work. I need a new password.",
             "pizza": "I ordered a pizza. The pizza was cold when it arrived.",
             "invoice": "The invoice is wrong. Please send a corrected invoice."}
    shots = [("I love my cat, my cat is cute.", "cat", "Yes"), ("The bus was late again today.", "cat", "No"),
             ("The bus was late again today.", "bus", "Yes"),
             ("My phone screen cracked when I dropped the phone.", "bus", "No"),
             ("My phone screen cracked when I dropped the phone.", "phone", "Yes"),
             ("I love my cat, my cat is cute.", "phone", "No")]
    guidelines = "\n\n".join(f'Text: "{t}"\nQuestion: Is this text about {w}?\nAnswer (Yes or No): {a}'
                             for t, w, a in shots)
    save_spec(nb, "criterion", {"name": "on-topic", "question": "Is this text about {{ input.topic }}?",
                                "guidelines": guidelines})
    rows = [({"topic": topic}, text) for topic in texts for text in texts.values()]  # every text under every topic
    nb.add_imported_rows(rows, origin="synthetic", source="t")
    records = [(r["id"], r["variables"]["topic"], r["output"]) for r in nb.records()]
    judge_notebook(nb, smollm, notebook_constitution(nb, ["on-topic"]))
    scores = score_values(nb, "judge:on-topic")
    own = {topic: scores[rid] for rid, topic, out in records if out == texts[topic]}
    other = {topic: [scores[rid] for rid, t, out in records if t == topic and out != texts[topic]] for topic in texts}
    print("own", {k: round(v, 3) for k, v in own.items()}, "others", {k: [round(x, 3) for x in v] for k, v in other.items()})
    for topic in texts:  # each topic's own ticket scores above every other ticket asked about that topic
        assert own[topic] > max(other[topic]) + 0.03, topic
    mean_other = sum(sum(v) for v in other.values()) / sum(len(v) for v in other.values())
    assert sum(own.values()) / len(own) > mean_other + 0.08
    # and with the person's labels (matching = yes), sanity finds the judge beats chance on this model
    for rid, topic, out in records:
        set_label(nb, rid, "on-topic", out == texts[topic])
    [r] = sanity_notebook(nb, smollm, notebook_constitution(nb, ["on-topic"]))
    print(r.verdict)
    assert r.trusted and r.auc >= 0.85 and r.n_labels == 16
