"""Structured outputs in the window: ``output.<field>`` columns in the Records table (sorted and
filtered in SQL), the chain of records made from each other in the side panel, and the map
coloured by a field."""

import json

import numpy as np
import pytest

pytest.importorskip("PySide6")

from app.generate.structured import notebook_fields  # noqa: E402
from app.store.queries import (  # noqa: E402
    RecordFilter,
    count_records,
    map_values,
    record_ancestors,
    record_children,
    record_page,
)
from app.store.records import set_derivation  # noqa: E402

QA = """---
output_schema:
  type: object
  properties:
    question: {type: string}
    answer: {type: string}
    difficulty: {type: string, enum: [easy, medium, hard]}
    score: {type: integer}
  required: [question, answer]
---
Write a question about {{ topic }}.
"""

QA_V2 = QA.replace("    score: {type: integer}\n", "    score: {type: integer}\n    checked: {type: boolean}\n")

CRITIQUE = """---
output_schema:
  type: object
  properties:
    verdict: {type: string}
    answer: {type: string}
---
Critique: {{ output }}
"""


def _run(nb, pv):
    return nb.create_run(prompt_version_id=pv.id, backend="fake", model_path=None, model_sha256=None,
                         settings={}, seed=0, samples_per_row=1, plan=[None])


def _add(nb, run, pv, output, i, parent=None, derivation=None):
    text = output if isinstance(output, str) else json.dumps(output)
    return nb.add_generated_record(
        run_id=run.id, prompt_version_id=pv.id, input_record_id=parent, row_index=i, sample_index=0, seed=i,
        variables={"topic": f"t{i}"}, prompt=f"prompt {i}", output=text, prompt_tokens=3, completion_tokens=5,
        token_logprobs=[-0.5], finish_reason="stop", derivation=derivation)


QA_ROWS = [
    {"question": "What is 2+2?", "answer": "4", "difficulty": "easy", "score": 10, "checked": True},
    {"question": "Why is the sky blue?", "answer": "Rayleigh scattering", "difficulty": "medium", "score": 9},
    {"question": "Prove Fermat", "answer": "margin too small", "difficulty": "hard", "score": 100, "checked": False},
    {"question": "Capital of France?", "answer": "Paris", "difficulty": "easy", "score": 55},
]


@pytest.fixture
def structured(nb):
    """A notebook with structured samples, a plain-text one, a chain (qa -> critique -> critique) and
    a prompt that does not parse."""
    nb.add_prompt_version("plain", "Say hi about {{ topic }}.")
    qa, _ = nb.add_prompt_version("qa", QA)
    qa2, _ = nb.add_prompt_version("qa", QA_V2)
    crit, _ = nb.add_prompt_version("critique", CRITIQUE)
    nb.add_prompt_version("broken", "---\noutput_schema: 3\n---\nx")
    run, run_c = _run(nb, qa2), _run(nb, crit)
    ids = [_add(nb, run, qa2, row, i) for i, row in enumerate(QA_ROWS)]
    plain = _add(nb, run, qa2, "just some text, not JSON", 10)
    broken_json = _add(nb, run, qa2, '{"question": "unterminated', 11)
    child = _add(nb, run_c, crit, {"verdict": "fine", "answer": "4, yes"}, 0, parent=ids[0], derivation="critique")
    grandchild = _add(nb, run_c, crit, {"verdict": "still fine"}, 1)
    set_derivation(nb, grandchild, "critique", child)
    sibling = _add(nb, run_c, crit, {"verdict": "wrong"}, 2, parent=ids[0], derivation="critique")
    return {"qa": qa, "ids": ids, "plain": plain, "broken_json": broken_json, "child": child,
            "grandchild": grandchild, "sibling": sibling}


def test_notebook_fields_are_the_union_of_every_schema_in_first_seen_order(nb, structured):
    assert notebook_fields(nb) == ["question", "answer", "difficulty", "score", "checked", "verdict"]


def test_a_notebook_without_schemas_has_no_field_columns(qtbot, nb):
    from app.store.queries import RECORD_COLUMNS
    from widgets.records_table import RecordsModel

    nb.add_prompt_version("plain", "Say hi about {{ topic }}.")
    assert notebook_fields(nb) == []
    assert RecordsModel(nb).columns == RECORD_COLUMNS


def _page_ids(nb, **kw):
    return [r["id"] for r in record_page(nb, 0, 1000, RecordFilter(**kw))]


def test_the_table_shows_one_column_per_field_with_its_value(qtbot, nb, structured):
    from PySide6.QtCore import Qt

    from widgets.records_table import RecordsModel

    model = RecordsModel(nb)
    model.fetchMore()
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    assert headers[:5] == ["id", "status", "origin", "prompt", "output"]  # the fixed columns still come first
    # each field right after the output, where it is seen without scrolling; then the other fixed columns
    assert headers[5:11] == ["output.question", "output.answer", "output.difficulty", "output.score",
                             "output.checked", "output.verdict"]
    assert headers[11:] == ["tokens", "mean logprob", "run"]
    rows = {model.record_at(r)["id"]: r for r in range(model.rowCount())}
    cell = lambda rid, col: model.data(model.index(rows[rid], model.column_of(col)))  # noqa: E731
    first = structured["ids"][0]
    assert cell(first, "output.question") == "What is 2+2?"
    assert cell(first, "output.difficulty") == "easy"
    assert cell(first, "output.score") == "10"
    assert cell(first, "output.checked") == "true"
    assert cell(first, "output.verdict") == ""  # a field this record does not have
    assert cell(structured["child"], "output.verdict") == "fine"
    assert cell(structured["plain"], "output.question") == ""  # plain text: no fields
    assert cell(structured["broken_json"], "output.question") == ""
    assert cell(first, "output") == json.dumps(QA_ROWS[0])  # the output column is unchanged


def test_sorting_by_a_field_is_done_in_sql_numbers_as_numbers(qtbot, nb, structured):
    from PySide6.QtCore import Qt

    from widgets.records_table import RecordsModel

    ids = structured["ids"]
    model = RecordsModel(nb)
    model.sort(model.column_of("output.score"), Qt.SortOrder.AscendingOrder)
    shown = [model.record_at(r)["id"] for r in range(model.rowCount())]
    scored = shown[-4:]  # records without the field (NULL) sort first ascending
    assert scored == [ids[1], ids[0], ids[3], ids[2]]  # 9, 10, 55, 100: not "10" < "100" < "55" < "9"
    assert [model.data(model.index(r, model.column_of("output.score"))) for r in range(len(shown) - 4, len(shown))] \
        == ["9", "10", "55", "100"]
    model.sort(model.column_of("output.score"), Qt.SortOrder.DescendingOrder)
    assert [model.record_at(r)["id"] for r in range(4)] == [ids[2], ids[3], ids[0], ids[1]]
    model.sort(model.column_of("output.question"), Qt.SortOrder.AscendingOrder)
    questions = [model.field_text(r, "question") for r in range(model.rowCount())]
    present = [q for q in questions if q]
    assert present == sorted(present) and len(present) == 4
    model.sort(model.column_of("output"), Qt.SortOrder.AscendingOrder)  # an ordinary column still sorts
    outputs = [model.record_at(r)["output"] for r in range(model.rowCount())]
    assert outputs == sorted(outputs)


def test_sorting_by_a_field_covers_every_page(qtbot, nb):
    from PySide6.QtCore import Qt

    from widgets.records_table import PAGE, RecordsModel

    nb.add_prompt_version("qa", QA)
    values = list(range(PAGE * 2 + 5))
    rng = np.random.default_rng(0)
    rng.shuffle(values)
    nb.add_imported_rows([({}, json.dumps({"question": f"q{v}", "score": int(v)})) for v in values],
                         origin="synthetic", source="t")
    model = RecordsModel(nb)
    model.sort(model.column_of("output.score"), Qt.SortOrder.DescendingOrder)
    assert model.rowCount() == PAGE  # one page loaded, not every record
    assert model.field_text(0, "score") == str(max(values))
    assert [int(model.field_text(r, "score")) for r in range(PAGE)] == sorted(values, reverse=True)[:PAGE]


def test_the_field_filter_narrows_rows(nb, structured):
    ids = structured["ids"]
    assert count_records(nb, RecordFilter(field="difficulty", field_value="easy")) == 2
    assert set(_page_ids(nb, field="difficulty", field_value="easy")) == {ids[0], ids[3]}
    assert _page_ids(nb, field="score", field_value="9") == [ids[1]]  # a number matched as the table shows it
    assert _page_ids(nb, field="checked", field_value="true") == [ids[0]]
    assert _page_ids(nb, field="checked", field_value="false") == [ids[2]]
    assert set(_page_ids(nb, field="score", field_min=10, field_max=60)) == {ids[0], ids[3]}
    assert set(_page_ids(nb, field="score", field_min=50)) == {ids[2], ids[3]}
    assert count_records(nb, RecordFilter(field="difficulty", field_value="impossible")) == 0
    # combined with the other filters, and with the full-text search
    assert _page_ids(nb, field="difficulty", field_value="easy", text="Paris") == [ids[3]]
    # a field filter with nothing to match leaves the rows alone
    assert count_records(nb, RecordFilter(field="difficulty")) == count_records(nb)


def test_field_names_are_never_spliced_into_sql(nb):
    """Quotes, dots and SQL in a field's name: matched as a value, never interpolated."""
    odd = ['he said "hi"', "a.b", "it's", "x') OR 1=1 --", "$.score"]
    for i, name in enumerate(odd):
        nb.add_imported_rows([({}, json.dumps({name: f"v{i}", "n": i}))], origin="synthetic", source="t")
    nb.add_imported_rows([({}, "plain text")], origin="synthetic", source="t")
    for i, name in enumerate(odd):
        got = record_page(nb, 0, 10, RecordFilter(field=name, field_value=f"v{i}"))
        assert [json.loads(r["output"])[name] for r in got] == [f"v{i}"]
        ordered = record_page(nb, 0, 10, RecordFilter(order_by=f"output.{name}", descending=True))
        assert json.loads(ordered[0]["output"])[name] == f"v{i}"  # the one record that has it comes first
    assert count_records(nb, RecordFilter(field="x') OR 1=1 --", field_value="v0")) == 0


def test_children_and_ancestors_walk_the_chain_both_ways(nb, structured):
    root, child, grandchild, sibling = (structured["ids"][0], structured["child"], structured["grandchild"],
                                        structured["sibling"])
    assert [r["id"] for r in record_ancestors(nb, grandchild)] == [child, root]  # parent first
    assert [r["id"] for r in record_ancestors(nb, child)] == [root]
    assert record_ancestors(nb, root) == []
    assert [r["id"] for r in record_children(nb, root)] == [child, sibling]
    assert [r["id"] for r in record_children(nb, child)] == [grandchild]
    assert record_children(nb, grandchild) == []
    anc = record_ancestors(nb, grandchild)[0]
    assert anc["derivation"] == "critique" and anc["prompt_label"] == "critique v1" and "fine" in anc["output"]
    set_derivation(nb, root, "hand-made loop", grandchild)  # a cycle stops at the first repeat
    assert [r["id"] for r in record_ancestors(nb, grandchild)] == [child, root]


def test_the_side_panel_shows_fields_and_jumps_along_the_chain(qtbot, nb, structured):
    from PySide6.QtCore import QUrl

    from widgets.main_window import MainWindow

    win = MainWindow(nb)
    qtbot.addWidget(win)
    root, child, grandchild = structured["ids"][0], structured["child"], structured["grandchild"]
    win.table.selectRow(win.model.row_of(child))
    text = win.detail.toPlainText()
    assert f"Record {child}" in text
    assert "output.verdict" in text and "fine" in text  # the structured fields, one a line
    assert "Made from (parent first)" in text and f"#{root}" in text
    assert "Made from this (1)" in text and f"#{grandchild}" in text
    html = win.detail.toHtml()
    assert f"record:{root}" in html and f"record:{grandchild}" in html
    win._on_anchor(QUrl(f"record:{root}"))  # a click on the parent's link selects its row
    assert win.model.record_at(win.table.currentIndex().row())["id"] == root
    assert f"Record {root}" in win.detail.toPlainText() and "Made from this (2)" in win.detail.toPlainText()
    # a record the filter hides is shown in the panel, the table left as it was
    win.field_filter.setCurrentIndex(win.field_filter.findData("difficulty"))
    win.field_value.setText("hard")
    win.apply_filter()
    assert win.model.total == 1
    win._on_anchor(QUrl(f"record:{grandchild}"))
    assert win.model.total == 1 and f"Record {grandchild}" in win.detail.toPlainText()
    assert "not in the table" in win.detail.toPlainText()


def test_the_window_filters_by_a_field(qtbot, nb, structured):
    from widgets.main_window import MainWindow

    win = MainWindow(nb)
    qtbot.addWidget(win)
    labels = [win.field_filter.itemText(i) for i in range(win.field_filter.count())]
    assert labels == ["any field", "output.question", "output.answer", "output.difficulty", "output.score",
                      "output.checked", "output.verdict"]
    total = win.model.total
    win.field_filter.setCurrentIndex(win.field_filter.findData("difficulty"))
    win.field_value.setText("easy")
    qtbot.waitUntil(lambda: win.model.total == 2, timeout=3000)  # the search timer applies it
    assert {win.model.field_text(r, "difficulty") for r in range(win.model.rowCount())} == {"easy"}
    win.field_filter.setCurrentIndex(win.field_filter.findData("score"))
    win.field_value.setText("10..60")
    qtbot.waitUntil(lambda: win.model.total == 2, timeout=3000)
    assert sorted(int(win.model.field_text(r, "score")) for r in range(win.model.rowCount())) == [10, 55]
    win.field_value.setText("")
    qtbot.waitUntil(lambda: win.model.total == total, timeout=3000)


def test_a_prompt_filter_shows_only_that_prompts_fields(qtbot, nb):
    from app.store.queries import RecordFilter
    from widgets.records_table import RecordsModel

    nb.add_prompt_version("q", "---\noutput_schema: {type: object, properties: {question: {type: string}}}\n---\nQ")
    nb.add_prompt_version("a", "---\noutput_schema: {type: object, properties: {answer: {type: string}, "
                               "confidence: {type: integer}}}\n---\nA")
    model = RecordsModel(nb)
    assert [c for c in model.columns if c.startswith("output.")] == ["output.question", "output.answer",
                                                                      "output.confidence"]
    model.set_filter(RecordFilter(prompt="a"))
    assert [c for c in model.columns if c.startswith("output.")] == ["output.answer", "output.confidence"]
    model.set_filter(RecordFilter(prompt_version_id=nb.prompt_version("q").id))
    assert [c for c in model.columns if c.startswith("output.")] == ["output.question"]


def test_new_fields_become_columns_as_records_arrive(qtbot, nb):
    from widgets.records_table import RecordsModel

    model = RecordsModel(nb)
    assert not any(c.startswith("output.") for c in model.columns)
    nb.add_prompt_version("qa", QA)
    nb.add_imported_rows([({}, json.dumps({"question": "q", "score": 1}))], origin="synthetic", source="t")
    model.sync()
    assert "output.question" in model.columns and model.rowCount() == 1
    assert model.field_text(0, "question") == "q"


def test_the_map_can_be_coloured_by_a_field(qtbot, nb, structured):
    from PySide6.QtGui import QUndoStack

    from app.map.projection import compute_map
    from app.store.embeddings import save_embeddings
    from widgets.map_view import MapView

    ids = [r["id"] for r in nb.records()]
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(len(ids), 8)).astype(np.float32)
    save_embeddings(nb, "fake", [(i, nb.record(i)["output"]) for i in ids], vecs / np.linalg.norm(vecs, axis=1,
                                                                                                  keepdims=True))
    compute_map(nb, method="pca")
    got = map_values(nb, "output.score", ids)
    assert {k: got[k] for k in structured["ids"]} == dict(zip(structured["ids"], [10, 9, 100, 55], strict=True))
    assert structured["plain"] not in got and structured["broken_json"] not in got
    assert map_values(nb, "output.checked", ids) == {structured["ids"][0]: "true", structured["ids"][2]: "false"}

    view = MapView(nb, QUndoStack())
    qtbot.addWidget(view)
    choices = [view.colour_by.itemText(i) for i in range(view.colour_by.count())]
    assert {"output.question", "output.difficulty", "output.score", "output.verdict"} <= set(choices)
    view.colour_by.setCurrentText("output.score")  # numbers: a gradient
    assert view._values("output.score")[1] is True
    assert "output.score: dark = 9" in view.legend.text() and "yellow = 100" in view.legend.text()
    view.colour_by.setCurrentText("output.difficulty")  # texts: one colour per value
    assert view._values("output.difficulty")[1] is False
    legend = view.legend.text()
    assert "easy (2)" in legend and "medium (1)" in legend and "hard (1)" in legend
    brushes = set(view.scatter.colour_names())
    assert len(brushes) >= 4  # easy, medium, hard and "no value" are told apart
