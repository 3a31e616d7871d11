import json
import sqlite3

import pytest

from app.core.errors import NotebookError, StudioError
from app.store.migrations import MIGRATIONS
from app.store.notebook import Notebook


def test_new_notebook_records_its_migrations(nb):
    assert nb.migrations() == [name for name, _ in MIGRATIONS]
    assert nb.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_applies_nothing_twice(tmp_path):
    path = tmp_path / "a.db"
    Notebook.create(path).close()
    with Notebook.open(path) as nb:
        assert nb.migrations() == [name for name, _ in MIGRATIONS]
        assert nb.conn.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0] == len(MIGRATIONS)


def test_notebook_from_a_newer_studio_is_refused(tmp_path):
    path = tmp_path / "a.db"
    with Notebook.create(path) as nb:
        nb.conn.execute("INSERT INTO _migrations VALUES ('999_from_the_future', 'x')")
    with pytest.raises(NotebookError, match="newer Synth Studio"):
        Notebook.open(path)


def test_a_migration_that_fails_leaves_nothing_behind(tmp_path, monkeypatch):
    from app.store import migrations

    def broken(conn):
        conn.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("boom")

    path = tmp_path / "a.db"
    Notebook.create(path).close()
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS + [("002_broken", broken)])
    with pytest.raises(RuntimeError):
        Notebook.open(path)
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "half_done" not in tables
    assert [r[0] for r in conn.execute("SELECT name FROM _migrations")] == [n for n, _ in MIGRATIONS]


def test_files_that_are_not_notebooks_get_clear_errors(tmp_path):
    text = tmp_path / "notes.db"
    text.write_text("hello, I am a text file")
    with pytest.raises(NotebookError, match="not an SQLite database"):
        Notebook.open(text)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)")
    with pytest.raises(NotebookError, match="not a Synth Studio notebook"):
        Notebook.open(other)
    with pytest.raises(NotebookError, match="no such notebook"):
        Notebook.open(tmp_path / "missing.db")
    with pytest.raises(NotebookError, match="already exists"):
        Notebook.create(text)
    assert text.read_text() == "hello, I am a text file"


def test_prompt_versions_chain_to_their_parent(nb):
    v1, created1 = nb.add_prompt_version("p", "Hello {{ name }}")
    same, created_same = nb.add_prompt_version("p", "Hello {{ name }}")
    v2, created2 = nb.add_prompt_version("p", "Hi {{ name }}!")
    assert (created1, created_same, created2) == (True, False, True)
    assert same.id == v1.id
    assert (v1.version, v2.version) == (1, 2)
    assert v2.parent_id == v1.id and v1.parent_id is None
    assert nb.prompt_version("p").id == v2.id
    assert nb.prompt_version("p", 1).template == "Hello {{ name }}"
    with pytest.raises(StudioError, match="no prompt named 'q'.*prompts here: p"):
        nb.prompt_version("q")


def _one_record(nb):
    nb.add_imported_rows([({"topic": "billing"}, "original text")], origin="synthetic", source="t")
    return nb.records()[0]["id"]


def test_edits_go_through_history_and_mark_origin(nb):
    rid = _one_record(nb)
    e = nb.edit_record(rid, "output", "fixed text", author="ana")
    rec = nb.record(rid)
    assert rec["output"] == "fixed text"
    assert rec["origin"] == "human-edited"
    hist = nb.history(rid)
    assert [(h.field, h.old, h.new, h.author) for h in hist] == [
        ("output", "original text", "fixed text", "ana"),
        ("origin", "synthetic", "human-edited", "ana"),
    ]
    assert e.id == hist[0].id


def test_reverting_every_text_edit_restores_the_original_origin(nb):
    rid = _one_record(nb)
    e1 = nb.edit_record(rid, "output", "v2")
    e2 = nb.edit_record(rid, "output", "v3")
    nb.revert_edit(e2.id)
    assert nb.record(rid)["output"] == "v2"
    assert nb.record(rid)["origin"] == "human-edited"
    nb.revert_edit(e1.id)
    rec = nb.record(rid)
    assert rec["output"] == "original text"
    assert rec["origin"] == "synthetic"
    # history is append-only: 2 edits, 2 reverts, 2 origin changes
    fields = [h.field for h in nb.history(rid)]
    assert fields.count("output") == 4 and fields.count("origin") == 2
    assert nb.history(rid)[-2].reverts == e1.id or nb.history(rid)[-1].reverts == e1.id


def test_status_edits_are_validated_and_do_not_touch_origin(nb):
    rid = _one_record(nb)
    nb.edit_record(rid, "status", "accepted")
    assert nb.record(rid)["status"] == "accepted"
    assert nb.record(rid)["origin"] == "synthetic"
    with pytest.raises(StudioError, match="status must be one of"):
        nb.edit_record(rid, "status", "great")
    with pytest.raises(StudioError, match="cannot edit 'prompt'"):
        nb.edit_record(rid, "prompt", "x")
    assert nb.record(rid)["status"] == "accepted"


def test_an_edit_that_changes_nothing_is_not_recorded(nb):
    rid = _one_record(nb)
    assert nb.edit_record(rid, "output", "original text") is None
    assert nb.history(rid) == []


def test_variables_edit_must_be_a_json_object(nb):
    rid = _one_record(nb)
    nb.edit_record(rid, "variables", '{"topic": "refunds"}')
    assert nb.record(rid)["variables"] == {"topic": "refunds"}
    with pytest.raises(StudioError, match="JSON object"):
        nb.edit_record(rid, "variables", "[1, 2]")
    assert json.loads(nb.history(rid)[0].old) == {"topic": "billing"}


def test_a_reader_connection_sees_committed_records_while_the_writer_is_open(nb):
    _one_record(nb)
    reader = nb.reader()
    assert reader.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 1
    reader.close()
