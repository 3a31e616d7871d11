import pytest

from app.core.errors import TemplateError
from app.prompts.templates import check_rows, parse_template, render

FRONT = """---
personas: [a nurse, a pilot, a chef]
lists:
  colours: [red, green, blue, yellow]
context: Acme sells rockets.
glossary:
  SLA: service level agreement
  MRR: monthly recurring revenue
few_shot: {k: 2, from: accepted}
---
"""


def test_plain_variables_render():
    pt = parse_template("Write about {{ topic }} for {{ who }}.")
    assert render(pt, {"topic": "billing", "who": "Ana"}) == "Write about billing for Ana."
    assert pt.required_variables == {"topic", "who"}


def test_sample_is_a_seeded_shuffled_subsample():
    pt = parse_template(FRONT + "{{ sample(colours, 2) | join(',') }}")
    a = render(pt, {}, seed=1).split(",")
    assert len(a) == 2 and len(set(a)) == 2 and set(a) <= {"red", "green", "blue", "yellow"}
    assert render(pt, {}, seed=1) == render(pt, {}, seed=1)
    outs = {render(pt, {}, seed=s) for s in range(30)}
    assert len(outs) > 4  # different seeds give different subsets and orders


def test_sample_takes_everything_when_k_is_larger_and_splits_strings():
    pt = parse_template("{{ sample(items, 10) | sort | join(',') }}")
    assert render(pt, {"items": "b; a; c"}) == "a,b,c"
    assert render(pt, {"items": ["x", "y"]}) == "x,y"


def test_persona_is_one_per_sample_and_seeded():
    pt = parse_template(FRONT + "I am {{ persona }}.")
    seen = {render(pt, {}, seed=s) for s in range(40)}
    assert seen == {"I am a nurse.", "I am a pilot.", "I am a chef."}
    assert render(pt, {}, seed=7) == render(pt, {}, seed=7)
    # a row that brings its own persona wins
    assert render(pt, {"persona": "a judge"}, seed=7) == "I am a judge."


def test_pick_chooses_one_item():
    pt = parse_template(FRONT + "{{ pick(colours) }}")
    assert {render(pt, {}, seed=s) for s in range(40)} == {"red", "green", "blue", "yellow"}
    with pytest.raises(TemplateError, match="empty list"):
        render(parse_template("{{ pick(x) }}"), {"x": []})


def test_context_and_glossary_block():
    pt = parse_template(FRONT + "{{ context }}\n{{ glossary_block() }}")
    out = render(pt, {})
    assert out.startswith("Acme sells rockets.")
    assert "- SLA: service level agreement" in out and "- MRR: monthly recurring revenue" in out


def test_few_shot_fills_from_the_given_examples():
    pt = parse_template(FRONT + "{{ few_shot() }}\nNow yours:")
    examples = [{"output": f"example text {i}"} for i in range(5)]
    out = render(pt, {}, seed=3, examples=examples)
    assert out.count("Example ") == 2  # k from the front matter
    assert "Example 1:\nexample text" in out
    assert render(pt, {}, seed=3, examples=examples) == out
    assert render(parse_template("{{ few_shot(4) }}"), {}, examples=examples).count("Example ") == 4
    assert render(parse_template(FRONT + "{{ few_shot() }}x"), {}, examples=[]) == "x"


def test_syntax_error_names_the_line_in_the_file():
    text = FRONT + "line one\n{% if x %}\nno endif\n"
    with pytest.raises(TemplateError) as info:
        parse_template(text)
    body_offset = FRONT.count("\n")
    assert info.value.line is not None and info.value.line >= body_offset + 2
    assert "syntax error" in str(info.value)


def test_undefined_variable_names_the_line_and_the_row_columns():
    pt = parse_template(FRONT + "first line\nsecond {{ missing }}\n")
    with pytest.raises(TemplateError) as info:
        render(pt, {"topic": "x"})
    assert info.value.line == FRONT.count("\n") + 2
    assert "'missing' is not defined" in str(info.value)
    assert "topic" in str(info.value)


def test_attribute_of_undefined_is_also_strict():
    pt = parse_template("{{ user.name }}")
    with pytest.raises(TemplateError, match="line 1"):
        render(pt, {})


def test_front_matter_errors():
    with pytest.raises(TemplateError, match="never closed"):
        parse_template("---\npersonas: [a]\nbody")
    with pytest.raises(TemplateError) as info:
        parse_template("---\npersonas: [a\nlists: {}\n---\nbody")
    assert "not valid YAML" in str(info.value) and info.value.line is not None
    with pytest.raises(TemplateError, match="unknown setting.*persona_list"):
        parse_template("---\npersona_list: [a]\n---\nbody")
    with pytest.raises(TemplateError, match="personas must be a non-empty list"):
        parse_template("---\npersonas: nope\n---\nbody")
    with pytest.raises(TemplateError, match="few_shot.from"):
        parse_template("---\nfew_shot: {k: 1, from: everywhere}\n---\nbody")


def test_sandbox_blocks_unsafe_access():
    pt = parse_template("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateError, match="unsafe|template error"):
        render(pt, {})


def test_wrong_type_in_a_helper_is_a_template_error():
    with pytest.raises(TemplateError, match="needs a list"):
        render(parse_template("{{ sample(n, 1) }}"), {"n": 5})


def test_check_rows_names_the_missing_column():
    pt = parse_template("{{ topic }} {{ tier }}")
    check_rows(pt, [{"topic": "a", "tier": "b"}])
    with pytest.raises(TemplateError, match="uses tier but input row 2 has no such column"):
        check_rows(pt, [{"topic": "a", "tier": "b"}, {"topic": "c"}])


def test_sample_resources_parse_and_render(topics_csv):
    import pandas as pd

    from tests.conftest import SAMPLE

    row = pd.read_csv(topics_csv, dtype=str).iloc[0].to_dict()
    for name in ("support_ticket.j2", "agent_reply.j2"):
        pt = parse_template((SAMPLE / name).read_text())
        out = render(pt, row, seed=1)
        assert row["topic"] in out
        assert "{{" not in out
