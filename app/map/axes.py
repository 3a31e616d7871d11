"""Axes over a notebook's samples, and the records at either end of one.

An axis gives each sample a number: ``length`` (characters), ``tokens`` (completion
tokens), ``likelihood`` (mean token log-probability), ``perplexity``, ``score:NAME``
(any stored validator/judge/scorer value, e.g. ``score:judge:rude``), ``outlier``
(HDBSCAN outlier score from the latest map), ``centroid`` (cosine distance to its
cluster's centroid), ``dupes`` (size of its duplicate group, any method) and ``nearest-real``
(a synthetic sample's cosine distance to its nearest real record: its low end is the records
closest to a real one, its high end those farthest from any).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.core.errors import StudioError
from app.map.neighbours import nearest_real_values
from app.store.maps import latest_map_id, map_point_values
from app.store.notebook import Notebook
from app.store.records import (
    outputs_by_id,
    sample_completion_tokens,
    sample_lengths,
    sample_mean_logprobs,
)
from app.store.scores import duplicate_group_sizes, sample_score_values, score_names

AXES = ("length", "tokens", "likelihood", "perplexity", "outlier", "centroid", "dupes", "nearest-real", "score:NAME")


def axis_values(nb: Notebook, axis: str) -> list[tuple[int, float]]:
    """(record id, value) for every sample that has a value on ``axis``."""
    rows: list[tuple[int, Any]]
    if axis == "length":
        rows = sample_lengths(nb)
    elif axis == "tokens":
        rows = sample_completion_tokens(nb)
    elif axis in ("likelihood", "perplexity"):
        rows = sample_mean_logprobs(nb)
    elif axis in ("outlier", "centroid"):
        map_id = latest_map_id(nb)
        if map_id is None:
            raise StudioError(f"axis {axis!r} needs a map: run synth-studio map NB.db first")
        rows = map_point_values(nb, map_id, "outlier" if axis == "outlier" else "centroid_distance")
    elif axis == "dupes":
        rows = duplicate_group_sizes(nb)
    elif axis == "nearest-real":
        rows = list(nearest_real_values(nb))
    elif axis.startswith("score:"):
        name = axis[len("score:"):]
        known = score_names(nb)
        if name not in known:
            # accept the short form (score:rude for judge:rude) when it is unambiguous
            matches = [k for k in known if k.split(":", 1)[-1] == name]
            if len(matches) != 1:
                raise StudioError(f"no score named {name!r}; stored scores: {', '.join(known) or 'none yet'}")
            name = matches[0]
        return [(rid, float(v)) for rid, v in sample_score_values(nb, name)]
    else:
        raise StudioError(f"unknown axis {axis!r}; axes: {', '.join(AXES)}")
    out = [(rid, float(v)) for rid, v in rows if v is not None]
    if axis == "perplexity":
        out = [(rid, math.exp(-v)) for rid, v in out]
    return out


@dataclass(frozen=True)
class Extreme:
    record_id: int
    value: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"record_id": self.record_id, "value": self.value, "text": self.text}


def extrema(nb: Notebook, axis: str, k: int = 5) -> tuple[list[Extreme], list[Extreme]]:
    """(top k, bottom k) records on ``axis``: highest first, lowest first; ties by record id."""
    vals = axis_values(nb, axis)
    if not vals:
        raise StudioError(f"no sample has a value on axis {axis!r} yet")
    return _ends(nb, vals, k)


def _ends(nb: Notebook, vals: list[tuple[int, float]], k: int) -> tuple[list[Extreme], list[Extreme]]:
    top = heapq.nsmallest(k, vals, key=lambda t: (-t[1], t[0]))  # O(n log k), not a sort of every value
    bottom = heapq.nsmallest(k, vals, key=lambda t: (t[1], t[0]))
    ids = {rid for rid, _ in top + bottom}
    texts = outputs_by_id(nb, ids)
    return ([Extreme(rid, v, texts.get(rid) or "") for rid, v in top],
            [Extreme(rid, v, texts.get(rid) or "") for rid, v in bottom])


@dataclass(frozen=True)
class AxisSummary:
    """What the map's extremes panel shows for one axis: both ends, and the histogram of every
    sample's value (``counts`` per bin between ``edges``); ``error`` says why there is none."""

    axis: str
    k: int
    top: list[Extreme]
    bottom: list[Extreme]
    counts: list[int]
    edges: list[float]
    n: int  # samples with a value
    error: str = ""


def axis_summary(nb: Notebook, axis: str, k: int = 5) -> AxisSummary:
    """:func:`extrema` and the values' histogram, reading every sample's value once. The bins are
    matplotlib's ``hist(values, bins=min(40, max(5, n // 5)))``; values that are not finite (an
    overflowed perplexity) are left out of the histogram only."""
    try:
        vals = axis_values(nb, axis)
        if not vals:
            raise StudioError(f"no sample has a value on axis {axis!r} yet")
    except StudioError as exc:
        return AxisSummary(axis, k, [], [], [], [], 0, str(exc))
    top, bottom = _ends(nb, vals, k)
    values = np.fromiter((v for _, v in vals), dtype=float, count=len(vals))
    finite = values[np.isfinite(values)]
    counts, edges = (np.histogram(finite, bins=min(40, max(5, len(values) // 5))) if len(finite)
                     else (np.zeros(0, dtype=int), np.zeros(0)))
    return AxisSummary(axis, k, top, bottom, counts.tolist(), edges.tolist(), len(vals))


def histogram(values: list[float], bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    return np.histogram(np.asarray(values, dtype=float), bins=bins)
