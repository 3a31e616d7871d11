"""Prompt iteration: two versions side by side on the same rows and seeds.

The template diff on top, the outputs in pairs, metric deltas below. The runs
run through ``app.jobs.compare_job`` on the view's job runner. They are comparison
runs, outside the dataset, until the person adds one with "Add to dataset".
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.generate.model_choice import job_model_args
from app.jobs import compare_job
from app.review.compare import adopt_comparison
from app.store.notebook import Notebook
from backends.protocols import SamplerSettings
from widgets.job_runner import JobRunner
from widgets.theme import set_tone, tone_hex

METRICS = (("mean_words", "mean words", "{:.1f}"), ("distinct_2", "distinct-2", "{:.3f}"),
           ("pairwise_overlap_2", "pairwise overlap", "{:.3f}"), ("unique_per_input", "unique per input", "{:.2f}"),
           ("mean_logprob", "mean logprob", "{:.3f}"))


class CompareView(QWidget):
    sig_compared = Signal(object)
    sig_run_adopted = Signal(int)  # a comparison run was added to the dataset

    def __init__(self, nb: Notebook, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.nb = nb
        self.backend = "llama-cpp"
        self.status = QLabel()
        self.runner = JobRunner(self)
        self.runner.sig_started.connect(lambda: self.status.setText("running…"))
        self.runner.sig_progress.connect(lambda d, t, m: self.status.setText(f"running {d}/{t}…"))
        self.runner.sig_errored.connect(self._on_error)
        self.runner.sig_finished.connect(self._on_finished)
        self.runner.sig_cancelled.connect(lambda: self._on_finished(None))
        self.prompt = QComboBox()
        self.version_a, self.version_b = QComboBox(), QComboBox()
        self.rows = QSpinBox(minimum=1, maximum=10_000, value=4)
        self.samples = QSpinBox(minimum=1, maximum=20, value=1)
        self.run_button = QPushButton("Run both")
        self.run_button.clicked.connect(self.start)
        self.adopt_button = QPushButton("Add to dataset")
        self.adopt_button.setToolTip("Comparison runs stay out of the dataset (the funnel, export, versions) "
                                     "until you add one")
        self.adopt_menu = QMenu(self.adopt_button)
        self.adopt_button.setMenu(self.adopt_menu)
        self.adopt_button.setEnabled(False)
        self.cmp: dict | None = None
        self.diff = QTextBrowser()
        self.metrics = QTableWidget(0, 4)
        self.metrics.setHorizontalHeaderLabels(["metric", "A", "B", "B − A"])
        self.metrics.verticalHeader().setVisible(False)
        self.pairs = QTableWidget(0, 2)
        self.pairs.setHorizontalHeaderLabels(["version A", "version B"])
        self.pairs.verticalHeader().setVisible(False)
        self.pairs.setWordWrap(True)
        self.pairs.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.pairs.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        bar = QHBoxLayout()
        for label, w in (("Prompt", self.prompt), ("A", self.version_a), ("B", self.version_b),
                         ("Rows", self.rows), ("Samples/row", self.samples)):
            bar.addWidget(QLabel(label))
            bar.addWidget(w)
        bar.addWidget(self.run_button)
        bar.addWidget(self.adopt_button)
        bar.addWidget(self.status, 1)
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.diff)
        top.addWidget(self.metrics)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(self.pairs)
        split.setSizes([220, 520])
        lay = QVBoxLayout(self)
        lay.addLayout(bar)
        lay.addWidget(split, 1)
        self.prompt.currentTextChanged.connect(self._on_prompt_changed)
        self.reload()

    def reload(self) -> None:
        names = sorted({p.name for p in self.nb.prompt_versions() if not p.name.startswith("transform:")})
        current = self.prompt.currentText()
        self.prompt.blockSignals(True)
        self.prompt.clear()
        self.prompt.addItems(names)
        self.prompt.blockSignals(False)
        if current in names:
            self.prompt.setCurrentText(current)
        self._on_prompt_changed(self.prompt.currentText())

    def _on_prompt_changed(self, name: str) -> None:
        versions = [str(p.version) for p in self.nb.prompt_versions() if p.name == name]
        for combo, pick in ((self.version_a, -2), (self.version_b, -1)):
            combo.clear()
            combo.addItems(versions)
            if len(versions) >= 2:
                combo.setCurrentIndex(len(versions) + pick)
        enough = len(versions) >= 2
        self.run_button.setEnabled(enough and not self.runner.running)
        self.status.setText("" if enough else "save a second version of this prompt to compare")
        if self.cmp is None:  # say what this tab is for until a comparison is shown
            self.diff.setHtml(
                "<h3>Compare two versions of a prompt</h3><p>Both versions generate from the same input rows with "
                "the same seeds, so every difference in the samples comes from the template. You see the template "
                "diff, the samples side by side and their metrics.</p>"
                + ("<p>Pick versions A and B above and press <b>Run both</b>.</p>" if enough else
                   "<p>This prompt has one version: change it in the <b>Prompt</b> tab and save it as a new "
                   "version, then come back here.</p>")
                + "<p>Comparison samples stay out of the dataset unless you add them.</p>")

    def start(self) -> None:
        """Run both versions; a comparison still running is cancelled and its result dropped."""
        a, b = int(self.version_a.currentText()), int(self.version_b.currentText())
        self.runner.start(compare_job, self.nb.path, self.prompt.currentText(), a, b,
                          samples=self.samples.value(), limit_rows=self.rows.value(), seed=0,
                          settings=SamplerSettings(temperature=0.8, max_tokens=160), backend=self.backend,
                          compute=True, **job_model_args(self.nb))
        self.run_button.setEnabled(False)
        set_tone(self.status, None)
        self.status.setToolTip("")
        self.status.setText("queued: waiting for the job that is using the cores" if self.runner.queued
                            else "starting…")

    def _on_error(self, message: str) -> None:
        self._on_finished(None)
        set_tone(self.status, "error")
        self.status.setText(message.splitlines()[0])
        self.status.setToolTip(message)

    def _on_finished(self, cmp: dict | None) -> None:
        self.run_button.setEnabled(True)
        if cmp is not None:
            self.show_comparison(cmp)
        self.sig_compared.emit(cmp)

    def show_comparison(self, cmp: dict) -> None:
        if self.prompt.currentText() != cmp["name"]:
            self.prompt.setCurrentText(cmp["name"])
        self.version_a.setCurrentText(str(cmp["version_a"]))
        self.version_b.setCurrentText(str(cmp["version_b"]))
        lines = []
        added, removed, same = tone_hex("ok"), tone_hex("error"), self.palette().color(self.foregroundRole()).name()
        for line in cmp["diff"]:
            colour = added if line.startswith("+") else removed if line.startswith("-") else same
            lines.append(f"<span style='color:{colour}'>{html.escape(line)}</span>")
        self.diff.setHtml("<pre>" + ("\n".join(lines) or "templates are identical") + "</pre>")
        ma, mb = cmp["metrics_a"], cmp["metrics_b"]
        rows = [(label, fmt, ma.get(k), mb.get(k)) for k, label, fmt in METRICS]
        rows += [(name, "{:.0%}", ma["pass_rates"][name], mb["pass_rates"].get(name)) for name in ma["pass_rates"]]
        self.metrics.setRowCount(len(rows))
        for r, (label, fmt, va, vb) in enumerate(rows):
            cells = [label, "–" if va is None else fmt.format(va), "–" if vb is None else fmt.format(vb),
                     "–" if va is None or vb is None else ("+" if vb >= va else "") + fmt.format(vb - va)]
            for c, text in enumerate(cells):
                self.metrics.setItem(r, c, QTableWidgetItem(text))
        self.metrics.resizeColumnsToContents()
        self.pairs.setHorizontalHeaderLabels([cmp["a"], cmp["b"]])
        self.pairs.setRowCount(len(cmp["pairs"]))
        for r, p in enumerate(cmp["pairs"]):
            self.pairs.setItem(r, 0, QTableWidgetItem(p["a"]))
            self.pairs.setItem(r, 1, QTableWidgetItem(p["b"]))
        self.pairs.resizeRowsToContents()
        self.cmp = cmp
        self._show_membership()

    def _show_membership(self) -> None:
        """The status line and the Add to dataset menu for which of the two runs are in the dataset."""
        cmp = self.cmp
        if cmp is None:
            return
        self.adopt_menu.clear()
        outside = []
        for k in ("a", "b"):
            if not cmp[f"in_dataset_{k}"]:
                run_id = cmp[f"run_{k}"]
                outside.append(run_id)
                action = self.adopt_menu.addAction(f"{cmp[k]} (run {run_id})")
                action.triggered.connect(lambda _=False, k=k: self.adopt(k))
        self.adopt_button.setEnabled(bool(outside))
        note = (f"; not in the dataset: run {' and '.join(map(str, outside))}" if outside
                else "; both in the dataset")
        self.status.setText(f"runs {cmp['run_a']} and {cmp['run_b']}: same rows, same seeds{note}")

    def adopt(self, which: str) -> None:
        """Add run ``which`` ("a" or "b") of the comparison shown to the dataset."""
        if self.cmp is None:
            return
        run_id = self.cmp[f"run_{which}"]
        adopt_comparison(self.nb, run_id)
        self.cmp = {**self.cmp, f"in_dataset_{which}": True}
        self._show_membership()
        self.sig_run_adopted.emit(run_id)
