"""A static picture of a map for reports (matplotlib, no window)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.core.errors import StudioError


def save_map_png(m: Any, out: str | Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise StudioError("matplotlib is needed for --png (pip install matplotlib)") from exc
    fig, ax = plt.subplots(figsize=(8, 6), dpi=120)
    noise = m.clusters < 0
    ax.scatter(m.xy[noise, 0], m.xy[noise, 1], s=8, c="#d0d0d0", linewidths=0, label="noise")
    cmap = plt.get_cmap("tab20")
    for c in sorted(set(m.clusters.tolist()) - {-1}):
        sel = m.clusters == c
        ax.scatter(m.xy[sel, 0], m.xy[sel, 1], s=14, color=cmap((2 * c) % 20 + (c // 10) % 2), linewidths=0,
                   label=f"{c}: {m.labels.get(c, '')} ({int(sel.sum())})")
    ax.set_title(f"{len(m.record_ids)} samples, {m.method.upper()} + HDBSCAN")
    ax.set_xticks([])
    ax.set_yticks([])
    if len(set(m.clusters.tolist())) <= 21:
        ax.legend(loc="center left", bbox_to_anchor=(1, 0.5), fontsize=7, frameon=False)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out)
    plt.close(fig)
    return out
