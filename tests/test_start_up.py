"""The window and the CLI start fast: heavy libraries load when a job needs them, not at start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("pandas", "scipy", "sklearn", "umap", "hdbscan", "llama_cpp", "sqlite_utils", "pyarrow", "datasets")


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("code", [
    "import widgets.main_window",
    "from app.cli.main import main",
])
def test_start_up_loads_no_heavy_library(code):
    assert loaded_after(code) & set(HEAVY) == set()


def test_the_windows_entry_point_loads_no_heavy_library(tmp_path):
    """run_gui as `synth-studio gui NB` calls it, up to the window shown (the sample notebook's
    module, which imports files, is on its path)."""
    from app.data.demo import create_sample_notebook

    book = tmp_path / "sample.db"
    create_sample_notebook(book).close()
    code = ("from PySide6.QtCore import QTimer\nfrom PySide6.QtWidgets import QApplication\n"
            "from widgets.main_window import run_gui\napp = QApplication([])\n"
            "QTimer.singleShot(0, app.quit)\n"
            f"run_gui({str(book)!r})")
    assert loaded_after(code) & set(HEAVY) == set()


def test_opening_a_notebook_window_loads_no_heavy_library(tmp_path, monkeypatch):
    from app.data.demo import create_sample_notebook

    book = tmp_path / "sample.db"
    create_sample_notebook(book).close()
    code = ("from PySide6.QtWidgets import QApplication\nfrom app.store.notebook import Notebook\n"
            "from widgets.main_window import MainWindow\napp = QApplication([])\n"
            f"win = MainWindow(Notebook.open({str(book)!r}))\nwin.show()\napp.processEvents()")
    assert loaded_after(code) & set(HEAVY) == set()
