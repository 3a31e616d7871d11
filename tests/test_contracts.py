"""The layers hold, and the import-linter contracts that keep them would catch a breach."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

CONTRACTS = ("The core (app, backends) never imports Qt or widgets",
             "Layers: window and CLI > jobs > stages (in pipeline order) > store and backends > core")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    lint = REPO / ".venv" / "bin" / "lint-imports"
    exe = str(lint) if lint.exists() else "lint-imports"
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([exe, "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def copy_of_the_code(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for pkg in ("app", "backends", "widgets"):
        shutil.copytree(REPO / pkg, root / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_every_contract_is_kept():
    proc = lint_imports(REPO)
    out = " ".join((proc.stdout + proc.stderr).split())  # the report wraps long names
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in CONTRACTS:
        assert f"{name} KEPT" in out


@pytest.mark.parametrize("module, planted, contract", [
    ("backends/planted.py", "import app.quality.judge\n", CONTRACTS[1]),  # backends reach above app.core
    ("app/store/planted.py", "from app.generate import runs\n", CONTRACTS[1]),  # the store calls a stage
    ("app/generate/planted.py", "from app.quality import funnel\n", CONTRACTS[1]),  # a stage uses a later one
    ("app/core/planted.py", "import app.store.notebook\n", CONTRACTS[1]),  # the core depends on the store
    ("app/map/planted.py", "import PySide6.QtCore\n", CONTRACTS[0]),  # Qt in the headless core
])
def test_a_planted_breach_breaks_its_contract(tmp_path, module, planted, contract):
    root = copy_of_the_code(tmp_path)
    (root / module).write_text(planted, encoding="utf-8")
    proc = lint_imports(root)
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0, out
    assert f"{contract} BROKEN" in out
