"""Full-text search (records_fts), the records_with_scores view, foreign keys, and migration 007."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
import sqlite_utils

from app.cli import main
from app.store import migrations
from app.store.notebook import Notebook
from app.store.queries import RecordFilter, count_records, record_page
from app.store.scores import Score, save_scores
from app.store.search import parse, search_records
from app.store.trust import save_verdicts


def _add(nb, variables, text):
    nb.add_imported_rows([(variables, text)], origin="synthetic", source="test")
    return nb.conn.execute("SELECT MAX(id) FROM records").fetchone()[0]


def _found(nb, text, **kw):
    return {r["id"] for r in record_page(nb, 0, 1000, RecordFilter(text=text, **kw))}


def test_search_finds_words_in_the_output_and_in_the_variables(nb):
    refund = _add(nb, {"topic": "billing"}, "Please send my refund, the invoice was wrong.")
    llama = _add(nb, {"topic": "llamas", "tone": "curious"}, "Tell me about camelids.")
    _add(nb, {"topic": "login"}, "I cannot log in since Tuesday.")
    assert _found(nb, "refund") == {refund}
    assert _found(nb, "REFUND") == {refund}  # case does not matter
    assert _found(nb, "invo") == {refund}  # each word is a prefix
    assert _found(nb, "llamas") == {llama}  # a variable's value
    assert _found(nb, "curious camel") == {llama}  # every word, in the variables or the output
    assert _found(nb, "refund llamas") == set()
    assert count_records(nb, RecordFilter(text="refund")) == 1


def test_search_follows_edits_and_deletes(nb):
    rid = _add(nb, {"topic": "x"}, "The parcel arrived damaged.")
    other = _add(nb, {}, "Nothing to see here.")
    assert _found(nb, "parcel") == {rid}
    nb.edit_record(rid, "output", "The package arrived late.")
    assert _found(nb, "parcel") == set()
    assert _found(nb, "package") == {rid}
    nb.edit_record(rid, "variables", {"topic": "shipping"})
    assert _found(nb, "shipping") == {rid}
    nb.edit_record(rid, "status", "accepted")  # a status change leaves the index alone
    assert _found(nb, "package") == {rid}
    with nb.transaction() as c:  # the studio never deletes a record; a client such as sqlite-utils may
        c.execute("DELETE FROM records WHERE id = ?", (other,))
    assert _found(nb, "nothing") == set()
    nb.conn.execute("INSERT INTO records_fts (records_fts, rank) VALUES ('integrity-check', 1)")  # raises unless the index matches records


def test_a_bulk_insert_indexes_its_rows_in_one_pass_and_keeps_the_trigger(nb, monkeypatch):
    from app.store import notebook as notebook_module
    from app.store.imports import ImportedRecord, add_imported_records

    monkeypatch.setattr(notebook_module, "BULK_RECORDS", 3)  # the bulk path from three rows on
    before = _add(nb, {"topic": "alone"}, "A single row goes through the trigger.")
    nb.add_imported_rows([({"topic": f"t{i}"}, f"bulk text number {i} about parcels") for i in range(5)]
                         + [({"topic": "an input row"}, None)], origin="real", source="big.csv")
    add_imported_records(nb, [ImportedRecord({"q": "kiwi"}, "imported answer on kiwis"), ImportedRecord({"q": "x"})] * 2,
                         origin="real", source="train.jsonl")
    assert len(_found(nb, "parcels")) == 5
    assert len(_found(nb, "kiwis")) == 2
    assert _found(nb, "alone") == {before}
    input_row = nb.conn.execute("SELECT id FROM records WHERE role = 'input' AND source = 'big.csv'").fetchone()[0]
    assert [r[0] for r in nb.conn.execute(  # an input row's variables are indexed too
        "SELECT rowid FROM records_fts WHERE records_fts MATCH '\"input row\"'")] == [input_row]
    trigger = nb.conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'records_ai'").fetchone()
    assert trigger is not None and trigger[0] == migrations.studio_triggers()["records_ai"]
    assert migrations.foreign_schema(nb.conn) == []  # the notebook still opens as the studio's own
    nb.conn.execute("INSERT INTO records_fts (records_fts, rank) VALUES ('integrity-check', 1)")
    later = _add(nb, {}, "after the bulk insert the trigger indexes again")
    assert _found(nb, "trigger indexes") == {later}


def test_a_failed_bulk_insert_leaves_rows_index_and_trigger_as_they_were(nb, monkeypatch):
    from app.store import notebook as notebook_module

    monkeypatch.setattr(notebook_module, "BULK_RECORDS", 2)
    _add(nb, {}, "kept text")

    def rows():
        yield {"a": 1}, "first bulk text"
        yield {"a": 2}, "second bulk text"
        raise OSError("the file went away while it was read")

    class Sized(list):  # claims its length up front, as a read file does
        def __iter__(self):
            return rows()

    with pytest.raises(OSError):
        nb.add_imported_rows(Sized([None, None, None]), origin="real", source="x.csv")
    assert nb.conn.execute("SELECT count(*) FROM records").fetchone()[0] == 1
    assert _found(nb, "bulk") == set()
    assert nb.conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'records_ai'").fetchone()[0] == 1
    nb.conn.execute("INSERT INTO records_fts (records_fts, rank) VALUES ('integrity-check', 1)")


@pytest.mark.parametrize("text", [
    '"', '""', "'", "*", "***", ":", "a:b", "output:refund", "refund*", "*refund", '"refund', 'refund"',
    "NEAR", "NEAR(refund parcel)", "AND", "refund AND", "OR NOT", "NOT refund", "(", ")", "^refund",
    "refund -parcel", "+", "{output}: refund", "\\", "%", "_", "  ", "l'été", "e-mail", "C++", "100%",
    "naïve café", "日本語", "a\x00b",
])
def test_user_text_never_raises(nb, text):
    _add(nb, {"topic": "refund"}, 'A "refund" NEAR the parcel AND 100% e-mail: C++ l\'été naïve café 日本語')
    count = count_records(nb, RecordFilter(text=text))
    assert count in (0, 1)
    assert len(record_page(nb, 0, 10, RecordFilter(text=text, order_by="output", descending=True))) == count
    search_records(nb, text, role=None)


def test_words_use_the_index_and_symbols_stay_exact_text(nb):
    a = _add(nb, {}, "ticket 7 about billing 100%")
    b = _add(nb, {}, "ticket 1000 about e-mail and C++")
    assert parse("billing").match == '"billing"*'
    assert parse('say "hi" AND NEAR').match == '"say"* "hi"* "AND"* "NEAR"*'
    assert parse('a"b').match == '"a""b"*'
    assert parse("100% C++").literals == ("100%", "C++") and not parse("100% C++").words
    assert parse("?!*").fallback == "?!*" and not parse("?!*").words
    assert _found(nb, "100%") == {a}  # exact text: 1000 is not 100%
    assert _found(nb, "100") == {a, b}  # a word: a prefix
    assert _found(nb, "0%") == {a}  # exact text inside a word, as the search always did
    assert _found(nb, "C++") == {b} and _found(nb, "e-mail") == {b} and _found(nb, "email") == set()
    assert _found(nb, "_") == set() and _found(nb, "%") == {a}  # punctuation only: exact text, not wildcards


def test_search_keeps_the_sort_order_options(nb):
    ids = [_add(nb, {}, f"{w} refund") for w in ("charlie", "alpha", "bravo")]
    _add(nb, {}, "no match")
    by_id = [r["id"] for r in record_page(nb, 0, 10, RecordFilter(text="refund"))]
    assert by_id == ids
    by_output = [r["output"] for r in record_page(nb, 0, 10, RecordFilter(text="refund", order_by="output",
                                                                           descending=True))]
    assert by_output == ["charlie refund", "bravo refund", "alpha refund"]
    assert [r["id"] for r in record_page(nb, 1, 1, RecordFilter(text="refund"))] == ids[1:2]
    assert [r["id"] for r in record_page(nb, 0, 10, RecordFilter(text="refund", descending=True))] == ids[::-1]
    nb.edit_record(ids[0], "status", "accepted")
    flt = RecordFilter(text="refund", status="new", order_by="prompt")
    assert count_records(nb, flt) == 2 and {r["id"] for r in record_page(nb, 0, 10, flt)} == set(ids[1:])


def test_records_cli_searches(nb, capsys):
    _add(nb, {"topic": "billing"}, "Where is my refund?")
    _add(nb, {}, "Login fails.")
    assert main(["records", str(nb.path), "--search", "refund", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["output"] for r in rows] == ["Where is my refund?"]
    assert main(["records", str(nb.path), "--search", 'NEAR("x" AND']) == 0
    assert "no records match" in capsys.readouterr().out


def test_view_has_every_score_as_a_column_and_the_verdict(nb):
    nb.add_prompt_version("ticket", "Ticket about {{ topic }}.")
    a = _add(nb, {}, "first")
    b = _add(nb, {}, "second")
    inp = nb.add_imported_rows([({"topic": "x"}, None)], origin="real", source="t")
    assert inp == (1, 0)
    save_scores(nb, [Score(a, "validator:json", "validator", 1.0, True), Score(b, "judge:polite", "judge", 0.25, False)],
                None)
    save_verdicts(nb, [(a, True, None, None), (b, False, "judge:polite", "0.25 vs threshold 0.5")])
    db = sqlite_utils.Database(nb.conn)
    view = db["records_with_scores"]
    cols = [c.name for c in view.columns]
    assert cols == ["id", "status", "origin", "prompt_name", "prompt_version", "output", "judge:polite",
                    "validator:json", "kept", "stage", "reason"]
    rows = {r["id"]: r for r in view.rows}
    assert set(rows) == {a, b}  # samples only, one row each
    assert rows[a]["validator:json"] == 1.0 and rows[a]["judge:polite"] is None and rows[a]["kept"] == 1
    assert rows[b]["judge:polite"] == 0.25 and rows[b]["kept"] == 0 and rows[b]["stage"] == "judge:polite"
    # a new score name, even one that clashes with a column, gets its column in the same save
    save_scores(nb, [Score(a, "score:steps", "scorer", 3.0, None), Score(b, "status", "scorer", 2.0, None)], None)
    cols = [c.name for c in db["records_with_scores"].columns]
    assert {"score:steps", "score:status", "status"} <= set(cols)
    assert {r["id"]: r["score:status"] for r in db["records_with_scores"].rows} == {a: None, b: 2.0}
    # any name is a column: quotes in it are quoted, not SQL
    odd = 'judge:it\'s "ok"; DROP VIEW x --'
    save_scores(nb, [Score(a, odd, "judge", 0.5, True)], None)
    assert {r["id"]: r[odd] for r in db["records_with_scores"].rows} == {a: 0.5, b: None}
    # saving known names again does not touch the view
    before = nb.conn.execute("SELECT sql FROM sqlite_master WHERE name = 'records_with_scores'").fetchone()[0]
    save_scores(nb, [Score(b, "validator:json", "validator", 0.0, False)], None)
    after = nb.conn.execute("SELECT sql FROM sqlite_master WHERE name = 'records_with_scores'").fetchone()[0]
    assert before == after


def test_sqlite_utils_reads_the_view_and_searches_from_the_file(tmp_path):
    path = tmp_path / "nb.db"
    with Notebook.create(path) as nb:
        rid = _add(nb, {"topic": "refund"}, "Money back, please.")
        save_scores(nb, [Score(rid, "judge:polite", "judge", 0.9, True)], None)
    db = sqlite_utils.Database(path)  # the real client, on the file
    assert "records_with_scores" in db.view_names()
    rows = list(db["records_with_scores"].rows)
    assert rows == [{"id": rid, "status": "new", "origin": "synthetic", "prompt_name": None, "prompt_version": None,
                     "output": "Money back, please.", "judge:polite": 0.9, "kept": None, "stage": None,
                     "reason": None}]
    assert db["records"].detect_fts() == "records_fts"
    assert [r["id"] for r in db["records"].search("refund")] == [rid]
    db.close()


def _fake_embed(nb):
    ids = [r["id"] for r in nb.records() if r["output"]]
    rng = np.random.default_rng(0)
    v = rng.normal(size=(len(ids), 8)).astype(np.float32)
    from app.store.embeddings import save_embeddings

    save_embeddings(nb, "fake-embedder", [(i, nb.record(i)["output"]) for i in ids], v / np.linalg.norm(v, axis=1,
                                                                                                         keepdims=True))


def test_every_reference_is_a_declared_foreign_key_and_the_pipeline_satisfies_them(nb, topics_csv, fake, tmp_path):
    from app.data.importer import import_file
    from app.export.versions import freeze
    from app.generate.runs import create_run, execute_run, prepare_run
    from app.map.projection import compute_map
    from app.quality.funnel import compute_funnel
    from app.quality.steps import NEAR_DUPLICATES, dedupe, score_heuristics, validate
    from app.quality.validators import load_rules
    from app.store.trust import set_label

    assert nb.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1  # the notebook enforces them
    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Ticket about {{ topic }}.")
    execute_run(nb, create_run(nb, prepare_run(nb, "ticket", limit_rows=8, samples=2), fake.info), fake)
    recs = nb.records()
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "long-enough"\ntype = "length"\nunit = "words"\nmin = 5\n')
    validate(nb, load_rules(rules), source=str(rules))
    score_heuristics(nb)
    nb.edit_record(recs[1]["id"], "output", recs[0]["output"])
    dedupe(nb, "exact")
    dedupe(nb, NEAR_DUPLICATES)
    _fake_embed(nb)
    m = compute_map(nb, method="pca")
    set_label(nb, recs[2]["id"], "polite", True)
    compute_funnel(nb)
    freeze(nb, "v1")
    assert nb.conn.execute("SELECT COUNT(*) FROM map_points WHERE map_id = ?", (m.map_id,)).fetchone()[0] == len(recs)
    assert nb.conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert nb.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    nb.conn.execute("INSERT INTO records_fts (records_fts, rank) VALUES ('integrity-check', 1)")
    # every column that names a row of another table is declared as a foreign key
    tables = [r[0] for r in nb.conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'records_fts%' AND name NOT LIKE '\\_%' "
        "ESCAPE '\\' AND name NOT LIKE 'sqlite%'")]
    not_references = {("duplicates", "group_id")}  # a group's number (its representative's id, which is a key)
    for t in tables:
        keyed = {fk[3] for fk in nb.conn.execute(f"PRAGMA foreign_key_list({t})")}
        for col in nb.conn.execute(f"PRAGMA table_info({t})"):
            name = col[1]
            if (name.endswith("_id") or name in ("reverts",)) and (t, name) not in not_references:
                assert name in keyed, f"{t}.{name} has no foreign key"


def _notebook_at_006(path, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(migrations, "MIGRATIONS", [x for x in migrations.MIGRATIONS if x[0] <= "006_versions"])
        nb = Notebook.create(path)
    assert nb.migrations()[-1] == "006_versions"
    return nb


def test_migration_007_upgrades_a_notebook_from_006(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    nb = _notebook_at_006(path, monkeypatch)
    assert nb.conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'records_fts'").fetchone()[0] == 0
    kept = _add(nb, {"topic": "harbour"}, "The ferry leaves at noon.")
    gone = _add(nb, {}, "A record that will be removed.")
    with nb.transaction() as c:
        c.execute("INSERT INTO maps (cache_key, embedder_sha256, method, params, labels, created_at) "
                  "VALUES ('k', 'e', 'pca', '{}', '{}', 'now')")
        c.execute("INSERT INTO map_points VALUES (1, ?, 0.5, 0.25, 0, 0.1, 0.2)", (kept,))
        c.execute("INSERT INTO map_points VALUES (1, ?, 1.0, 1.0, -1, 0.9, 0.8)", (gone,))
        c.execute("DELETE FROM records WHERE id = ?", (gone,))  # 006 had no key to stop this
    nb.close()

    with Notebook.open(path) as nb:
        assert nb.migrations()[-4:] == ["007_search_and_keys", "008_chain_index", "009_score_kinds", "010_real_samples"]
        assert _found(nb, "ferry") == {kept} and _found(nb, "harbour") == {kept}  # populated by the migration
        nb.conn.execute("INSERT INTO records_fts (records_fts, rank) VALUES ('integrity-check', 1)")
        points = nb.conn.execute("SELECT record_id, x, y, cluster, outlier, centroid_distance FROM map_points")
        assert [tuple(p) for p in points] == [(kept, 0.5, 0.25, 0, 0.1, 0.2)]  # the orphan point is dropped
        assert {fk[2] for fk in nb.conn.execute("PRAGMA foreign_key_list(map_points)")} == {"maps", "records"}
        assert nb.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert "records_with_scores" in sqlite_utils.Database(nb.conn).view_names()
        new = _add(nb, {}, "A ferry again.")
        assert _found(nb, "ferry") == {kept, new}


def test_migration_007_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    nb = _notebook_at_006(path, monkeypatch)
    _add(nb, {}, "some text")
    nb.close()

    def m007_then_fail(conn):
        migrations._m007_search_and_keys(conn)
        raise RuntimeError("power cut")

    monkeypatch.setattr(migrations, "MIGRATIONS", [x for x in migrations.MIGRATIONS if x[0] <= "006_versions"]
                        + [("007_search_and_keys", m007_then_fail)])
    with pytest.raises(RuntimeError, match="power cut"):
        Notebook.open(path)
    conn = sqlite3.connect(path)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "records_fts" not in names and "map_points_new" not in names and "records_ai" not in names
    assert "map_points" in names
    assert [r[0] for r in conn.execute("SELECT name FROM _migrations")][-1] == "006_versions"
    conn.close()
