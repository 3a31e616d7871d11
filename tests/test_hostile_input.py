"""Hostile and broken input: each case ends in a clear message (or works) and leaves the notebook as it was.

Cases covered elsewhere, not repeated here: Latin-1 bytes in a CSV (test_import: "not valid UTF-8 (byte
0xe9 on line 3)"), a JSONL file with a bad line and a .parquet that is not Parquet (test_import:
test_broken_files_give_clear_errors), a missing file (test_import: test_missing_file), a file that reads
as one column but looks delimited (test_formats), ``''.__class__.__mro__[1].__subclasses__()`` in a
prompt (test_templates) and in a rule's setting (test_structured_generation).
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import pytest

from app.core.errors import ImportDataError, StudioError, TemplateError
from app.data.importer import import_table, preview_table
from app.export.formats import export
from app.generate.runs import prepare_run
from app.prompts import templates
from app.prompts.templates import parse_template, render, render_string
from app.quality import criteria, validators
from app.quality.judge import QuestionError, Subject, render_question
from app.quality.rulefile import RuleFileError
from app.quality.validators import load_rules, make_rule
from app.store.criteria import count_versions


def rule(**spec):
    return make_rule(spec, lambda m: RuleFileError(Path("rules.toml"), m))


def counts(nb):
    return nb.count_records("input"), nb.count_records("sample")


# -- tables ---------------------------------------------------------------------------------------------


def test_a_row_with_too_many_fields_is_refused_naming_its_line(nb, tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("topic,tier,channel\nrefund,pro,email\nlogin,free,chat,extra,more\n", encoding="utf-8")
    with pytest.raises(ImportDataError, match=r"^ragged.csv line 3 has 5 fields where the header has 3; "
                                              r"quote the values that contain a comma"):
        import_table(nb, path)
    assert counts(nb) == (0, 0)


def test_rows_with_too_few_fields_come_in_with_empty_values_and_the_import_says_so(nb, tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("topic,tier,channel\nrefund,pro,email\nlogin,free\nbilling\n", encoding="utf-8")
    result = import_table(nb, path)
    assert "(2 rows had fewer fields than the header, the first on line 3; the missing values are empty)" in (
        result.message(path.name))
    assert [v for _, v in nb.input_rows()][1:] == [{"topic": "login", "tier": "free", "channel": ""},
                                                  {"topic": "billing", "tier": "", "channel": ""}]


@pytest.mark.parametrize("name, body", [
    ("bom.csv", "topic,tier\nrefund,pro\n"),
    ("bom.jsonl", '{"topic": "refund", "tier": "pro"}\n'),
])
def test_a_byte_order_mark_is_not_part_of_the_first_column(nb, tmp_path, name, body):
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    columns, _rows, how = preview_table(path)
    assert columns == ["topic", "tier"]
    if name.endswith(".csv"):
        assert how.endswith("UTF-8 with a byte-order mark")
    import_table(nb, path)
    assert nb.input_rows()[0][1] == {"topic": "refund", "tier": "pro"}


@pytest.mark.timeout(120)
def test_a_50_mb_field_is_imported_whole(nb, tmp_path):
    size = 50 << 20
    path = tmp_path / "huge.csv"
    path.write_bytes(b'topic,output\nbig,"' + b"x" * size + b'"\n')
    started = time.monotonic()
    columns, rows, _how = preview_table(path)  # a preview reads on to the end of the first row, and clips it
    assert columns == ["topic", "output"] and rows[0][1].endswith("x… (52,428,800 characters)")
    result = import_table(nb, path)
    assert (result.inputs, result.samples) == (0, 1)
    assert time.monotonic() - started < 60
    assert len(nb.records()[0]["output"]) == size


def test_ten_thousand_columns_are_imported(nb, tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(10_000)) + "\n" + ",".join(str(i) for i in range(10_000)) + "\n")
    assert import_table(nb, path).inputs == 1
    variables = nb.input_rows()[0][1]
    assert len(variables) == 10_000 and variables["c9999"] == "9999"


def test_a_folder_is_not_a_data_file(nb, tmp_path):
    folder = tmp_path / "data.csv"
    folder.mkdir()
    for path in (folder, tmp_path):
        with pytest.raises(ImportDataError, match=r"is a folder, not a data file$"):
            import_table(nb, path)
    assert counts(nb) == (0, 0)


def test_an_unreadable_file_says_so(nb, tmp_path):
    path = tmp_path / "locked.csv"
    path.write_text("topic\nrefund\n")
    if os.geteuid() == 0:  # root reads a chmod 000 file: a missing file is the unreadable path here
        with pytest.raises(ImportDataError, match="file not found"):
            import_table(nb, tmp_path / "gone.csv")
    else:
        path.chmod(0)
        try:
            with pytest.raises(ImportDataError, match=r"cannot read .*locked.csv: permission denied"):
                import_table(nb, path)
        finally:
            path.chmod(0o600)
    assert counts(nb) == (0, 0)


def test_a_permission_error_while_reading_is_a_clear_message(nb, tmp_path, monkeypatch):
    path = tmp_path / "locked.csv"
    path.write_text("topic\nrefund\n")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(ImportDataError, match=r"cannot read .*locked.csv: permission denied \(check that your user "):
        import_table(nb, path)
    assert counts(nb) == (0, 0)


# -- rules and criteria ---------------------------------------------------------------------------------


def test_an_invalid_regex_names_the_rule_and_the_error(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\ntype = "length"\n\n[[rule]]\nname = "ticket-id"\ntype = "regex"\n'
                    'must_match = "TICKET-(\\\\d+"\n')
    with pytest.raises(RuleFileError) as info:
        load_rules(path)
    assert str(info.value) == (f"{path}:4: rule 2 ('ticket-id'): must_match is not a valid regular expression: "
                               "missing ), unterminated subpattern at position 7")


CATASTROPHIC = "(a+)+$"
NEAR_MISS = "a" * 30_000 + "!"


def test_a_catastrophic_regex_is_bounded(monkeypatch):
    """With the ``regex`` module a search is stopped after REGEX_SECONDS (the record fails, saying why);
    without it, a repeat inside a repeat is refused when the rule is read."""
    monkeypatch.setattr(validators, "REGEX_SECONDS", 0.5)
    started = time.monotonic()
    if validators._timed_re is None:
        with pytest.raises(RuleFileError, match=r"must_not_match repeats a group that itself repeats \(as \(a\+\)\+ "
                                                r"does\), which can run for minutes on some texts; rewrite it"):
            rule(type="regex", must_not_match=CATASTROPHIC)
    else:
        verdict = rule(type="regex", must_not_match=CATASTROPHIC).check(NEAR_MISS)
        assert not verdict.passed
        assert verdict.reason.startswith(r"/(a+)+$/ was stopped after 0.5 s on this text")
    assert time.monotonic() - started < 2


def test_a_catastrophic_regex_from_a_records_row_fails_that_record_only(monkeypatch):
    monkeypatch.setattr(validators, "REGEX_SECONDS", 0.5)
    r = rule(type="regex", must_not_match="{{ pattern }}")
    started = time.monotonic()
    verdict = r.check(NEAR_MISS, variables={"pattern": CATASTROPHIC})
    assert time.monotonic() - started < 2
    assert not verdict.passed
    assert ("(from this record's row) repeats a group that itself repeats" in verdict.reason
            or "was stopped after 0.5 s" in verdict.reason)
    assert r.check("fine", variables={"pattern": r"\d{3}"}).passed


def test_ordinary_patterns_are_still_accepted():
    for pattern in (r"^Dear ", r"(\d{3}-)+\d{4}", r"(?:foo|bar)+", r"\b\w+@\w+\.com\b", r"(?>a+)+x", r"a++"):
        assert rule(type="regex", must_match=pattern).check("Dear 555-123-4567 foobar a@b.com aax").passed


@pytest.mark.parametrize("spec, message", [
    ({"type": "banned_phrases", "phrases": "delve"},
     """phrases must be a list of texts, e.g. phrases = ["delve", "tapestry"], not 'delve'"""),
    ({"type": "markdown", "require": "heading"},
     """require must be a list of texts, e.g. require = ["heading", "list"], not 'heading'"""),
    ({"type": "repetition", "n": "3"}, "repetition n must be a whole number of words of at least 1, not '3'"),
    ({"type": "repetition", "max_ratio": 5}, "repetition max_ratio must be a number from 0 to 1, not 5"),
    ({"type": "regex", "must_match": ["a", "b"]}, "must_match must be a text (a regular expression), not ['a', 'b']"),
    ({"type": "regex", "must_match": "a", "flags": 1}, 'flags must be a text, e.g. flags = "i" (ignore case)'),
    ({"type": "length", "max": True}, "length max must be a whole number"),
    ({"type": "contains", "must_contain": "a", "case_sensitive": "yes"}, "case_sensitive must be true or false"),
])
def test_a_setting_of_the_wrong_type_is_an_error_naming_it(spec, message):
    with pytest.raises(RuleFileError) as info:
        rule(**spec)
    assert str(info.value) == f"rules.toml: {message}"


def test_a_phrase_list_written_as_one_text_is_not_banned_letter_by_letter(nb):
    text = '[[rule]]\nname = "tics"\ntype = "banned_phrases"\nphrases = "delve"\n'
    with pytest.raises(RuleFileError, match=r"rule 1 \('tics'\): phrases must be a list of texts"):
        criteria.import_text(nb, text, "mine.toml")
    assert count_versions(nb, "rule") == 0


@pytest.mark.parametrize("table, message", [
    ('good = "a polite reply"', "good must be a list of example texts"),
    ('type = "additive"\npoints = "Is it short?"', "an additive criterion needs points: a list of yes/no questions"),
    ("samples = [1]", "samples must be a whole number"),
])
def test_a_criterion_setting_of_the_wrong_type_is_refused_and_nothing_saved(nb, table, message):
    lines = ['name = "polite"', 'question = "Is it polite?"', table]
    with pytest.raises(RuleFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        criteria.import_text(nb, "[[criterion]]\n" + "\n".join(lines) + "\n", "mine.toml")
    assert count_versions(nb, "criterion") == 0


def test_a_rules_file_with_a_python_tag_is_refused(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text('rules:\n  - type: !!python/object/apply:os.system ["echo hi"]\n')
    with pytest.raises(RuleFileError, match=r"rules.yaml:2: invalid YAML: could not determine a constructor for the "
                                            r"tag 'tag:yaml.org,2002:python/object/apply:os.system'"):
        load_rules(path)


# -- templates ------------------------------------------------------------------------------------------

SSTI = [
    ("{{ ''.__class__.__mro__ }}", "access to attribute '__class__' of 'str' object is unsafe"),
    ("{{ cycler.__init__.__globals__ }}", "access to attribute '__init__' of 'type' object is unsafe"),
    ("{{ self._TemplateReference__context }}", "access to attribute '_TemplateReference__context'"),
    ("{{ lipsum.__globals__ }}", "access to attribute '__globals__' of 'function' object is unsafe"),
    ("{{ ''|attr('__class__') }}", "access to attribute '__class__' of 'str' object is unsafe"),
    ("{{ '{0.__class__}'.format(1) }}", "access to attribute '__class__' of 'int' object is unsafe"),
    ("{% set _ = features.append('x') %}{{ features }}", "access to attribute 'append' of 'list' object is unsafe"),
]


@pytest.mark.parametrize("body, message", SSTI)
def test_template_injection_is_refused(body, message):
    pt = parse_template("---\nlists: {features: [login, billing]}\n---\n" + body)
    with pytest.raises(TemplateError) as info:
        render(pt, {})
    assert str(info.value).startswith("the template tried an unsafe operation: ") and message in str(info.value)
    assert pt.lists == {"features": ["login", "billing"]}  # nothing a template does changes the next sample


def test_template_injection_in_a_saved_prompt_stops_the_run_before_anything_is_written(nb, tmp_path):
    path = tmp_path / "topics.jsonl"
    path.write_text('{"topic": "refunds"}\n')
    import_table(nb, path)
    nb.add_prompt_version("evil", "Write about {{ topic }}. {{ cycler.__init__.__globals__.os }}")
    before = counts(nb)
    with pytest.raises(TemplateError, match="unsafe operation"):
        prepare_run(nb, "evil")
    assert counts(nb) == before and nb.runs() == []


def test_template_injection_in_a_question_or_a_rule_setting_fails_that_record(nb):
    for question, unsafe in (("Is {{ output.__class__.__mro__ }} polite?", "'__class__' of 'str'"),
                             ("Is {{ cycler.__init__.__globals__ }} polite?", "'__init__' of 'type'")):
        with pytest.raises(QuestionError, match=f"unsafe operation: access to attribute {unsafe} object is unsafe"):
            render_question(question, Subject("hello"))
    verdict = rule(type="contains", must_contain="{{ input.__class__.__mro__ }}").check("text", variables={})
    assert not verdict.passed and "unsafe operation" in verdict.reason


def test_a_huge_range_is_refused():
    with pytest.raises(TemplateError, match=r"^range\(1000000000\) is too long: a template may loop at most 100,000 "):
        render(parse_template("{% for i in range(10**9) %}x{% endfor %}"), {})


def test_nested_loops_are_stopped_at_the_time_limit(monkeypatch):
    monkeypatch.setattr(templates, "RENDER_SECONDS", 0.5)
    for body in ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                 "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}"):
        started = time.monotonic()
        with pytest.raises(TemplateError, match=r"still rendering after 0.5 s and was stopped; loop over fewer items"):
            render(parse_template(body), {})
        assert time.monotonic() - started < 3


@pytest.mark.parametrize("body, message", [
    ("{{ 'x' * 10**9 }}", "makes a text of 1,000,000,000 characters, more than the 10,000,000 allowed"),
    ("{{ [0] * 10**9 }}", "makes a text of 1,000,000,000 characters"),
    ("{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}", "more than the 10,000,000 allowed; loop or repeat less"),
    ("{{ 10 ** 10000000 }}", "10 ** 10000000 is too big a number to compute"),
    ("{{ lipsum(10**8) }}", "lipsum() may make at most 100,000 words"),
])
def test_huge_output_is_refused_quickly(body, message):
    started = time.monotonic()
    with pytest.raises(TemplateError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        render(parse_template(body), {})
    with pytest.raises(TemplateError, match="allowed|too big|at most"):
        render_string(body, {})  # judges' questions and rule settings render in the same sandbox
    assert time.monotonic() - started < 5


def test_small_repeats_and_ranges_still_work():
    out = render(parse_template("{{ '-' * 3 }} {{ 2 ** 10 }} {{ range(3)|list }} {{ range(4)|length }} "
                                "{{ range(3)|reverse|join(',') }}{% for i in range(2) %} {{ loop.index }}/"
                                "{{ loop.length }}{% endfor %}"), {})
    assert out == "--- 1024 [0, 1, 2] 4 2,1,0 1/2 2/2"


def test_front_matter_with_a_python_tag_is_refused():
    with pytest.raises(TemplateError) as info:
        parse_template('---\npersonas: !!python/object/apply:os.system ["echo hi"]\n---\nHello')
    assert str(info.value) == ("line 2: front matter uses the YAML tag !!python/object/apply:os.system, which is not "
                               "allowed: front matter holds plain text, numbers, lists and mappings; remove the tag")


# -- Unicode round trip ---------------------------------------------------------------------------------

TEXTS = {
    "emoji": "👩🏽‍💻 ships 🇫🇷 🤷‍♀️",
    "rtl": "שלום עולם — مرحبا بالعالم",
    "combining": "e\u0301 n\u0303 Z\u0335\u0321\u0358",
    "separators": "a\u2028b\u2029c\u0085d\r\ne\rf\x0bg\x1ch",
    "nul": "before\x00after",  # kept as it is: SQLite, JSON and CSV all carry it
    "bom_inside": "\ufeffstarts with a BOM",
}


def _round_trip(nb, tmp_path, name):
    out = tmp_path / f"{name}.jsonl"
    export(nb, out, select="all")
    again = type(nb).create(tmp_path / f"{name}-again.db")
    try:
        import_table(again, out)
        return {r["variables"]["key"]: r["output"] for r in again.records()}
    finally:
        again.close()


def test_unicode_survives_import_edit_export_and_import_again(nb, tmp_path):
    source = tmp_path / "texts.jsonl"
    source.write_text("".join(json.dumps({"key": k, "output": "draft"}) + "\n" for k in TEXTS), encoding="utf-8")
    import_table(nb, source)
    for r in nb.records():
        nb.edit_record(r["id"], "output", TEXTS[r["variables"]["key"]])
    assert {r["variables"]["key"]: r["output"] for r in nb.records()} == TEXTS
    assert _round_trip(nb, tmp_path, "edited") == TEXTS


def test_unicode_survives_a_csv_import(nb, tmp_path):
    source = tmp_path / "texts.csv"
    with source.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["key", "output"])
        writer.writerows(TEXTS.items())
    import_table(nb, source)
    assert {r["variables"]["key"]: r["output"] for r in nb.records()} == TEXTS
    assert _round_trip(nb, tmp_path, "from-csv") == TEXTS


def test_a_lone_surrogate_is_refused_on_import_naming_the_line(nb, tmp_path):
    path = tmp_path / "half.jsonl"
    path.write_text('{"key": "ok", "output": "fine"}\n{"key": "bad", "output": "x\\ud800y"}\n', encoding="utf-8")
    with pytest.raises(ImportDataError, match=r"half.jsonl line 2 holds \\ud800, half of a character \(a lone "
                                              r"surrogate\) that cannot be stored as text; fix or remove that escape"):
        import_table(nb, path)
    assert counts(nb) == (0, 0)


def test_a_lone_surrogate_in_an_edit_is_refused_and_changes_nothing(nb, tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text('{"key": "k", "output": "fine"}\n', encoding="utf-8")
    import_table(nb, path)
    record = nb.records()[0]
    with pytest.raises(StudioError, match=r"U\+D800 at character 2, half of a character \(a lone surrogate\)"):
        nb.edit_record(record["id"], "output", "x\ud800y")
    after = nb.records()[0]
    assert after["output"] == "fine" and after["status"] == record["status"] and counts(nb) == (0, 1)
