"""File formats in and out: delimited files of any common separator, training files imported as
records, export columns a spreadsheet or ``datasets`` reads as they were meant, and every export
format loaded by Hugging Face ``datasets`` and imported back."""

import json

import pandas as pd
import pytest

from app.core.errors import ImportDataError
from app.core.tasks import TaskState
from app.data.importer import import_file, import_table, preview_table
from app.export.dpo import dpo_pairs
from app.export.formats import export
from app.generate.runs import create_run, execute_run, prepare_run
from app.jobs import import_job
from app.store.notebook import Notebook
from app.store.scores import Score, save_scores

# -- delimited files ---------------------------------------------------------------------------------


def test_semicolon_csv_imports_as_columns(nb, tmp_path):
    path = tmp_path / "tickets.csv"
    # what Excel saves in much of Europe: semicolons, a byte-order mark, decimal commas, a quoted comma
    path.write_bytes("\ufefftopic;price;output\nrefund;1,5;\"Hi, I want my money back\"\nlogin;2,25;\n".encode())
    assert import_file(nb, path) == (1, 1)
    [sample] = nb.records()
    assert sample["variables"] == {"topic": "refund", "price": "1,5"}
    assert sample["output"] == "Hi, I want my money back"
    assert nb.input_rows()[0][1] == {"topic": "login", "price": "2,25"}


@pytest.mark.parametrize(("sep", "name"), [("\t", "tab"), ("|", "pipe")])
def test_tab_and_pipe_separated_files_import_as_columns(nb, tmp_path, sep, name):
    path = tmp_path / "rows.csv"
    path.write_text(sep.join(["topic", "tier"]) + "\n" + sep.join(["invoices, late", "pro"]) + "\n"
                    + sep.join(["login", "free"]) + "\n", encoding="utf-8")
    assert import_file(nb, path) == (2, 0)
    assert [v for _, v in nb.input_rows()] == [{"topic": "invoices, late", "tier": "pro"},
                                                {"topic": "login", "tier": "free"}]
    columns, rows, how = preview_table(path)
    assert columns == ["topic", "tier"] and rows[0] == ["invoices, late", "pro"] and f"{name}-separated" in how


def test_a_file_that_reads_as_one_column_but_looks_delimited_is_refused(nb, tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("topic;tier;channel\nrefund;pro\nlogin;free;email;extra\nbilling;pro;chat\n", encoding="utf-8")
    with pytest.raises(ImportDataError, match=r"single column.*semicolon-separated.*line 2 has 2 fields"):
        import_file(nb, path)
    assert nb.count_records(None) == 0  # nothing half-imported


def test_a_real_one_column_file_still_imports(nb, tmp_path):
    path = tmp_path / "texts.csv"
    path.write_text('text\n"Hello, world; how are you"\n"One, two | three"\n', encoding="utf-8")
    assert import_file(nb, path) == (2, 0)
    assert nb.input_rows()[1][1] == {"text": "One, two | three"}


def test_preview_reads_the_first_rows_and_says_how(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("a;b\n" + "".join(f"{i};x{i}\n" for i in range(500)), encoding="utf-8")
    columns, rows, how = preview_table(path, n=5)
    assert columns == ["a", "b"] and len(rows) == 5 and rows[4] == ["4", "x4"]
    assert how == "CSV, semicolon-separated (detected)"
    sft = tmp_path / "chat.jsonl"
    sft.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                            {"role": "assistant", "content": "hello"}]}) + "\n")
    assert "recognised as an SFT chat file" in preview_table(sft)[2]


# -- training files imported as records -------------------------------------------------------------


@pytest.fixture
def made(nb, topics_csv, fake):
    """Samples of every kind an export has: rejected, accepted, a person's edit, review siblings."""
    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Ticket about {{ topic }} for a {{ customer_tier }} customer.")
    execute_run(nb, create_run(nb, prepare_run(nb, "ticket", limit_rows=3, samples=2), fake.info), fake)
    recs = nb.records()
    nb.edit_record(recs[0]["id"], "output", "My bank feed has not synced since Monday; I reconnected it twice.")
    a, b = [r for r in recs if r["row_index"] == 1]
    nb.edit_record(a["id"], "status", "accepted")
    nb.edit_record(b["id"], "status", "rejected")
    return nb


def _fresh(tmp_path, name="again.db") -> Notebook:
    return Notebook.create(tmp_path / name)


def _pairs(rows):
    def text(v):
        return v if isinstance(v, str) else v[-1]["content"]
    return {(text(r["prompt"]), text(r["chosen"]), text(r["rejected"])) for r in rows}


def test_sft_chat_file_reimports_as_records(made, tmp_path):
    out = tmp_path / "sft.jsonl"
    written, _ = export(made, out, fmt="sft")
    _fresh(tmp_path).close()
    message = import_job(tmp_path / "again.db", out, task=TaskState())
    assert "recognised as an SFT chat file" in message and f"{written} records with text" in message
    with Notebook.open(tmp_path / "again.db") as again:
        got = {(r["prompt"], r["output"]) for r in again.records()}
        assert again.count_records("input") == 0
    items = [json.loads(x) for x in out.read_text().splitlines()]
    assert got == {(i["messages"][0]["content"], i["messages"][1]["content"]) for i in items}


def test_multi_turn_chats_keep_their_history_and_unanswered_ones_are_inputs(nb, tmp_path):
    path = tmp_path / "chats.jsonl"
    chats = [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Refund?"},
                      {"role": "assistant", "content": "Sure."}], "category": "billing"},
        {"messages": [{"role": "user", "content": "Where is my order?"}]},
    ]
    path.write_text("".join(json.dumps(c) + "\n" for c in chats))
    result = import_table(nb, path)
    assert (result.inputs, result.samples) == (1, 1)
    [rec] = nb.records()
    assert rec["output"] == "Sure." and rec["prompt"] == "Hi\n\nRefund?"
    assert rec["variables"]["system"] == "Be brief." and rec["variables"]["category"] == "billing"
    assert [m["content"] for m in rec["variables"]["messages"]] == ["Be brief.", "Hi", "Hello!", "Refund?"]
    assert nb.input_rows()[0][1] == {"prompt": "Where is my order?"}


@pytest.mark.parametrize("fmt", ["dpo", "dpo-chat"])
def test_dpo_pairs_reimport_as_accepted_and_rejected_records_and_export_the_same_pairs(made, tmp_path, fmt):
    out = tmp_path / "pairs.jsonl"
    export(made, out, fmt=fmt)
    before = _pairs([json.loads(x) for x in out.read_text().splitlines()])
    assert len(before) == 2
    again = _fresh(tmp_path)
    result = import_table(again, out)
    assert result.recognised is not None and result.recognised.kind == "dpo" and "2 pairs" in result.note
    recs = again.records()
    assert sorted(r["status"] for r in recs) == ["accepted", "accepted", "rejected", "rejected"]
    for chosen in (r for r in recs if r["status"] == "accepted"):  # linked: each pair shares an input row
        assert any(r["input_record_id"] == chosen["input_record_id"] for r in recs if r["status"] == "rejected")
    assert again.count_records("input") == 2
    export(again, tmp_path / "back.jsonl", fmt=fmt)
    assert _pairs([json.loads(x) for x in (tmp_path / "back.jsonl").read_text().splitlines()]) == before
    again.close()


def test_dpo_pairs_of_one_prompt_stay_exactly_those_pairs(nb, tmp_path):
    path = tmp_path / "p.jsonl"
    pairs = [("Q", "good", "bad"), ("Q", "best", "worse"), ("Q", "good", "worse"), ("R", "a", "b")]
    path.write_text("".join(json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n" for p, c, r in pairs))
    import_table(nb, path)
    assert {(p["prompt"], p["chosen"], p["rejected"]) for p in dpo_pairs(nb)} == set(pairs)


@pytest.mark.parametrize("ext", [".jsonl", ".csv", ".parquet"])
def test_the_studios_plain_export_reimports_as_records(made, tmp_path, ext):
    out = tmp_path / f"plain{ext}"
    export(made, out, select="all")
    again = _fresh(tmp_path)
    result = import_table(again, out)
    assert result.recognised is not None and result.recognised.kind == "studio"
    mine = {r["output"]: r for r in made.records()}
    recs = again.records()
    assert len(recs) == len(mine) and again.count_records("input") == 0
    for r in recs:
        was = mine[r["output"]]
        assert (r["status"], r["prompt"]) == (was["status"], was["prompt"])
        assert r["variables"] == was["variables"]  # from nested (JSONL) or var.* columns (CSV, Parquet)
    again.close()


def test_an_output_column_given_reads_a_training_file_as_a_plain_table(nb, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "Q", "chosen": "a", "rejected": "b"}) + "\n")
    assert import_file(nb, path, output_column="chosen") == (0, 1)
    assert nb.records()[0]["variables"] == {"prompt": "Q", "rejected": "b"}


def test_old_exports_with_variables_as_json_text_still_reimport(nb, tmp_path):
    path = tmp_path / "old.csv"
    pd.DataFrame([{"id": 7, "output": "text", "prompt": "P", "variables": json.dumps({"topic": "x"}),
                   "status": "accepted", "origin": "synthetic"}]).to_csv(path, index=False)
    import_file(nb, path)
    [rec] = nb.records()
    assert (rec["output"], rec["variables"], rec["status"]) == ("text", {"topic": "x"}, "accepted")


# -- export columns ---------------------------------------------------------------------------------


def test_variables_are_columns_in_csv_and_parquet_and_nested_in_jsonl(made, tmp_path):
    for ext in (".jsonl", ".csv", ".parquet"):
        export(made, tmp_path / f"o{ext}")
    first = json.loads((tmp_path / "o.jsonl").read_text().splitlines()[0])
    assert set(first["variables"]) == {"product", "topic", "customer_tier", "channel"}
    for df in (pd.read_csv(tmp_path / "o.csv"), pd.read_parquet(tmp_path / "o.parquet")):
        assert "variables" not in df.columns
        assert {"var.product", "var.topic", "var.customer_tier", "var.channel"} <= set(df.columns)
        assert df["var.topic"][0] == first["variables"]["topic"]
        cols = list(df.columns)
        assert cols.index("prompt") < cols.index("var.product") < cols.index("status")  # where `variables` was


def test_nullable_integers_stay_integers_and_scores_stay_floats(made, tmp_path):
    made.add_imported_rows([({"topic": "real one"}, "A real record with text.")], origin="real", source="r.csv")
    ids = [r["id"] for r in made.records()]
    save_scores(made, [Score(i, "validator:length", "validator", 12, True, None) for i in ids[:2]], None)
    export(made, tmp_path / "o.csv", select="all")
    export(made, tmp_path / "o.parquet", select="all")
    text = (tmp_path / "o.csv").read_text()
    df = pd.read_csv(tmp_path / "o.csv", dtype_backend="numpy_nullable")
    assert df["run_id"].isna().iloc[-1] and str(df["run_id"].dtype) == "Int64"  # the real record has no run
    assert ",1.0," not in text and str(df["seed"].dtype) == "Int64"
    assert "12.0" in text and str(df["validator:length"].dtype) == "Float64"
    pq = pd.read_parquet(tmp_path / "o.parquet", dtype_backend="numpy_nullable")
    import pyarrow.parquet as papq

    schema = papq.read_schema(tmp_path / "o.parquet")
    assert str(schema.field("run_id").type) == "int64" and str(schema.field("seed").type) == "int64"
    assert str(schema.field("completion_tokens").type) == "int64"
    assert str(schema.field("validator:length").type) == "double"
    assert pq["run_id"].isna().iloc[-1] and pq["run_id"].iloc[0] == 1


def test_a_variable_of_mixed_kinds_is_text_and_by_split_and_versions_still_write(nb, tmp_path):
    nb.add_imported_rows([({"n": 3}, "first text here"), ({"n": "three"}, "second text here"),
                          ({"tags": ["a", "b"]}, "third text here")], origin="real", source="r.csv")
    export(nb, tmp_path / "o.parquet")
    df = pd.read_parquet(tmp_path / "o.parquet")
    assert list(df["var.n"][:2]) == ["3", "three"] and json.loads(df["var.tags"][2]) == ["a", "b"]
    assert export(nb, tmp_path / "s.csv", by_split=True)[0] == 3
    assert pd.read_csv(tmp_path / "s.train.csv")["var.n"].tolist()[:2] == ["3", "three"]


# -- Hugging Face datasets: every export format loads, and comes back through the importer -----------

CASES = [(fmt, ext) for fmt in ("plain", "sft", "dpo", "dpo-chat") for ext in (".jsonl", ".csv", ".parquet")]


def _decoded(v):
    return json.loads(v) if isinstance(v, str) and v[:1] in "[{" else v


@pytest.mark.parametrize(("fmt", "ext"), CASES)
def test_every_export_format_loads_in_datasets_and_reimports(made, tmp_path, fmt, ext):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / f"{fmt}{ext}"
    written, _ = export(made, out, fmt=fmt)
    builder = {".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}[ext]
    ds = datasets.load_dataset(builder, data_files=str(out), split="train", cache_dir=str(tmp_path / "hf"))
    assert len(ds) == written > 0
    rows = list(ds)
    if fmt == "plain":
        kept = {r["id"]: r for r in made.records() if r["status"] != "rejected"}
        assert {"id", "output", "prompt", "status", "origin"} <= set(ds.column_names)
        assert (("variables" in ds.column_names) == (ext == ".jsonl")
                and ("var.topic" in ds.column_names) == (ext != ".jsonl"))
        assert {r["id"]: r["output"] for r in rows} == {i: r["output"] for i, r in kept.items()}
        if ext != ".csv":  # datasets' CSV reader turns an int column with gaps into floats; ours has none
            assert ds.features["run_id"].dtype == "int64"
    elif fmt == "sft":
        assert set(ds.column_names) == {"messages", "id"}
        for r in rows:
            msgs = _decoded(r["messages"])
            assert [m["role"] for m in msgs] == ["user", "assistant"]
            assert msgs[1]["content"] == made.record(r["id"])["output"]
    else:
        assert {"prompt", "chosen", "rejected", "chosen_id", "rejected_id", "source"} <= set(ds.column_names)
        for r in rows:
            chosen = _decoded(r["chosen"])
            text = chosen if fmt == "dpo" else chosen[-1]["content"]
            assert text == made.record(r["chosen_id"])["output"] or r["source"] == "edit"
    # and back through the studio's importer
    again = _fresh(tmp_path)
    result = import_table(again, out)
    assert result.recognised is not None
    recs = again.records()
    if fmt == "plain":
        assert {(r["output"], r["status"]) for r in recs} == {(r["output"], r["status"]) for r in kept.values()}
    elif fmt == "sft":
        assert {r["output"] for r in recs} == {made.record(r["id"])["output"] for r in rows}
    else:
        want = _pairs([{k: _decoded(r[k]) for k in ("prompt", "chosen", "rejected")} for r in rows])
        assert {(r["output"], r["status"]) for r in recs} == (
            {(c, "accepted") for _, c, _ in want} | {(x, "rejected") for _, _, x in want})
        assert {(p["prompt"], p["chosen"], p["rejected"]) for p in dpo_pairs(again)} == want
    again.close()
