"""widgets.chart.Chart: figures drawn off the UI thread, the newest plot shown, and redraws spaced
out (matplotlib's rasteriser keeps Python's lock: back-to-back redraws starved the UI thread)."""

import threading
import time

import widgets.chart
from widgets.chart import Chart, charts_drawn


def test_redraws_are_folded_and_spaced_after_the_first_picture(qtbot, monkeypatch):
    monkeypatch.setattr(widgets.chart, "GAP_MS", 400)
    chart = Chart((3, 2))
    qtbot.addWidget(chart)
    chart.resize(300, 200)
    chart.show()
    runs: list[tuple[int, float, bool]] = []

    def plot(n: int):
        def draw(fig, palette):
            runs.append((n, time.monotonic(), threading.current_thread() is threading.main_thread()))
            fig.add_subplot().bar([0], [n])
        return draw

    chart.plot(plot(0))
    qtbot.waitUntil(lambda: charts_drawn(chart), timeout=10000)
    first_ended = chart._ended
    assert [n for n, _, _ in runs] == [0]  # the first picture is drawn at once
    for n in range(1, 6):  # five changes in a burst
        chart.plot(plot(n))
    assert not charts_drawn(chart)
    qtbot.waitUntil(lambda: charts_drawn(chart), timeout=10000)
    assert [n for n, _, _ in runs] == [0, 5]  # folded: only the newest is drawn...
    assert runs[1][1] - first_ended >= 0.35  # ... a gap after the last draw ended (Qt's timers may be 5% early)
    assert not any(on_ui for _, _, on_ui in runs)
    assert chart.figure.axes[0].patches[0].get_height() == 5
