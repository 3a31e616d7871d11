"""Structured and chained generation: output schemas, sampled columns, chains.

The logic runs on the deterministic fake backend; schema-constrained decoding runs on the
bundled SmolLM2 (integration): every output parses and matches its schema, and batching
does not change a token."""

import json
from collections import Counter

import numpy as np
import pytest

from app.core.errors import StudioError, TemplateError
from app.generate.runs import create_run, execute_run, prepare_run, preview
from app.prompts.columns import draw
from app.prompts.structured import StructuredText, as_output, schema_json, validate_output
from app.prompts.templates import parse_template, render, render_string, slot_variables
from backends.protocols import GenerationRequest, SamplerSettings

QUESTION = """---
columns:
  difficulty: {categories: {easy: 3, medium: 2, hard: 1}}
output_schema:
  type: object
  properties:
    question: {type: string, maxLength: 120}
    level: {type: string, enum: [easy, medium, hard]}
  required: [question, level]
---
Write one {{ difficulty }} quiz question about {{ topic }}. Answer as JSON with fields question and level.
"""
ANSWER = "Answer this {{ difficulty }} question about {{ topic }} in one sentence: {{ output.question }}"


# -- the front matter -------------------------------------------------------------------------

def test_an_output_schema_gives_the_fields_in_order():
    pt = parse_template(QUESTION)
    assert pt.fields == ["question", "level"]
    assert pt.required_variables == {"topic"}  # difficulty is a sampled column
    assert list(json.loads(schema_json(pt.output_schema))["properties"]) == ["question", "level"]


@pytest.mark.parametrize("schema, message", [
    ("{type: object, properties: {a: {$ref: 'https://example.com/s.json'}}}", "only references inside the schema"),
    ("{type: object, properties: {a: {$ref: 'other.json#/x'}}}", "never fetches"),
    ("{type: object, properties: {a: {type: strnig}}}", "not a valid JSON Schema at properties/a/type"),
    ("[a, b]", "must be a JSON Schema written as a mapping"),
    ("{type: string}", "must describe an object"),
])
def test_a_bad_output_schema_is_refused_with_a_reason(schema, message):
    with pytest.raises(TemplateError, match=message):
        parse_template(f"---\noutput_schema: {schema}\n---\nhi")


@pytest.mark.parametrize("columns, message", [
    ("{d: {categories: easy}}", "categories must be a list"),
    ("{d: {categories: [a, b], weights: [1]}}", "weights must be a list of 2"),
    ("{d: {categories: {a: -1, b: 0}}}", "weights must be >= 0"),
    ("{d: {uniform: [5, 1]}}", "low 5 is above high 1"),
    ("{d: {normal: [0, -1]}}", "standard deviation must be >= 0"),
    ("{d: {date: [2024-05-01, 2024-01-01]}}", "is after"),
    ("{d: {person: password}}", "is not offered"),
    ("{d: {categories: [a, b], target: {c: 3}}}", "not in its categories"),
    ("{d: {uniform: [1, 2], target: 3}}", "target applies to categories only"),
    ("{d: {categories: [a], uniform: [1, 2]}}", "exactly one of"),
    ("[a, b]", "columns must map names"),
])
def test_bad_columns_are_refused_with_a_reason(columns, message):
    with pytest.raises(TemplateError, match=message):
        parse_template(f"---\ncolumns: {columns}\n---\nhi")


def test_weighted_categories_match_their_weights_and_re_render_exactly():
    pt = parse_template("---\ncolumns: {d: {categories: {easy: 6, medium: 3, hard: 1}}}\n---\n{{ d }}")
    col = pt.columns["d"]
    draws = [draw(col, seed) for seed in range(2000)]
    freq = Counter(draws)
    for value, weight in {"easy": 0.6, "medium": 0.3, "hard": 0.1}.items():
        assert abs(freq[value] / 2000 - weight) < 0.035, (value, freq)
    assert [draw(col, seed) for seed in range(2000)] == draws  # seeded: the same values again
    assert all(render(pt, {}, seed=s) == d for s, d in zip(range(50), draws))


def test_numbers_dates_and_people_stay_in_bounds_and_repeat_by_seed():
    pt = parse_template("""---
columns:
  age: {normal: [40, 30], min: 18, max: 90, integer: true}
  price: {uniform: [1.5, 9.5], decimals: 2}
  day: {date: [2024-02-01, 2024-02-29]}
  who: {person: name}
---
x""")
    rows = [slot_variables(pt, {}, seed) for seed in range(300)]
    assert all(isinstance(r["age"], int) and 18 <= r["age"] <= 90 for r in rows)
    assert all(1.5 <= r["price"] <= 9.5 and round(r["price"], 2) == r["price"] for r in rows)
    assert all("2024-02-01" <= r["day"] <= "2024-02-29" for r in rows)
    assert len({r["who"] for r in rows}) > 200  # people, not one name
    assert [slot_variables(pt, {}, seed) for seed in range(300)] == rows
    # adding a column does not change the others' values (each has its own stream)
    pt2 = parse_template(pt.source.replace("  who: {person: name}\n", "  who: {person: name}\n  extra: {uniform: [0, 1]}\n"))
    assert [{k: v for k, v in slot_variables(pt2, {}, s).items() if k != "extra"} for s in range(300)] == rows


def test_a_rows_own_column_wins_and_a_pin_wins_over_both():
    pt = parse_template("---\ncolumns: {d: {categories: [easy, hard]}}\n---\n{{ d }}")
    assert slot_variables(pt, {"d": "mine"}, 1)["d"] == "mine"
    assert slot_variables(pt, {"d": "mine"}, 1, {"d": "pinned"})["d"] == "pinned"


def test_templates_read_a_structured_outputs_fields():
    out = as_output('{"question": "Why?", "meta": {"level": 2}}')
    assert isinstance(out, StructuredText) and out == '{"question": "Why?", "meta": {"level": 2}}'
    assert render_string("{{ output.question }} {{ output['question'] }} {{ output.meta.level }}",
                         {"output": out}) == "Why? Why? 2"
    assert as_output("plain text") == "plain text" and not isinstance(as_output("plain text"), StructuredText)
    with pytest.raises(TemplateError):
        render_string("{{ output.__class__.__mro__ }}", {"output": out})  # still sandboxed


def test_validate_output_names_what_is_wrong():
    schema = parse_template(QUESTION).output_schema
    assert validate_output('{"question": "Q?", "level": "easy"}', schema) is None
    assert "not valid JSON" in validate_output('{"question": "Q?", "level": ', schema)
    assert "at level" in validate_output('{"question": "Q?", "level": "extreme"}', schema)
    assert "'level' is a required property" in validate_output('{"question": "Q?"}', schema)


# -- runs on the fake backend ------------------------------------------------------------------

def _notebook(nb, topics=("the moon", "bread", "chess")):
    nb.add_imported_rows([({"topic": t}, None) for t in topics], origin="real", source="t.csv")
    nb.add_prompt_version("question", QUESTION)
    nb.add_prompt_version("answer", ANSWER)
    return nb


def _generate(nb, fake, prompt, **kw):
    plan = prepare_run(nb, prompt, **kw)
    return execute_run(nb, create_run(nb, plan, fake.info), fake)


def test_structured_records_store_valid_json_and_their_sampled_values(nb, fake):
    _notebook(nb)
    run = _generate(nb, fake, "question", samples=4, settings=SamplerSettings(max_tokens=64))
    recs = [r for r in nb.records() if r["run_id"] == run.id]
    assert len(recs) == 12
    schema = parse_template(QUESTION).output_schema
    assert all(validate_output(r["output"], schema) is None for r in recs)
    for r in recs:  # the sampled value is stored and is what the prompt said
        assert r["variables"]["difficulty"] in ("easy", "medium", "hard")
        assert f"one {r['variables']['difficulty']} quiz question about {r['variables']['topic']}" in r["prompt"]
    text, variables = preview(nb, "question", row=2)
    assert variables["difficulty"] in text and "bread" in text


def test_a_two_step_chain_keeps_lineage_both_ways_and_reruns_deterministically(nb, fake):
    from app.store.queries import record_ancestors, record_children

    _notebook(nb)
    q = _generate(nb, fake, "question", samples=2)
    a = _generate(nb, fake, "answer", over=f"run:{q.id}")
    assert a.settings["over"] == f"run:{q.id}"
    questions = {r["id"]: r for r in nb.records() if r["run_id"] == q.id}
    answers = [r for r in nb.records() if r["run_id"] == a.id]
    assert len(answers) == len(questions) == 6
    for r in answers:
        parent = questions[r["parent_record_id"]]
        assert r["derivation"] == "chain"
        # the prompt read the parent's field and its variables, which are not copied as text
        assert json.loads(parent["output"])["question"] in r["prompt"]
        assert parent["variables"]["difficulty"] in r["prompt"] and parent["variables"]["topic"] in r["prompt"]
        assert "output" not in r["variables"] and "question" not in r["variables"]
        assert [x["id"] for x in record_ancestors(nb, r["id"])][:1] == [parent["id"]]
        assert r["id"] in [x["id"] for x in record_children(nb, parent["id"])]
    again = _generate(nb, fake, "answer", over="prompt:question@v1")
    again_recs = [r for r in nb.records() if r["run_id"] == again.id]
    assert [(r["parent_record_id"], r["output"], r["seed"]) for r in again_recs] == \
        [(r["parent_record_id"], r["output"], r["seed"]) for r in answers]


def test_a_chain_skips_rejected_parents_and_can_keep_only_the_kept(nb, fake):
    _notebook(nb)
    q = _generate(nb, fake, "question")
    ids = [r["id"] for r in nb.records() if r["run_id"] == q.id]
    nb.edit_record(ids[0], "status", "rejected")
    plan = prepare_run(nb, "answer", over="prompt:question")
    assert list(plan.plan) == ids[1:]
    assert list(prepare_run(nb, "answer", over="prompt:question", only=[ids[2]]).plan) == [ids[2]]
    with pytest.raises(StudioError, match="no samples to run over"):
        prepare_run(nb, "answer", over="prompt:question", only=[])
    with pytest.raises(StudioError, match="use run:ID, prompt:NAME"):
        prepare_run(nb, "answer", over="question")
    with pytest.raises(StudioError, match="no prompt named 'nope'"):
        prepare_run(nb, "answer", over="prompt:nope")


def test_the_cli_chains_prompts(tmp_path, topics_csv, capsys):
    from app.cli.main import main

    db = tmp_path / "c.db"
    (tmp_path / "q.txt").write_text(QUESTION.replace("{{ topic }}", "{{ topic }}"))
    (tmp_path / "a.txt").write_text(ANSWER)
    assert main(["new", str(db)]) == 0
    assert main(["import", str(db), str(topics_csv)]) == 0
    topic_col = next(iter(json.loads(__import__("sqlite3").connect(db).execute(
        "SELECT variables FROM records WHERE role='input' LIMIT 1").fetchone()[0])))
    (tmp_path / "q.txt").write_text(QUESTION.replace("{{ topic }}", f"{{{{ {topic_col} }}}}"))
    (tmp_path / "a.txt").write_text(ANSWER.replace("{{ topic }}", f"{{{{ {topic_col} }}}}"))
    assert main(["prompt", "add", str(db), "question", "--template", str(tmp_path / "q.txt")]) == 0
    assert main(["prompt", "add", str(db), "answer", "--template", str(tmp_path / "a.txt")]) == 0
    assert main(["generate", str(db), "--prompt", "question", "--backend", "fake", "--limit-rows", "3", "--quiet"]) == 0
    assert main(["generate", str(db), "--prompt", "answer", "--over", "run:1", "--backend", "fake", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "run 2 complete: 3 samples" in out


# -- the real model ----------------------------------------------------------------------------

SCHEMA = {"type": "object",
          "properties": {"question": {"type": "string", "maxLength": 60},
                         "answer": {"type": "string", "maxLength": 60},
                         "difficulty": {"type": "string", "enum": ["easy", "medium", "hard"]},
                         "points": {"type": "integer", "minimum": 1, "maximum": 5}},
          "required": ["question", "answer", "difficulty", "points"]}
TOPICS = ["photosynthesis", "tax returns", "python lists", "the moon", "volcanoes", "french verbs", "chess", "bread"]


def _structured_reqs(temperature):
    return [GenerationRequest(key=i, messages=({"role": "user", "content": f"Write a quiz question about {t} and "
                                                f"its answer as JSON."},), seed=7 + i,
                              settings=SamplerSettings(temperature=temperature, max_tokens=120),
                              json_schema=schema_json(SCHEMA))
            for i, t in enumerate(TOPICS)]


@pytest.mark.integration
@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_schema_constrained_generation_parses_and_batching_changes_no_token(smollm_path, temperature):
    from backends.llama_cpp_backend import LlamaCppGenerator

    outs = []
    for parallel in (1, 4):
        gen = LlamaCppGenerator(smollm_path, n_ctx=512, parallel=parallel)
        gen.trace = {}
        try:
            outs.append(({r.key: r for r in gen.generate(_structured_reqs(temperature))}, gen.trace))
        finally:
            gen.close()
    (seq, seq_trace), (bat, bat_trace) = outs
    assert sorted(seq) == list(range(len(TOPICS)))
    for k, r in seq.items():
        assert r.finish_reason == "stop", r.text
        assert validate_output(r.text, SCHEMA) is None, r.text
        assert list(json.loads(r.text)) == list(SCHEMA["properties"])  # fields in the schema's order
        assert bat_trace[k][0] == seq_trace[k][0], f"request {k}: batched tokens differ"
        assert bat[k].text == r.text
        assert bat[k].token_logprobs == pytest.approx(r.token_logprobs, abs=1e-6)


def _masked_reference(gen, grammar, row, s):
    """What sample_token samples from after the grammar masks the whole vocabulary: tokens and probabilities."""
    cand = gen._cand.copy()
    cand["logit"] = 0.0
    gen._apply_grammar(grammar, cand)
    masked = np.where(np.isfinite(cand["logit"]), row, -np.inf)
    if s.temperature <= 0:
        return np.array([int(masked.argmax())]), np.ones(1)
    k = s.top_k if 0 < s.top_k < row.size else row.size
    idx = np.argsort(-masked, kind="stable")[:k]
    scaled = masked[idx].astype(np.float64) / s.temperature
    probs = np.exp(scaled - scaled[0])
    probs /= probs.sum()
    if s.top_p < 1.0:
        cut = int(np.searchsorted(np.cumsum(probs), s.top_p)) + 1
        idx, probs = idx[:cut], probs[:cut] / probs[:cut].sum()
    keep = probs > 0
    return idx[keep], probs[keep]


@pytest.mark.integration
def test_the_grammar_shortlist_samples_exactly_as_the_full_mask(smollm):
    """Checking best-ranked candidates first, and stopping when the unchecked ones cannot change
    the outcome, gives the same tokens and probabilities as masking the whole vocabulary: at a
    field with few allowed tokens (digits), inside a string, and at the start, under greedy,
    top-k, top-p, both and neither, on sharp and flat rows."""
    from backends.llama_cpp_backend import tokenize_text

    schema = schema_json({"type": "object", "properties": {"note": {"type": "string"}, "points": {"type": "integer"}},
                          "required": ["note", "points"]})
    prefixes = ["", '{"note": "the ca', '{"note": "x", "points": ']
    settings = [SamplerSettings(temperature=0.0), SamplerSettings(), SamplerSettings(top_k=0, top_p=0.9),
                SamplerSettings(top_k=40, top_p=1.0), SamplerSettings(temperature=1.0, top_k=0, top_p=1.0),
                SamplerSettings(temperature=1.5, top_k=5, top_p=0.5)]
    rng = np.random.default_rng(0)
    checked = 0
    for prefix in prefixes:
        grammar = smollm._new_grammar(schema)
        try:
            for t in tokenize_text(smollm.vocab, prefix, False, False):
                assert smollm._grammar_allows(grammar, t), prefix
                smollm._lc.llama_sampler_accept(grammar, t)
            if prefix.endswith("ca"):  # inside a string: JSON allows no raw line break or tab there
                raw = [t for t in range(smollm.n_vocab) if any(c in smollm._piece(t) for c in (b"\n", b"\t", b"\r"))]
                assert len(raw) > 10
                assert not any(smollm._grammar_allows(grammar, t) for t in raw)
                assert smollm._grammar_allows(grammar, tokenize_text(smollm.vocab, "\\", False, False)[0])
            for scale in (0.5, 4.0):
                row = (rng.standard_normal(smollm.n_vocab) * scale).astype(np.float32)
                for s in settings:
                    ids, probs = smollm._allowed_distribution(grammar, row, s)
                    ref_ids, ref_probs = _masked_reference(smollm, grammar, row, s)
                    assert ids.tolist() == ref_ids.tolist(), (prefix, scale, s)
                    assert probs == pytest.approx(ref_probs, rel=1e-9, abs=1e-12)
                    checked += 1
        finally:
            smollm._lc.llama_sampler_free(grammar)
    assert checked == len(prefixes) * 2 * len(settings)


@pytest.mark.integration
def test_an_unconstrained_request_in_the_same_batch_is_unchanged(smollm_path):
    """Grammar state is per sequence: a free-text request next to schema-bound ones decodes
    exactly as it does alone."""
    from backends.llama_cpp_backend import LlamaCppGenerator

    free = GenerationRequest(key="free", messages=({"role": "user", "content": "Name three colours."},), seed=1,
                             settings=SamplerSettings(temperature=0.0, max_tokens=24))
    gen = LlamaCppGenerator(smollm_path, n_ctx=512, parallel=4)
    try:
        alone = next(iter(gen.generate([free]))).text
        mixed = {r.key: r.text for r in gen.generate([*_structured_reqs(0.0)[:3], free])}
    finally:
        gen.close()
    assert mixed["free"] == alone
    assert not alone.lstrip().startswith("{")


def test_the_chain_sample_runs_as_successive_cells(tmp_path):
    """resources/chain: Generate(question) then Generate(answer, over the questions), as the
    notebook's cells run them; every answer is linked to its question and reads its field."""
    from app.cells import create_chain_notebook, list_cells, run_cell
    from app.core.tasks import TaskState
    from app.quality.steps import validate

    nb = create_chain_notebook(tmp_path / "chain.db")
    gens = [c for c in list_cells(nb) if c.kind == "generate"]
    assert [c.settings["prompt"] for c in gens] == ["question", "answer"]
    assert gens[1].settings["over"] == "prompt:question"
    out_q = run_cell(nb.path, gens[0], backend="fake", task=TaskState())
    out_a = run_cell(nb.path, gens[1], backend="fake", task=TaskState())
    assert "12 samples from question" in out_q and "chained over prompt:question" in out_a
    questions = {r["id"]: r for r in nb.records() if r["run_id"] == 1}
    answers = [r for r in nb.records() if r["run_id"] == 2]
    assert len(answers) == len(questions) == 12
    for a in answers:
        q = questions[a["parent_record_id"]]
        assert json.loads(q["output"])["question"] in a["prompt"]
        assert set(json.loads(a["output"])) == {"answer", "confidence"}
        assert 1 <= json.loads(a["output"])["confidence"] <= 5
    validate(nb, [])  # the automatic output-schema check: the fake backend's JSON satisfies both schemas
    from app.quality.funnel import kept_ids

    assert len(kept_ids(nb)) == 24
    nb.close()


def test_walking_a_chain_uses_the_parent_index(nb):
    """A record's children are found through an index, not a scan of every record."""
    plan = nb.conn.execute("EXPLAIN QUERY PLAN SELECT id FROM records WHERE parent_record_id = ?", (1,)).fetchall()
    assert any("records_parent" in str(row[-1]) for row in plan), plan
