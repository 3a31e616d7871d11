"""``make bench`` (second part): embeddings, the map, and the scatter at 100k points.

Prints, on the machine it runs on: embedding records/s (MiniLM through llama.cpp),
map time (UMAP 2-D + 5-D on one kNN graph, then HDBSCAN) for N records in the first
fit of this process (cold) and the second (warm), and the scatter's repaint, hover,
lasso and recolour latency at 100k points (offscreen Qt). Targets from issue 4 in brackets.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def clustered(n: int, dim: int = 384, k: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    x = centres[rng.integers(0, k, n)] + 0.35 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.map")
    p.add_argument("--records", type=int, default=20_000, help="map size")
    p.add_argument("--points", type=int, default=100_000, help="scatter size")
    p.add_argument("--embed", type=int, default=500, help="texts to embed")
    args = p.parse_args()
    os.environ.setdefault("SYNTH_STUDIO_HOME", tempfile.mkdtemp(prefix="synth-bench-"))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from backends.embedder import LlamaEmbedder

    emb = LlamaEmbedder()
    texts = [f"Customer {i} writes about {w} and asks for help with the {v} screen."
             for i, (w, v) in enumerate(zip(["a refund", "an invoice", "a login", "payroll"] * args.embed,
                                            ["settings", "billing", "export", "reports", "bank"] * args.embed))]
    texts = texts[: args.embed]
    t0 = time.perf_counter()
    emb.embed(texts)
    dt = time.perf_counter() - t0
    emb.close()
    print(f"embedding (all-MiniLM-L6-v2 via llama.cpp)   {len(texts) / dt:8.1f} records/s")

    from app.core.tasks import TaskState
    from app.map.projection import _umap_pair, cluster

    x = clustered(args.records)
    for label in ("cold (first fit in this process)", "warm"):
        t0 = time.perf_counter()
        xy, low = _umap_pair(x, 0, 15, TaskState())
        t1 = time.perf_counter()
        labels, _ = cluster(low, max(3, min(50, len(x) // 40)))
        t2 = time.perf_counter()
        print(f"map of {len(x)} records, {label:<32} {t2 - t0:7.1f} s  (UMAP {t1 - t0:.1f} s, "
              f"HDBSCAN {t2 - t1:.1f} s, {len(set(labels.tolist()) - {-1})} clusters)  [warm < 30 s]")

    import pyqtgraph as pg
    from matplotlib.path import Path as MplPath
    from PySide6.QtWidgets import QApplication
    from scipy.spatial import cKDTree

    app = QApplication.instance() or QApplication([])
    rng = np.random.default_rng(1)
    n = args.points
    pts = np.vstack([rng.normal(c, 1.0, size=(n // 20, 2)) for c in rng.uniform(-30, 30, size=(20, 2))])
    w = pg.PlotWidget(background="w")
    w.resize(1200, 800)
    sc = pg.ScatterPlotItem(pxMode=True, size=6, pen=None)
    w.addItem(sc)
    brushes = [pg.mkBrush(c) for c in ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")]
    sc.setData(pos=pts, brush=[brushes[i % 5] for i in range(len(pts))])
    w.show()
    app.processEvents()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        w.grab()  # renders the whole view
        times.append(time.perf_counter() - t0)
    print(f"scatter repaint, {len(pts)} points              {1000 * np.median(times):8.1f} ms   [< 33 ms]")
    tree = cKDTree(pts)
    q = rng.uniform(-30, 30, size=(1000, 2))
    t0 = time.perf_counter()
    for xy_ in q:
        tree.query(xy_)
    print(f"hover (KD-tree nearest point)                 {1e6 * (time.perf_counter() - t0) / len(q):8.1f} µs   "
          f"[< 16 ms]")
    poly = np.array([[-10, -10], [10, -12], [15, 8], [0, 14], [-12, 6]], dtype=float)
    t0 = time.perf_counter()
    inside = MplPath(poly).contains_points(pts)
    print(f"lasso (Path.contains_points)                  {1000 * (time.perf_counter() - t0):8.1f} ms   "
          f"[< 50 ms]  ({int(inside.sum())} inside)")
    t0 = time.perf_counter()
    values = rng.uniform(size=len(pts))
    lut = [pg.mkBrush(pg.colormap.get("viridis").map(i / 63, mode="qcolor")) for i in range(64)]
    idx = (values * 63).astype(int)
    sc.setData(pos=pts, brush=[lut[i] for i in idx])
    app.processEvents()
    w.grab()
    print(f"recolour by a numeric axis (+ repaint)        {time.perf_counter() - t0:8.2f} s    [< 0.6 s]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
