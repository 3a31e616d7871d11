"""``python -m widgets.theme_preview dark docs/dark-theme.png``: the window in a theme, on the sample notebook.

No model is needed: the deterministic fake backend writes the samples, a few are accepted,
rejected, flagged or edited by hand (the table's coloured columns), and the lineage panel
shows a record's history. tests/test_desktop_habits.py renders the same window in both
palettes and checks its contrast; this makes the picture for the docs (run it under
``QT_QPA_PLATFORM=offscreen`` or xvfb-run).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from PySide6.QtWidgets import QApplication

from widgets.main_window import MainWindow
from widgets.theme import apply_theme


def sample_window(folder: Path) -> MainWindow:
    """A main window on a fresh sample notebook in ``folder`` with generated, reviewed and edited records."""
    from app.core.tasks import TaskState
    from app.data.demo import create_sample_notebook
    from app.generate.runs import create_run, execute_run, prepare_run
    from app.jobs import quality_job
    from backends.fake import FakeGenerator

    nb = create_sample_notebook(folder / "sample.db")
    fake = FakeGenerator()
    execute_run(nb, create_run(nb, prepare_run(nb, "support-ticket", samples=2, limit_rows=8, seed=1), fake.info),
                fake)
    records = nb.records()
    for r, status in zip(records[:6], ("accepted", "rejected", "flagged", "accepted", "rejected", "accepted")):
        nb.edit_record(r["id"], "status", status)
    nb.edit_record(records[1]["id"], "output", records[1]["output"].split(".")[0] + ". Please call me back today.")
    quality_job(nb.path, "validate", task=TaskState())
    win = MainWindow(nb)
    win.resize(1400, 860)
    win.tabs.setCurrentWidget(win.records_page)
    win.table.selectRow(1)  # the hand-edited record: its history shows the change
    return win


def render(theme: str, out: Path, folder: Path | None = None) -> MainWindow:
    """Apply ``theme``, show the sample window and save a screenshot of it to ``out``."""
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        app = QApplication(sys.argv)
    apply_theme(app, theme)
    win = sample_window(folder or Path(tempfile.mkdtemp(prefix="synth-theme-")))
    win.show()
    for _ in range(5):
        app.processEvents()
    out.parent.mkdir(parents=True, exist_ok=True)
    win.grab().save(str(out))
    return win


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("light", "dark", "system"):
        print("usage: python -m widgets.theme_preview light|dark|system OUT.png", file=sys.stderr)
        return 2
    os.environ.setdefault("SYNTH_STUDIO_HOME", tempfile.mkdtemp(prefix="synth-theme-home-"))
    win = render(args[0], Path(args[1]))
    win.close()
    print(f"saved {args[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
