"""A matplotlib chart that never holds the UI thread to draw.

Drawing a figure is slow in Python (making the bars and labels, then laying out text, ticks and
transforms to rasterise it: 100-400 ms for the funnel), and views that redrew on every change of
the notebook held the window that long each time a generation added records. So a
:class:`Chart` draws nowhere near the UI thread:

- ``chart.plot(draw)`` hands it ``draw(figure, palette)``, a function of the data it closes over
  and of the palette to style with (read on the UI thread, passed as a value). It runs on the
  charts' own background lane, one figure at a time in the whole program (matplotlib shares font
  caches between figures), into a fresh figure, which is then rasterised there too; the picture is
  painted when it arrives. Pure-Python work on another thread gives the UI thread its turn every
  millisecond or so (Python's switch interval), so the window answers meanwhile.
- :attr:`Chart.figure` is the figure last drawn (what the view's tests read), :attr:`Chart.drawn`
  whether it is of the newest data, palette and size.
- Plots that arrive while one draws are folded into one: only the newest is drawn next. A hidden
  chart draws when it is shown; a resized one draws again at its new size (the old picture,
  scaled, fills in meanwhile); a palette change draws again in the new colours.
- A chart that has a picture draws again at most once per ``GAP_MS`` after its last draw ended:
  matplotlib's rasteriser is C++ that keeps Python's lock while it runs, and a generation changes
  the notebook several times a second, so back-to-back redraws kept the UI thread waiting for the
  lock again and again (the notebook's funnel lags by up to a second instead).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PySide6.QtCore import QEvent, QSize, QTimer
from PySide6.QtGui import QImage, QPainter, QPaintEvent, QPalette, QResizeEvent, QShowEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from widgets.job_runner import JobRunner, one_thread_lane

log = logging.getLogger(__name__)
DPI = 100.0
RESIZE_MS = 80  # a resize renders once it has paused this long
GAP_MS = 1000  # a chart's next draw starts at least this long after its last one ended


def new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


Draw = Callable[[Figure, QPalette], None]


@dataclass(frozen=True)
class Rendered:
    figure: Figure
    rgba: bytes
    width: int  # pixels
    height: int


def render_figure(draw: Draw, palette: QPalette, figsize: tuple[float, float], width: int, height: int,
                  ratio: float, *, task: Any = None, worker: Any = None) -> Rendered:
    """Draw with ``draw`` into a fresh figure and rasterise it at ``width`` x ``height`` logical
    pixels and device pixel ratio ``ratio`` (on the charts' one-thread lane: one figure at a time)."""
    fig = new_figure(figsize)
    draw(fig, palette)
    fig.set_dpi(DPI * ratio)
    fig.set_size_inches(max(width, 1) / DPI, max(height, 1) / DPI)
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    buffer = canvas.buffer_rgba()
    return Rendered(fig, bytes(buffer), buffer.shape[1], buffer.shape[0])


class Chart(QWidget):
    """A figure drawn and rasterised off the UI thread; see the module docstring."""

    def __init__(self, figsize: tuple[float, float], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.figsize = figsize
        self.figure = new_figure(figsize)  # the figure last drawn
        self._draw: Draw | None = None
        self._asked = 0  # plots and palette changes asked for
        self._image: QImage | None = None
        self._started: tuple[int, int, int, float] | None = None  # (asked, size, ratio) of the last draw begun
        self._shown: tuple[int, int, int, float] | None = None  # ... of the picture shown
        self._again = False
        self.runner = JobRunner(self, background=True, pool=one_thread_lane("charts"))
        self.runner.sig_finished.connect(self._on_rendered)
        self.runner.sig_errored.connect(self._on_failed)
        self._resize_timer = QTimer(self)
        self._resize_timer.setSingleShot(True)
        self._resize_timer.setInterval(RESIZE_MS)
        self._resize_timer.timeout.connect(self.rasterise)
        self._ended = 0.0  # time.monotonic() when the last draw ended
        self._gap_timer = QTimer(self)
        self._gap_timer.setSingleShot(True)
        self._gap_timer.timeout.connect(self.rasterise)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(int(self.figsize[0] * DPI), int(self.figsize[1] * DPI))

    # -- drawing ---------------------------------------------------------------------------

    def plot(self, draw: Draw) -> None:
        """Show what ``draw(figure, palette)`` draws (on the charts' lane: it must not touch widgets)."""
        self._draw = draw
        self._asked += 1
        self.rasterise()

    def restyle(self) -> None:
        """The palette changed: draw again in its colours."""
        if self._draw is not None:
            self._asked += 1
            self.rasterise()

    @property
    def drawn(self) -> bool:
        """The figure shown is of the newest plot and palette, at this size (always, for a hidden chart
        or one never plotted: they have nothing to draw now)."""
        if self._draw is None or not self.isVisible():
            return True
        return not self.runner.running and self._shown == self._wanted()

    def _wanted(self) -> tuple[int, int, int, float]:
        return self._asked, self.width(), self.height(), self.devicePixelRatioF()

    def rasterise(self) -> None:
        """Draw the newest plot at the current size, unless that is what is shown (a hidden chart
        waits to be shown; a draw under way is followed by one more, of the newest plot)."""
        if self._draw is None or not self.isVisible() or self.width() < 2 or self.height() < 2:
            return
        wanted = self._wanted()
        if wanted == self._shown and not self.runner.running:
            return
        if self.runner.running:
            self._again = wanted != self._started
            return
        wait_ms = int(1000 * (self._ended - time.monotonic())) + GAP_MS
        if self._image is not None and wait_ms > 0:  # (a first picture is never held back)
            if not self._gap_timer.isActive():
                self._gap_timer.start(wait_ms)
            return
        self._started = wanted
        self.runner.start(render_figure, self._draw, QPalette(self.palette()), self.figsize, *wanted[1:])

    def _on_rendered(self, result: object) -> None:
        self._ended = time.monotonic()
        if isinstance(result, Rendered) and self._started is not None:
            image = QImage(result.rgba, result.width, result.height, 4 * result.width,
                           QImage.Format.Format_RGBA8888).copy()  # owns its bytes
            image.setDevicePixelRatio(self._started[3])
            self.figure, self._image, self._shown = result.figure, image, self._started
            self.update()
        self._render_again()

    def _on_failed(self, message: str) -> None:
        self._ended = time.monotonic()
        log.error("a chart could not be drawn: %s", message)
        self._render_again()

    def _render_again(self) -> None:
        if self._again:
            self._again = False
            self.rasterise()

    # -- Qt --------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().window())
        if self._image is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawImage(self.rect(), self._image)
        painter.end()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.restyle()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.rasterise()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._image is None:
            self.rasterise()
        else:
            self._resize_timer.start()


def charts_drawn(widget: QWidget) -> bool:
    """Every chart in ``widget`` shows its newest plot (for tests, screenshots and benches)."""
    charts = widget.findChildren(Chart) + ([widget] if isinstance(widget, Chart) else [])
    return all(c.drawn for c in charts)
