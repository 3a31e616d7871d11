"""File > New from a starter: pick a task (Q&A pairs, support tickets, classification examples,
chat turns) and a file; ``app.cells.create_starter_notebook`` makes the notebook with its data,
prompt, criteria and cells, ready for Run all. This dialog only collects the choice."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.cells import STARTERS, create_starter_notebook
from app.core.errors import StudioError
from widgets.theme import set_tone


def free_path(folder: Path, stem: str) -> Path:
    """``folder/stem.db``, or ``stem-2.db`` and so on when that file exists."""
    path, n = folder / f"{stem}.db", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.db"
    return path


class StarterWizard(QDialog):
    """Choose a starter task and where its notebook goes; ``created`` is the new notebook's path."""

    def __init__(self, folder: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New notebook from a starter")
        self.folder = folder
        self.created: Path | None = None
        intro = QLabel("<b>What do you want to make?</b> Each starter brings a small table of rows, a prompt, "
                       "a judge criterion and the notebook's cells, so <b>Run all</b> makes a first dataset "
                       "you can look at, then change.")
        intro.setWordWrap(True)
        self.tasks = QListWidget()
        for s in STARTERS:
            item = QListWidgetItem(f"{s.title}\n{s.blurb}")
            item.setData(Qt.ItemDataRole.UserRole, s.key)
            item.setToolTip(s.blurb)
            self.tasks.addItem(item)
        self.tasks.setWordWrap(True)
        self.tasks.setSpacing(4)
        self.tasks.currentRowChanged.connect(self._on_task)
        self.path = QLineEdit()
        pick = QToolButton()
        pick.setText("…")
        pick.setToolTip("Choose where the notebook file goes")
        pick.clicked.connect(self._pick)
        where = QHBoxLayout()
        where.addWidget(QLabel("Notebook file:"))
        where.addWidget(self.path, 1)
        where.addWidget(pick)
        self.error = QLabel()
        self.error.setWordWrap(True)
        set_tone(self.error, "error")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.create_button = buttons.addButton("Create notebook", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.create_notebook)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addWidget(self.tasks, 1)
        lay.addLayout(where)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        self.resize(640, 480)
        self.tasks.setCurrentRow(0)

    @property
    def key(self) -> str:
        item = self.tasks.currentItem()
        return str(item.data(Qt.ItemDataRole.UserRole)) if item is not None else STARTERS[0].key

    def _on_task(self, _row: int) -> None:
        current = Path(self.path.text()) if self.path.text() else None
        if current is None or current.parent == self.folder:  # follow the task unless the person chose a place
            self.path.setText(str(free_path(self.folder, self.key)))
        self.error.clear()

    def _pick(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Notebook file", self.path.text(), "Notebooks (*.db)")
        if path:
            self.path.setText(path if path.endswith(".db") else path + ".db")

    def create_notebook(self) -> None:
        """Make the notebook; a bad place or an existing file is said here and nothing is written."""
        text = self.path.text().strip()
        if not text:
            self.error.setText("Choose a file for the notebook.")
            return
        try:
            Path(text).parent.mkdir(parents=True, exist_ok=True)
            create_starter_notebook(text, self.key).close()
        except (StudioError, OSError) as exc:
            self.error.setText(str(exc))
            return
        self.created = Path(text)
        self.accept()
