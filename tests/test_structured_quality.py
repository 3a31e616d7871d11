"""Structured outputs through quality, export and metrics: the schema rule (and validate's
automatic schema check), output fields in rule settings and criterion questions, nested or
flattened exports read back with pandas and Hugging Face datasets, and per-column similarity
of a generated table to the real one."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from app.cli import main
from app.core.errors import StudioError
from app.export.formats import export
from app.quality.criteria import preview_criterion
from app.quality.funnel import compute_funnel
from app.quality.judge import (
    Constitution,
    Criterion,
    QuestionError,
    Subject,
    judge_notebook,
    render_question,
    requests_for,
)
from app.quality.rulefile import RuleFileError
from app.quality.steps import validate
from app.quality.validators import make_rule
from app.report.compute import compare_table, compare_tables, compute_report
from app.store.scores import scores_for
from backends.protocols import ChoiceResult, ModelInfo

QUIZ = """---
output_schema:
  type: object
  properties:
    question: {type: string}
    answer: {type: string}
    difficulty: {type: string, enum: [easy, medium, hard]}
  required: [question, answer, difficulty]
---
Write a quiz question about {{ topic }}.
"""
PLAIN = "Write a sentence about {{ topic }}."


def quiz(question: str, answer: str, difficulty: str = "easy") -> str:
    return json.dumps({"question": question, "answer": answer, "difficulty": difficulty})


GOOD_1 = quiz("What is 2 + 2?", "4")
GOOD_2 = quiz("Capital of France?", "Paris", "medium")
BROKEN = '{"question": "What is 3 + 3?", "answer": "6"'  # cut off: not JSON
MISSING = json.dumps({"question": "Who wrote Hamlet?", "difficulty": "hard"})  # no answer
WRONG_ENUM = quiz("Largest planet?", "Jupiter", "impossible")


def rule(**spec):
    return make_rule(spec, lambda m: RuleFileError("x", m))


def generated(nb, outputs, *, template=QUIZ, name="quiz", variables=None):
    """Records a run of prompt ``name`` made with these outputs (as a server or llama.cpp would); their ids."""
    pv, _ = nb.add_prompt_version(name, template)
    run = nb.create_run(prompt_version_id=pv.id, backend="fake", model_path=None, model_sha256=None, settings={},
                        seed=0, samples_per_row=1, plan=[None] * len(outputs))
    ids = []
    for i, out in enumerate(outputs):
        ids.append(nb.add_generated_record(
            run_id=run.id, prompt_version_id=pv.id, input_record_id=None, row_index=i, sample_index=0, seed=i,
            variables=(variables[i] if variables else {"topic": "maths"}), prompt="Write a quiz question.",
            output=out, prompt_tokens=5, completion_tokens=12, token_logprobs=[-0.5] * 12, finish_reason="stop"))
    return ids


def reason(nb, rid, name="validator:schema"):
    return next(s for s in scores_for(nb, rid) if s.name == name)


# -- the schema rule ------------------------------------------------------------------------------


def test_the_schema_rule_fails_exactly_the_bad_outputs_with_the_reason(nb):
    g1, g2, broken, missing, enum = generated(nb, [GOOD_1, GOOD_2, BROKEN, MISSING, WRONG_ENUM])
    counts = validate(nb, [rule(type="schema")])
    assert counts == {"schema": (2, 3)}  # one schema check, not a second automatic one
    assert reason(nb, g1).passed and reason(nb, g2).passed
    assert not reason(nb, broken).passed and reason(nb, broken).reason.startswith("not valid JSON:")
    r = reason(nb, missing)
    assert not r.passed and r.reason == "does not match the output schema: 'answer' is a required property"
    r = reason(nb, enum)
    assert not r.passed and r.reason.startswith("does not match the output schema at difficulty: 'impossible'")


def test_a_schema_given_in_the_rule_replaces_the_prompts(nb):
    [rid] = generated(nb, [GOOD_1])
    strict = rule(type="schema", schema={"type": "object", "properties": {"answer": {"type": "integer"}}})
    assert validate(nb, [strict]) == {"schema": (0, 1)}
    assert reason(nb, rid).reason == "does not match the output schema at answer: '4' is not of type 'integer'"
    # with no schema anywhere (a plain prompt's record) there is nothing to break
    assert rule(type="schema").check("plain text").passed
    with pytest.raises(RuleFileError, match="invalid JSON Schema"):
        rule(type="schema", schema={"type": "no-such-type"})
    with pytest.raises(RuleFileError, match="has no setting field"):
        rule(type="schema", field="answer")


def test_validate_checks_structured_records_against_their_schema_without_a_rule(nb):
    good, broken, missing, enum = generated(nb, [GOOD_1, BROKEN, MISSING, WRONG_ENUM])
    [plain] = generated(nb, ["Maths is fun."], template=PLAIN, name="plain")
    counts = validate(nb, [rule(type="length", unit="words", max=100)])
    assert counts["schema"] == (1, 3)  # only the records of a prompt with an output_schema
    assert counts["length"] == (5, 0)
    assert all(s.name != "validator:schema" for s in scores_for(nb, plain))
    verdicts = compute_funnel(nb).verdicts
    assert verdicts[good].kept and verdicts[plain].kept
    for rid in (broken, missing, enum):
        assert not verdicts[rid].kept and verdicts[rid].stage == "validator:schema"
    assert verdicts[missing].reason == "does not match the output schema: 'answer' is a required property"
    assert verdicts[broken].reason.startswith("not valid JSON")


def test_no_schema_check_when_no_prompt_declares_a_schema(nb):
    generated(nb, ["one", "two"], template=PLAIN, name="plain")
    assert validate(nb, [rule(type="length", max=100)]) == {"length": (2, 0)}


def test_validate_on_the_command_line_reports_the_schema_check(nb, capsys):
    generated(nb, [GOOD_1, BROKEN])
    path = nb.path
    nb.close()
    assert main(["validate", str(path), "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["schema"] == {"passed": 1, "failed": 1}


# -- output fields in rule settings and criteria ---------------------------------------------------------


def test_a_rule_setting_reads_the_outputs_fields(nb):
    echo = quiz("What is the boiling point of water?", "What is the boiling point of water? It is 100 C.")
    ok, repeats, lacks = generated(nb, [GOOD_1, echo, MISSING])
    # the answer must not repeat the question: a setting read from one field, checked on another
    no_echo = rule(name="no-echo", type="contains", field="answer", must_not_contain="{{ output.question }}")
    counts = validate(nb, [no_echo, rule(name="answer-words", type="length", field="answer", unit="words", max=3),
                           rule(name="answer-mentions", type="contains", must_contain="{{ output.answer }}")])
    assert counts["no-echo"] == (1, 2) and counts["answer-words"] == (1, 2)
    assert reason(nb, ok, "validator:no-echo").passed
    assert reason(nb, repeats, "validator:no-echo").reason == \
        "answer: contains 'What is the boiling point of water?'"
    assert reason(nb, repeats, "validator:answer-words").reason == "answer: 11 words > max 3"
    assert reason(nb, lacks, "validator:answer-words").reason == "the output has no field 'answer'"
    assert reason(nb, ok, "validator:answer-mentions").passed
    why = reason(nb, lacks, "validator:answer-mentions").reason
    assert why == ("must_contain: it reads output.answer, which this record's output lacks "
                   "(its fields: question, difficulty)")


def test_a_rule_reading_output_fields_of_a_plain_text_says_so():
    r = rule(type="contains", must_contain="{{ output.answer }}")
    v = r.check("just text")
    assert not v.passed and v.reason == "must_contain: it reads output.answer, but this record's output is not a JSON object"
    v = rule(type="length", field="answer", max=5).check("just text")
    assert not v.passed and "not a JSON object" in v.reason


def test_a_criterion_question_reads_one_field():
    s = Subject(GOOD_2, {"topic": "geography"})
    q = "Is {{ output.answer }} the right answer to: {{ output.question }}?"
    assert render_question(q, s) == "Is Paris the right answer to: Capital of France??"
    assert render_question("Text: {{ output }}", s) == f"Text: {GOOD_2}"  # the whole text still renders
    req = requests_for(Criterion("right", q), 1, s, 0)[0]
    assert "Paris" in req.raw_prompt and "medium" not in req.raw_prompt  # only the fields the question shows
    with pytest.raises(QuestionError, match=r"output.nope, which this record's output lacks"):
        render_question("Is {{ output.nope }} fine?", s)
    with pytest.raises(QuestionError, match="not a JSON object"):
        render_question("Is {{ output.answer }} fine?", Subject("plain text"))


class FieldJudge:
    """Answers yes when the request holds 'GOOD' (so it only sees what the question shows)."""

    info = ModelInfo("field-judge", None, "v1")

    def __init__(self):
        self.requests = []

    def choice_probs(self, requests, cancel=None):
        for r in requests:
            self.requests.append(r)
            good = "GOOD" in r.raw_prompt
            yield ChoiceResult(r.key, {"yes": 0.9, "no": 0.1} if good else {"yes": 0.1, "no": 0.9}, 0.9)


def test_a_criterion_about_one_field_judges_that_field(nb):
    # the question text mentions GOOD in both records; only the answer field decides
    a, b, c = generated(nb, [quiz("GOOD question?", "GOOD answer"), quiz("GOOD question?", "weak answer"),
                             "not json at all"])
    crit = Criterion("answer-ok", "Is this answer right: {{ output.answer }}?")
    counts = judge_notebook(nb, FieldJudge(), Constitution("t", (crit,)))
    assert counts["answer-ok"] == (1, 2)
    scores = {rid: reason(nb, rid, "judge:answer-ok") for rid in (a, b, c)}
    assert scores[a].passed and scores[a].value > 0.5
    assert not scores[b].passed and scores[b].value < 0.5
    assert scores[c].value is None and "not a JSON object" in scores[c].reason
    preview = preview_criterion(nb, crit, b)
    assert preview.questions == ["Is this answer right: weak answer?"]


# -- export ------------------------------------------------------------------------------------------------


@pytest.fixture
def quizzes(nb):
    ids = generated(nb, [GOOD_1, GOOD_2, quiz("Longest river?", "Nile", "hard")])
    generated(nb, ["A plain sentence."], template=PLAIN, name="plain")
    return nb, ids


def test_jsonl_nests_the_object_and_leaves_other_outputs_alone(quizzes, tmp_path):
    nb, _ids = quizzes
    out = tmp_path / "o.jsonl"
    export(nb, out, select="all")
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows[0]["output"] == {"question": "What is 2 + 2?", "answer": "4", "difficulty": "easy"}
    assert rows[-1]["output"] == "A plain sentence."
    assert not any(k.startswith("output.") for r in rows for k in r)


def test_jsonl_flattened_keeps_the_text_and_adds_field_columns(quizzes, tmp_path):
    nb, _ids = quizzes
    out = tmp_path / "f.jsonl"
    export(nb, out, select="all", structured="flatten")
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows[1]["output"] == GOOD_2 and rows[1]["output.answer"] == "Paris"
    assert list(rows[1])[list(rows[1]).index("output") + 1] == "output.question"  # beside the text
    assert rows[-1]["output"] == "A plain sentence." and rows[-1]["output.answer"] is None


def test_csv_and_parquet_flatten_by_default_and_read_back(quizzes, tmp_path):
    datasets = pytest.importorskip("datasets")
    nb, _ids = quizzes
    export(nb, tmp_path / "o.csv", select="all")
    export(nb, tmp_path / "o.parquet", select="all")
    for df in (pd.read_csv(tmp_path / "o.csv"), pd.read_parquet(tmp_path / "o.parquet")):
        assert {"output", "output.question", "output.answer", "output.difficulty"} <= set(df.columns)
        assert list(df["output.difficulty"][:3]) == ["easy", "medium", "hard"]
        assert json.loads(df["output"][1]) == json.loads(GOOD_2)  # the text is still there
        assert pd.isna(df["output.answer"][3])
    for kind in ("csv", "parquet"):
        ds = datasets.load_dataset(kind, data_files=str(tmp_path / f"o.{kind}"), split="train",
                                   cache_dir=str(tmp_path / "hf"))
        assert ds["output.answer"][:3] == ["4", "Paris", "Nile"]


def test_nest_in_a_table_keeps_the_json_text(quizzes, tmp_path):
    nb, _ids = quizzes
    export(nb, tmp_path / "n.parquet", select="all", structured="nest")
    df = pd.read_parquet(tmp_path / "n.parquet")
    assert not [c for c in df.columns if c.startswith("output.")]
    assert json.loads(df["output"][0])["answer"] == "4"
    with pytest.raises(StudioError, match="nest or flatten"):
        export(nb, tmp_path / "x.csv", structured="sideways")


def test_the_kept_set_loads_in_datasets_with_the_fields_nested(nb, tmp_path):
    datasets = pytest.importorskip("datasets")
    generated(nb, [GOOD_1, BROKEN, GOOD_2, WRONG_ENUM])
    validate(nb, [])  # the automatic schema check drops the broken ones
    out = tmp_path / "kept.jsonl"
    written, _ = export(nb, out, card=True)
    assert written == 2
    ds = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "hf"))
    assert [o["answer"] for o in ds["output"]] == ["4", "Paris"]
    assert ds[1]["output"]["difficulty"] == "medium"


def test_a_mixed_nested_export_still_gets_its_card(quizzes, tmp_path):
    nb, _ids = quizzes  # objects and a plain text in one output column
    written, _ = export(nb, tmp_path / "m.jsonl", card=True)
    assert written == 4 and (tmp_path / "README.md").exists()


def test_chat_sft_keeps_the_json_text(quizzes, tmp_path):
    nb, _ids = quizzes
    out = tmp_path / "sft.jsonl"
    export(nb, out, fmt="sft", select="all")
    first = json.loads(out.read_text().splitlines()[0])
    assert first["messages"][1] == {"role": "assistant", "content": GOOD_1}


def test_export_structured_on_the_command_line(quizzes, tmp_path):
    nb, _ids = quizzes
    path = nb.path
    nb.close()
    out = tmp_path / "cli.csv"
    assert main(["export", str(path), str(out), "--all", "--structured", "nest"]) == 0
    assert "output.answer" not in pd.read_csv(out).columns
    assert main(["export", str(path), str(out), "--all"]) == 0
    assert "output.answer" in pd.read_csv(out).columns


# -- a generated table against the real one ---------------------------------------------------------------


def _real_table(nb):
    """40 real rows: difficulty 50% easy / 30% medium / 20% hard, points 1..10."""
    diffs = ["easy"] * 20 + ["medium"] * 12 + ["hard"] * 8
    nb.add_imported_rows([({"difficulty": d, "points": (i % 10) + 1}, None) for i, d in enumerate(diffs)],
                         origin="real", source="real.csv")


def _synthetic(nb, name, difficulties, points):
    outs = [json.dumps({"question": f"Q{i}?", "answer": "A", "difficulty": d, "points": p})
            for i, (d, p) in enumerate(zip(difficulties, points))]
    return generated(nb, outs, name=name)


def test_metrics_compare_each_column_with_the_real_table(nb, capsys):
    _real_table(nb)
    alike = _synthetic(nb, "alike", ["easy"] * 10 + ["medium"] * 6 + ["hard"] * 4, [(i % 10) + 1 for i in range(20)])
    _synthetic(nb, "other", ["legendary"] * 12 + ["easy"] * 8, [50 + i for i in range(20)])
    tables = compare_tables(nb)
    assert set(tables) == {"alike v1", "other v1"}
    a = {c.column: c for c in tables["alike v1"].columns}
    o = {c.column: c for c in tables["other v1"].columns}
    assert (a["difficulty"].kind, a["difficulty"].metric) == ("categorical", "TVComplement")
    assert (a["points"].kind, a["points"].metric) == ("numeric", "KSComplement")
    assert a["difficulty"].score == pytest.approx(1.0) and a["points"].score == pytest.approx(1.0)
    assert o["difficulty"].score == pytest.approx(0.4)  # 40% easy where the real table has 50%: TVD 0.6
    assert o["points"].score == pytest.approx(0.0)  # every generated value above every real one
    assert tables["alike v1"].real_rows == 40 and tables["alike v1"].synthetic_rows == 20
    assert compare_table(nb, record_ids=alike).columns[0].score == pytest.approx(1.0)
    path = nb.path
    nb.close()
    assert main(["metrics", str(path)]) == 0
    out = capsys.readouterr().out
    lines = [ln.split() for ln in out.splitlines()]
    assert ["difficulty", "categorical", "TVComplement", "1.000"] in lines
    assert ["difficulty", "categorical", "TVComplement", "0.400"] in lines
    assert ["points", "numeric", "KSComplement", "0.000"] in lines
    assert main(["metrics", str(path), "--json"]) == 0
    rows = {r["prompt_version"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["other v1"]["columns"]["columns"][0]["column"] == "difficulty"


def test_metrics_without_structured_records_print_no_columns(nb, capsys):
    _real_table(nb)
    generated(nb, ["plain text one", "plain text two"], template=PLAIN, name="plain")
    assert compare_tables(nb) == {}
    path = nb.path
    nb.close()
    assert main(["metrics", str(path)]) == 0
    assert "KSComplement" not in capsys.readouterr().out


def test_the_report_compares_real_columns_with_output_fields(nb):
    nb.add_imported_rows([({"difficulty": d}, f"a real quiz text number {i}")
                          for i, d in enumerate(["easy", "medium"] * 5)], origin="real", source="real.csv")
    generated(nb, [quiz(f"Q{i}?", "A", d) for i, d in enumerate(["easy", "medium"] * 5)])
    report = compute_report(nb, synthetic="all")
    col = {c.column: c for c in report.columns}["output.difficulty"]
    assert col.kind == "categorical" and col.score == pytest.approx(1.0)
