"""The map's scatter (widgets.point_cloud.PointCloud): each dot painted where its data position
falls, in its own colour, the background colour underneath, and the view's autorange fits them."""

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtGui import QColor

from widgets.point_cloud import PointCloud

pytestmark = pytest.mark.usefixtures("qapp")


def _pixel(widget: pg.PlotWidget, item: PointCloud, x: float, y: float) -> str:
    image = widget.grab().toImage()
    scene = widget.getViewBox().mapViewToScene(pg.Point(x, y))
    at = widget.mapFromScene(scene)
    ratio = image.devicePixelRatio()
    return QColor(image.pixel(int(at.x() * ratio), int(at.y() * ratio))).name()


def test_each_dot_is_painted_at_its_position_in_its_colour(qtbot):
    w = pg.PlotWidget(background="#ffffff")
    qtbot.addWidget(w)
    w.resize(400, 300)
    cloud = PointCloud(size=9)
    w.addItem(cloud)
    xy = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0], [5.0, 5.0]])
    colours = ["#ff0000", "#0000ff", "#ff0000", "#00aa00", "#0000ff"]
    cloud.set_points(xy, colours)
    w.show()
    w.autoRange()
    qtbot.wait(50)
    assert len(cloud) == 5 and cloud.colour_names() == colours
    for (x, y), colour in zip(xy, colours):
        assert _pixel(w, cloud, x, y) == colour
    assert _pixel(w, cloud, 2.5, 7.5) == "#ffffff"  # nothing between the dots
    lo, hi = w.getViewBox().viewRange()[0]
    assert lo < 0 < 10 < hi  # autorange fits every dot, half a dot's padding included

    # two dots at one place: the "bottom" colour is drawn first, the other shows on top
    cloud.set_points(np.array([[1.0, 1.0], [1.0, 1.0], [9.0, 9.0]]), ["#0000ff", "#c9c9c9", "#c9c9c9"],
                     bottom="#c9c9c9")
    qtbot.wait(50)
    assert cloud.palette[0] == "#c9c9c9"
    assert _pixel(w, cloud, 1.0, 1.0) == "#0000ff"
    cloud.clear()
    qtbot.wait(50)
    assert len(cloud) == 0 and _pixel(w, cloud, 1.0, 1.0) == "#ffffff"


def test_data_bounds_follow_the_points_and_an_empty_cloud_has_none():
    cloud = PointCloud()
    assert cloud.dataBounds(0) == (None, None)
    cloud.set_points(np.array([[-3.0, 2.0], [4.0, -1.0], [1.0, 8.0]]), ["a", "b", "a"])
    assert cloud.dataBounds(0) == (-3.0, 4.0) and cloud.dataBounds(1) == (-1.0, 8.0)
    assert cloud.dataBounds(0, orthoRange=(1.5, 9.0)) == (-3.0, 1.0)  # the points with y in range
