"""The Map tab: every sample as a point (UMAP of its embedding), coloured by cluster,
score, run, prompt version, status or a structured output's field (``output.<field>``:
a gradient when every value is a number, distinct colours otherwise); hover shows the text
in a box kept inside the plot, click opens the record,
Shift+drag lassos points to filter the Records tab or accept/reject/flag them at once;
the extrema panel lists both ends of any axis and jumps to them on the map. A banner says when
the map is older than the data (samples written or edited since) and recomputes it.

pyqtgraph draws the points (measured: ~25 ms repaints at 100k points, where
matplotlib took ~400 ms with per-point colours); a KD-tree answers hovers and a
``Path`` tests lasso containment, instead of pyqtgraph's per-point Python objects.
"""

from __future__ import annotations

import sys
from collections import Counter
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from matplotlib.path import Path as MplPath
from PySide6.QtCore import QEvent, QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPainterPath, QPalette, QPen, QUndoStack
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsPathItem,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.generate.structured import FIELD_PREFIX, field_columns
from app.jobs import MapDone, axis_summary_job, map_job
from app.map.axes import AxisSummary, axis_summary
from app.map.projection import MapResult, latest_map
from app.map.staleness import map_staleness
from app.quality.funnel import compute_funnel
from app.store.notebook import Notebook
from app.store.queries import map_values, record_text
from app.store.scores import score_names
from widgets.edit_commands import EditRecordCommand
from widgets.funnel_counter import Recount
from widgets.job_runner import JobRunner
from widgets.point_cloud import PointCloud
from widgets.theme import GRAPHIC_CONTRAST, mix, readable, set_tone, style_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from scipy.spatial import cKDTree

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d"]
NOISE = "#c9c9c9"  # drawn as a faint grey of the palette (MapView._on_plot)
STATUS_COLOURS = {"new": "#9e9e9e", "accepted": "#2ca02c", "rejected": "#d62728", "flagged": "#ff7f0e"}
AXES = ["length", "tokens", "likelihood", "perplexity", "outlier", "centroid", "dupes", "nearest-real"]
HOVER_GAP = 8  # pixels between a point and its hover box


def cluster_colour(cluster: int) -> str:
    """Cluster ``cluster``'s hue wherever it is drawn (the points, the legend, the sizes chart): fixed by
    its number, so it does not shift when noise or another cluster comes and goes; noise (-1) is grey."""
    return NOISE if cluster < 0 else PALETTE[cluster % len(PALETTE)]


def hover_origin(point: tuple[float, float], size: tuple[float, float],
                 area: tuple[float, float, float, float], gap: float = HOVER_GAP) -> tuple[float, float]:
    """Top-left corner of a hover box of ``size`` (w, h) for a point at ``point``, in the pixels of
    ``area`` (left, top, right, bottom; y grows downwards): above and to the right of the point, to its
    left where that would cross the right edge, below it where it would cross the top, and pushed inside
    the area whatever happens (a box bigger than the area starts at its top-left corner)."""
    (x, y), (w, h) = point, size
    left, top, right, bottom = area
    bx = x + gap if x + gap + w <= right else x - gap - w
    by = y - gap - h if y - gap - h >= top else y + gap
    return max(left, min(bx, right - w)), max(top, min(by, bottom - h))


class LassoViewBox(pg.ViewBox):
    """Pans and zooms as usual; Shift+drag draws a lasso and reports its polygon."""

    def __init__(self, on_lasso, **kw) -> None:
        super().__init__(**kw)
        self.on_lasso = on_lasso
        self._poly: list[QPointF] = []
        self._item = QGraphicsPathItem()
        self._item.setPen(QPen(self.palette().color(QPalette.ColorRole.Text), 0, Qt.PenStyle.DashLine))
        self._item.setZValue(1000)
        self.addItem(self._item, ignoreBounds=True)

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 (Qt naming)
        if not (ev.modifiers() & Qt.KeyboardModifier.ShiftModifier):
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        p = self.mapSceneToView(ev.scenePos())
        if ev.isStart():
            self._poly = [p]
        else:
            self._poly.append(p)
        path = QPainterPath(self._poly[0])
        for q in self._poly[1:]:
            path.lineTo(q)
        path.closeSubpath()
        self._item.setPath(path)
        if ev.isFinish():
            poly = np.array([[q.x(), q.y()] for q in self._poly])
            self._item.setPath(QPainterPath())
            if len(poly) >= 3:
                self.on_lasso(poly)


def _load_hover_index(*, task: object = None, worker: object = None) -> None:
    """Import scipy's KD-tree (about a second, once per process) on a worker thread."""
    import scipy.spatial  # noqa: F401


class MapView(QWidget):
    sig_show_ids = Signal(object)  # tuple of record ids for the Records tab
    sig_open_record = Signal(int)
    sig_changed = Signal()

    def __init__(self, nb: Notebook, undo_stack: QUndoStack, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.nb, self.undo_stack = nb, undo_stack
        self._extrema_stale = False  # the extremes wait for the view to be shown
        self._preload = JobRunner(self, background=True)
        # every sample's value on the axis: read at once on a small notebook, else off the UI thread
        self._axis_reader = Recount(nb, partial(axis_summary, axis="likelihood"), axis_summary_job, self)
        self._axis_reader.sig_counted.connect(self._show_axis_summary)
        self.map: MapResult | None = None
        self.status = QLabel("No map yet: press Embed + map.")
        self.runner = JobRunner(self)
        self.runner.sig_progress.connect(lambda d, t, m: self.status.setText(f"{m} {d}/{t}" if t else m))
        self.runner.sig_errored.connect(self._on_error)
        self.runner.sig_finished.connect(self._on_finished)
        self.runner.sig_cancelled.connect(self._on_cancelled)
        self.tree: cKDTree | None = None
        self.selected: np.ndarray = np.zeros(0, dtype=int)
        self._hovered: int | None = None

        self.run_button = QPushButton("Embed + map")
        self.run_button.setToolTip("Embed samples that have no vector yet, then UMAP + HDBSCAN (cached)")
        self.run_button.clicked.connect(self.compute)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.runner.cancel)
        self.method = QComboBox()
        self.method.addItems(["auto", "umap", "pca"])
        self.colour_by = QComboBox()
        self.colour_by.currentIndexChanged.connect(self.recolour)
        top = QHBoxLayout()
        for w in (self.run_button, self.cancel_button, QLabel("method"), self.method, QLabel("colour by"),
                  self.colour_by):
            top.addWidget(w)
        top.addWidget(self.status, 1)

        self.vb = LassoViewBox(self._on_lasso)
        self.plot = pg.PlotWidget(viewBox=self.vb)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.scatter = PointCloud(size=7)  # (pyqtgraph's ScatterPlotItem took 0.15-0.35 s per colouring of 20k)
        self.highlight = pg.ScatterPlotItem(pxMode=True, size=14, brush=None)
        self.plot.addItem(self.scatter)
        self.plot.addItem(self.highlight)
        # dark text on a light card whatever the theme: a pair readable on its own
        self.hover = pg.TextItem(color="#222", fill=pg.mkBrush(255, 255, 240, 235), anchor=(0, 0))
        self.hover.setZValue(2000)
        self.hover.hide()
        self.plot.addItem(self.hover, ignoreBounds=True)
        self.vb.sigRangeChanged.connect(lambda *_: self.hover.hide())  # placed for the old zoom
        self._plot_colours: dict[str, str] = {}
        self._apply_palette()
        self.plot.scene().sigMouseMoved.connect(self._on_move)
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        self.stale_label = QLabel()  # one short line, with its button right after it
        set_tone(self.stale_label, "warn", "font-weight: bold;")
        self.recompute_button = QPushButton("Recompute")
        self.recompute_button.setToolTip("Embed the new and edited samples and compute the map again")
        self.recompute_button.clicked.connect(self.compute)
        self.stale_banner = QWidget()
        banner = QHBoxLayout(self.stale_banner)
        banner.setContentsMargins(0, 0, 0, 0)
        banner.addWidget(self.stale_label)
        banner.addWidget(self.recompute_button)
        banner.addStretch(1)
        self.stale_banner.hide()

        self.sel_label = QLabel("Shift+drag to lasso points")
        sel = QHBoxLayout()
        sel.addWidget(self.sel_label, 1)
        self.sel_buttons = []
        for text, status in (("Accept", "accepted"), ("Reject", "rejected"), ("Flag", "flagged")):
            b = QPushButton(text)
            b.clicked.connect(lambda _=False, s=status: self.set_selected_status(s))
            sel.addWidget(b)
            self.sel_buttons.append(b)
        show = QPushButton("Show in Records")
        show.clicked.connect(lambda: self.sig_show_ids.emit(tuple(int(i) for i in self.selected_ids())))
        sel.addWidget(show)
        self.sel_buttons.append(show)
        for b in self.sel_buttons:
            b.setEnabled(False)

        self.axis = QComboBox()
        self.axis.setEditable(True)
        self.axis.currentTextChanged.connect(lambda _t: self.show_extrema())
        self.k = QSpinBox()
        self.k.setRange(1, 50)
        self.k.setValue(5)
        self.k.valueChanged.connect(lambda _v: self.show_extrema())
        self.extremes = QListWidget()
        self.extremes.setWordWrap(True)
        self.extremes.currentItemChanged.connect(self._on_extreme)
        self.extremes.itemDoubleClicked.connect(self._open_extreme)
        side = QWidget()
        sl = QVBoxLayout(side)
        ax = QHBoxLayout()
        ax.addWidget(QLabel("Extremes of"))
        ax.addWidget(self.axis, 1)
        ax.addWidget(self.k)
        sl.addLayout(ax)
        from widgets.chart import Chart

        self.hist_canvas = Chart(figsize=(4, 1.6))
        self.hist_canvas.setMinimumHeight(140)
        sl.addWidget(self.hist_canvas)
        self.sizes_canvas = Chart(figsize=(4, 1.5))
        self.sizes_canvas.setMinimumHeight(130)
        sl.addWidget(self.sizes_canvas)
        sl.addWidget(self.extremes, 1)

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.stale_banner)
        ll.addWidget(self.plot, 1)
        ll.addWidget(self.legend)
        ll.addLayout(sel)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(side)
        split.setSizes([1000, 420])
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(split, 1)
        self.refresh()

    def _apply_palette(self) -> None:
        """The plot in the window's colours; the points keep theirs (see ``_on_plot``)."""
        pal = self.palette()
        self._plot_colours.clear()
        self.plot.setBackground(pal.color(QPalette.ColorRole.Base))
        self.highlight.setPen(pg.mkPen(pal.color(QPalette.ColorRole.Text), width=2))
        self.vb._item.setPen(QPen(pal.color(QPalette.ColorRole.Text), 0, Qt.PenStyle.DashLine))

    def _on_plot(self, colour: str) -> str:
        """``colour`` as drawn on the plot and the sizes chart: noise a faint grey of the palette, any other
        just far enough from both backgrounds (the plot's and the chart's) to see (a dark category on a
        dark theme is lightened)."""
        got = self._plot_colours.get(colour)
        if got is None:
            pal = self.palette()
            bg = pal.color(QPalette.ColorRole.Base)
            drawn = (mix(pal.color(QPalette.ColorRole.Text), bg, 0.7) if colour == NOISE
                     else readable(colour, [bg, pal.color(QPalette.ColorRole.Window)], GRAPHIC_CONTRAST))
            got = self._plot_colours[colour] = drawn.name()
        return got

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt name)
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "sizes_canvas"):  # what it repaints exists
            self._apply_palette()
            self.recolour()
            self.draw_sizes()

    # -- data ------------------------------------------------------------------------------

    def refresh(self, loaded: MapResult | None = None) -> None:
        """Show the latest stored map (no computing here), or the one a map job just ``loaded``."""
        try:
            self.map = loaded if loaded is not None else latest_map(self.nb)
        except Exception:  # a notebook from before maps existed
            self.map = None
        self._fill_colour_choices()
        self._fill_axes()
        self._show_staleness()
        self.sizes_canvas.setVisible(self.map is not None)  # an empty chart is only a blank block
        if self.map is None:
            self.scatter.clear()
            self.tree = None
            return
        m = self.map
        if len(m.xy):
            from scipy.spatial import cKDTree  # on the first map drawn: scipy costs start-up ~0.7 s

            self.tree = cKDTree(m.xy)
        else:
            self.tree = None
        self._hovered = None
        self.draw_sizes()
        self.selected = np.zeros(0, dtype=int)
        self._update_selection()
        self.recolour()
        self.plot.autoRange()
        self.status.setText(f"{len(m.record_ids)} samples · {m.method.upper()} + HDBSCAN · "
                            f"{sum(1 for c in m.sizes() if c >= 0)} clusters")

    def data_changed(self) -> None:
        """Records were added or edited: say how far the shown map is behind (no recompute here)."""
        if self.map is not None:
            self._show_staleness()

    def _show_staleness(self) -> None:
        """The banner over the plot while the map lacks samples written or edited since it was computed."""
        stale = map_staleness(self.nb, self.map.map_id) if self.map is not None else None
        if stale is None or stale.current:
            self.stale_banner.hide()
            return
        self.stale_label.setText(f"⚠ {stale.message()} —")
        self.stale_banner.show()

    @property
    def hist_figure(self) -> Figure:
        """The histogram of the extremes' axis, as last drawn."""
        return self.hist_canvas.figure

    @property
    def sizes_figure(self) -> Figure:
        """The cluster sizes, as last drawn."""
        return self.sizes_canvas.figure

    def draw_sizes(self) -> None:
        """Cluster sizes, biggest first (noise in grey at the end), in the points' colours."""
        if self.map is None:
            self.sizes_canvas.plot(lambda fig, palette: style_figure(fig, palette))
            return
        sizes = self.map.sizes()
        cats = [c for c in sizes if c >= 0] + ([-1] if -1 in sizes else [])
        colours = [self._on_plot(cluster_colour(c)) for c in cats]
        heights = [sizes[c] for c in cats]

        def draw(fig: Figure, palette: QPalette) -> None:
            ax = fig.add_subplot()
            bars = ax.bar(range(len(cats)), heights, color=colours)
            ax.set_xticks(range(len(cats)), ["noise" if c < 0 else str(c) for c in cats], fontsize=6)
            ax.set_title(f"cluster sizes ({sum(1 for c in cats if c >= 0)} clusters)", fontsize=8)
            ax.tick_params(labelsize=6)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
            style_figure(fig, palette)
            for bar, colour in zip(bars, colours):  # already visible: the points' colours, noise's faint grey too
                bar.set_facecolor(colour)

        self.sizes_canvas.plot(draw)

    def _fill_colour_choices(self) -> None:
        current = self.colour_by.currentText()
        self.colour_by.blockSignals(True)
        self.colour_by.clear()
        names = ["cluster", "origin", "funnel verdict", "status", "run", "model", "prompt version", "likelihood", "length"]
        names += [f"score:{name}" for name in score_names(self.nb)]
        names += field_columns(self.nb)
        self.colour_by.addItems(names)
        if current in names:
            self.colour_by.setCurrentText(current)
        self.colour_by.blockSignals(False)

    def _fill_axes(self) -> None:
        current = self.axis.currentText()
        self.axis.blockSignals(True)
        self.axis.clear()
        self.axis.addItems(AXES + [f"score:{name}" for name in score_names(self.nb)])
        self.axis.setCurrentText(current or "likelihood")
        self.axis.blockSignals(False)
        if self.isVisible():
            self.show_extrema()
        else:  # every sample's value on the axis: read when the view is shown, not for a hidden tab
            self._extrema_stale = True

    def showEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().showEvent(event)
        if self._extrema_stale:
            self.show_extrema()

    def _values(self, what: str) -> tuple[list[Any], bool]:
        """Per point: a category (bool False) or a number (True)."""
        assert self.map is not None
        ids = self.map.record_ids
        if what == "cluster":
            return [int(c) for c in self.map.clusters], False
        if what == "funnel verdict":
            compute_funnel(self.nb)  # the verdicts as the store says now
        got = map_values(self.nb, what, ids)
        values = [got.get(i) for i in ids]
        if what.startswith(FIELD_PREFIX):  # a gradient when the field holds numbers, categories otherwise
            present = [v for v in values if v is not None]
            return values, bool(present) and all(isinstance(v, int | float) for v in present)
        return values, what.startswith("score:") or what in ("likelihood", "length")

    def recolour(self) -> None:
        if self.map is None or not self.map.record_ids:
            return
        what = self.colour_by.currentText() or "cluster"
        values, numeric = self._values(what)
        legend = []
        if numeric:
            arr = np.array([np.nan if v is None else float(v) for v in values])
            ok = ~np.isnan(arr)
            lo, hi = (float(np.nanmin(arr)), float(np.nanmax(arr))) if ok.any() else (0.0, 1.0)
            cmap = pg.colormap.get("viridis")
            lut = [QColor(*c).name() for c in cmap.getLookupTable(nPts=64, alpha=False)]
            idx = np.clip(((arr - lo) / ((hi - lo) or 1) * 63).round(), 0, 63)
            colours = [lut[int(i)] if k else NOISE for i, k in zip(np.nan_to_num(idx), ok)]
            legend.append(f"{what}: dark = {lo:.3g} … yellow = {hi:.3g}; grey = no value")
        else:
            cats = sorted({v for v in values if v is not None}, key=lambda v: (str(type(v)), v))
            colour_of = {}
            for i, c in enumerate(cats):
                if what == "cluster":
                    colour_of[c] = cluster_colour(c)
                elif what == "status":
                    colour_of[c] = STATUS_COLOURS.get(str(c), PALETTE[i % len(PALETTE)])
                elif what == "funnel verdict":
                    colour_of[c] = STATUS_COLOURS["accepted"] if c == "kept" else PALETTE[(i + 1) % len(PALETTE)]
                else:
                    colour_of[c] = PALETTE[i % len(PALETTE)]
            colours = [colour_of.get(v, NOISE) for v in values]
            sizes = Counter(values)
            for c in cats[:16]:
                name = (f"{'noise' if c == -1 else c}: {self.map.labels.get(c, '')}" if what == "cluster" else str(c))
                legend.append(f'<span style="color:{self._on_plot(colour_of[c])}">●</span> {name} ({sizes[c]})')
        self.scatter.set_points(self.map.xy, colours, bottom=NOISE, shade=self._on_plot)
        self.legend.setText("&nbsp;&nbsp; ".join(legend))

    # -- interaction ------------------------------------------------------------------------

    def _nearest(self, scene_pos) -> int | None:
        if self.tree is None or self.map is None:
            return None
        p = self.vb.mapSceneToView(scene_pos)
        _, i = self.tree.query([p.x(), p.y()])
        q = self.vb.mapViewToScene(pg.Point(*self.map.xy[i]))
        if (q - scene_pos).manhattanLength() > 12:
            return None
        return int(i)

    def _on_move(self, scene_pos) -> None:
        i = self._nearest(scene_pos)
        if i is None:
            self.hover.hide()
            self._hovered = None
            return
        if i == self._hovered and self.hover.isVisible():
            return  # the mouse moved within the same point: no query, no relayout
        self._hovered = i
        assert self.map is not None  # _nearest found a point of it
        rid = self.map.record_ids[i]
        text = " ".join((record_text(self.nb, rid) or "").split())
        self.hover.setText(f"#{rid} · cluster {int(self.map.clusters[i])}\n{text[:280]}")
        self._place_hover(self.map.xy[i])
        self.hover.show()

    def _place_hover(self, xy: np.ndarray) -> None:
        """Put the hover box beside the point at ``xy``, wholly inside the plot (see :func:`hover_origin`)."""
        area = self.vb.sceneBoundingRect()
        widest = max(80.0, min(360.0, area.width() - 2 * HOVER_GAP))
        self.hover.setTextWidth(-1)  # a short text keeps a box its own size; a long one wraps
        if self.hover.textItem.boundingRect().width() > widest:
            self.hover.setTextWidth(widest)
        box = self.hover.textItem.boundingRect()
        p = self.vb.mapViewToScene(pg.Point(float(xy[0]), float(xy[1])))
        x, y = hover_origin((p.x(), p.y()), (box.width(), box.height()),
                            (area.left(), area.top(), area.right(), area.bottom()))
        self.hover.setPos(self.vb.mapSceneToView(QPointF(x, y)))

    def _on_click(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            return
        i = self._nearest(ev.scenePos())
        if i is not None and self.map is not None:
            self.sig_open_record.emit(int(self.map.record_ids[i]))

    def _on_lasso(self, poly: np.ndarray) -> None:
        if self.map is None:
            return
        inside = MplPath(poly).contains_points(self.map.xy)
        self.selected = np.flatnonzero(inside)
        self._update_selection()

    def select_indices(self, idx) -> None:
        self.selected = np.asarray(idx, dtype=int)
        self._update_selection()

    def selected_ids(self) -> list[int]:
        return [self.map.record_ids[i] for i in self.selected] if self.map is not None else []

    def _update_selection(self) -> None:
        n = len(self.selected)
        for b in self.sel_buttons:
            b.setEnabled(n > 0)
        self.sel_label.setText(f"{n} selected" if n else "Shift+drag to lasso points")
        if self.map is not None and n:
            self.highlight.setData(pos=self.map.xy[self.selected])
        else:
            self.highlight.clear()

    def set_selected_status(self, status: str) -> None:
        ids = self.selected_ids()
        if not ids:
            return
        self.undo_stack.beginMacro(f"{status} {len(ids)} records from the map")
        for rid in ids:
            self.undo_stack.push(EditRecordCommand(self.nb, rid, "status", status, lambda _rid: None))
        self.undo_stack.endMacro()
        if self.colour_by.currentText() == "status":
            self.recolour()
        self.sig_changed.emit()

    def show_extrema(self) -> None:
        """Ask for the extremes and histogram of the chosen axis; they show when read."""
        self._extrema_stale = False
        axis, k = self.axis.currentText().strip(), self.k.value()
        if not axis:
            self.extremes.clear()
            return
        reader = self._axis_reader
        if reader.nb is not self.nb:
            reader.set_notebook(self.nb)
        reader.count = partial(axis_summary, axis=axis, k=k)
        reader.job = partial(axis_summary_job, axis=axis, k=k)
        reader.request()
        if reader.counting:
            self.extremes.clear()
            self.extremes.addItem(f"reading every sample's {axis}…")

    def _show_axis_summary(self, got: AxisSummary) -> None:
        if (got.axis, got.k) != (self.axis.currentText().strip(), self.k.value()):
            return  # another axis was asked for since: its own result follows
        self.extremes.clear()

        def draw(fig: Figure, palette: QPalette) -> None:
            if not got.error:
                ax = fig.add_subplot()
                if got.counts:
                    ax.hist(got.edges[:-1], bins=got.edges, weights=got.counts, color="#4c72b0")
                ax.set_title(f"{got.axis}: {got.n} samples", fontsize=8)
                ax.tick_params(labelsize=7)
                for side in ("top", "right"):
                    ax.spines[side].set_visible(False)
            style_figure(fig, palette)

        self.hist_canvas.plot(draw)
        self.hist_canvas.setVisible(not got.error)  # no values: the line below says so, not a blank block
        if got.error:
            self.extremes.addItem(got.error)
            return
        for title, rows in (("Highest", got.top), ("Lowest", got.bottom)):
            head = QListWidgetItem(f"{title} {got.axis}")
            head.setFlags(Qt.ItemFlag.ItemIsEnabled)  # readable (not greyed out), never selected
            f = head.font()
            f.setBold(True)
            head.setFont(f)
            self.extremes.addItem(head)
            for e in rows:
                text = " ".join(e.text.split())
                it = QListWidgetItem(f"#{e.record_id}  {e.value:.4g}\n{text[:220]}")
                it.setData(Qt.ItemDataRole.UserRole, e.record_id)
                self.extremes.addItem(it)

    def _open_extreme(self, item: QListWidgetItem) -> None:
        rid = item.data(Qt.ItemDataRole.UserRole)
        if rid is not None:  # a heading ("Highest likelihood") is not a record
            self.sig_open_record.emit(rid)

    def _on_extreme(self, item: QListWidgetItem | None, _prev=None) -> None:
        if item is None or self.map is None:
            return
        rid = item.data(Qt.ItemDataRole.UserRole)
        if rid in self.map.record_ids:
            i = self.map.record_ids.index(rid)
            self.select_indices([i])

    # -- computing --------------------------------------------------------------------------

    def compute(self) -> None:
        """Embed what is missing and map; a map still being computed is cancelled and its result dropped."""
        self.runner.start(map_job, self.nb.path, method=self.method.currentText(), load=True, compute=True)
        if "scipy.spatial" not in sys.modules:  # the hover index of the map to come: load it now, not when it comes
            self._preload.start(_load_hover_index)
        self.run_button.setEnabled(False)
        self.recompute_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        if self.runner.queued:
            self.status.setText("queued: waiting for the job that is using the cores")

    def _on_error(self, message: str) -> None:
        self.status.setText(f"⚠ {message.splitlines()[0]}")
        self._on_finished(None)

    def _on_cancelled(self) -> None:
        self.status.setText("cancelled")
        self._on_finished(None)

    def _on_finished(self, result) -> None:
        self.run_button.setEnabled(True)
        self.recompute_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if result is not None:
            self.refresh(result.map if isinstance(result, MapDone) else None)
            self.status.setText(str(result))
            self.sig_changed.emit()
