"""Preferences (Edit > Preferences…): what belongs to the person rather than to a notebook.

Compute threads, the default model, the data folder, the theme and what a new generation
starts from, all kept in ``app.core.settings`` (one versioned file). A notebook's own model
choice still wins where it sets one; these fill in what it leaves open
(``app.generate.model_choice.with_preferences``).
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import StudioError
from app.core.paths import data_dir
from app.core.settings import THEMES, GenerateDefaults, edit_settings, load_settings
from app.generate.model_choice import BUNDLED_MODEL_NAME
from widgets.theme import apply_theme, set_tone


def cores() -> int:
    """The cores this process may use: the most compute threads worth asking for."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class PreferencesDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        s = load_settings()[0]
        n = cores()
        self.threads = QSpinBox(minimum=0, maximum=n, value=min(s.compute_threads or 0, n))
        self.threads.setSpecialValueText(f"every core ({n})")
        self.threads.setToolTip("Threads for models, embeddings and maps. llama.cpp's threads spin-wait, so more "
                                "threads than cores only slows things down; fewer leave cores for other work.")
        self.default_model = QLineEdit(s.default_model or "")
        self.default_model.setPlaceholderText(BUNDLED_MODEL_NAME)
        self.default_model.setToolTip("The GGUF a notebook uses when it has not chosen one (Models…)")
        self.data_folder = QLineEdit(s.data_folder or "")
        self.data_folder.setPlaceholderText(str(data_dir()))
        self.data_folder.setToolTip("Where new notebooks and the sample notebook go")
        self.theme = QComboBox()
        self.theme.addItems(THEMES)
        self.theme.setCurrentText(s.theme)
        g = s.generate
        self.samples = QSpinBox(minimum=1, maximum=100, value=g.samples)
        self.rows = QSpinBox(minimum=0, maximum=1_000_000, value=g.rows)
        self.rows.setSpecialValueText("all")
        self.temperature = QDoubleSpinBox(minimum=0.0, maximum=5.0, singleStep=0.05, decimals=2, value=g.temperature)
        self.max_tokens = QSpinBox(minimum=1, maximum=8192, singleStep=32, value=g.max_tokens)
        self.message = QLabel()
        self.message.setWordWrap(True)
        set_tone(self.message, "error")

        form = QFormLayout()
        form.addRow("Compute threads", self.threads)
        form.addRow("Default model", _with_button(self.default_model, "Choose…", self._on_choose_model))
        form.addRow("Data folder", _with_button(self.data_folder, "Choose…", self._on_choose_folder))
        form.addRow("Theme", self.theme)
        generate = QGroupBox("A new generation starts with")
        gform = QFormLayout(generate)
        gform.addRow("Samples per row", self.samples)
        gform.addRow("Rows", self.rows)
        gform.addRow("Temperature", self.temperature)
        gform.addRow("Max tokens", self.max_tokens)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(generate)
        lay.addWidget(self.message)
        lay.addWidget(buttons)

    def _on_choose_model(self) -> None:
        start = self.default_model.text() or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Default model", start, "GGUF (*.gguf);;All files (*)")
        if path:
            self.default_model.setText(path)

    def _on_choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Data folder", self.data_folder.text() or str(data_dir()))
        if folder:
            self.data_folder.setText(folder)

    def save(self) -> bool:
        """Check and keep the preferences; on a problem say it and keep nothing."""
        model = self.default_model.text().strip() or None
        folder = self.data_folder.text().strip() or None
        try:
            if model is not None:
                from backends.gguf_info import check_gguf_path

                model = str(check_gguf_path(model))
            if folder is not None:
                path = Path(folder).expanduser()
                try:
                    path.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StudioError(f"the data folder {path} cannot be made: {exc.strerror or exc}") from None
                folder = str(path)
        except StudioError as exc:
            self.message.setText(str(exc))
            return False
        with edit_settings() as s:
            theme_changed = s.theme != self.theme.currentText()
            s.compute_threads = self.threads.value() or None
            s.default_model = model
            s.data_folder = folder
            s.theme = self.theme.currentText()
            s.generate = GenerateDefaults(samples=self.samples.value(), rows=self.rows.value(),
                                          temperature=float(self.temperature.value()),
                                          max_tokens=self.max_tokens.value())
        app = QApplication.instance()
        if theme_changed and isinstance(app, QApplication):
            apply_theme(app, self.theme.currentText())
        return True

    def accept(self) -> None:
        if self.save():
            super().accept()


def _with_button(edit: QLineEdit, text: str, slot) -> QWidget:
    row = QWidget()
    lay = QHBoxLayout(row)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(edit, 1)
    button = QPushButton(text)
    button.clicked.connect(slot)
    lay.addWidget(button)
    return row
