import json

import pandas as pd
import pytest

from app.core.errors import ImportDataError
from app.data.importer import import_file


def test_csv_rows_without_text_become_inputs(nb, topics_csv):
    inputs, samples = import_file(nb, topics_csv)
    assert (inputs, samples) == (20, 0)
    rows = nb.input_rows()
    assert len(rows) == 20
    assert rows[0][1]["product"] == "Ledgerly Invoicing"
    assert set(rows[0][1]) == {"product", "topic", "customer_tier", "channel"}


def test_output_column_becomes_record_text(nb, tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        json.dumps({"question": "2+2?", "answer": "4"}) + "\n" + json.dumps({"question": "3+3?", "answer": ""}) + "\n"
    )
    inputs, samples = import_file(nb, path, output_column="answer", origin="synthetic")
    assert (inputs, samples) == (1, 1)
    rec = nb.records()[0]
    assert rec["output"] == "4" and rec["variables"] == {"question": "2+2?"} and rec["origin"] == "synthetic"
    assert rec["source"] == "d.jsonl"


def test_parquet_keeps_types(nb, tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame({"n": [1, 2], "output": ["a", None]}).to_parquet(path)
    assert import_file(nb, path) == (1, 1)
    assert nb.input_rows()[0][1] == {"n": 2}


def test_missing_output_column_lists_the_columns(nb, topics_csv):
    with pytest.raises(ImportDataError, match="no column named 'text'.*product, topic"):
        import_file(nb, topics_csv, output_column="text")
    assert nb.count_records(role=None) == 0


def test_invalid_utf8_names_the_line_and_changes_nothing(nb, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"topic,tier\nbilling,free\ncaf\xe9 menu,pro\n")
    with pytest.raises(ImportDataError, match=r"not valid UTF-8 \(byte 0xe9 on line 3\)"):
        import_file(nb, path)
    assert nb.count_records(role=None) == 0


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", "", "is empty"),
        ("header_only.csv", "a,b\n", "has no rows"),
        ("bad.jsonl", '{"a": 1}\n{"a": \n', "line 2 is not valid JSON"),
        ("list.jsonl", "[1, 2]\n", "line 1 is not a JSON object"),
        ("data.xlsx", "x", "unknown file type .xlsx"),
        ("bad.parquet", "not parquet at all", "cannot read"),
    ],
)
def test_broken_files_give_clear_errors(nb, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ImportDataError, match=message):
        import_file(nb, path)
    assert nb.count_records(role=None) == 0


def test_missing_file(nb, tmp_path):
    with pytest.raises(ImportDataError, match="file not found"):
        import_file(nb, tmp_path / "nope.csv")
