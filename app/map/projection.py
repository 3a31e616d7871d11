"""The map: 2-D positions, HDBSCAN clusters and distinctive-term labels for a notebook's samples.

UMAP (cosine neighbours) places the points for display; HDBSCAN clusters a
low-dimensional UMAP of the same neighbour graph (computed once and shared), never
the raw 384-d vectors. PCA is the instant fallback: used for tiny sets, when
umap-learn is missing or fails, or when asked (``method="pca"``). Seeds are fixed
and stored; a map is cached in the notebook by (embedder, record set, vectors, parameters).

umap's import costs ~15-25 s and its first fit minutes of numba compilation on 2
cores: numba's cache lives in the user cache folder, the import is lazy, and
:func:`warm_up` fits a tiny set in the background when the studio starts.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.core.errors import StudioError
from app.core.paths import cache_dir
from app.core.scheduler import hold_cores
from app.core.tasks import TaskState
from app.store.embeddings import embedded_sample_ids, embedders_in, load_embeddings
from app.store.maps import StoredMap, cached_map, map_points, save_map
from app.store.maps import latest_map as latest_stored_map
from app.store.notebook import Notebook
from app.store.records import outputs_by_id

MIN_FOR_UMAP = 20
STOPWORDS = set("""a an and are as at be been but by can could did do does for from had has have he her his how i if in
into is it its just me more most my no not of on or our out she so some such than that the their them then there
these they this to too up us very was we were what when which who will with would you your yours also about any
all been being here only other over own same should through under until again further once both each few nor off
while above below between after before during against because doing don t s can't i'm it's""".split())


@dataclass
class MapResult:
    map_id: int
    method: str
    record_ids: list[int]
    xy: np.ndarray  # (n, 2)
    clusters: np.ndarray  # (n,) int, -1 = noise
    outlier: np.ndarray  # (n,) 0..1
    centroid_distance: np.ndarray  # (n,)
    labels: dict[int, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    cached: bool = False

    def sizes(self) -> dict[int, int]:
        keys, counts = np.unique(np.asarray(self.clusters, dtype=np.int64), return_counts=True)
        return dict(sorted(zip(keys.tolist(), counts.tolist(), strict=True), key=lambda kv: (-kv[1], kv[0])))


def _numba_env() -> None:
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir() / "numba"))


def _import_umap() -> Any:
    import warnings

    _numba_env()
    try:
        import umap  # noqa: PLC0415
    except Exception as exc:  # ImportError, or numba/llvmlite failing to load
        raise StudioError(f"umap-learn is not usable ({type(exc).__name__}: {exc}); the map falls back to PCA") from exc
    # umap warns that a fixed seed means one thread, and that a precomputed kNN cannot transform new data:
    # both are what the map wants
    warnings.filterwarnings("ignore", message=".*(n_jobs value|knn_search_index).*", category=UserWarning)
    return umap


def pca(x: np.ndarray, k: int) -> np.ndarray:
    x = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    out: np.ndarray = u[:, :k] * s[:k]
    if out.shape[1] < k:
        out = np.hstack([out, np.zeros((x.shape[0], k - out.shape[1]))])
    return out


def _umap_pair(x: np.ndarray, seed: int, n_neighbors: int, task: TaskState) -> tuple[np.ndarray, np.ndarray]:
    """2-D for display and 5-D for clustering, from one shared cosine neighbour graph."""
    umap = _import_umap()
    from umap.umap_ import nearest_neighbors

    task.set_progress(1, 4, "map: neighbours")
    knn_i, knn_d, _ = nearest_neighbors(x, n_neighbors, "cosine", {}, False, np.random.RandomState(seed))
    epochs = 500 if len(x) < 10_000 else 200
    task.check()
    task.set_progress(2, 4, "map: UMAP 2-D")
    xy = umap.UMAP(n_components=2, n_neighbors=n_neighbors, metric="cosine", random_state=seed,
                   n_epochs=epochs, precomputed_knn=(knn_i, knn_d, None), min_dist=0.1).fit_transform(x)
    task.check()
    task.set_progress(3, 4, "map: UMAP for clustering")
    low = umap.UMAP(n_components=5, n_neighbors=n_neighbors, metric="cosine", random_state=seed,
                    n_epochs=epochs, precomputed_knn=(knn_i, knn_d, None), min_dist=0.0).fit_transform(x)
    return np.asarray(xy, dtype=np.float64), np.asarray(low, dtype=np.float64)


CLUSTERERS = ("hdbscan", "sklearn")
# Which HDBSCAN labels the map (bench/cluster.py times both on 5-D UMAP-like points; the faster
# is the default). Either way, with the ``hdbscan`` package installed, the outlier axis is its
# GLOSH score (Campello et al. 2015), which ranks how unusual a point is within its cluster.
DEFAULT_CLUSTERER = "hdbscan"


def has_hdbscan() -> bool:
    try:
        import hdbscan  # type: ignore[import-untyped, import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return True


def cluster(points: np.ndarray, min_cluster_size: int, engine: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """HDBSCAN labels (-1 = noise) and an outlier score in 0..1: GLOSH with the ``hdbscan``
    package, else 1 - membership strength (noise = 1). ``engine``: "hdbscan" or "sklearn"
    (default :data:`DEFAULT_CLUSTERER`; "hdbscan" falls back to scikit-learn when not installed)."""
    engine = engine or DEFAULT_CLUSTERER
    if engine not in CLUSTERERS:
        raise StudioError(f"unknown clusterer {engine!r}; use one of {', '.join(CLUSTERERS)}")
    mcs = max(2, min_cluster_size)
    if engine == "hdbscan" and has_hdbscan():
        import hdbscan

        hd = hdbscan.HDBSCAN(min_cluster_size=mcs, core_dist_n_jobs=1)
        labels = hd.fit_predict(points)
        glosh = np.nan_to_num(np.asarray(hd.outlier_scores_, dtype=np.float64), nan=1.0)
        return labels.astype(int), np.clip(glosh, 0.0, 1.0)
    try:
        from sklearn.cluster import HDBSCAN
    except ImportError as exc:
        raise StudioError(f"clustering needs scikit-learn >= 1.3 (pip install scikit-learn): {exc}") from exc
    sk = HDBSCAN(min_cluster_size=mcs, min_samples=None, copy=True)
    labels = sk.fit_predict(points)
    outlier = 1.0 - np.asarray(sk.probabilities_, dtype=np.float64)
    if has_hdbscan():  # GLOSH for the outlier axis either way
        import hdbscan

        outlier = np.clip(np.nan_to_num(hdbscan.HDBSCAN(min_cluster_size=mcs, core_dist_n_jobs=1)
                                        .fit(points).outlier_scores_, nan=1.0), 0.0, 1.0)
    return labels.astype(int), outlier


@functools.cache
def _word_pattern() -> re.Pattern[str]:
    """Runs of letters, digits and combining marks, joined by apostrophes or hyphens.

    Python's ``\\w`` is Unicode-aware but leaves out combining marks, the vowel signs of
    Indic scripts among them ('नमस्ते' would fall apart into 'नमस' and 'त'), so they are added.
    """
    ranges: list[tuple[int, int]] = []
    for cp in range(0x300, 0x20000):  # planes 0 and 1 hold every combining mark used in words
        if unicodedata.category(chr(cp))[0] == "M":
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    marks = "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)
    part = f"[\\w{marks}]+"
    return re.compile(f"{part}(?:['’-]{part})*")


def _written_without_spaces(ch: str) -> bool:
    """Chinese characters and Japanese kana: no spaces between words, so words are not found by splitting."""
    cp = ord(ch)
    return (0x3040 <= cp <= 0x30FF or 0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF
            or 0xFF66 <= cp <= 0xFF9F or 0x20000 <= cp <= 0x3134F)


def _words(text: str) -> list[str]:
    """The terms a cluster is named by, in any script: words of three or more characters (two in
    Hangul) that start with a letter and are not stopwords; in Chinese and Japanese, which have
    no spaces, overlapping character pairs (a pair is a word more often than not)."""
    out: list[str] = []
    for token in _word_pattern().findall(text.lower()):
        for no_spaces, chars in itertools.groupby(token, key=_written_without_spaces):
            run = "".join(chars)
            if no_spaces:
                out += [run[i : i + 2] for i in range(len(run) - 1)]
            elif run[0].isalpha() and len(run) >= (2 if 0xAC00 <= ord(run[0]) <= 0xD7AF else 3) \
                    and run not in STOPWORDS:
                out.append(run)
    return out


def ctfidf_labels(texts: list[str], clusters: np.ndarray, top: int = 3) -> dict[int, str]:
    """Each cluster's most distinctive words (class-based TF-IDF, as in BERTopic)."""
    per: dict[int, Counter[str]] = {}
    for t, c in zip(texts, clusters):
        if c >= 0:
            per.setdefault(int(c), Counter()).update(_words(t))
    if not per:
        return {}
    total: Counter[str] = Counter()
    for cnt in per.values():
        total.update(cnt)
    avg = sum(sum(c.values()) for c in per.values()) / len(per)
    labels = {}
    for c, cnt in per.items():
        n = sum(cnt.values()) or 1
        scored = sorted(cnt, key=lambda w: (-(cnt[w] / n) * np.log(1 + avg / total[w]), w))
        labels[c] = " · ".join(scored[:top])
    return labels


def _key(embedder: str, ids: list[int], x: np.ndarray, params: dict[str, Any]) -> str:
    # the vectors too: an edited (and re-embedded) text must not be served its old map
    h = hashlib.sha256(embedder.encode())
    h.update(np.asarray(ids, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()


def _load(nb: Notebook, stored: StoredMap) -> MapResult:
    rows = map_points(nb, stored.id)
    a = np.array([r[1:] for r in rows], dtype=np.float64).reshape(-1, 5)
    return MapResult(stored.id, stored.method, [r[0] for r in rows], a[:, :2], a[:, 2].astype(int), a[:, 3],
                     a[:, 4], stored.labels, stored.params, cached=True)


def latest_map(nb: Notebook) -> MapResult | None:
    stored = latest_stored_map(nb)
    return None if stored is None else _load(nb, stored)


def compute_map(nb: Notebook, *, method: str = "auto", seed: int = 0, n_neighbors: int = 15,
                min_cluster_size: int | None = None, embedder_sha: str | None = None,
                task: TaskState | None = None) -> MapResult:
    task = task or TaskState()
    if method not in ("auto", "umap", "pca"):
        raise StudioError(f"unknown map method {method!r} (use auto, umap or pca)")
    shas = embedders_in(nb)
    if not shas:
        raise StudioError("this notebook has no embeddings yet: compute them first (synth-studio embed NB.db)")
    sha = embedder_sha or shas[0]
    ids = embedded_sample_ids(nb, sha)
    if len(ids) < 3:
        raise StudioError(f"a map needs at least 3 embedded samples; this notebook has {len(ids)}")
    ids, x = load_embeddings(nb, ids, sha)
    n = len(ids)
    mcs = min_cluster_size or max(3, min(50, n // 40))
    use = "pca" if method == "pca" or (method == "auto" and n < MIN_FOR_UMAP) else "umap"
    neighbors = min(n_neighbors, n - 1)
    params = {"method": use, "seed": seed, "n_neighbors": neighbors, "min_cluster_size": mcs,
              "clusterer": DEFAULT_CLUSTERER if has_hdbscan() else "sklearn"}
    key = _key(sha, ids, x, params)
    stored = cached_map(nb, key)
    if stored is not None:
        return _load(nb, stored)

    with hold_cores("computing the map", task):
        task.set_progress(0, 4, "map")
        fallback_note = ""
        if use == "umap":
            try:
                xy, low = _umap_pair(x, seed, neighbors, task)
            except StudioError as exc:
                if method == "umap":
                    raise
                fallback_note, use = str(exc), "pca"
                params["method"] = "pca"
                key = _key(sha, ids, x, params)  # cached as what it is, so a later UMAP request retries
        if use == "pca":
            xy, low = pca(x, 2), pca(x, min(10, x.shape[1]))
        task.set_progress(3, 4, "map: clusters")
        clusters, outlier = cluster(low, mcs, str(params["clusterer"]))
    dist = np.zeros(n)
    cents = {c: x[clusters == c].mean(axis=0) for c in set(clusters.tolist()) if c >= 0}
    for i in range(n):
        if clusters[i] >= 0:
            ct = cents[clusters[i]]
            dist[i] = 1 - float(x[i] @ ct) / (float(np.linalg.norm(ct)) or 1.0)
        elif cents:
            dist[i] = min(1 - float(x[i] @ ct) / (float(np.linalg.norm(ct)) or 1.0) for ct in cents.values())
    texts = outputs_by_id(nb, ids)
    labels = ctfidf_labels([texts.get(i) or "" for i in ids], clusters)
    if fallback_note:
        params["note"] = fallback_note
    map_id = save_map(nb, key, sha, use, params, labels,
                      [(rid, float(xy[i, 0]), float(xy[i, 1]), int(clusters[i]), float(outlier[i]), float(dist[i]))
                       for i, rid in enumerate(ids)])
    task.set_progress(4, 4, "map done")
    return MapResult(map_id, use, ids, xy, clusters, outlier, dist, labels, params)


def warm_up() -> None:
    """Import umap and fit a tiny set so a later real fit skips numba's compilation (background use)."""
    try:
        umap = _import_umap()
        rng = np.random.default_rng(0)
        umap.UMAP(n_neighbors=5, n_epochs=20, random_state=0).fit_transform(rng.normal(size=(40, 8)))
    except Exception:  # a warm-up that fails just leaves the first real fit slow
        pass
