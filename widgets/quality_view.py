"""The Quality tab: run the funnel's steps and see where records fall out.

Buttons run ``app.jobs.quality_job`` on the view's job runner; the funnel (kept per stage) and
the length histogram are matplotlib charts redrawn from what the notebook stores. Those numbers
(``app.jobs.quality_summary_job``: the funnel, the lengths, diversity metrics over every record)
are counted on a second runner, off the UI thread; :attr:`QualityView.sig_summary_ready` says
when the charts show them.
"""

from __future__ import annotations

from matplotlib.figure import Figure
from PySide6.QtCore import Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.reader import apart_from
from app.generate.model_choice import job_model_args
from app.jobs import JobEvent, QualitySummary, SanityReady, quality_job, quality_summary_job, topup_job
from app.quality.coverage import TopUp
from app.store.notebook import Notebook
from widgets.chart import Chart, charts_drawn
from widgets.coverage_view import CoverageView
from widgets.criteria_editor import CriteriaEditor
from widgets.job_runner import JobRunner
from widgets.theme import set_tone, style_figure

STEPS = (("validate", "Validate"), ("judge", "Judge"), ("sanity", "Check judges"), ("dedupe", "Find near-duplicates"),
         ("rescore", "Recompute stale"))
STEP_TIPS = {
    "validate": "Run the notebook's code rules (length, banned phrases, JSON schema…) on every sample",
    "judge": "Ask each active criterion's yes/no question of every sample; the answer probability is its score",
    "sanity": "Compare each judge with your own labels from Review (AUC, kappa): a judge drops records only once "
              "it agrees with you, or you trust it",
    "dedupe": "Mark near-duplicate samples (MinHash): each group keeps one",
    "rescore": "Recompute the scores and likelihoods that edits made out of date",
}


def draw_funnel(ax, stages: list[dict]) -> None:
    """The funnel as horizontal bars: kept, dropped at each stage, and what an untrusted judge
    would drop (hatched: it does not filter until it is checked or trusted)."""
    names = [s["stage"] + ("" if s.get("active", True) else f"  [{s.get('trust')}]") for s in stages]
    kept = [s["kept"] for s in stages]
    ys = range(len(stages))
    ax.barh(ys, kept, color="#4a78b5", label="kept")
    ax.barh(ys, [s["dropped"] for s in stages], left=kept, color="#d9534f", label="dropped here")
    would = [s.get("would_drop", 0) for s in stages]
    if any(would):
        ax.barh(ys, would, left=kept, color="none", edgecolor="#d9534f", hatch="//",
                label="would drop (judge not trusted)")
    rescued = [s.get("rescued", 0) for s in stages]
    if any(rescued):
        ax.barh(ys, rescued, left=[k - r for k, r in zip(kept, rescued)], color="#5cb85c",
                label="kept by a person over a drop")
    for y, s in zip(ys, stages):
        ax.text(s["kept"], y, f" {s['kept']}", va="center", fontsize=7,  # over the red bar: a backing (style_figure)
                bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    from matplotlib.ticker import MaxNLocator

    ax.set_yticks(list(ys), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("samples", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # samples come whole
    ax.set_xlim(0, max([s["kept"] + s["dropped"] for s in stages] + [1]) * 1.08)  # room for the counts
    # above the bars, never over them
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=4, frameon=False)
    final = stages[-1]["kept"] if stages else 0
    ax.set_title(f"Funnel: {final} kept (what Export writes)", fontsize=10, pad=18)


class QualityView(QWidget):
    sig_step_finished = Signal(str)
    sig_summary_ready = Signal()  # the charts and metrics show the notebook as it was at the last refresh()

    def __init__(self, nb: Notebook, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.nb = nb
        self.backend = "llama-cpp"
        self.step = ""  # the step running, or that ran last
        self.status = QLabel()
        self.runner = JobRunner(self)
        self.runner.sig_started.connect(lambda: self._set_status(f"{self.step}…"))
        self.runner.sig_progress.connect(lambda d, t, m: self.status.setText(f"{m} {d}/{t}"))
        self.runner.sig_partial.connect(self._on_partial)
        self.runner.sig_errored.connect(self._on_error)
        self.runner.sig_finished.connect(self._on_finished)
        self.runner.sig_cancelled.connect(lambda: self._on_finished(None))
        self.stages: list[dict] = []
        self.summary_runner = JobRunner(self, background=True)  # the charts' numbers, off the UI thread
        self._summary_state: tuple[object, ...] | None = None  # the notebook's commits when the last count began
        self._shown_state: tuple[object, ...] | None = None  # ... and those of the numbers shown
        self.summary_runner.sig_finished.connect(self._show_summary)
        self.summary_runner.sig_errored.connect(self._on_summary_error)
        self.buttons: dict[str, QPushButton] = {}
        bar = QHBoxLayout()
        for step, label in STEPS:
            b = QPushButton(label)
            b.setToolTip(STEP_TIPS[step])
            b.clicked.connect(lambda _=False, s=step: self.run_step(s))
            self.buttons[step] = b
            bar.addWidget(b)
        self.groups_button = QPushButton("Duplicate groups…")
        self.groups_button.clicked.connect(self.show_duplicate_groups)
        bar.addWidget(self.groups_button)
        bar.addWidget(self.status, 1)
        self.canvas = Chart(figsize=(9, 3.2))
        self.metrics = QLabel()
        self.metrics.setWordWrap(True)
        self.sanity = QTableWidget(0, 7)
        self.sanity.setHorizontalHeaderLabels(["criterion", "verdict", "AUC", "p", "kappa", "suggested threshold",
                                               "trust"])
        self.sanity.verticalHeader().setVisible(False)
        self.sanity.resizeColumnsToContents()  # the headers readable before any result
        self.sanity.setToolTip("Press Judge, label a few samples in Review (Y/N), then Check judges: each judge's "
                               "agreement with your labels (AUC, kappa) decides whether it may drop records")
        self.criteria = CriteriaEditor(nb)
        self.criteria.sig_changed.connect(self.refresh)  # trust and active criteria change the funnel
        self.lower_tabs = QTabWidget()
        self.lower_tabs.addTab(self.sanity, "Judges' sanity")
        self.lower_tabs.addTab(self.criteria, "Criteria")
        self.coverage = CoverageView(nb)  # kept per category value against the prompts' targets
        self.coverage.sig_topup.connect(self.run_topup)
        self.lower_tabs.addTab(self.coverage, "Coverage")
        self.lower_tabs.setMinimumHeight(220)
        lay = QVBoxLayout(self)
        lay.addLayout(bar)
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.metrics)
        lay.addWidget(self.lower_tabs, 1)
        self.refresh()

    @property
    def figure(self) -> Figure:
        """The funnel and length charts as last drawn."""
        return self.canvas.figure

    def show_duplicate_groups(self) -> None:
        from widgets.duplicates_view import DuplicatesDialog

        self.duplicates = DuplicatesDialog(self.nb, self)
        self.duplicates.show()

    def run_step(self, step: str) -> None:
        """Run one step; a step still running is cancelled and its result dropped."""
        uses_model = step in ("judge", "sanity", "rescore")
        self.step = step
        self.runner.start(quality_job, self.nb.path, step, backend=self.backend, compute=uses_model,
                          **job_model_args(self.nb))
        for b in self.buttons.values():
            b.setEnabled(False)
        self._set_status(f"{step}: queued behind the job using the cores" if self.runner.queued else f"{step}…")

    def run_topup(self, prompt: str) -> None:
        """Fill the prompt's missing targets (app.jobs.topup_job) on the view's runner."""
        self.step = "top-up"
        self.runner.start(topup_job, self.nb.path, prompt, backend=self.backend, compute=True,
                          **job_model_args(self.nb))
        for b in self.buttons.values():
            b.setEnabled(False)
        self.coverage.topup_button.setEnabled(False)
        self._set_status("top-up: queued behind the job using the cores" if self.runner.queued else "top-up…")

    def _set_status(self, text: str, error: bool = False) -> None:
        set_tone(self.status, "error" if error else None)
        self.status.setText(text)
        self.status.setToolTip("")

    def _on_partial(self, event: JobEvent) -> None:
        if isinstance(event, SanityReady):
            reports = event.reports
            self.sanity.setRowCount(len(reports))
            for r, rep in enumerate(reports):
                cells = [rep.criterion, ("FLAGGED: " if rep.flagged else "ok: ") + rep.verdict,
                         "–" if rep.auc is None else f"{rep.auc:.2f}", "–" if rep.p_value is None else f"{rep.p_value:.3f}",
                         "–" if rep.kappa is None else f"{rep.kappa:.2f}",
                         "–" if rep.suggested_threshold is None else f"{rep.suggested_threshold:.3g}", rep.trust]
                for c, text in enumerate(cells):
                    self.sanity.setItem(r, c, QTableWidgetItem(text))
            self.sanity.resizeColumnsToContents()

    def _on_error(self, message: str) -> None:
        self._set_status(message.splitlines()[0], error=True)
        self.status.setToolTip(message)
        self._on_finished(None)

    def _on_finished(self, result: object) -> None:
        for b in self.buttons.values():
            b.setEnabled(True)
        if isinstance(result, str):
            self._set_status(result)
        elif isinstance(result, TopUp):
            self._set_status(result.message, error=bool(result.stopped and result.stopped != "cancelled"))
        self.refresh()
        self.sig_step_finished.emit(self.step)

    def refresh(self) -> None:
        """Redraw from the notebook when its numbers are counted, off the UI thread: the charts, the
        metrics, the criteria's trust and the coverage (a newer refresh replaces one still counting)."""
        if self.criteria.nb is not self.nb:  # the window opened another notebook
            self.criteria.nb = self.nb
        self.coverage.nb = self.nb
        state = (self.nb, *self.nb.change_mark())  # (the object: a reopened file starts its marks again)
        if state == self._summary_state and (self.summary_runner.running or self._shown_state == state):
            if not self.summary_runner.running:
                self.sig_summary_ready.emit()  # nothing written since the numbers shown: they stand
            return  # (the window's start and its tab change both ask: counting twice only delays)
        if not self.stages:
            self.metrics.setText("counting…")
        self._summary_state = state
        self.summary_runner.start(apart_from(self.nb.count_records(None), quality_summary_job), self.nb.path)

    def _on_summary_error(self, message: str) -> None:
        self.metrics.setText(f"could not count the funnel: {message}")

    def _show_summary(self, summary: object) -> None:
        if not isinstance(summary, QualitySummary) or self.nb.closed:  # (counted for a notebook since closed)
            return
        def draw(fig: Figure, palette: QPalette) -> None:
            ax, hx = fig.subplots(1, 2, width_ratios=[2, 1])
            draw_funnel(ax, summary.stages)
            hx.hist(summary.lengths or [0], bins=20, color="#7fa7d8")
            hx.set_title("Length (words)", fontsize=10)
            style_figure(fig, palette)

        self.canvas.plot(draw)
        self._shown_state = self._summary_state
        self.stages = summary.stages
        self.criteria.show_entries(summary.criteria)
        self.coverage.show_coverage(summary.coverage)
        self.metrics.setText(" · ".join(
            f"{m['prompt_version']}: {m['records']} records, {m['unique']} unique, distinct-2 {m['distinct_2']:.2f}, "
            f"overlap {m['pairwise_overlap_2']:.3f}" for m in summary.metrics) or "no records with text yet")
        self.sig_summary_ready.emit()


def wait_for_summary(view: QualityView, timeout_s: float = 60.0) -> bool:
    """Refresh ``view`` and let the event loop run until its charts show the numbers (for the
    screenshots and the benches, which draw the window without a person waiting on it)."""
    import time

    from PySide6.QtWidgets import QApplication

    ready: list[bool] = []

    def done() -> None:
        ready.append(True)

    view.sig_summary_ready.connect(done)
    try:
        view.refresh()
        end = time.monotonic() + timeout_s
        while not (ready and charts_drawn(view)) and time.monotonic() < end:
            QApplication.processEvents()
            time.sleep(0.005)
    finally:
        view.sig_summary_ready.disconnect(done)
    return bool(ready) and charts_drawn(view)
