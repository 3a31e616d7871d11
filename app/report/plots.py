"""The report's figures as PNG data URIs (matplotlib's Agg canvas, no pyplot: safe off the UI thread)."""

from __future__ import annotations

import base64
import io
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.core.errors import StudioError
from app.report.columns import ColumnShape, TextField
from app.report.compute import PARTS, ClusterPart, EmbeddingPart, Report

REAL, SYNTHETIC = "#4c72b0", "#dd8452"
DPI = 100


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise StudioError("the report's plots need matplotlib (pip install matplotlib)") from exc
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def data_uri(fig: Any) -> str:
    """The figure as a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _tidy(ax: Any, title: str) -> None:
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _parts(ax: Any, report: Report) -> None:
    names = ["overall"] + [p for p in PARTS if p in report.parts]
    values = [report.score] + [report.parts[p] for p in names[1:]]
    y = np.arange(len(names))[::-1]
    ax.barh(y, values, color=["#2f4b7c"] + ["#7a9cc6"] * (len(names) - 1))
    for yi, v in zip(y, values):
        ax.text(min(v + 0.01, 0.9), yi, f"{v:.3f}", va="center", fontsize=8)
    ax.set_yticks(y, names)
    ax.set_xlim(0, 1.05)
    _tidy(ax, "score and its parts (1 = indistinguishable)")


def _hist(ax: Any, real: Sequence[float], synthetic: Sequence[float], title: str, xlabel: str) -> None:
    both = np.concatenate([np.asarray(real, float), np.asarray(synthetic, float)])
    if both.size == 0:
        return
    lo, hi = float(both.min()), float(both.max())
    integer = bool(np.all(both == np.round(both))) and hi - lo <= 60
    bins: Any = np.arange(lo - 0.5, hi + 1.5) if integer else np.linspace(lo, hi if hi > lo else lo + 1, 31)
    ax.hist(real, bins=bins, density=True, alpha=0.55, color=REAL, label=f"real ({len(real)})")
    ax.hist(synthetic, bins=bins, density=True, alpha=0.55, color=SYNTHETIC, label=f"synthetic ({len(synthetic)})")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.legend(fontsize=7, frameon=False)
    _tidy(ax, title)


def _categories(ax: Any, shape: ColumnShape, top: int = 12) -> None:
    r, s = Counter(shape.real_values), Counter(shape.synthetic_values)
    cats = [c for c, _ in (r + s).most_common(top)]
    x = np.arange(len(cats))
    nr, ns = max(1, len(shape.real_values)), max(1, len(shape.synthetic_values))
    ax.bar(x - 0.2, [r[c] / nr for c in cats], 0.4, color=REAL, label="real")
    ax.bar(x + 0.2, [s[c] / ns for c in cats], 0.4, color=SYNTHETIC, label="synthetic")
    ax.set_xticks(x, [str(c)[:18] for c in cats], rotation=30, ha="right")
    ax.set_ylabel("share", fontsize=8)
    ax.legend(fontsize=7, frameon=False)
    _tidy(ax, f"{shape.column}: 1 - TVD = {shape.score:.3f}")


def _nearest(ax: Any, emb: EmbeddingPart) -> None:
    d, b = np.asarray(emb.distances), np.asarray(emb.real_distances)
    hi = float(max(d.max(initial=0), b.max(initial=0))) or 1.0
    bins = np.linspace(0, hi, 41)
    ax.hist(b, bins=bins, density=True, alpha=0.55, color=REAL, label="real → nearest other real")
    ax.hist(d, bins=bins, density=True, alpha=0.55, color=SYNTHETIC, label="synthetic → nearest real")
    ax.set_xlabel("cosine distance (0 = a copy)", fontsize=8)
    ax.legend(fontsize=7, frameon=False)
    _tidy(ax, f"distance to the nearest real record (median {np.median(d):.3f})")


def _map(ax: Any, part: ClusterPart) -> None:
    size = 3 if len(part.real_xy) + len(part.synthetic_xy) > 3000 else 12
    ax.scatter(part.real_xy[:, 0], part.real_xy[:, 1], s=size, c=REAL, linewidths=0, alpha=0.6,
               label=f"real ({len(part.real_xy)})")
    ax.scatter(part.synthetic_xy[:, 0], part.synthetic_xy[:, 1], s=size, c=SYNTHETIC, linewidths=0, alpha=0.6,
               label=f"synthetic ({len(part.synthetic_xy)})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, frameon=False, markerscale=12 / size)
    _tidy(ax, f"the map by origin (cluster balance {part.balance:.3f})")


def parts_png(report: Report) -> str:
    fig = _figure(6.5, 0.45 * (len(report.parts) + 1) + 0.8)
    _parts(fig.add_subplot(), report)
    return data_uri(fig)


def lengths_png(field: TextField) -> str:
    fig = _figure(8, 2.8)
    a, b = fig.subplots(1, 2)
    _hist(a, field.real.words, field.synthetic.words, f"{field.name}: length in words", "words")
    _hist(b, field.real.tokens, field.synthetic.tokens, f"{field.name}: length in tokens", "tokens")
    return data_uri(fig)


def column_png(shape: ColumnShape) -> str:
    fig = _figure(6.5, 2.8)
    ax = fig.add_subplot()
    if shape.kind == "categorical":
        _categories(ax, shape)
    else:
        _hist(ax, shape.real_values, shape.synthetic_values, f"{shape.column}: 1 - KS = {shape.score:.3f}",
              shape.column)
    return data_uri(fig)


def nearest_png(emb: EmbeddingPart) -> str:
    fig = _figure(6.5, 2.8)
    _nearest(fig.add_subplot(), emb)
    return data_uri(fig)


def map_png(part: ClusterPart) -> str:
    fig = _figure(5.5, 4.5)
    _map(fig.add_subplot(), part)
    return data_uri(fig)


def summary_figure(report: Report) -> Any:
    """The report at a glance (parts, output lengths, nearest-real distances, the map): one matplotlib figure."""
    fig = _figure(11, 7)
    axes = fig.subplots(2, 2).ravel()
    _parts(axes[0], report)
    out = report.fields[0]
    _hist(axes[1], out.real.words, out.synthetic.words, "output: length in words", "words")
    if report.embedding is not None:
        _nearest(axes[2], report.embedding)
    if report.clusters is not None:
        _map(axes[3], report.clusters)
    for ax, part in ((axes[2], report.embedding), (axes[3], report.clusters)):
        if part is None:
            ax.set_axis_off()
            ax.text(0.5, 0.5, "not computed (see the notes)", ha="center", fontsize=9)
    fig.suptitle(f"Real vs synthetic ({report.synthetic_set}): score {report.score:.3f}", fontsize=11)
    return fig
