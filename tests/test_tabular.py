"""Tabular mode: a schema derived from a real table, new rows conditioned on given columns
(each from a real row), the rest written under that schema, and the per-column comparison."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from app.cli import main
from app.core.errors import StudioError
from app.generate.tabular import derive_schema, plan_tabular, save_tabular_prompt, tabular_prompt
from app.prompts.structured import validate_output
from app.prompts.templates import parse_template, render
from app.store.notebook import Notebook
from app.store.queries import run_record_ids

REGIONS = ("north", "south")
PLANS = ("free", "pro", "team")
NOTES = ("asked about invoices for last month", "wants a refund for a double charge",
         "cannot log in after the password reset", "asks how to export reports to csv",
         "the template {{ secret }} shows in the mail")  # braces in real data must stay text


def real_rows() -> list[dict[str, object]]:
    return [{"region": REGIONS[i % 2], "plan": PLANS[(i * 2) % 3], "seats": (i * 37) % 50 + 1,
             "note": f"{NOTES[i % len(NOTES)]} ({i})"} for i in range(40)]


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "accounts.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["region", "plan", "seats", "note"])
        writer.writeheader()
        writer.writerows(real_rows())
    return path


@pytest.fixture
def notebook(tmp_path: Path, table: Path) -> Path:
    path = tmp_path / "tab.db"
    assert main(["new", str(path)]) == 0
    assert main(["import", str(path), str(table)]) == 0
    return path


def tabular(notebook: Path, *args: str) -> int:
    return main(["tabular", str(notebook), "--backend", "fake", "--quiet", *args])


def new_rows(nb: Notebook, run_id: int) -> list[dict[str, object]]:
    """The run's rows as (given values from the variables, the rest from the output) in slot order."""
    recs = sorted((nb.record(i) for i in run_record_ids(nb, run_id)), key=lambda r: r["row_index"])
    return [{"region": r["variables"]["region"], **json.loads(r["output"])} for r in recs]


# -- the schema --------------------------------------------------------------------------------------


def test_derive_schema_types_each_column_from_the_real_table() -> None:
    rows = real_rows()
    schema = derive_schema(rows, ["region"])
    props = schema["properties"]
    assert list(props) == ["plan", "seats", "note"]  # the table's order, the given column left out
    assert schema["required"] == ["plan", "seats", "note"]
    assert props["plan"] == {"type": "string", "enum": ["free", "team", "pro"]}  # as first seen
    seats = [int(r["seats"]) for r in rows]  # type: ignore[call-overload]
    assert props["seats"] == {"type": "integer", "minimum": min(seats), "maximum": max(seats)}
    longest = max(len(str(r["note"])) for r in rows)
    assert props["note"]["type"] == "string" and "enum" not in props["note"]
    assert longest < props["note"]["maxLength"] <= 2 * longest

    region = derive_schema(rows, ["plan", "seats", "note"])["properties"]["region"]
    assert region == {"type": "string", "enum": ["north", "south"]}


def test_derive_schema_reads_csv_strings_and_other_column_kinds() -> None:
    rows = [{"stars": str(1 + i % 5), "price": f"{i * 1.5:.2f}", "active": i % 3 == 0, "code": f"c{i}",
             "id": i} for i in range(30)]
    props = derive_schema(rows, ["id"])["properties"]
    assert props["stars"] == {"type": "integer", "enum": [1, 2, 3, 4, 5]}  # a rating: few whole numbers
    assert props["price"] == {"type": "number", "minimum": 0.0, "maximum": 43.5}
    assert props["active"] == {"type": "boolean"}
    assert props["code"] == {"type": "string", "maxLength": 5}  # one value per row: text, not categories


def test_derive_schema_refuses_unknown_or_all_given_columns() -> None:
    with pytest.raises(StudioError, match=r"no column named 'regoin' in the table \(its columns: region, plan, "
                                          r"seats, note\)"):
        derive_schema(real_rows(), ["regoin"])
    with pytest.raises(StudioError, match="every column is given"):
        derive_schema(real_rows(), ["region", "plan", "seats", "note"])


def test_the_prompt_reads_the_given_columns_and_keeps_real_text_literal() -> None:
    rows = real_rows()
    schema = derive_schema(rows, ["region", "seats"])
    text = tabular_prompt(["region", "plan", "seats", "note"], ["region", "seats"], schema, rows[:5])
    pt = parse_template(text)
    assert pt.output_schema == schema and pt.fields == ["plan", "note"]
    assert pt.required_variables == {"region", "seats"}
    out = render(pt, {"region": "south", "seats": 7})
    assert "whose region is south and whose seats is 7" in out
    assert "{{ secret }}" in out  # the fifth real row, shown as it is
    assert json.dumps(rows[0]) in out
    assert "(plan, note) as one JSON object" in out


# -- generating rows -------------------------------------------------------------------------------


def test_tabular_rows_keep_the_given_column_and_the_table_s_categories(
        notebook: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tabular(notebook, "--given", "region", "--rows", "30", "--seed", "3") == 0
    out = capsys.readouterr().out
    with Notebook.open(notebook) as nb:
        run = nb.runs()[-1]
        assert run.settings["purpose"] == "tabular" and len(run.plan) == 30 and run.samples_per_row == 1
        assert len(set(run.plan)) < 30  # drawn with replacement from 40 rows: some real row is used twice
        inputs = dict(nb.input_rows())
        schema = parse_template(nb.prompt_version("tabular").template).output_schema
        assert schema is not None
        recs = [nb.record(i) for i in run_record_ids(nb, run.id)]
        assert len(recs) == 30
        for rec in recs:
            assert rec["variables"]["region"] == inputs[rec["input_record_id"]]["region"]
            assert validate_output(rec["output"], schema) is None
            row = json.loads(rec["output"])
            assert set(row) == {"plan", "seats", "note"}
            assert row["plan"] in PLANS
            assert isinstance(row["seats"], int) and 1 <= row["seats"] <= 50
            assert f"region is {rec['variables']['region']}" in rec["prompt"]
        assert {r["variables"]["region"] for r in recs} == set(REGIONS)
    assert "columns, real vs synthetic (40 input rows vs 30 rows of run" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("    ")}
    assert lines["plan"][1:3] == ["categorical", "TVComplement"]
    assert lines["seats"][1:3] == ["numeric", "KSComplement"]
    assert lines["region"][1:3] == ["categorical", "TVComplement"]
    assert 0.0 <= float(lines["plan"][3]) <= 1.0
    assert f"run {run.id}: 30 rows (30 match the schema); columns compared: " in out
    assert "plan" in out.splitlines()[-1] and "seats" in out.splitlines()[-1]


def test_the_same_seed_gives_the_same_rows_and_another_seed_others(notebook: Path) -> None:
    for seed in ("5", "5", "6"):
        assert tabular(notebook, "--given", "region", "--rows", "12", "--seed", seed) == 0
    with Notebook.open(notebook) as nb:
        first, again, other = (new_rows(nb, r.id) for r in nb.runs())
        assert len({pv.id for pv in nb.prompt_versions()}) == 1  # an unchanged table reuses the prompt
    assert first == again
    assert first != other


def test_plan_tabular_pins_each_row_and_keys_seeds_by_row(nb: Notebook, table: Path) -> None:
    from app.data.importer import import_file

    import_file(nb, table)
    pv = save_tabular_prompt(nb, ["region", "plan"])
    assert '"seats": 1,' in pv.template and '"seats": "' not in pv.template  # CSV cells shown as the numbers asked for
    plan = plan_tabular(nb, pv.name, ["region", "plan"], rows=8, seed=1)
    inputs = dict(nb.input_rows())
    ids = [i for i in plan.plan if i is not None]
    assert len(ids) == 8
    assert plan.extra["pins"] == [{"region": inputs[i]["region"], "plan": inputs[i]["plan"]} for i in ids]
    assert plan.extra["given"] == ["region", "plan"]
    assert plan_tabular(nb, pv.name, ["region", "plan"], rows=8, seed=1).plan == plan.plan
    assert plan_tabular(nb, pv.name, ["region", "plan"], rows=8, seed=2).plan != plan.plan
    with pytest.raises(StudioError, match="--rows must be at least 1"):
        plan_tabular(nb, pv.name, ["region"], rows=0)


def test_a_bad_given_column_is_named_and_changes_nothing(notebook: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tabular(notebook, "--given", "region,tier", "--rows", "5") == 2
    err = capsys.readouterr().err
    assert "no column named 'tier' in the table (its columns: region, plan, seats, note)" in err
    with Notebook.open(notebook) as nb:
        assert nb.prompt_versions() == [] and nb.runs() == [] and nb.count_records() == 0


def test_a_given_column_a_template_cannot_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"plan type": p, "seats": i}) + "\n" for i, p in enumerate(PLANS * 4)))
    nbp = tmp_path / "t.db"
    assert main(["new", str(nbp)]) == 0 and main(["import", str(nbp), str(path)]) == 0
    assert tabular(nbp, "--given", "plan type", "--rows", "3") == 2
    with Notebook.open(nbp) as nb:
        assert nb.prompt_versions() == []


def test_tabular_needs_an_imported_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nbp = tmp_path / "empty.db"
    assert main(["new", str(nbp)]) == 0
    assert tabular(nbp, "--given", "region", "--rows", "3") == 2
    assert "import one first" in capsys.readouterr().err
