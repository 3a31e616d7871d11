"""Each validator and scorer on passing and failing inputs; rule files with clear errors."""

import pytest

from app.quality.rulefile import RuleFileError
from app.quality.scorers import explanation_phrases, step_indicators
from app.quality.validators import load_rules, make_rule, repeated_ngram_ratio


def rule(**spec):
    return make_rule(spec, lambda m: RuleFileError("x", m))


@pytest.mark.parametrize(
    "spec, good, bad, reason",
    [
        ({"type": "length", "unit": "words", "min": 3, "max": 6}, "one two three four", "one two", "2 words < min 3"),
        ({"type": "length", "unit": "chars", "max": 5}, "short", "too long here", "13 chars > max 5"),
        ({"type": "regex", "must_match": r"^Dear "}, "Dear Ana, hi", "Hi Ana", "does not match"),
        ({"type": "regex", "must_not_match": r"\[Name\]"}, "Hi Ana", "Hi [Name]", "matches"),
        ({"type": "json"}, '{"a": 1}', '{"a": 1', "invalid JSON"),
        ({"type": "json"}, 'Here:\n```json\n{"a": [1, 2]}\n```', "not json at all", "invalid JSON"),
        ({"type": "json", "schema": {"type": "object", "required": ["answer"],
                                     "properties": {"answer": {"type": "integer"}}}},
         '{"answer": 4}', '{"answer": "four"}', "schema: answer: 'four' is not of type 'integer'"),
        ({"type": "markdown", "require": ["heading", "list"]}, "# Title\n\n- item\n- item", "plain prose only",
         "no markdown heading, list"),
        ({"type": "python"}, "```python\ndef f(x):\n    return x + 1\n```", "def f(x) return x", "does not compile"),
        ({"type": "banned_phrases"}, "Reset the password from settings.",
         "As an AI language model, I must delve into this.", "banned phrase: 'as an ai language model'"),
        ({"type": "banned_phrases", "phrases": ["synergy"]}, "As an AI I like it", "pure synergy", "'synergy'"),
        ({"type": "repetition", "n": 2, "max_ratio": 0.3}, "the cat sat on the mat today",
         "buy now buy now buy now buy now", "of 2-grams repeated"),
    ],
)
def test_validator_passes_good_and_fails_bad(spec, good, bad, reason):
    r = rule(**spec)
    assert r.check(good).passed, r.check(good).reason
    v = r.check(bad)
    assert not v.passed
    assert reason in v.reason


def test_length_in_tokens_uses_the_models_count():
    r = rule(type="length", unit="tokens", max=10)
    assert r.check("a few words", tokens=12).passed is False
    assert r.check("a few words", tokens=9).passed is True


def test_python_validator_never_runs_the_code(tmp_path):
    marker = tmp_path / "ran"
    assert rule(type="python").check(f"open({str(marker)!r}, 'w').write('x')").passed
    assert not marker.exists()


def test_repetition_ratio():
    assert repeated_ngram_ratio("a b c d e f", 3) == 0
    assert repeated_ngram_ratio("a b c a b c a b c", 3) > 0.5


def test_scorers_count_steps_and_explanations():
    steps = "First, open settings. Then click Billing.\n1. Choose a plan\n2. Pay\nFinally, log out."
    assert step_indicators(steps) >= 5
    assert step_indicators("The sky is blue.") == 0
    assert explanation_phrases("It fails because the token expired, which means you must log in again.") == 2
    assert explanation_phrases("Click the button.") == 0


def test_default_rules_file_loads():
    from app.core.paths import resources_dir

    rules = load_rules(resources_dir() / "quality" / "default_rules.toml")
    assert [r.type for r in rules] == ["length", "banned_phrases", "repetition", "regex", "pii"]
    placeholder = next(r for r in rules if r.name == "no-placeholders")
    assert not placeholder.check("Dear [Customer Name], thanks").passed


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("bad.toml", '[[rule]]\ntype = "length"\nmin = \n', "bad.toml:3: invalid TOML"),
        ("unknown.toml", '[[rule]]\ntype = "length"\n\n[[rule]]\ntype = "sparkle"\n', "unknown.toml:4: rule 2: unknown rule type 'sparkle'"),
        ("extra.toml", '[[rule]]\ntype = "length"\nminimum = 3\n', "extra.toml:1: rule 1: rule type 'length' has no setting minimum"),
        ("regex.toml", '[[rule]]\ntype = "regex"\nmust_match = "(unclosed"\n', "regex.toml:1: rule 1: must_match is not a valid regular expression"),
        ("empty.toml", "", "empty.toml:1: declares no rules"),
        ("bad.yaml", "rules:\n  - type: length\n   min: 3\n", "bad.yaml:3: invalid YAML"),
        ("dupe.yaml", "rules:\n  - type: length\n  - type: length\n", "dupe.yaml:3: rule 2: two rules are named 'length'"),
        ("schema.yaml", "rules:\n  - type: json\n    schema: {type: 12}\n", "invalid JSON Schema"),
        ("rules.txt", "x", "use a .toml or .yaml file"),
    ],
)
def test_malformed_rule_files_name_the_file_and_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(RuleFileError) as info:
        load_rules(path)
    assert message in str(info.value).replace(str(tmp_path) + "/", "")


def test_validate_command_stores_pass_fail_with_reasons(tmp_path, capsys):
    import json

    from app.cli import main
    from app.store.notebook import Notebook
    from app.store.scores import scores_for

    book = tmp_path / "nb.db"
    with Notebook.create(book) as nb:
        nb.add_imported_rows([({}, "As an AI language model I cannot help with billing today, sorry."),
                              ({}, "Open Settings, then Billing, then download the invoice again because it expired.")],
                             origin="synthetic", source="t")
    assert main(["validate", str(book), "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["banned_phrases"] == {"passed": 1, "failed": 1}
    with Notebook.open(book) as nb:
        ids = [r["id"] for r in nb.records()]
        first = {s.name: s for s in scores_for(nb, ids[0])}
        second = {s.name: s for s in scores_for(nb, ids[1])}
    assert first["validator:banned_phrases"].passed is False
    assert "as an ai language model" in first["validator:banned_phrases"].reason
    assert second["validator:banned_phrases"].passed is True
    assert second["score:explanations"].value == 1 and second["score:steps"].value >= 2
    bad = tmp_path / "r.toml"
    bad.write_text('[[rule]]\ntype = "nope"\n')
    assert main(["validate", str(book), "--rules", str(bad)]) == 2
    assert "r.toml:1: rule 1: unknown rule type 'nope'" in capsys.readouterr().err
