"""The CLI as a script would use it: exit codes, one-line errors, nothing changed on bad input."""

import json
import sqlite3

import pytest

from app.cli import main
from tests.conftest import SAMPLE


def snapshot(path):
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture
def book(tmp_path, topics_csv):
    path = tmp_path / "nb.db"
    assert main(["new", str(path)]) == 0
    assert main(["import", str(path), str(topics_csv)]) == 0
    assert main(["prompt", "add", str(path), "ticket", "--template", str(SAMPLE / "support_ticket.j2")]) == 0
    return path


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_whole_loop_with_the_fake_backend(book, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "generate", book, "--prompt", "ticket", "--samples", 2, "--limit-rows", 3,
                           "--backend", "fake", "--quiet")
    assert code == 0 and "6 samples" in out
    code, out, _ = run_cli(capsys, "records", book, "--json")
    recs = json.loads(out)
    assert len(recs) == 6 and all(r["run_id"] == 1 for r in recs)
    rid = recs[0]["id"]
    code, out, _ = run_cli(capsys, "edit", book, rid, "--output", "Hand-fixed ticket.", "--status", "accepted")
    assert code == 0 and "changed output, status" in out
    code, out, _ = run_cli(capsys, "history", book, rid, "--json")
    assert [e["field"] for e in json.loads(out)] == ["output", "origin", "status"]
    code, out, _ = run_cli(capsys, "prompt", "list", book, "--json")
    assert json.loads(out)[0]["records"] == 6
    code, out, _ = run_cli(capsys, "runs", book, "--json")
    assert json.loads(out)[0]["status"] == "completed"
    out_file = tmp_path / "out.jsonl"
    code, out, _ = run_cli(capsys, "export", book, out_file)
    assert code == 0
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert len(lines) == 6 and lines[0]["output"] == "Hand-fixed ticket."


def test_preview_renders_a_row_without_the_model(book, capsys):
    code, out, _ = run_cli(capsys, "prompt", "preview", book, "ticket", "--row", 2, "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["variables"]["topic"] == "recurring invoice was sent twice to the same client"
    assert "Their problem: recurring invoice was sent twice" in shown["prompt"]
    # the preview is exactly the prompt sample 0 of a run with the same seed gets
    assert run_cli(capsys, "generate", book, "--prompt", "ticket", "--limit-rows", 2, "--backend", "fake", "--quiet")[0] == 0
    recs = json.loads(run_cli(capsys, "records", book, "--json")[1])
    assert recs[1]["prompt"] == shown["prompt"]
    code, _, err = run_cli(capsys, "prompt", "preview", book, "ticket", "--row", 99)
    assert code == 2 and "row 99 does not exist (the notebook has 20 input rows)" in err


def test_records_limit_and_inputs(book, capsys):
    code, out, _ = run_cli(capsys, "records", book, "--inputs", "--json", "--limit", 4)
    assert code == 0 and len(json.loads(out)) == 4


@pytest.fixture
def truncated_gguf(tmp_path, smollm_path):
    path = tmp_path / "truncated.gguf"
    with open(smollm_path, "rb") as src:
        path.write_bytes(src.read(3_000_000))
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_notebook", "no such notebook"),
        ("not_sqlite", "not a Synth Studio notebook"),
        ("missing_model", "model file not found"),
        ("not_gguf", "is not a GGUF model file"),
        ("truncated_gguf", "truncated"),
        ("syntax_error", "line 2: template syntax error"),
        ("undefined_variable", "uses nonexistent"),
        ("invalid_utf8", "not valid UTF-8"),
        ("missing_import", "file not found"),
        ("unknown_prompt", "no prompt named 'nope'"),
        ("missing_template", "template file not found"),
        ("bad_export_ext", "cannot export to"),
    ],
)
def test_bad_input_is_one_clear_line_and_changes_nothing(case, message, book, tmp_path, capsys, request):
    before = snapshot(book)
    gen = ["generate", book, "--prompt", "ticket", "--limit-rows", 1, "--quiet"]
    if case == "missing_notebook":
        args = ["records", tmp_path / "nope.db"]
    elif case == "not_sqlite":
        bogus = tmp_path / "bogus.db"
        bogus.write_text("just some text")
        args = ["records", bogus]
    elif case == "missing_model":
        args = gen + ["--model", tmp_path / "nope.gguf"]
    elif case == "not_gguf":
        fake_model = tmp_path / "model.gguf"
        fake_model.write_text("this is not a model")
        args = gen + ["--model", fake_model]
    elif case == "truncated_gguf":
        args = gen + ["--model", request.getfixturevalue("truncated_gguf")]
    elif case == "syntax_error":
        t = tmp_path / "t.j2"
        t.write_text("Hello\n{% for x in y %}\n")
        args = ["prompt", "add", book, "broken", "--template", t]
    elif case == "undefined_variable":
        with __import__("app.store.notebook", fromlist=["Notebook"]).Notebook.open(book) as nb:
            nb.add_prompt_version("undef", "About {{ topic }} and {{ nonexistent }}")
        before = snapshot(book)
        args = ["generate", book, "--prompt", "undef", "--backend", "fake", "--quiet"]
    elif case == "invalid_utf8":
        bad = tmp_path / "bad.csv"
        bad.write_bytes(b"topic\ncaf\xe9\n")
        args = ["import", book, bad]
    elif case == "missing_import":
        args = ["import", book, tmp_path / "nope.csv"]
    elif case == "unknown_prompt":
        args = ["generate", book, "--prompt", "nope", "--backend", "fake"]
    elif case == "missing_template":
        args = ["prompt", "add", book, "x", "--template", tmp_path / "nope.j2"]
    else:
        args = ["export", book, tmp_path / "out.xlsx"]
    code, out, err = run_cli(capsys, *args)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0]
    assert snapshot(book) == before
    assert "Traceback" not in err


def test_new_refuses_to_overwrite(book, capsys):
    code, _, err = run_cli(capsys, "new", book)
    assert code == 2 and "already exists" in err


def test_no_arguments_help_for_subcommand(capsys):
    with pytest.raises(SystemExit) as info:
        main(["generate"])
    assert info.value.code == 2
