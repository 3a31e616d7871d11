"""The Map tab (offscreen): draws a stored map, hover finds the point, lasso selects,
bulk status goes through the undo stack, extrema list the right records."""

import numpy as np
import pytest

pytest.importorskip("pyqtgraph")

from PySide6.QtGui import QUndoStack  # noqa: E402

from app.map.projection import compute_map  # noqa: E402
from app.store.embeddings import save_embeddings  # noqa: E402
from widgets.map_view import MapView  # noqa: E402


def _planted(nb, groups=3, per=12):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(groups, 8)) * 10
    items, vecs = [], []
    words = ["apple", "river", "engine"]
    for g in range(groups):
        for i in range(per):
            text = f"{words[g]} sample {'x' * i}"
            nb.add_imported_rows([({}, text)], origin="synthetic", source="test")
            rid = nb.conn.execute("SELECT MAX(id) FROM records").fetchone()[0]
            v = centres[g] + rng.normal(size=8)
            items.append((rid, text))
            vecs.append(v / np.linalg.norm(v))
    save_embeddings(nb, "fake", items, np.asarray(vecs, dtype=np.float32))
    return compute_map(nb, method="pca")


def test_map_view_shows_selects_and_sets_status(qtbot, nb):
    m = _planted(nb)
    stack = QUndoStack()
    view = MapView(nb, stack)
    qtbot.addWidget(view)
    view.resize(1200, 800)
    view.show()
    assert view.scatter.data.shape[0] == 36
    assert "3 clusters" in view.status.text()
    # lasso around one cluster's points (a polygon enclosing exactly them)
    sel = m.clusters == m.clusters[0]
    pts = m.xy[sel]
    lo, hi = pts.min(axis=0) - 1e-6, pts.max(axis=0) + 1e-6
    others = m.xy[~sel]
    assert not ((others >= lo) & (others <= hi)).all(axis=1).any()  # the box holds no other point
    view._on_lasso(np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]]))
    assert sorted(view.selected_ids()) == sorted(np.array(m.record_ids)[sel].tolist())
    view.set_selected_status("rejected")
    statuses = {r[0] for r in nb.conn.execute(
        f"SELECT status FROM records WHERE id IN ({','.join(map(str, view.selected_ids()))})")}
    assert statuses == {"rejected"}
    stack.undo()
    statuses = {r[0] for r in nb.conn.execute(
        f"SELECT status FROM records WHERE id IN ({','.join(map(str, view.selected_ids()))})")}
    assert statuses == {"new"}
    # colour by status / by a numeric axis works without errors and updates the legend
    view.colour_by.setCurrentText("length")
    assert "length" in view.legend.text()
    # extrema: the longest text first
    view.axis.setCurrentText("length")
    first = view.extremes.item(1)
    longest = nb.conn.execute("SELECT id FROM records ORDER BY LENGTH(output) DESC, id LIMIT 1").fetchone()[0]
    assert first.text().startswith(f"#{longest}")


def test_hover_finds_the_point_under_the_mouse(qtbot, nb):
    m = _planted(nb)
    view = MapView(nb, QUndoStack())
    qtbot.addWidget(view)
    view.resize(1000, 700)
    view.show()
    qtbot.wait(50)
    i = 5
    scene = view.vb.mapViewToScene(__import__("pyqtgraph").Point(*m.xy[i]))
    assert view._nearest(scene) == i
    view._on_move(scene)
    assert view.hover.isVisible() and f"#{m.record_ids[i]}" in view.hover.toPlainText()


def test_records_can_be_filtered_by_cluster_and_by_a_map_selection(qtbot, nb):
    from widgets.main_window import MainWindow

    m = _planted(nb)
    win = MainWindow(nb)
    qtbot.addWidget(win)
    labels = [win.cluster_filter.itemText(i) for i in range(win.cluster_filter.count())]
    assert labels[0] == "any cluster" and any("apple" in t or "river" in t or "engine" in t for t in labels)
    c = int(m.clusters[0])
    win.cluster_filter.setCurrentIndex(win.cluster_filter.findData(c))
    assert win.model.total == int((m.clusters == c).sum())
    win.cluster_filter.setCurrentIndex(0)
    assert win.model.total == 36
    win.show_records((m.record_ids[3], m.record_ids[7]))
    assert win.model.total == 2 and win.tabs.currentWidget() is win.records_page
