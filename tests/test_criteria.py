"""Your own criteria in the notebook: versions, TOML in and out, question templates, per-row
validator settings, proposals from a prompt, the CLI and the criteria editor."""

import json
import tomllib

import pytest

from app.cli import main
from app.core.errors import StudioError
from app.quality.criteria import (
    activate,
    export_toml,
    import_file,
    import_text,
    list_entries,
    notebook_constitution,
    notebook_rules,
    parse_document,
    preview_criterion,
    save_spec,
)
from app.quality.judge import Criterion, Subject, embeds_output, judge_notebook, render_question, score_subjects
from app.quality.propose import propose
from app.quality.rulefile import RuleFileError
from app.quality.steps import validate
from app.quality.validators import make_rule
from app.store.criteria import get_version, latest_versions, version_history
from app.store.notebook import Notebook
from app.store.scores import scores_for
from backends.protocols import ChoiceResult, ModelInfo
from tests.conftest import REPO, SAMPLE

QUALITY = REPO / "resources" / "quality"
DEFAULT_CRITERIA = [c.name for c in parse_document((QUALITY / "default_constitution.toml").read_text())[0].criteria]
DEFAULT_RULES = [r.name for r in parse_document((QUALITY / "default_rules.toml").read_text())[1]]


class RecordingJudge:
    """Answers yes when the request holds 'GOOD'; remembers every request it was asked."""

    info = ModelInfo("recorder", None, "recorder-v1")

    def __init__(self):
        self.requests = []

    def choice_probs(self, requests, cancel=None):
        for r in requests:
            self.requests.append(r)
            text = r.raw_prompt if r.raw_prompt is not None else r.messages[-1]["content"]
            good = "GOOD" in text
            labels = [label for label, _ in r.choices]
            if labels != ["yes", "no"]:  # a rubric's digits: good texts get 5s
                yield ChoiceResult(r.key, {d: 1.0 if d == ("5" if good else "1") else 0.0 for d in labels}, 0.9)
                continue
            yield ChoiceResult(r.key, {"yes": 0.9, "no": 0.1} if good else {"yes": 0.2, "no": 0.8}, 0.9)


def _records(nb, rows):
    """Imported samples from (variables, text) pairs; their ids in order."""
    nb.add_imported_rows(rows, origin="synthetic", source="t")
    return [r["id"] for r in nb.records()]


# -- versions ------------------------------------------------------------------------------------


def test_a_new_notebook_gets_the_bundled_defaults_on_first_use(nb):
    assert [c.name for c in notebook_constitution(nb).criteria] == DEFAULT_CRITERIA
    assert [r.name for r in notebook_rules(nb)] == DEFAULT_RULES
    assert all(v.version == 1 and v.active for v in latest_versions(nb))
    notebook_constitution(nb)  # a second use imports nothing more
    assert len(latest_versions(nb)) == len(DEFAULT_CRITERIA) + len(DEFAULT_RULES)


def test_saving_a_changed_spec_is_a_new_version_and_an_unchanged_one_is_not(nb):
    v1, created = save_spec(nb, "criterion", {"name": "polite", "question": "Is this text polite?"})
    assert created and v1.version == 1 and v1.parent_id is None
    same, created = save_spec(nb, "criterion", {"question": "Is this text polite?", "name": "polite", "type": "yes_no"})
    assert not created and same.id == v1.id  # defaults and key order do not make a new version
    v2, created = save_spec(nb, "criterion", {"name": "polite", "question": "Is this text polite?", "threshold": 0.4})
    assert created and v2.version == 2 and v2.parent_id == v1.id
    assert [v.version for v in version_history(nb, "criterion", "polite")] == [1, 2]
    assert notebook_constitution(nb, ["polite"]).criteria[0].threshold == 0.4


def test_a_malformed_spec_is_refused_with_the_reason_and_saves_nothing(nb):
    with pytest.raises(RuleFileError, match="criterion polite: type must be one of"):
        save_spec(nb, "criterion", {"name": "polite", "question": "Is it?", "type": "vibes"})
    with pytest.raises(RuleFileError, match="editor.toml:4: rule 1: length max must be a whole number"):
        import_text(nb, '[[criterion]]\nname = "ok"\nquestion = "Fine?"\n[[rule]]\ntype = "length"\nmax = 1.5\n',
                    "editor.toml")
    assert get_version(nb, "criterion", "polite") is None and get_version(nb, "criterion", "ok") is None


def test_inactive_criteria_and_rules_are_not_used(nb):
    ids = _records(nb, [({}, "GOOD text here for you"), ({}, "bad")])
    activate(nb, "criterion", "english", False)
    activate(nb, "rule", "length", False)
    assert "english" not in [c.name for c in notebook_constitution(nb).criteria]
    counts = judge_notebook(nb, RecordingJudge())
    assert set(counts) == set(DEFAULT_CRITERIA) - {"english"}
    assert set(validate(nb)) == set(DEFAULT_RULES) - {"length"}
    assert not any(s.name in ("judge:english", "validator:length") for s in scores_for(nb, ids[0]))
    with pytest.raises(StudioError, match="no criterion named 'nope'"):
        activate(nb, "criterion", "nope", True)


def test_scores_carry_the_version_that_made_them(nb):
    ids = _records(nb, [({}, "GOOD one"), ({}, "bad one")])
    v1, _ = save_spec(nb, "criterion", {"name": "good", "question": "Is it good?"})
    judge_notebook(nb, RecordingJudge(), notebook_constitution(nb, ["good"]))
    assert {s.name: s.criterion_version_id for s in scores_for(nb, ids[0])}["judge:good"] == v1.id
    v2, _ = save_spec(nb, "criterion", {"name": "good", "question": "Is it really good?"})
    judge_notebook(nb, RecordingJudge(), notebook_constitution(nb, ["good"]))
    assert {s.name: s.criterion_version_id for s in scores_for(nb, ids[0])}["judge:good"] == v2.id
    validate(nb)
    length = {s.name: s for s in scores_for(nb, ids[1])}["validator:length"]
    assert length.criterion_version_id == get_version(nb, "rule", "length").id


def test_the_judge_step_records_the_criterion_version_and_spec(nb, tmp_path):
    _records(nb, [({}, "GOOD")])
    v, _ = save_spec(nb, "criterion", {"name": "good", "question": "Is it good?", "samples": 2})
    judge_notebook(nb, RecordingJudge(), notebook_constitution(nb, ["good"]))
    row = nb.conn.execute("SELECT settings FROM steps WHERE kind = 'judge' ORDER BY id DESC").fetchone()
    settings = json.loads(row[0])
    assert settings["criterion_version_id"] == v.id and settings["criterion"]["samples"] == 2


# -- TOML in and out -----------------------------------------------------------------------------

ROUND_TRIP = '''
[[criterion]]
name = "on-topic"
question = "Does this reply answer {{ input.question }}?"
threshold = 0.4
samples = 2
guidelines = "Answer about the text only.\\nBe strict."
good = ["A plain example", { output = "Paris is the capital.", input = { question = "What is the capital of France?" } }]
bad = [{ output = "I like trains.", input = { question = "What is the capital of France?" }, prompt = "Answer: {q}" }]

[[criterion]]
name = "stars"
type = "rubric"
question = "How good is it?"
levels = { 1 = "bad", 2 = "meh", 3 = "ok", 4 = "good", 5 = "great \\"quoted\\"" }

[[criterion]]
name = "not-rude"
question = "Is this text rude?"
invert = true
format = "chat"

[[criterion]]
name = "pts"
type = "additive"
points = ["Does it mention {{ input.topic }}?", "Is it short?"]

[[rule]]
name = "words"
type = "length"
unit = "words"
max = "{{ max_words }}"

[[rule]]
type = "json"
schema = { type = "object", required = ["a"], properties = { a = { type = "integer" } } }

[[rule]]
name = "answer"
type = "contains"
must_contain = "{{ answer }}"
'''


def test_toml_round_trip_keeps_every_setting(nb, tmp_path):
    saved = import_text(nb, ROUND_TRIP, "mine.toml")
    assert all(created for _, created in saved) and len(saved) == 7
    text = export_toml(nb)
    tomllib.loads(text)  # valid TOML
    constitution, rules = parse_document(text, "export.toml")
    again, _ = parse_document(ROUND_TRIP, "mine.toml")
    names = {c.name: c for c in constitution.criteria}
    for c in again.criteria:  # the defaults are exported too; ours come back unchanged
        assert names[c.name].__dict__ | {"version_id": None} == c.__dict__
    assert {r.name: (r.params, r.templates) for r in rules if r.name in ("words", "json", "answer")} == {
        r.name: (r.params, r.templates) for r in parse_document(ROUND_TRIP, "m.toml")[1]}
    # importing the export creates no new version, and the file works as --criteria / --rules
    out = tmp_path / "export.toml"
    out.write_text(text)
    assert not any(created for _, created in import_file(nb, out))
    from app.quality.judge import load_criteria
    from app.quality.validators import load_rules

    assert "on-topic" in [c.name for c in load_criteria(out).criteria]
    assert "words" in [r.name for r in load_rules(out)]


def test_cli_import_export_add_edit_list(tmp_path, capsys):
    book = tmp_path / "nb.db"
    assert main(["new", str(book)]) == 0
    crit = tmp_path / "c.toml"
    crit.write_text(ROUND_TRIP)
    assert main(["criteria", "import", str(book), str(crit), "--inactive"]) == 0
    assert "saved criterion on-topic v1 (inactive" in capsys.readouterr().out
    assert main(["criteria", "add", str(book), "mentions", "--question", "Does this text mention {{ input.topic }}?",
                 "--good", "GOOD", "--threshold", "0.6"]) == 0
    assert "saved criterion mentions v1" in capsys.readouterr().out
    assert main(["criteria", "add", str(book), "mentions", "--question", "x?"]) == 2
    assert main(["criteria", "edit", str(book), "mentions", "--threshold", "0.6"]) == 0
    assert "unchanged: criterion mentions v1" in capsys.readouterr().out
    assert main(["criteria", "edit", str(book), "mentions", "--threshold", "0.7", "--bad", "nope"]) == 0
    assert "saved criterion mentions v2" in capsys.readouterr().out
    assert main(["criteria", "edit", str(book), "words", "--rule", "--set", "max=300"]) == 0
    assert "saved rule words v2" in capsys.readouterr().out
    assert main(["criteria", "edit", str(book), "mentions", "--set", "type=vibes"]) == 2
    assert "type must be one of" in capsys.readouterr().err
    assert main(["criteria", "activate", str(book), "on-topic"]) == 0
    assert "criterion on-topic active" in capsys.readouterr().out
    assert main(["criteria", "list", str(book), "--json"]) == 0
    rows = {(r["kind"], r["name"]): r for r in json.loads(capsys.readouterr().out)}
    assert rows[("criterion", "mentions")]["version"] == 2 and rows[("criterion", "mentions")]["trust"] == "unchecked"
    assert rows[("criterion", "on-topic")]["active"] and not rows[("criterion", "stars")]["active"]
    assert rows[("rule", "words")]["spec"]["max"] == 300
    assert main(["criteria", "export", str(book), "-"]) == 0
    exported = capsys.readouterr().out
    assert "mentions" in exported and "stars" not in exported  # inactive ones only with --all
    assert main(["criteria", "show", str(book), "mentions"]) == 0
    assert "threshold = 0.7" in capsys.readouterr().out


# -- questions are templates -------------------------------------------------------------------


def test_a_question_renders_input_prompt_and_output():
    s = Subject("Paris.", {"question": "What is the capital of France?"}, "Answer briefly: capital of France?")
    assert render_question("Does this reply answer {{ input.question }}?", s) == \
        "Does this reply answer What is the capital of France??"
    q = 'Prompt: {{ prompt }}\nReply: "{{ output }}"\nIs the reply grounded in the prompt?'
    assert render_question(q, s) == 'Prompt: Answer briefly: capital of France?\nReply: "Paris."\n' \
                                    "Is the reply grounded in the prompt?"
    assert embeds_output(q) and not embeds_output("Does it answer {{ input.question }}?")
    assert render_question("Is this text polite?", s) == "Is this text polite?"  # a plain question is left alone


def test_layouts_text_then_question_or_the_question_holds_the_text(nb):
    judge = RecordingJudge()
    s = Subject("GOOD reply", {"topic": "billing"}, "the prompt")
    score_subjects(judge, Criterion("a", "Does this text mention {{ input.topic }}?", guidelines="Be strict."), [(1, s)])
    score_subjects(judge, Criterion("b", 'Reply: "{{ output }}"\nDoes it mention {{ input.topic }}?'), [(1, s)])
    plain, embedded = (r.raw_prompt for r in judge.requests)
    # guidelines (the same for every record) first, then the text, then the per-record question
    assert plain == 'Be strict.\n\nText: "GOOD reply"\nQuestion: Does this text mention billing?\nAnswer (Yes or No):'
    assert embedded == 'Reply: "GOOD reply"\nDoes it mention billing?\nAnswer (Yes or No):'


def test_a_record_without_the_variable_is_not_judged_and_says_why(nb):
    ids = _records(nb, [({"topic": "billing"}, "GOOD about billing"), ({}, "GOOD without a row")])
    save_spec(nb, "criterion", {"name": "topic", "question": "Does this text mention {{ input.topic }}?"})
    counts = judge_notebook(nb, RecordingJudge(), notebook_constitution(nb, ["topic"]))
    assert counts == {"topic": (1, 1)}
    ok, missing = ({s.name: s for s in scores_for(nb, i)}["judge:topic"] for i in ids)
    assert ok.passed and ok.value == pytest.approx(0.9)
    assert missing.value is None and not missing.passed
    assert "input.topic" in missing.reason and "lacks" in missing.reason


def test_a_question_may_read_only_input_prompt_and_output():
    with pytest.raises(RuleFileError, match="uses topic; a question can read input.NAME"):
        parse_document('[[criterion]]\nname = "x"\nquestion = "About {{ topic }}?"\n')
    with pytest.raises(RuleFileError, match="not a valid template"):
        parse_document('[[criterion]]\nname = "x"\nquestion = "About {{ input.topic ?"\n')


def test_samples_average_over_wordings_of_the_question():
    judge = RecordingJudge()
    c = Criterion("g", "Is it good?", samples=4)
    values, errors = score_subjects(judge, c, [("a", "GOOD"), ("b", "meh")])
    assert values == {"a": pytest.approx(0.9), "b": pytest.approx(0.2)} and not errors
    layouts = [(r.raw_prompt is not None, (r.raw_prompt or r.messages[0]["content"]).count("Is it good?"))
               for r in judge.requests if r.key[0] == "a"]
    # completion after the text; chat before and after; completion before and after; chat after only
    assert layouts == [(True, 1), (False, 2), (True, 2), (False, 1)]
    # one wording for every record, then the next: requests that share a layout share their prefix
    assert [r.key[:2] for r in judge.requests] == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2),
                                                   ("a", 3), ("b", 3)]


def test_preview_shows_the_rendered_question_for_a_record(nb):
    [rid] = _records(nb, [({"topic": "billing"}, "My invoice is wrong.")])
    p = preview_criterion(nb, Criterion("t", "Does this text mention {{ input.topic }}?"), rid)
    assert p.questions == ["Does this text mention billing?"] and p.error is None
    assert 'Text: "My invoice is wrong."' in p.prompt
    [other] = _records(nb, [({}, "no row")])[1:]
    assert "input.topic" in preview_criterion(nb, Criterion("t", "About {{ input.topic }}?"), other).error


# -- validators read per-row values -------------------------------------------------------------


def test_rule_settings_can_be_read_from_each_records_row(nb):
    rules = [make_rule({"type": "length", "unit": "words", "max": "{{ max_words }}", "name": "words"}, ValueError),
             make_rule({"type": "contains", "must_contain": "{{ answer }}", "name": "answer"}, ValueError)]
    ids = _records(nb, [({"max_words": 5, "answer": "42"}, "The answer is 42."),
                        ({"max_words": "2", "answer": "Paris"}, "It is London, I think."),
                        ({"answer": "zebra"}, "no max here"),
                        ({"max_words": "many", "answer": "no"}, "No.")])
    counts = validate(nb, rules)
    assert counts == {"words": (1, 3), "answer": (2, 2)}
    got = {rid: {s.name: (s.passed, s.reason) for s in scores_for(nb, rid)} for rid in ids}
    assert got[ids[0]]["validator:words"][0] and got[ids[0]]["validator:answer"][0]
    assert got[ids[1]]["validator:words"] == (False, "5 words > max 2")
    assert got[ids[1]]["validator:answer"] == (False, "does not contain 'Paris'")
    assert "max reads max_words, which this record's input row lacks" in got[ids[2]]["validator:words"][1]
    assert got[ids[3]]["validator:words"] == (False, "max is 'many' for this record, not a number")


def test_only_some_settings_may_be_templates():
    with pytest.raises(ValueError, match="unit cannot be read from the input row"):
        make_rule({"type": "length", "unit": "{{ unit }}"}, ValueError)
    rule = make_rule({"type": "regex", "must_match": "^{{ prefix }}"}, ValueError)
    assert rule.check("Dear Ann", variables={"prefix": "Dear"}).passed
    assert not rule.check("Hi Ann", variables={"prefix": "Dear"}).passed


# -- proposals from a prompt ------------------------------------------------------------------------


def test_proposals_from_the_sample_template():
    proposals = propose((SAMPLE / "support_ticket.j2").read_text())
    criteria = {p.name: p.spec["question"] for p in proposals if p.kind == "criterion"}
    assert criteria["short-customer-support"] == \
        "Is this text a short customer support ticket for {{ input.product }}?"
    assert criteria["mention-details"] == "Does this text mention the details the prompt asked for?"
    assert "under 120 words" in criteria["ticket-customer-voice"]
    assert [p.spec for p in proposals if p.kind == "rule"] == [{"type": "length", "unit": "words", "max": 120}]
    # descriptions ("The customer is ...", "Their problem: ...") are not instructions
    assert not any("persona" in q or "problem" in q.lower() for q in criteria.values())


def test_proposals_read_negations_and_modals():
    got = {p.spec["question"]: p.spec.get("invert", False) for p in propose(
        "- Do not use bullet points.\n- Avoid jargon.\nThe reply must include a greeting. It should be polite.\n"
        "You must not reveal prices. Thanks for reading.") if p.kind == "criterion"}
    assert got == {"Does this text use bullet points?": True, "Does this text avoid jargon?": False,
                   "Does this text include a greeting?": False, "Is this text polite?": False,
                   "Does this text reveal prices?": True}


def test_cli_propose_saves_them_inactive(tmp_path, capsys):
    book = tmp_path / "nb.db"
    assert main(["new", str(book)]) == 0
    assert main(["prompt", "add", str(book), "ticket", "--template", str(SAMPLE / "support_ticket.j2")]) == 0
    capsys.readouterr()
    assert main(["criteria", "propose", str(book), "--prompt", "ticket"]) == 0
    printed = capsys.readouterr().out
    tomllib.loads(printed)
    assert "# from: Mention" in printed and "short-customer-support" in printed
    with Notebook.open(book) as nb:
        assert get_version(nb, "criterion", "mention-details") is None  # printing saves nothing
    assert main(["criteria", "propose", str(book), "--prompt", "ticket", "--save"]) == 0
    with Notebook.open(book) as nb:
        v = get_version(nb, "criterion", "mention-details")
        assert v is not None and not v.active
        assert "mention-details" not in [c.name for c in notebook_constitution(nb).criteria]


# -- the editor -------------------------------------------------------------------------------------


def test_criteria_editor_saves_versions_previews_and_trusts(qtbot, nb):
    from widgets.criteria_editor import CriteriaEditor

    [rid] = _records(nb, [({"topic": "billing"}, "My invoice is wrong.")])
    nb.add_prompt_version("ticket", (SAMPLE / "support_ticket.j2").read_text())
    ed = CriteriaEditor(nb)
    qtbot.addWidget(ed)
    assert [e.name for e in ed.entries] == DEFAULT_CRITERIA + DEFAULT_RULES
    assert ed.table.item(0, 4).text() == "unchecked"
    ed.editor.setPlainText('[[criterion]]\nname = "topic"\nquestion = "Mentions {{ input.topic }}?"\ntype = "x"\n')
    assert not ed.check_text() and "type must be one of" in ed.message.text()
    ed.editor.setPlainText('[[criterion]]\nname = "topic"\nquestion = "Does it mention {{ input.topic }}?"\n')
    assert ed.check_text() and ed.save()
    assert ed.current().name == "topic" and ed.current().version.version == 1
    ed.record_id.setValue(rid)
    ed.preview()
    assert "question: Does it mention billing?" in ed.preview_view.toPlainText()
    ed.editor.setPlainText(ed.editor.toPlainText().replace("mention", "talk about"))
    assert ed.save() and ed.current().version.version == 2
    ed.set_trusted("topic", True)
    assert ed.trust_box.isChecked() and "trusted by you" in ed.table.item(ed.table.currentRow(), 4).text()
    ed.propose("ticket")
    assert "short-customer-support" in ed.editor.toPlainText() and ed.save_inactive
    assert ed.save() and not get_version(nb, "criterion", "short-customer-support").active
    entries = {e.name: e for e in list_entries(nb)}
    assert entries["topic"].trust_label == "trusted by you"


def test_no_sql_in_the_criteria_editor():
    from tests.test_layering import sql_in_source

    path = REPO / "widgets" / "criteria_editor.py"
    assert sql_in_source(path.read_text(), str(path)) == []
