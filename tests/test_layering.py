"""The core stays headless: app/ and backends/ never import Qt or widgets; widgets never run SQL."""

import ast
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
        "import app.generate.runs, app.export.formats, app.data.importer, backends.llama_cpp_backend\n"
        "assert not any(m.startswith('PySide6.') for m in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # and the window says clearly that it needs Qt
    gui = "import sys; sys.modules['PySide6'] = None\nfrom widgets.launcher import main\nsys.exit(main([]))"
    proc = subprocess.run([sys.executable, "-c", gui], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "needs PySide6" in proc.stderr


# A widget reads and writes through app/ (app.store.queries and the notebook's methods): a
# cursor call, or a connection or transaction taken from a notebook, means SQL in the window.
SQL_CALLS = {"execute", "executemany", "executescript"}
CONNECTION_ATTRS = {"conn", "transaction"}


def sql_in_source(source: str, filename: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS:
            found.append(f"{filename}:{node.lineno} calls .{node.func.attr}()")
        elif isinstance(node, ast.Attribute) and node.attr in CONNECTION_ATTRS:
            found.append(f"{filename}:{node.lineno} uses .{node.attr}")
    return found


def test_no_widget_runs_sql():
    found = [hit for path in sorted((REPO / "widgets").rglob("*.py"))
             for hit in sql_in_source(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))]
    assert found == [], "move these queries into app/store/queries.py:\n" + "\n".join(found)


def test_the_sql_check_catches_what_widgets_used_to_do():
    # three shapes the widgets had before their queries moved to app/store/queries.py
    assert sql_in_source('total = self.nb.conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]', "a.py") == [
        "a.py:1 calls .execute()", "a.py:1 uses .conn"]
    assert sql_in_source("c = nb.conn\nrows = c.executemany(sql, params)", "b.py") == [
        "b.py:1 uses .conn", "b.py:2 calls .executemany()"]
    assert sql_in_source("with nb.transaction() as c:\n    pass", "c.py") == ["c.py:1 uses .transaction"]
    assert sql_in_source("names = score_names(self.nb)\nself.nb.record(3)", "ok.py") == []
