"""The generate bar: pick a prompt and settings, run on the model, watch it stream, cancel, resume.

All work goes through ``app.jobs.generate_job`` on the bar's job runner; this widget
only collects intent and shows progress, streaming text and errors.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import StudioError
from app.core.settings import load_settings
from app.generate.model_choice import ModelChoice, display_name, with_preferences
from app.jobs import JobEvent, RecordMade, TokenStreamed, generate_job
from app.store.notebook import Notebook, Run
from backends.protocols import SamplerSettings
from widgets.job_runner import JobRunner
from widgets.streaming import StreamFollower
from widgets.theme import set_style, set_tone


def stopped_text(made: int, planned: int) -> str:
    """How a cancelled run is named wherever the window shows it. A stopped run is unfinished work:
    never "done" or "completed", never in the colour of success."""
    return f"stopped ({made} of {planned} made)"


class GenerateBar(QWidget):
    sig_record_added = Signal(int)
    sig_run_finished = Signal(object)
    # the person changed a setting here: the window writes it to the notebook's Generate cell, the one
    # source of truth for these settings (the bar is its shortcut)
    sig_settings_edited = Signal(dict)

    def __init__(self, notebook_path: Path, prompt_names: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.notebook_path = notebook_path
        self.backend = "llama-cpp"
        self.model_path: str | None = None
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.runner = JobRunner(self)
        self.runner.sig_started.connect(lambda: self.status.setText("running…"))
        self.runner.sig_progress.connect(self._on_progress)
        self.runner.sig_partial.connect(self._on_partial)
        self.runner.sig_errored.connect(self._on_error)
        self.runner.sig_finished.connect(self._on_finished)
        self.runner.sig_cancelled.connect(self._on_cancelled)
        self._streams = StreamFollower()  # one sequence's text at a time, readable
        self._read: Notebook | None = None  # see _reader

        self.prompt = QComboBox()
        self.prompt.addItems(prompt_names)
        defaults = load_settings()[0].generate  # the user's preferences, app.core.settings
        self.samples = QSpinBox(minimum=1, maximum=100, value=defaults.samples)
        self.rows = QSpinBox(minimum=0, maximum=1_000_000, value=defaults.rows)
        self.rows.setSpecialValueText("all")
        self.max_tokens = QSpinBox(minimum=1, maximum=8192, value=defaults.max_tokens, singleStep=32)
        self.temperature = defaults.temperature
        self.seed = 0
        self._applying = False  # settings coming from the Generate cell are not echoed back
        for w in (self.samples, self.rows, self.max_tokens):
            w.valueChanged.connect(self._on_setting_edited)
        self.prompt.currentTextChanged.connect(self._on_setting_edited)
        self.model_button = QPushButton(display_name(None))
        self.model_button.setToolTip("Choose a GGUF model (Models…)")
        self.model_button.clicked.connect(self._on_choose_model)
        self.n_ctx, self.n_gpu_layers = 2048, 0
        self.threads: int | None = None
        self.parallel: int | None = None
        self._choice = ModelChoice()
        self.apply_choice(self._choice)  # the default model and threads from the Preferences
        self.run_button = QPushButton("Generate")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.start_generation)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button = QPushButton("Resume")  # shown while the bar's last run is a stopped one
        self.resume_button.setToolTip("Make the rest of the stopped run (the samples it made are kept)")
        self.resume_button.setVisible(False)
        self.resume_button.clicked.connect(self.resume_generation)
        self._running_prompt = self._stopped_prompt = ""  # the prompt running; the one Resume finishes
        self._made, self._planned = 0, 0  # the last progress: what a stopped run had made
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setRange(0, 1)  # a bar with no value draws no text: "idle" must show
        self.progress.setValue(0)
        self.progress.setFormat("idle")

        row = QHBoxLayout()
        controls: tuple[tuple[str, QWidget], ...] = (
            ("Prompt", self.prompt), ("Samples/row", self.samples), ("Rows", self.rows),
            ("Max tokens", self.max_tokens), ("Model", self.model_button))
        for label, control in controls:
            row.addWidget(QLabel(label))
            row.addWidget(control)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.resume_button)
        row.addWidget(self.progress, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        lay.addLayout(row)
        lay.addWidget(self.status)

    def set_notebook(self, path: Path, prompt_names: list[str]) -> None:
        self.cancel()
        self._show_stopped(False)
        self.notebook_path = path
        self.prompt.clear()
        self.prompt.addItems(prompt_names)

    # -- intent -------------------------------------------------------------------------

    sig_manage_models = Signal()

    def _on_choose_model(self) -> None:
        self.sig_manage_models.emit()

    def apply_choice(self, choice: ModelChoice) -> None:
        """Use a notebook's model choice, with what it leaves open taken from the Preferences."""
        self._choice = choice
        choice = with_preferences(choice)
        self.model_path = choice.path
        self.n_ctx, self.threads, self.n_gpu_layers = choice.n_ctx, choice.threads, choice.n_gpu_layers
        self.parallel = choice.parallel
        self.model_button.setText(display_name(choice.path))

    def settings(self) -> dict:
        """The bar's generate settings, named as the Generate cell names them."""
        return {"prompt": self.prompt.currentText(), "samples": self.samples.value(), "rows": self.rows.value(),
                "max_tokens": self.max_tokens.value(), "temperature": self.temperature}

    def _on_setting_edited(self, *_: object) -> None:
        if not self._applying:
            self.sig_settings_edited.emit(self.settings())

    def apply_cell_settings(self, s: dict) -> None:
        """Show the Generate cell's settings (prompt, samples, rows, max tokens, temperature, seed): a run
        from the bar makes exactly what the cell would."""
        self._applying = True
        try:
            if s.get("prompt") and self.prompt.findText(str(s["prompt"])) >= 0:
                self.prompt.setCurrentText(str(s["prompt"]))
            for w, key in ((self.samples, "samples"), (self.rows, "rows"), (self.max_tokens, "max_tokens")):
                if key in s:
                    w.setValue(int(s[key]))
            self.temperature = float(s.get("temperature", self.temperature))
            self.seed = int(s.get("seed", self.seed))
        finally:
            self._applying = False

    def reload_preferences(self) -> None:
        """Start from the Preferences again (after they changed): generate defaults, default model, threads."""
        defaults = load_settings()[0].generate
        self.samples.setValue(defaults.samples)
        self.rows.setValue(defaults.rows)
        self.temperature = defaults.temperature
        self.max_tokens.setValue(defaults.max_tokens)
        self._on_setting_edited()  # the temperature too, which no widget of the bar shows
        self.apply_choice(self._choice)

    def set_model(self, path: str) -> None:
        from backends.llama_cpp_backend import describe_model

        try:
            info = describe_model(path)
        except StudioError as exc:
            self._show_error(str(exc))
            return
        self.model_path = path
        self.model_button.setText(Path(path).name)
        self.status.setText(f"model: {info.description}")

    def start_generation(self) -> None:
        """Generate with the bar's settings; a generation still running is cancelled (its samples kept)."""
        if not self.prompt.currentText():
            self._show_error("this notebook has no prompts yet: write one in the Prompt tab (or File > New from a starter…)")
            return
        self._start(self.prompt.currentText(), resume=False)

    def resume_generation(self, prompt: str = "") -> None:
        """Finish the last stopped run of ``prompt`` (by default the one this bar stopped), as
        ``synth-studio generate --resume`` does: same plan and seeds, only the missing samples."""
        prompt = prompt or self._stopped_prompt or self.prompt.currentText()
        if prompt:
            self._start(prompt, resume=True)

    def _start(self, prompt: str, *, resume: bool) -> None:
        self._streams.clear()
        self._show_stopped(False)
        self.status.setText("resuming…" if resume else "starting…")
        self._made, self._planned = 0, 0
        self._running_prompt = prompt
        self.runner.start(
            generate_job, self.notebook_path, prompt, samples=self.samples.value(), resume=resume,
            limit_rows=self.rows.value() or None, seed=self.seed,
            settings=SamplerSettings(temperature=self.temperature, max_tokens=self.max_tokens.value()),
            model_path=self.model_path, backend=self.backend,
            model_options={"n_ctx": self.n_ctx, "n_threads": self.threads, "n_gpu_layers": self.n_gpu_layers,
                           "parallel": self.parallel},
            compute=True,
        )
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        if self.runner.queued:
            self.status.setText("queued: waiting for the job that is using the cores to finish")

    def cancel(self) -> None:
        if self.runner.running:
            self.status.setText("cancelling… (finished samples are kept)")
            self.runner.cancel()

    # -- what the job reports ------------------------------------------------------------------

    def _on_progress(self, done: int, total: int, message: str) -> None:
        self._made, self._planned = done, total
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{done}/{total} samples" if message != "loading model" else "loading model…")

    def _on_partial(self, event: JobEvent) -> None:
        if isinstance(event, TokenStreamed):
            self._streams.token(event.key, event.piece)
            self.status.setText("writing: " + self._streams.line(width=120))
        elif isinstance(event, RecordMade):
            from app.store.queries import generated_record

            made = generated_record(self._reader(), event.record_id)
            if made is not None:
                self._streams.finished(made[1])
            self.sig_record_added.emit(event.record_id)

    def _on_error(self, message: str) -> None:
        self._show_error(message)
        self._on_finished(None)

    def _on_cancelled(self) -> None:  # stopped before a run existed (e.g. while the model loaded)
        self.status.setText("cancelled")
        self._on_finished(None)

    def _show_error(self, message: str) -> None:
        set_tone(self.status, "error")
        self.status.setText(message.splitlines()[0] if message else "error")
        self.status.setToolTip(message)

    def _show_stopped(self, stopped: bool) -> None:
        """A stopped run in the warning tone, bar and text, with Resume beside it; else the plain look."""
        self.resume_button.setVisible(stopped)
        set_tone(self.status, "warn" if stopped else None)
        set_style(self.progress, "QProgressBar::chunk { background-color: $warn; }" if stopped else "")

    def _reader(self) -> Notebook:
        """A connection to read what the running job writes, open from its first record to its end
        (opening one per record checked the schema and checkpointed the file each time)."""
        if self._read is None or self._read.path != self.notebook_path:
            self._close_reader()
            self._read = Notebook.open(self.notebook_path)
        return self._read

    def _close_reader(self) -> None:
        if self._read is not None:
            self._read.close()
            self._read = None

    def _on_finished(self, run: Run | None) -> None:
        self._close_reader()
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if run is not None:
            status = getattr(run, "status", "")
            if status == "cancelled":
                stopped = stopped_text(self._made, self._planned)
                self.progress.setFormat(f"run {run.id} {stopped}")
                self._stopped_prompt = self._running_prompt
                self._show_stopped(True)
                self.status.setText(f"run {run.id} {stopped} — Resume makes the rest (you cancelled it; "
                                    "the samples it made are kept)")
            else:
                self.progress.setFormat(f"run {run.id} {status}")
                self.status.setText(f"run {run.id} complete")
        self.sig_run_finished.emit(run)
