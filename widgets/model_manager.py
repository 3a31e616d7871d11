"""The model manager: GGUF files found on this machine, their metadata, and the notebook's default."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from app.core.credentials import has_credentials, store_api_key, stored_api_key
from app.core.errors import StudioError
from app.generate.model_choice import (
    ModelChoice,
    ModelEntry,
    find_models,
    is_server_url,
    notebook_model,
    remember_model_place,
    set_notebook_model,
    with_preferences,
)
from app.store.notebook import Notebook

COLUMNS = ("name", "architecture", "parameters", "quantisation", "context", "chat template", "size", "found in", "path")


def _params(n: int) -> str:
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


class ModelManager(QDialog):
    def __init__(self, nb: Notebook, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.resize(1100, 420)
        self.nb = nb
        self.entries: list[ModelEntry] = []
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.itemSelectionChanged.connect(self._on_selection_changed)
        choice = notebook_model(nb)
        self.n_ctx = QSpinBox(minimum=128, maximum=1_048_576, value=choice.n_ctx, singleStep=512)
        self.threads = QSpinBox(minimum=0, maximum=512, value=choice.threads or 0)
        self.threads.setSpecialValueText("as in Preferences")  # app.generate.model_choice.with_preferences
        self.gpu_layers = QSpinBox(minimum=0, maximum=1000, value=choice.n_gpu_layers)
        self.parallel = QSpinBox(minimum=0, maximum=256, value=choice.parallel or 0)
        self.parallel.setSpecialValueText("automatic")
        self.parallel.setToolTip("Sequences decoded together in one batch (automatic: as many as fit 2 GiB of KV cache,"
                                 " at most 32)")
        self.server = QLineEdit(choice.path if choice.is_server else "")
        self.server.setPlaceholderText("http://gpu-box:8080/v1  (llama-server, vLLM, llama_cpp.server; #name picks a model)")
        use_server = QPushButton("Use this server")
        use_server.clicked.connect(self.use_server)
        server_row = QHBoxLayout()
        server_row.addWidget(self.server, 1)
        server_row.addWidget(use_server)
        # the key goes to the OS keyring (or this session's memory), never into the notebook or settings
        self.api_key = QLineEdit()
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        has_key = choice.is_server and stored_api_key(str(choice.path)) is not None
        self.api_key.setPlaceholderText("a key is stored for this server" if has_key else
                                        "only if the server asks for one (else $SYNTH_STUDIO_API_KEY, $OPENAI_API_KEY)")
        self.message = QLabel()
        add = QPushButton("Add file or folder…")
        add_menu = QMenu(add)
        add_menu.addAction("A GGUF file…", lambda: self._on_add(folder=False))
        add_menu.addAction("A folder of GGUF files…", lambda: self._on_add(folder=True))
        add.setMenu(add_menu)
        form = QFormLayout()
        form.addRow("Context (n_ctx)", self.n_ctx)
        form.addRow("Threads", self.threads)
        form.addRow("GPU layers", self.gpu_layers)
        form.addRow("Parallel sequences", self.parallel)
        form.addRow("Or a server (OpenAI API)", server_row)
        form.addRow("Server API key", self.api_key)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.use_button = buttons.addButton("Use for this notebook", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.use_selected)
        buttons.rejected.connect(self.reject)
        top = QHBoxLayout()
        top.addWidget(QLabel("GGUF models found on this machine (bundled, Hugging Face cache, LM Studio, Ollama, "
                             "llama.cpp cache, what you added):"), 1)
        top.addWidget(add)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        lay.addLayout(form)
        lay.addWidget(self.message)
        lay.addWidget(buttons)
        self.populate(find_models())

    def populate(self, entries: list[ModelEntry]) -> None:
        self.entries = entries
        self.table.setRowCount(len(entries))
        current = with_preferences(notebook_model(self.nb)).path
        for row, e in enumerate(entries):
            i = e.info
            cells = (
                [e.display_name, i.architecture, _params(i.parameter_count), i.file_type, str(i.context_length or "?"),
                 "yes" if i.has_chat_template else "no", f"{i.size_bytes / 2**20:.0f} MiB", e.source, e.path]
                if i is not None else [Path(e.path).name, "unreadable", "", "", "", "", "", e.source, e.error or ""]
            )
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(text))
            if (current is None and e.source == "bundled") or current == e.path:
                self.table.selectRow(row)
        self.table.resizeColumnsToContents()

    def _on_add(self, folder: bool) -> None:
        """Add a GGUF file or a folder of them; it is searched again on every start (the settings keep it)."""
        if folder:
            path = QFileDialog.getExistingDirectory(self, "Add a folder of GGUF models", str(Path.home()))
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Add a GGUF model", str(Path.home()), "GGUF (*.gguf)")
        if path:
            remember_model_place(path)
            self.populate(find_models())

    def _on_selection_changed(self) -> None:
        entry = self.selected()
        warning = entry.warning if entry is not None else None
        self.message.setText(f"⚠ {warning}" if warning else "")

    def selected(self) -> ModelEntry | None:
        rows = self.table.selectionModel().selectedRows()
        return self.entries[rows[0].row()] if rows else None

    def use_server(self) -> None:
        url = self.server.text().strip()
        if not is_server_url(url):
            self.message.setText("a server URL starts with http:// or https://, e.g. http://127.0.0.1:8080/v1")
            return
        if has_credentials(url):
            self.message.setText("put the password in the API key field, not in the URL (the URL is saved in the notebook)")
            return
        if self.api_key.text().strip():
            store_api_key(url, self.api_key.text())  # the OS keyring, else only this session's memory
            self.api_key.clear()
        set_notebook_model(self.nb, ModelChoice(path=url, n_ctx=self.n_ctx.value()))
        self.accept()

    def use_selected(self) -> None:
        entry = self.selected()
        if entry is None or entry.info is None:
            self.message.setText("choose a readable model first" if entry is None else entry.error or "unreadable")
            return
        # the bundled model is stored as "none chosen" unless the Preferences name another default
        bundled = entry.source == "bundled" and with_preferences(ModelChoice()).path is None
        choice = ModelChoice(path=None if bundled else entry.path, n_ctx=self.n_ctx.value(),
                             threads=self.threads.value() or None, n_gpu_layers=self.gpu_layers.value(),
                             parallel=self.parallel.value() or None)
        try:
            set_notebook_model(self.nb, choice)
        except StudioError as exc:
            self.message.setText(str(exc))
            return
        self.accept()
