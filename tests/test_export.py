import json

import pandas as pd
import pytest

from app.core.errors import StudioError
from app.data.importer import import_file
from app.export.formats import export
from app.generate.runs import create_run, execute_run, prepare_run


@pytest.fixture
def made(nb, topics_csv, fake):
    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Ticket about {{ topic }}.")
    execute_run(nb, create_run(nb, prepare_run(nb, "ticket", limit_rows=4), fake.info), fake)
    recs = nb.records()
    nb.edit_record(recs[0]["id"], "status", "rejected")
    nb.edit_record(recs[1]["id"], "status", "accepted")
    return nb


def test_plain_jsonl_carries_lineage_and_skips_rejected(made, tmp_path):
    out = tmp_path / "o.jsonl"
    written, _ = export(made, out)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert written == len(rows) == 3
    assert {"output", "prompt", "variables", "prompt_name", "prompt_version", "run_id", "model_sha256", "seed"} <= set(rows[0])
    assert all(r["status"] != "rejected" for r in rows)
    assert export(made, tmp_path / "acc.jsonl", statuses=["accepted"])[0] == 1


def test_csv_and_parquet_round_trip(made, tmp_path):
    export(made, tmp_path / "o.csv")
    export(made, tmp_path / "o.parquet")
    a = pd.read_csv(tmp_path / "o.csv")
    b = pd.read_parquet(tmp_path / "o.parquet")
    assert len(a) == len(b) == 3
    assert list(a["output"]) == list(b["output"])
    assert b["var.topic"][0] and list(a["var.topic"]) == list(b["var.topic"])  # variables flattened to columns


def test_sft_loads_unchanged_in_hf_datasets(made, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "sft.jsonl"
    written, skipped = export(made, out, fmt="sft")
    assert (written, skipped) == (3, 0)
    ds = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "hf"))
    assert len(ds) == 3
    msgs = ds[0]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    assert msgs[0]["content"].startswith("Ticket about")


def test_sft_skips_real_records_without_a_prompt(nb, tmp_path):
    nb.add_imported_rows([({"instruction": "Say hi"}, "hi"), ({"note": "x"}, "text")], origin="real", source="s")
    written, skipped = export(nb, tmp_path / "s.jsonl", fmt="sft")
    assert (written, skipped) == (1, 1)


def test_export_errors_leave_no_file(made, tmp_path):
    with pytest.raises(StudioError, match="unknown status"):
        export(made, tmp_path / "o.jsonl", statuses=["great"])
    with pytest.raises(StudioError, match="does not exist"):
        export(made, tmp_path / "nope" / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("fmt", ["plain", "sft"])
@pytest.mark.parametrize("select", ["kept", "all"])
def test_a_jsonl_export_streamed_a_page_at_a_time_is_the_whole_export(nb, tmp_path, monkeypatch, fmt, select):
    """JSON lines are written a page of records at a time (a million records never in memory at
    once); pages of 3 give the same file as one page holding everything, and CSV (written whole)."""
    import app.export.formats as formats
    from app.quality.steps import validate_file
    from app.store.imports import ImportedRecord, add_imported_records

    add_imported_records(nb, [ImportedRecord({"i": i}, "word " * (i % 7 + 1) + f"record {i}", prompt=f"Say {i}.")
                              for i in range(23)], origin="synthetic", source="t")
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "length"\ntype = "length"\nmin = 4\n')
    validate_file(nb, rules)  # some records fail: the kept set is smaller, and lines carry scores
    ids = [r["id"] for r in nb.records()]
    nb.edit_record(ids[5], "status", "rejected")
    monkeypatch.setattr(formats, "PAGE", 10**6)
    whole = tmp_path / "whole.jsonl"
    n_whole, _ = export(nb, whole, fmt=fmt, select=select)
    monkeypatch.setattr(formats, "PAGE", 3)
    paged = tmp_path / "paged.jsonl"
    n_paged, _ = export(nb, paged, fmt=fmt, select=select)
    assert n_paged == n_whole and paged.read_bytes() == whole.read_bytes()
    lines = [json.loads(x) for x in paged.read_text().splitlines()]
    assert 0 < len(lines) <= 23 and (select == "all") == (len(lines) == 23)
    if fmt == "plain":
        assert all("validator:length" in line for line in lines)
        assert export(nb, tmp_path / "t.csv", select=select)[0] == n_whole


class Stop(Exception):
    pass


@pytest.mark.parametrize("name", ["o.jsonl", "o.csv"])
def test_an_export_reports_its_progress_and_a_stop_leaves_no_file(nb, tmp_path, monkeypatch, name):
    """Progress counts the records written (a page at a time where JSON lines stream); a stop raised
    from it, after some pages are on disk, leaves neither the file nor its partial."""
    import app.export.formats as formats

    nb.add_imported_rows([({"i": i}, f"record {i}") for i in range(25)], origin="synthetic", source="t")
    monkeypatch.setattr(formats, "PAGE", 10)
    heard: list[tuple[int, int]] = []
    export(nb, tmp_path / name, select="all", progress=lambda d, t: heard.append((d, t)))
    assert heard[0] == (0, 25) and heard[-1] == (25, 25)
    if name.endswith(".jsonl"):
        assert heard == [(0, 25), (10, 25), (20, 25), (25, 25)]

    def stop_late(done, total):
        if done >= 20 or (done == 0 and name.endswith(".csv")):
            raise Stop

    out = tmp_path / ("again-" + name)
    with pytest.raises(Stop):
        export(nb, out, select="all", progress=stop_late)
    assert not out.exists() and list(tmp_path.glob("again-*")) == []
