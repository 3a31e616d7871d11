"""Versions you can diff: a frozen kept set never changes, two versions diff exactly, a version
exports with its manifest and a dataset card that ``datasets`` loads."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

from app.cli import main
from app.core.errors import StudioError
from app.data.importer import import_file
from app.export.formats import export
from app.export.versions import content_hash, diff, freeze, kept_snapshot, load, versions
from app.generate.runs import create_run, execute_run, prepare_run
from app.quality.steps import validate
from app.quality.validators import load_rules
from app.store.maps import save_map
from app.store.notebook import Notebook


@pytest.fixture
def made(nb, topics_csv, fake, tmp_path):
    """8 samples with a validator score; one rejected before v1 (so v1 holds 7)."""
    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Ticket about {{ topic }}.")
    execute_run(nb, create_run(nb, prepare_run(nb, "ticket", limit_rows=4, samples=2), fake.info), fake)
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "words"\ntype = "length"\nunit = "words"\nmin = 1\n')
    validate(nb, load_rules(rules), source=str(rules))
    recs = [r["id"] for r in nb.records()]
    nb.edit_record(recs[7], "status", "rejected")
    return nb, recs, rules


@pytest.fixture
def two_versions(made, fake):
    """v1, then: one text edited, one accepted, one rejected, the rejected one restored, one new record; v2."""
    nb, recs, rules = made
    v1 = freeze(nb, "v1", "first cut")
    old_text = nb.record(recs[0])["output"]
    nb.edit_record(recs[0], "output", old_text + " and a refund please")
    nb.edit_record(recs[1], "status", "accepted")
    nb.edit_record(recs[2], "status", "rejected")
    nb.edit_record(recs[7], "status", "new")
    execute_run(nb, create_run(nb, prepare_run(nb, "ticket", limit_rows=1, seed=9), fake.info), fake)
    validate(nb, load_rules(rules), source=str(rules))
    new_id = max(r["id"] for r in nb.records())
    v2 = freeze(nb, "v2", "second cut")
    return nb, recs, new_id, old_text, v1, v2


def test_two_versions_diff_exactly(two_versions):
    nb, recs, new_id, old_text, v1, v2 = two_versions
    assert (v1.records, v2.records) == (7, 8)
    d = diff(nb, "v1", "v2")
    assert [r.record_id for r in d.added] == sorted([recs[7], new_id])
    assert [r.record_id for r in d.removed] == [recs[2]]
    assert [e.record_id for e in d.edited] == [recs[0]]
    e = d.edited[0]
    assert e.before == old_text and e.after == old_text + " and a refund please"
    assert [(s.op, s.after) for s in e.words if s.op != "equal"] == [("insert", ("and", "a", "refund", "please"))]
    assert e.unified[:2] == (f"--- v1 #{recs[0]}", f"+++ v2 #{recs[0]}")
    assert f"-{old_text}" in e.unified and f"+{old_text} and a refund please" in e.unified
    assert [(c.record_id, c.before, c.after) for c in d.status_changes] == [(recs[1], "new", "accepted")]
    stages = {s.stage: s for s in d.stages}
    assert (stages["generated"].kept_before, stages["generated"].kept_after) == (8, 9)
    assert (stages["review"].kept_before, stages["review"].kept_after) == (7, 8)
    assert stages["validator:words"].changed
    # the edited record's word count (the length rule's value) went up by 4: one score changed, by +4
    assert [(c.name, c.changed, c.mean_shift) for c in d.score_changes] == [("validator:words", 1, 4.0)]
    words = next(s for s in d.distributions if s.name == "words")
    assert (words.n_before, words.n_after) == (7, 8) and 0 <= words.ks <= 1
    assert not d.identical and d.count_before == 7 and d.count_after == 8
    json.dumps(d.to_dict())  # everything in a diff is plain data


def test_nothing_changed_diffs_as_identical(made):
    nb = made[0]
    freeze(nb, "v1")
    d = diff(nb, "v1", "current")
    assert d.identical and not (d.added or d.removed or d.edited or d.status_changes or d.score_changes)
    with pytest.raises(StudioError, match="no version tagged 'v9'.*v1"):
        diff(nb, "v9")


def test_a_version_is_immutable_after_later_edits(made):
    nb, recs, _ = made
    v1 = freeze(nb, "v1")
    old = nb.record(recs[0])["output"]
    nb.edit_record(recs[0], "output", "completely new text")
    nb.edit_record(recs[3], "status", "rejected")
    frozen = load(nb, "v1").by_id
    assert frozen[recs[0]].output == old and recs[3] in frozen and frozen[recs[3]].status == "new"
    with pytest.raises(sqlite3.DatabaseError, match="immutable"):
        nb.conn.execute("UPDATE version_records SET output = 'x' WHERE version_id = ?", (v1.id,))
    with pytest.raises(sqlite3.DatabaseError, match="immutable"):
        nb.conn.execute("DELETE FROM dataset_versions WHERE id = ?", (v1.id,))
    assert load(nb, "v1").by_id[recs[0]].output == old


def test_a_duplicate_tag_is_refused_and_writes_nothing(made):
    nb, recs, _ = made
    freeze(nb, "v1")
    nb.edit_record(recs[0], "status", "rejected")
    count = lambda table: nb.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: E731
    before = (count("dataset_versions"), count("version_records"))
    with pytest.raises(StudioError, match="'v1' exists"):
        freeze(nb, "v1", "again")
    assert (count("dataset_versions"), count("version_records")) == before
    for bad in ("", "current", "v 2"):
        with pytest.raises(StudioError):
            freeze(nb, bad)
    assert [v.tag for v in versions(nb)] == ["v1"]


def test_content_hash_is_stable_across_reopen_and_follows_the_kept_set(made):
    nb, recs, _ = made
    v1 = freeze(nb, "v1")
    assert kept_snapshot(nb).content_hash == v1.content_hash  # nothing changed since
    path = nb.path
    nb.close()
    with Notebook.open(path) as again:
        stored = load(again, "v1")
        assert stored.content_hash == v1.content_hash
        assert content_hash(stored.records, stored.manifest) == v1.content_hash  # recomputable from what is stored
        assert kept_snapshot(again).content_hash == v1.content_hash
        again.edit_record(recs[0], "status", "rejected")  # the kept set shrinks
        changed = kept_snapshot(again).content_hash
        assert changed != v1.content_hash
        again.edit_record(recs[0], "status", "new")
        assert kept_snapshot(again).content_hash == v1.content_hash
        again.edit_record(recs[1], "output", "new words")  # same ids, other text
        assert kept_snapshot(again).content_hash not in (v1.content_hash, changed)


def test_versions_list_their_lineage_and_manifest(two_versions):
    nb, recs, new_id, _, v1, v2 = two_versions
    vs = versions(nb)
    assert [(v.tag, v.parent_tag, v.records) for v in vs] == [("v1", None, 7), ("v2", "v1", 8)]
    m = vs[1].manifest
    assert m["prompts"] == [{"name": "ticket", "version": 1, "hash": nb.prompt_version("ticket").hash, "records": 8}]
    assert m["models"]["generation"][0]["sha256"] == "fake-model-v1"
    assert [s["stage"] for s in m["funnel"]["stages"]] == ["generated", "validator:words", "review"]
    assert m["funnel"]["stages"][1]["settings"]["rules"][0]["name"] == "words"
    assert m["totals"]["records"] == 8 and m["totals"]["statuses"] == {"accepted": 1, "new": 7}


def test_clusters_that_grew_or_shrank(made):
    nb, recs, _ = made
    kept = recs[:7]
    points = lambda clusters: [(rid, 0.0, 0.0, c, 0.0, 0.0) for rid, c in zip(kept, clusters)]  # noqa: E731
    save_map(nb, "a", "emb", "pca", {}, {0: "a", 1: "b"}, points([0, 0, 0, 1, 1, 1, -1]))
    freeze(nb, "v1")
    save_map(nb, "b", "emb", "pca", {}, {0: "a", 1: "b"}, points([0, 0, 0, 0, 0, 1, 1]))
    freeze(nb, "v2")
    d = diff(nb, "v1", "v2")
    assert [(c.cluster, c.before, c.after) for c in d.clusters] == [(-1, 1, 0), (0, 3, 5), (1, 3, 2)]
    assert load(nb, "v2").manifest["totals"]["clusters"] == 2


@pytest.mark.parametrize("ext", [".jsonl", ".csv", ".parquet"])
def test_export_a_version_writes_frozen_text_a_manifest_and_a_card_datasets_loads(two_versions, tmp_path, ext):
    datasets = pytest.importorskip("datasets")
    nb, recs, _, old_text, v1, _ = two_versions
    folder = tmp_path / "release"
    folder.mkdir()
    out = folder / f"train{ext}"
    written, skipped = export(nb, out, version="v1")
    assert (written, skipped) == (7, 0)
    manifest = json.loads((folder / "train.manifest.json").read_text())
    assert manifest["tag"] == "v1" and manifest["content_hash"] == v1.content_hash
    assert manifest["manifest"] == v1.manifest
    assert [f["path"] for f in manifest["files"]] == [out.name] and manifest["files"][0]["rows"] == 7
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "license: unknown" in card and "n<1K" in card
    assert "ticket" in card and "fake-model-v1" in card and v1.content_hash in card
    ds = datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "hf"))  # the card's configs
    assert len(ds) == 7 and sorted(ds["id"]) == sorted(r.record_id for r in load(nb, "v1").records)
    texts = dict(zip(ds["id"], ds["output"]))
    assert texts[recs[0]] == old_text  # the frozen text, not the edit made after v1
    assert set(ds["version"]) == {"v1"} and "validator:words" in ds.column_names
    assert not any(p.name.endswith(".partial") for p in folder.iterdir())


def test_export_a_version_as_sft_and_the_kept_set_with_a_card(two_versions, tmp_path):
    datasets = pytest.importorskip("datasets")
    nb = two_versions[0]
    (tmp_path / "a").mkdir()
    written, _ = export(nb, tmp_path / "a" / "sft.jsonl", fmt="sft", version="v2")
    ds = datasets.load_dataset(str(tmp_path / "a"), split="train", cache_dir=str(tmp_path / "hf"))
    assert written == len(ds) == 8 and ds[0]["messages"][1]["role"] == "assistant"
    (tmp_path / "b").mkdir()
    written, _ = export(nb, tmp_path / "b" / "kept.jsonl", card=True)
    assert "Not a frozen version" in (tmp_path / "b" / "README.md").read_text()
    assert json.loads((tmp_path / "b" / "kept.manifest.json").read_text())["tag"] is None
    assert len(datasets.load_dataset(str(tmp_path / "b"), split="train", cache_dir=str(tmp_path / "hf"))) == written
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "README.md").write_text("# my project\n")
    with pytest.raises(StudioError, match="not a Synth Studio dataset card"):  # never overwritten
        export(nb, tmp_path / "c" / "data.jsonl", version="v1")
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["README.md"]
    with pytest.raises(StudioError, match="preference pairs"):
        export(nb, tmp_path / "p.jsonl", fmt="dpo", version="v1")
    with pytest.raises(StudioError, match="without --all"):
        export(nb, tmp_path / "p.jsonl", version="v1", select="all")
    assert not (tmp_path / "p.jsonl").exists()


def test_cli_version_versions_diff(made, tmp_path, capsys):
    nb, recs, _ = made
    path = str(nb.path)
    assert main(["version", path, "--tag", "v1", "-m", "first"]) == 0
    assert "froze 7 kept records as v1" in capsys.readouterr().out
    assert main(["version", path, "--tag", "v1"]) == 2
    assert "'v1' exists" in capsys.readouterr().err
    nb.edit_record(recs[0], "status", "rejected")
    nb.edit_record(recs[1], "output", "rewritten by hand")
    assert main(["version", path, "--tag", "v2"]) == 0
    capsys.readouterr()
    assert main(["versions", path, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(v["tag"], v["parent"], v["records"]) for v in listed] == [("v1", None, 7), ("v2", "v1", 6)]
    assert main(["versions", path]) == 0
    assert "v2" in capsys.readouterr().out
    assert main(["diff", path, "v1", "v2", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in d["removed"]] == [recs[0]] and d["added"] == []
    assert [e["id"] for e in d["edited"]] == [recs[1]] and d["edited"][0]["after"] == "rewritten by hand"
    assert main(["diff", path, "v1"]) == 0  # against the kept set now
    text = capsys.readouterr().out
    assert "removed 1, edited 1" in text and "+rewritten by hand" in text
    assert main(["diff", path, "v0"]) == 2
    out = tmp_path / "o.jsonl"
    assert main(["export", path, str(out), "--version", "v1"]) == 0
    assert (tmp_path / "o.manifest.json").exists() and (tmp_path / "README.md").exists()
    assert len(pd.read_json(out, lines=True)) == 7
    assert main(["export", path, str(tmp_path / "k.jsonl")]) == 0  # the plain export still works (no card)
    assert len(pd.read_json(tmp_path / "k.jsonl", lines=True)) == 6


def test_versions_view_freezes_then_diffs(qtbot, made, fake):
    pytest.importorskip("PySide6")
    from widgets.versions_view import VersionsView

    nb = made[0]
    view = VersionsView(nb)
    qtbot.addWidget(view)
    assert view.table.rowCount() == 0 and not view.diff_button.isEnabled()
    assert view.suggested_tag() == "v1"
    with qtbot.waitSignal(view.sig_frozen, timeout=10000) as frozen:
        view.freeze("v1", "first")
    assert frozen.args[0].records == 7
    assert view.table.rowCount() == 1 and view.table.item(0, 0).text() == "v1"
    assert view.after.currentText() == "current" and view.before.currentText() == "v1"
    execute_run(nb, create_run(nb, prepare_run(nb, "ticket", limit_rows=2, seed=3), fake.info), fake)
    with qtbot.waitSignal(view.sig_diffed, timeout=10000):
        view.diff_button.click()
    assert "Added 2" in view.counts.text()
    kinds = [view.changes.item(r, 0).text() for r in range(view.changes.rowCount())]
    assert kinds == ["added", "added"]
    with qtbot.waitSignal(view.sig_frozen, timeout=10000):
        view.freeze("v2")
    # an edited record shows its text diff with the change highlighted
    rid = nb.records()[0]["id"]
    nb.edit_record(rid, "output", nb.record(rid)["output"] + " extra")
    with qtbot.waitSignal(view.sig_diffed, timeout=10000):
        view.start_diff("v2", "current")
    row = next(r for r in range(view.changes.rowCount()) if view.changes.item(r, 0).text() == "edited")
    view.changes.selectRow(row)
    assert "extra" in view.text_diff.toPlainText()
    with qtbot.waitSignal(view.freeze_runner.sig_errored, timeout=10000):
        view.freeze("v1")
    assert "exists" in view.status.text() and view.table.rowCount() == 2
