"""Many coloured dots on a pyqtgraph plot, set and painted with numpy: the map's scatter.

pyqtgraph's ScatterPlotItem keeps a record per point (its brush, its style key in the symbol
atlas) and builds them in Python: giving it 20k points with a colour each held the UI thread for
0.15-0.35 s, every time a map arrived or the colouring changed. Here the points are one array of
positions and one of colour indexes. Painting maps the positions to pixels in one numpy step and
copies each colour's dot (rendered once) to all its points with one ``drawPixmapFragments`` call,
as pyqtgraph itself paints: setting the points costs a sort, and a paint milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt.internals import PrimitiveArray
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPixmap


class PointCloud(pg.GraphicsObject):
    """Dots of ``size`` pixels at data positions, one colour each (drawn colour by colour, in the
    order the colours first come among the points)."""

    def __init__(self, size: float = 7.0) -> None:
        super().__init__()
        self.size = float(size)
        self.xy = np.zeros((0, 2))
        self.index = np.zeros(0, dtype=np.intp)  # per point: its colour's place in ``palette``
        self.palette: list[str] = []
        self._groups: list[np.ndarray] = []  # per colour: its points, as indexes into xy
        self._bounds = QRectF()
        self._dots: dict[tuple[str, float, float], QPixmap] = {}
        self._fragments = PrimitiveArray(QPainter.PixmapFragment, 10)  # pyqtgraph's numpy-backed fragments

    def __len__(self) -> int:
        return len(self.xy)

    def set_points(self, xy: np.ndarray, colours: Sequence[str], bottom: str | None = None,
                   shade: Callable[[str], str] | None = None) -> None:
        """``xy`` (n, 2) in data coordinates and a colour name per point; the dots of ``bottom`` (noise's
        grey, say) are drawn first, under the others; ``shade`` maps each colour to the one painted
        (asked once per colour, not per point)."""
        self.prepareGeometryChange()
        self.xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        names, first, index = np.unique(np.asarray(colours, dtype=object).astype(str), return_index=True,
                                        return_inverse=True)
        if bottom is not None:
            first = np.where(names == bottom, -1, first)
        by_first = np.argsort(first)  # colours in the order they first come (``bottom`` first)
        rank = np.empty_like(by_first)
        rank[by_first] = np.arange(len(by_first))
        self.palette = [str(names[i]) if shade is None else shade(str(names[i])) for i in by_first]
        self.index = rank[index].astype(np.intp)
        order = np.argsort(self.index, kind="stable")
        cuts = np.flatnonzero(np.diff(self.index[order])) + 1
        self._groups = np.split(order, cuts) if len(order) else []
        if len(self.xy):
            lo, hi = self.xy.min(axis=0), self.xy.max(axis=0)
            self._bounds = QRectF(float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))
        else:
            self._bounds = QRectF()
        self.informViewBoundsChanged()
        self.update()

    def clear(self) -> None:
        self.set_points(np.zeros((0, 2)), [])

    def colour_names(self) -> list[str]:
        """Each point's colour, in the points' order (what a test or a legend reads)."""
        return [self.palette[i] for i in self.index]

    # -- what pyqtgraph's ViewBox asks of an item -----------------------------------------------

    def dataBounds(self, ax: int, frac: float = 1.0, orthoRange=None):  # noqa: N802, ANN001 (pyqtgraph's name)
        if not len(self.xy):
            return (None, None)
        col = self.xy[:, ax]
        if orthoRange is not None:
            other = self.xy[:, 1 - ax]
            col = col[(other >= orthoRange[0]) & (other <= orthoRange[1])]
            if not len(col):
                return (None, None)
        return (float(col.min()), float(col.max()))

    def pixelPadding(self) -> float:  # noqa: N802 (pyqtgraph's name)
        return self.size / 2 + 1

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt's name)
        if not len(self.xy):
            return QRectF()
        # a dot is pixels wide whatever the zoom: pad the data rectangle by half a dot, in data units
        px, py = self.pixelLength(pg.Point(1, 0)), self.pixelLength(pg.Point(0, 1))
        pad_x = (px or 0.0) * self.pixelPadding()
        pad_y = (py or 0.0) * self.pixelPadding()
        return self._bounds.adjusted(-pad_x, -pad_y, pad_x, pad_y)

    def _dot(self, colour: str, dpr: float) -> QPixmap:
        """One dot of ``colour``, rendered once (antialiased) and copied to every point of that colour."""
        key = (colour, self.size, dpr)
        dot = self._dots.get(key)
        if dot is None:
            side = int(np.ceil(self.size * dpr)) + 2
            dot = QPixmap(side, side)
            dot.fill(Qt.GlobalColor.transparent)
            painter = QPainter(dot)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(colour))
            painter.drawEllipse(QRectF(1, 1, self.size * dpr, self.size * dpr))
            painter.end()
            dot = self._dots[key] = dot
        return dot

    def paint(self, p: QPainter, _option=None, widget=None) -> None:  # noqa: ANN001
        if not len(self.xy):
            return
        dpr = widget.devicePixelRatioF() if widget is not None else 1.0
        tr = p.transform()
        x, y = self.xy[:, 0], self.xy[:, 1]
        px = x * tr.m11() + y * tr.m21() + tr.dx()  # data -> device pixels, every point at once
        py = x * tr.m12() + y * tr.m22() + tr.dy()
        np.clip(px, -2**30, 2**30, out=px)  # (Qt misbehaves far outside)
        np.clip(py, -2**30, 2**30, out=py)
        p.save()
        p.resetTransform()
        for colour, members in zip(self.palette, self._groups, strict=True):
            dot = self._dot(colour, dpr)
            self._fragments.resize(len(members))
            frags = self._fragments.ndarray()
            frags[:, 0] = px[members]  # the centre of each copy
            frags[:, 1] = py[members]
            frags[:, 2:6] = (0, 0, dot.width(), dot.height())  # the source: the whole dot
            frags[:, 6:10] = (1 / dpr, 1 / dpr, 0.0, 1.0)  # scale, rotation, opacity
            p.drawPixmapFragments(*self._fragments.drawargs(), dot)  # type: ignore[call-arg]  # (PySide: array, count)
        p.restore()
