"""The studio's preferences: one versioned file in the config folder that never stops a start."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from app.core import settings as settings_mod
from app.core.settings import (
    MAX_RECENT,
    SCHEMA_VERSION,
    GenerateDefaults,
    Settings,
    edit_settings,
    load_settings,
    settings_path,
)


def test_settings_live_under_synth_studio_home(studio_home: Path):
    assert settings_path() == studio_home / "config" / "settings.json"
    settings, warnings = load_settings()  # no file yet: the defaults, quietly, and nothing written
    assert settings == Settings() and warnings == []
    assert not settings_path().exists()


def test_platform_folders_without_the_override(monkeypatch, tmp_path):
    from app.core import paths

    monkeypatch.delenv("SYNTH_STUDIO_HOME")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    assert paths.config_dir() == tmp_path / "xdg-config" / "synth-studio"
    assert paths.data_dir() == tmp_path / "xdg-data" / "synth-studio"
    assert paths.cache_dir() == tmp_path / "xdg-cache" / "synth-studio"


def test_round_trip(tmp_path):
    nbs = [tmp_path / f"nb{i}.db" for i in range(MAX_RECENT + 2)]
    with edit_settings() as s:
        for p in nbs:
            s.remember_notebook(p)
        s.remember_notebook(nbs[3])  # opened again: moves to the front, not listed twice
        s.window_geometry = base64.b64encode(b"\x01\xd9\xd0\xcb geometry").decode()
        s.model_folders = [str(tmp_path / "models")]
        s.default_model = str(tmp_path / "models" / "m.gguf")
        s.compute_threads = 2
        s.generate = GenerateDefaults(samples=4, rows=0, temperature=0.3, max_tokens=256)
    on_disk = json.loads(settings_path().read_text())
    assert on_disk["schema_version"] == SCHEMA_VERSION
    loaded, warnings = load_settings()
    assert warnings == []
    assert loaded == s
    assert loaded.last_notebook == str(nbs[3].resolve())
    assert loaded.recent_notebooks[:2] == [str(nbs[3].resolve()), str(nbs[-1].resolve())]
    assert len(loaded.recent_notebooks) == MAX_RECENT
    assert loaded.generate.temperature == 0.3 and loaded.compute_threads == 2
    nbs[-1].touch()
    assert loaded.existing_recent() == [str(nbs[-1].resolve())]  # gone notebooks are not offered


def test_an_older_file_is_migrated_and_the_old_one_kept(monkeypatch):
    # Version 1 is the first layout; pretend version 2 renamed compute_threads to threads, as a
    # real upgrade would, and register the step the way a new version does.
    monkeypatch.setattr(settings_mod, "SCHEMA_VERSION", 2)
    monkeypatch.setattr(settings_mod, "MIGRATIONS", {})

    @settings_mod.migration(1)
    def _v1_to_v2(d):
        d["compute_threads"] = d.pop("threads", None)
        return d

    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    v1 = {"schema_version": 1, "threads": 3, "last_notebook": "/x/a.db", "recent_notebooks": ["/x/a.db"]}
    path.write_text(json.dumps(v1))
    loaded, warnings = load_settings()
    assert loaded.compute_threads == 3 and loaded.last_notebook == "/x/a.db"
    assert len(warnings) == 1 and "upgraded from version 1 to 2" in warnings[0]
    assert json.loads((path.parent / "settings.v1.json").read_text()) == v1  # the old file is kept
    assert json.loads(path.read_text())["schema_version"] == 2  # and the new one written once
    assert load_settings() == (loaded, [])


def test_a_version_with_no_migration_falls_back_to_defaults(monkeypatch):
    monkeypatch.setattr(settings_mod, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(settings_mod, "MIGRATIONS", {1: lambda d: d})  # 2 -> 3 missing
    settings_path().write_text(json.dumps({"schema_version": 1, "compute_threads": 5}))
    loaded, warnings = load_settings()
    assert loaded == Settings()
    assert "no migration from settings version 2" in warnings[0]


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"recent_notebooks": []}', '{"schema_version": 99}',
                                  "\udcff"], ids=["not-json", "not-an-object", "no-version", "newer", "not-utf8"])
def test_an_unreadable_file_falls_back_to_defaults_and_is_kept(text, caplog):
    path = settings_path()
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    original = path.read_bytes()
    loaded, warnings = load_settings()
    assert loaded == Settings()
    assert len(warnings) == 1 and "using the defaults" in warnings[0]
    assert warnings[0] in caplog.text  # logged as well as returned
    backups = list(path.parent.glob("settings.broken-*.json"))
    assert len(backups) == 1 and backups[0].read_bytes() == original
    assert f"kept as {backups[0].name}" in warnings[0]
    # the file was repaired, so the next start is quiet
    assert load_settings() == (Settings(), [])


def test_one_bad_value_falls_back_alone():
    path = settings_path()
    raw = {"schema_version": SCHEMA_VERSION, "last_notebook": "/x/a.db", "compute_threads": "many",
           "window_geometry": "not base64!", "generate": {"samples": 0, "max_tokens": 64, "temperature": 1},
           "added_by_a_newer_version": True}
    path.write_text(json.dumps(raw))
    loaded, warnings = load_settings()
    assert loaded.last_notebook == "/x/a.db" and loaded.generate.max_tokens == 64
    assert loaded.generate.temperature == 1.0 and isinstance(loaded.generate.temperature, float)
    assert loaded.compute_threads is None and loaded.window_geometry is None and loaded.generate.samples == 2
    assert any("compute_threads should be a whole number" in w for w in warnings)
    assert any("generate.samples" in w for w in warnings)
    assert any("window_geometry" in w for w in warnings)
    assert len(list(path.parent.glob("settings.broken-*.json"))) == 1
    assert "added_by_a_newer_version" not in json.loads(path.read_text())


def test_an_unwritable_folder_still_gives_settings(tmp_path):
    # a folder where the file should be: unreadable and unwritable, yet no exception
    folder = tmp_path / "settings.json"
    folder.mkdir()
    loaded, warnings = load_settings(folder)
    assert loaded == Settings()
    assert "could not be copied" in warnings[0] and "could not write" in warnings[-1]


def test_the_generate_bar_starts_from_the_settings(qtbot, tmp_path):
    with edit_settings() as s:
        s.generate = GenerateDefaults(samples=7, rows=3, temperature=0.2, max_tokens=300)
    from widgets.generate_bar import GenerateBar

    bar = GenerateBar(tmp_path / "nb.db", ["p"])
    qtbot.addWidget(bar)
    assert (bar.samples.value(), bar.rows.value(), bar.max_tokens.value()) == (7, 3, 300)
    assert bar.temperature == 0.2
