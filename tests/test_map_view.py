"""The Map tab (offscreen): draws a stored map, hover finds the point and stays inside the plot,
lasso selects, bulk status goes through the undo stack, extrema list the right records, a map
older than the data says so, and the points and the sizes chart agree on cluster colours."""

import numpy as np
import pytest

pytest.importorskip("pyqtgraph")

from PySide6.QtGui import QUndoStack  # noqa: E402

import widgets.map_view  # noqa: E402
from app.jobs import MapDone  # noqa: E402
from app.map.projection import compute_map  # noqa: E402
from app.map.staleness import map_staleness  # noqa: E402
from app.store.embeddings import save_embeddings  # noqa: E402
from widgets.chart import charts_drawn  # noqa: E402
from widgets.map_view import MapView, hover_origin  # noqa: E402


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
    assert len(view.scatter) == 36
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


def test_a_big_notebooks_extremes_are_read_off_the_ui_thread(qtbot, nb, monkeypatch, main_thread_calls):
    """Beyond COUNT_HERE records the extremes panel reads every sample's value on a runner: it says
    it is reading, then lists both ends and draws the histogram; a result for an axis the person
    has left since is not shown."""
    import app.map.axes
    import widgets.funnel_counter as fc

    _planted(nb)
    threads = main_thread_calls(app.map.axes, "axis_values")
    monkeypatch.setattr(fc, "COUNT_HERE", 0)
    view = MapView(nb, QUndoStack())
    qtbot.addWidget(view)
    view.show()
    view.axis.setCurrentText("length")
    assert "reading every sample's length" in view.extremes.item(0).text()
    qtbot.waitUntil(lambda: view.extremes.count() > 2 and view.extremes.item(0).text() == "Highest length",
                    timeout=20000)
    assert threads and not any(threads)
    longest = nb.conn.execute("SELECT id FROM records ORDER BY LENGTH(output) DESC, id LIMIT 1").fetchone()[0]
    shortest = nb.conn.execute("SELECT id FROM records ORDER BY LENGTH(output), id LIMIT 1").fetchone()[0]
    assert view.extremes.item(1).text().startswith(f"#{longest}")
    lowest = [view.extremes.item(i).text() for i in range(view.extremes.count())].index("Lowest length")
    assert view.extremes.item(lowest + 1).text().startswith(f"#{shortest}")
    qtbot.waitUntil(lambda: charts_drawn(view), timeout=20000)  # drawn off the UI thread
    bars = view.hist_figure.axes[0].patches
    assert sum(b.get_height() for b in bars) == 36  # every sample in the histogram
    assert view.hist_canvas.isVisible()
    # a stale result (another axis, or another k) is dropped: the panel keeps what is asked now
    view._show_axis_summary(app.map.axes.axis_summary(nb, "tokens", view.k.value()))
    assert view.extremes.item(0).text() == "Highest length"
    # an axis without values: the reason in words, and no empty chart block above it
    view._show_axis_summary(app.map.axes.AxisSummary("length", view.k.value(), [], [], [], [], 0,
                                                     error="no sample has a value on axis 'length' yet"))
    assert view.extremes.item(0).text().startswith("no sample has a value") and not view.hist_canvas.isVisible()


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


def _add_embedded(nb, texts, seed=1):
    """Samples written after the map, embedded with fake vectors as the map job would."""
    rng = np.random.default_rng(seed)
    items = []
    for text in texts:
        nb.add_imported_rows([({}, text)], origin="synthetic", source="test")
        items.append((nb.conn.execute("SELECT MAX(id) FROM records").fetchone()[0], text))
    vecs = rng.normal(size=(len(items), 8))
    save_embeddings(nb, "fake", items, np.asarray(vecs / np.linalg.norm(vecs, axis=1, keepdims=True), np.float32))
    return [rid for rid, _ in items]


def test_a_map_older_than_the_data_says_so_until_recomputed(qtbot, nb, main_thread_calls):
    m = _planted(nb)
    view = MapView(nb, QUndoStack())
    qtbot.addWidget(view)
    view.show()
    assert view.stale_banner.isHidden() and map_staleness(nb).current
    new = _add_embedded(nb, [f"violet sample {i}" for i in range(5)])
    nb.add_imported_rows([({}, "   \n ")], origin="synthetic", source="test")  # no text: never mapped, not counted
    nb.edit_record(m.record_ids[0], "output", "apple sample, rewritten")
    view.refresh()
    assert not view.stale_banner.isHidden()
    assert "5 new records and 1 edited since this map was computed" in view.stale_label.text()
    stale = map_staleness(nb)
    assert stale.new == new and stale.edited == [m.record_ids[0]]
    # Recompute starts the view's own map job; here the map is computed the way that job does
    started = []
    view.runner.start = lambda fn, *a, **kw: started.append(fn)
    view.recompute_button.click()
    assert [f.__name__ for f in started] == ["map_job"] and not view.recompute_button.isEnabled()
    save_embeddings(nb, "fake", [(m.record_ids[0], "apple sample, rewritten")],
                    np.asarray([np.eye(8)[0]], np.float32))  # the edited text's new vector
    again = compute_map(nb, method="pca")
    assert not again.cached and len(again.record_ids) == 41  # the edit is not served the old map
    loads = main_thread_calls(widgets.map_view, "latest_map")
    view._on_finished(MapDone("41 samples", again))  # the job read the map back on its own thread
    assert loads == []  # shown as it came, not read again on the UI thread (20k points: 0.1 s)
    assert view.stale_banner.isHidden() and view.recompute_button.isEnabled()
    assert len(view.scatter) == 41 and view.status.text() == "41 samples"


def _bar_colours(view):
    from matplotlib.colors import to_hex

    ax = view.sizes_figure.axes[0]
    names = [t.get_text() for t in ax.get_xticklabels()]
    return {(-1 if n == "noise" else int(n)): to_hex(p.get_facecolor()) for n, p in zip(names, ax.patches)}


def test_points_and_sizes_chart_draw_each_cluster_in_one_colour(qtbot, nb):
    from PySide6.QtGui import QColor

    from widgets.theme import dark_palette

    m = _planted(nb)
    noisy = m.record_ids[int(np.flatnonzero(m.clusters == m.clusters[0])[0])]
    nb.conn.execute("UPDATE map_points SET cluster = -1 WHERE map_id = ? AND record_id = ?", (m.map_id, noisy))
    nb.conn.commit()
    view = MapView(nb, QUndoStack())
    qtbot.addWidget(view)
    view.show()
    for _ in range(2):  # the window's palette, then a dark one
        qtbot.waitUntil(lambda: charts_drawn(view), timeout=20000)  # drawn off the UI thread
        clusters = view.map.clusters
        dots = view.scatter.colour_names()
        bars = _bar_colours(view)
        assert set(bars) == set(clusters.tolist()) and -1 in bars
        for k, bar in bars.items():
            assert {QColor(dots[i]).name() for i in np.flatnonzero(clusters == k)} == {bar}, k
        noise = QColor(bars[-1])
        assert noise.hsvSaturation() < 25  # noise is a grey (of the palette) in both
        assert len(set(bars.values())) == len(bars)  # and every cluster has its own colour
        view.setPalette(dark_palette())


@pytest.mark.parametrize(("point", "expected"), [
    ((50, 100), (58, 42)),  # room above and to the right: there
    ((390, 100), (232, 42)),  # near the right edge: to the left of the point
    ((50, 30), (58, 38)),  # near the top: below the point
    ((390, 10), (232, 18)),  # top-right corner: left and below
    ((395, 295), (237, 237)),  # bottom-right corner: left and above
    ((2, 290), (10, 232)),  # left edge: to the right as usual
])
def test_hover_box_is_placed_inside_the_plot(point, expected):
    assert hover_origin(point, (150, 50), (0, 0, 400, 300)) == expected


def test_hover_box_bigger_than_the_plot_starts_at_its_corner():
    assert hover_origin((200, 150), (500, 400), (10, 20, 400, 300)) == (10, 20)


def test_hover_near_the_edges_stays_inside_the_plot(qtbot, nb):
    m = _planted(nb)
    view = MapView(nb, QUndoStack())
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    qtbot.wait(50)
    area = view.vb.sceneBoundingRect()
    for i in {int(m.xy[:, 0].argmax()), int(m.xy[:, 1].argmax()), int(m.xy[:, 0].argmin()), int(m.xy[:, 1].argmin())}:
        view._on_move(view.vb.mapViewToScene(__import__("pyqtgraph").Point(*m.xy[i])))
        assert view.hover.isVisible()
        view.plot.grab()  # painted: the text item takes its on-screen size and place
        box = view.hover.textItem.sceneBoundingRect()
        assert area.contains(box), (i, box, area)
