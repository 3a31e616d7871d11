"""Preferences: the dialog keeps them in the settings, and the generate bar, jobs and new notebooks follow."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.settings import GenerateDefaults, edit_settings, load_settings
from tests.test_models_discovery import write_gguf


def test_the_dialog_saves_every_preference(qtbot, tmp_path, monkeypatch):
    import widgets.preferences
    from widgets.preferences import PreferencesDialog

    themes: list[str] = []
    monkeypatch.setattr(widgets.preferences, "apply_theme", lambda app, name: themes.append(name))
    model = write_gguf(tmp_path / "default.gguf")
    dialog = PreferencesDialog()
    qtbot.addWidget(dialog)
    assert dialog.threads.value() == 0 and dialog.threads.text().startswith("every core")
    dialog.threads.setValue(1)
    dialog.default_model.setText(str(model))
    dialog.data_folder.setText(str(tmp_path / "notebooks"))
    dialog.theme.setCurrentText("dark")
    dialog.samples.setValue(4)
    dialog.rows.setValue(0)
    dialog.temperature.setValue(0.35)
    dialog.max_tokens.setValue(300)
    dialog.accept()
    assert dialog.result() == dialog.DialogCode.Accepted
    s, warnings = load_settings()
    assert warnings == []
    assert (s.compute_threads, s.default_model, s.data_folder, s.theme) == \
        (1, str(model), str(tmp_path / "notebooks"), "dark")
    assert s.generate == GenerateDefaults(samples=4, rows=0, temperature=0.35, max_tokens=300)
    assert (tmp_path / "notebooks").is_dir() and themes == ["dark"]

    again = PreferencesDialog()  # opens with what was saved; 0 threads means every core again
    qtbot.addWidget(again)
    assert (again.threads.value(), again.default_model.text(), again.theme.currentText()) == (1, str(model), "dark")
    again.threads.setValue(0)
    again.accept()
    assert load_settings()[0].compute_threads is None and themes == ["dark"]  # the theme did not change


def test_a_bad_default_model_is_refused_and_nothing_is_saved(qtbot, tmp_path):
    from widgets.preferences import PreferencesDialog

    (tmp_path / "notes.txt").write_text("not a model")
    dialog = PreferencesDialog()
    qtbot.addWidget(dialog)
    dialog.default_model.setText(str(tmp_path / "notes.txt"))
    dialog.samples.setValue(9)
    dialog.accept()
    assert dialog.result() != dialog.DialogCode.Accepted and "not a GGUF" in dialog.message.text()
    assert load_settings()[0].generate.samples == GenerateDefaults().samples


def test_the_generate_bar_starts_from_the_preferences_and_follows_a_change(qtbot, nb, tmp_path, monkeypatch):
    from app.generate.model_choice import ModelChoice
    from widgets.main_window import MainWindow
    from widgets.preferences import PreferencesDialog

    default = write_gguf(tmp_path / "house-model.gguf")
    with edit_settings() as s:
        s.compute_threads, s.default_model = 2, str(default)
        s.generate = GenerateDefaults(samples=3, rows=7, temperature=0.4, max_tokens=64)
    win = MainWindow(nb)
    qtbot.addWidget(win)
    bar = win.generate_bar
    assert (bar.samples.value(), bar.rows.value(), bar.temperature, bar.max_tokens.value()) == (3, 7, 0.4, 64)
    assert (bar.threads, bar.model_path, bar.model_button.text()) == (2, str(default), "house-model.gguf")
    bar.apply_choice(ModelChoice(threads=1))  # a notebook's own threads win; its open model slot does not
    assert (bar.threads, bar.model_path) == (1, str(default))
    bar.apply_choice(ModelChoice())

    def change(dialog: PreferencesDialog) -> int:  # what a person does in Edit > Preferences…
        dialog.threads.setValue(1)
        dialog.default_model.clear()
        dialog.samples.setValue(5)
        return int(dialog.save())

    monkeypatch.setattr(PreferencesDialog, "exec", change)
    (action,) = [a for menu in win.menuBar().actions() if menu.menu() for a in menu.menu().actions()
                 if a.text() == "&Preferences…"]
    action.trigger()
    assert (bar.threads, bar.model_path, bar.model_button.text()) == (1, None, "SmolLM2-135M-Instruct (bundled)")
    assert bar.samples.value() == 5


def test_new_notebooks_and_the_sample_go_to_the_data_folder(tmp_path):
    from app.data.demo import open_sample_notebook

    folder = tmp_path / "my notebooks"
    with edit_settings() as s:
        s.data_folder = str(folder)
    with open_sample_notebook() as nb:
        assert Path(nb.path).parent == folder and nb.get_meta("title")
    assert load_settings()[0].notebooks_folder() == folder


@pytest.mark.parametrize("bad", [{"theme": "purple"}, {"data_folder": 3}])
def test_a_bad_new_preference_falls_back_alone(bad):
    import json

    from app.core.settings import SCHEMA_VERSION, settings_path

    settings_path().parent.mkdir(parents=True, exist_ok=True)
    settings_path().write_text(json.dumps({"schema_version": SCHEMA_VERSION, "compute_threads": 2, **bad}))
    s, warnings = load_settings()
    assert s.compute_threads == 2 and (s.theme, s.data_folder) == ("system", None)
    assert len(warnings) == 2 and list(bad)[0] in warnings[0]
