"""Where synthetic records sit among real ones in embedding space.

Two measures, both on L2-normalised vectors (cosine geometry):

- the **nearest real record** of each synthetic one and its cosine distance (1 - cosine
  similarity): 0 is a copy, large is a record unlike anything real (the ``nearest-real`` axis);
- **k-NN precision and recall** (Kynkäänniemi et al. 2019, "Improved precision and recall
  metric for assessing generative models"): each point of a set gets a ball reaching its k-th
  nearest neighbour in its own set; precision is the share of synthetic points inside some real
  point's ball (synthetic records look real), recall the share of real points inside some
  synthetic point's ball (the real variety is covered).

Written as chunked matrix products rather than sklearn queries: the test "inside *some* ball,
each with its own radius" is not a NearestNeighbors query, the radii and the tests then use one
formula (so an exact copy is always inside), and each chunk checks the task for a cancel.
sklearn's NearestNeighbors gives the same radii (tests/test_report.py checks it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from app.core.errors import StudioError
from app.core.tasks import TaskState
from app.store.notebook import Notebook
from app.store.report import current_vectors, real_sample_ids, synthetic_sample_ids

CHUNK = 1024  # rows per product: 1024 x 10k float32 is 40 MB
# similarity slack: float32 rounding puts an exact copy ~1e-7 below a similarity of 1, and one
# vector's similarities are computed in different blocks; far below any real neighbour gap
SLACK = 1e-5


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (float32); zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: np.ndarray = x / np.where(norms > 0, norms, 1)
    return out


def _chunks(a: np.ndarray, b: np.ndarray, task: TaskState) -> Iterator[tuple[slice, np.ndarray]]:
    """(rows of ``a``, their cosine similarities to every row of ``b``), a chunk at a time."""
    for start in range(0, len(a), CHUNK):
        task.check()
        rows = slice(start, min(start + CHUNK, len(a)))
        yield rows, a[rows] @ b.T


def _own_neighbours(x: np.ndarray, k: int, task: TaskState, progress: _Progress) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the similarity of its k-th nearest other row (its ball's edge) and of its nearest other row."""
    kth = np.empty(len(x), np.float32)
    nearest = np.empty(len(x), np.float32)
    for rows, sim in _chunks(x, x, task):
        # the row itself is among the largest (similarity ~1): the (k+1)-th largest is the k-th other
        part = -np.partition(-sim, (1, k), axis=1)
        nearest[rows], kth[rows] = part[:, 1], part[:, k]
        progress.step()
    return kth, nearest


class _Progress:
    def __init__(self, task: TaskState, total: int) -> None:
        self.task, self.total, self.done = task, total, 0

    def step(self) -> None:
        self.done += 1
        self.task.set_progress(self.done, self.total, "embedding neighbours")


@dataclass
class ManifoldFit:
    """k-NN precision/recall of synthetic vs real, and each synthetic point's nearest real point."""

    k: int
    precision: float
    recall: float
    nearest_real: np.ndarray  # (n synthetic,) index into the real set
    nearest_real_distance: np.ndarray  # (n synthetic,) cosine distance
    real_nearest_distance: np.ndarray  # (n real,) cosine distance of each real point to its nearest other real one


def manifold_fit(real: np.ndarray, synthetic: np.ndarray, k: int = 5, task: TaskState | None = None) -> ManifoldFit:
    """Precision and recall of ``synthetic`` against ``real`` (rows are vectors; normalised here)."""
    task = task or TaskState()
    if len(real) < 2 or len(synthetic) < 2:
        raise StudioError("k-NN precision and recall need at least 2 real and 2 synthetic vectors")
    r, s = unit(real), unit(synthetic)
    kr, ks = min(k, len(r) - 1), min(k, len(s) - 1)
    progress = _Progress(task, 2 * -(-len(r) // CHUNK) + 2 * -(-len(s) // CHUNK))
    real_edge, real_nearest = _own_neighbours(r, kr, task, progress)
    synth_edge, _ = _own_neighbours(s, ks, task, progress)
    inside = np.zeros(len(s), bool)
    covered = np.zeros(len(r), bool)
    nearest = np.empty(len(s), np.int64)
    nearest_sim = np.empty(len(s), np.float32)
    for rows, sim in _chunks(s, r, task):
        inside[rows] = (sim >= real_edge[None, :] - SLACK).any(axis=1)
        covered |= (sim >= synth_edge[rows, None] - SLACK).any(axis=0)
        nearest[rows] = sim.argmax(axis=1)
        nearest_sim[rows] = sim[np.arange(sim.shape[0]), nearest[rows]]
        progress.step()
        progress.step()
    return ManifoldFit(k=min(kr, ks), precision=float(inside.mean()), recall=float(covered.mean()),
                       nearest_real=nearest, nearest_real_distance=_distance(nearest_sim),
                       real_nearest_distance=_distance(real_nearest))


def nearest_real(real: np.ndarray, synthetic: np.ndarray, task: TaskState | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(index of the nearest real row, its cosine distance) for each synthetic row."""
    task = task or TaskState()
    r, s = unit(real), unit(synthetic)
    nearest = np.empty(len(s), np.int64)
    sims = np.empty(len(s), np.float32)
    for rows, sim in _chunks(s, r, task):
        nearest[rows] = sim.argmax(axis=1)
        sims[rows] = sim[np.arange(sim.shape[0]), nearest[rows]]
    return nearest, _distance(sims)


def _distance(similarity: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.clip(1.0 - similarity.astype(np.float64), 0.0, 2.0)
    return out


def nearest_real_values(nb: Notebook, task: TaskState | None = None) -> list[tuple[int, float]]:
    """(synthetic sample id, cosine distance to its nearest real sample) for every embedded synthetic sample."""
    sha, real_ids, real = current_vectors(nb, real_sample_ids(nb))
    if sha is None:
        raise StudioError("axis 'nearest-real' needs embeddings: run synth-studio embed NB.db first")
    if not real_ids:
        raise StudioError("axis 'nearest-real' needs real records with embeddings: import some "
                          "(synth-studio import NB.db FILE --origin real) and run synth-studio embed NB.db")
    _, synth_ids, synth = current_vectors(nb, synthetic_sample_ids(nb), sha)
    if not synth_ids:
        return []
    _, dist = nearest_real(real, synth, task)
    return [(rid, float(d)) for rid, d in zip(synth_ids, dist)]
