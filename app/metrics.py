"""Axes over a notebook's samples, and the records at either end of one.

An axis gives each sample a number: ``length`` (characters), ``tokens`` (completion
tokens), ``likelihood`` (mean token log-probability), ``perplexity``, ``score:NAME``
(any stored validator/judge/scorer value, e.g. ``score:judge:rude``), ``outlier``
(HDBSCAN outlier score from the latest map), ``centroid`` (cosine distance to its
cluster's centroid) and ``dupes`` (size of its duplicate group, any method).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import StudioError
from app.store.notebook import Notebook

AXES = ("length", "tokens", "likelihood", "perplexity", "outlier", "centroid", "dupes", "score:NAME")


def axis_values(nb: Notebook, axis: str) -> list[tuple[int, float]]:
    """(record id, value) for every sample that has a value on ``axis``."""
    base = "FROM records r WHERE r.role = 'sample' AND r.output IS NOT NULL"
    if axis == "length":
        sql = f"SELECT r.id, LENGTH(r.output) {base}"
    elif axis == "tokens":
        sql = f"SELECT r.id, r.completion_tokens {base} AND r.completion_tokens IS NOT NULL"
    elif axis in ("likelihood", "perplexity"):
        sql = f"SELECT r.id, r.mean_logprob {base} AND r.mean_logprob IS NOT NULL"
    elif axis in ("outlier", "centroid"):
        row = nb.conn.execute("SELECT id FROM maps ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            raise StudioError(f"axis {axis!r} needs a map: run synth-studio map NB.db first")
        col = "outlier" if axis == "outlier" else "centroid_distance"
        sql = (f"SELECT r.id, p.{col} FROM records r JOIN map_points p ON p.record_id = r.id "
               f"WHERE p.map_id = {int(row[0])} AND r.role = 'sample'")
    elif axis == "dupes":
        sql = ("SELECT r.id, COALESCE((SELECT MAX(cnt) FROM (SELECT d.method, COUNT(*) AS cnt FROM duplicates d "
               "JOIN duplicates m ON m.method = d.method AND m.group_id = d.group_id WHERE d.record_id = r.id "
               "GROUP BY d.method)), 1) " + base)
    elif axis.startswith("score:"):
        name = axis[len("score:"):]
        known = [r[0] for r in nb.conn.execute("SELECT DISTINCT name FROM scores ORDER BY name")]
        if name not in known:
            # accept the short form (score:rude for judge:rude) when it is unambiguous
            matches = [k for k in known if k.split(":", 1)[-1] == name]
            if len(matches) != 1:
                raise StudioError(f"no score named {name!r}; stored scores: {', '.join(known) or 'none yet'}")
            name = matches[0]
        return [(r[0], float(r[1])) for r in nb.conn.execute(
            "SELECT s.record_id, s.value FROM scores s JOIN records r ON r.id = s.record_id "
            "WHERE s.name = ? AND s.value IS NOT NULL AND r.role = 'sample'", (name,))]
    else:
        raise StudioError(f"unknown axis {axis!r}; axes: {', '.join(AXES)}")
    out = [(r[0], float(r[1])) for r in nb.conn.execute(sql) if r[1] is not None]
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
    top = sorted(vals, key=lambda t: (-t[1], t[0]))[:k]
    bottom = sorted(vals, key=lambda t: (t[1], t[0]))[:k]
    ids = {rid for rid, _ in top + bottom}
    texts = dict(nb.conn.execute(f"SELECT id, output FROM records WHERE id IN ({','.join('?' * len(ids))})",
                                 list(ids)).fetchall())
    return ([Extreme(rid, v, texts.get(rid) or "") for rid, v in top],
            [Extreme(rid, v, texts.get(rid) or "") for rid, v in bottom])


def histogram(values: list[float], bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    return np.histogram(np.asarray(values, dtype=float), bins=bins)
