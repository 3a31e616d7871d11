"""The core stays headless: app/ and backends/ never import Qt or widgets."""

import subprocess
import sys

from tests.conftest import REPO


def test_import_linter_contract_holds():
    lint = REPO / ".venv" / "bin" / "lint-imports"
    exe = str(lint) if lint.exists() else "lint-imports"
    proc = subprocess.run([exe, "--config", str(REPO / "pyproject.toml")], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "KEPT" in proc.stdout


def test_cli_runs_with_qt_unavailable(tmp_path):
    # Block PySide6 entirely, as on a machine without it, and drive the CLI.
    code = (
        "import sys; sys.modules['PySide6'] = None\n"
        "from widgets.launcher import main\n"
        f"assert main(['new', {str(tmp_path / 'nb.db')!r}]) == 0\n"
        f"assert main(['prompt', 'list', {str(tmp_path / 'nb.db')!r}]) == 0\n"
        "import app.pipeline.generate, app.export, app.importer, backends.llama_cpp_backend\n"
        "assert not any(m.startswith('PySide6.') for m in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # and the window says clearly that it needs Qt
    gui = "import sys; sys.modules['PySide6'] = None\nfrom widgets.launcher import main\nsys.exit(main([]))"
    proc = subprocess.run([sys.executable, "-c", gui], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "needs PySide6" in proc.stderr
