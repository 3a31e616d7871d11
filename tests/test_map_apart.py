"""A big map is computed in a child process (UMAP and HDBSCAN hold Python's lock): the same map as in
process, its progress relayed, a stop kills the child and leaves no map, its errors said in one line."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.errors import Cancelled, StudioError
from app.core.tasks import TaskState
from app.map import apart
from app.map.projection import latest_map
from app.store.embeddings import save_embeddings


def _embedded(nb, n=60):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 10
    nb.add_imported_rows([({}, f"text {i}") for i in range(n)], origin="synthetic", source="t")
    ids = [r[0] for r in nb.conn.execute("SELECT id FROM records ORDER BY id")]
    vecs = centres[np.arange(n) % 3] + rng.normal(size=(n, 8))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    save_embeddings(nb, "fake", [(i, f"text {k}") for k, i in enumerate(ids)], vecs.astype(np.float32))
    return ids


def test_the_child_makes_the_map_the_window_would_and_relays_its_progress(nb):
    ids = _embedded(nb)
    steps = []
    got = apart.compute_map_apart(nb.path, method="pca", task=TaskState(lambda d, t, m: steps.append((d, t, m))))
    m = latest_map(nb)
    assert m is not None and sorted(m.record_ids) == ids  # saved by the child, read here
    assert (got.samples, got.method, got.clusters) == (60, "pca", apart.made(m).clusters) and not got.cached
    assert steps and steps[0][2] == "map" and any(s[2] == "map: clusters" for s in steps)
    from app.store.maps import latest_map as stored_map
    from app.store.maps import map_counts, map_points

    points = map_points(nb, stored_map(nb).id)  # the Map cell's line counts in SQL what the points hold
    assert map_counts(nb, stored_map(nb).id) == (len(points), len({p[3] for p in points if p[3] >= 0}))
    again = apart.compute_map_apart(nb.path, method="pca", task=TaskState())
    assert again.cached and again.samples == 60  # the same cache as in process


def test_a_stop_kills_the_child_and_leaves_no_map(nb, monkeypatch):
    import subprocess

    _embedded(nb)
    started = []
    real = subprocess.Popen
    monkeypatch.setattr(apart.subprocess, "Popen", lambda *a, **kw: started.append(real(*a, **kw)) or started[-1])
    task = TaskState()
    task.request_interruption()
    with pytest.raises(Cancelled):
        apart.compute_map_apart(nb.path, method="pca", task=task)
    assert len(started) == 1 and started[0].poll() is not None  # killed, not left running
    assert latest_map(nb) is None


def test_the_childs_error_is_the_same_one_line(nb):
    nb.add_imported_rows([({}, "one text")], origin="synthetic", source="t")
    with pytest.raises(StudioError, match="this notebook has no embeddings yet"):
        apart.compute_map_apart(nb.path, method="pca", task=TaskState())


def test_the_window_job_goes_apart_from_the_threshold_on(nb, monkeypatch):
    from app import jobs

    _embedded(nb)
    assert not apart.worth_a_process(nb)
    monkeypatch.setattr(apart, "APART_AT", 50)
    assert apart.worth_a_process(nb)
    calls = []
    real = apart.compute_map_apart
    monkeypatch.setattr(apart, "compute_map_apart", lambda *a, **kw: calls.append(a) or real(*a, **kw))

    class NoEmbedder:  # every sample is embedded already: the job only loads and closes it
        def __init__(self, *_a):
            pass

        def close(self):
            pass

    monkeypatch.setattr("backends.embedder.LlamaEmbedder", NoEmbedder)
    monkeypatch.setattr("app.map.embed.embed_notebook", lambda nb, emb, task: (0, 60))
    line = jobs.map_job(nb.path, method="pca", task=TaskState())
    assert calls and line.startswith("60 samples (0 newly embedded), PCA")
    done = jobs.map_job(nb.path, method="pca", load=True, task=TaskState())  # the window's: the map read back
    assert str(done).startswith("60 samples") and len(done.map.record_ids) == 60
