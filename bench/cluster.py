"""HDBSCAN for the map: the ``hdbscan`` package vs scikit-learn's, same points, same run.

Points are 5-D, like the UMAP output the map clusters (Gaussian blobs of different spreads plus
uniform noise), at 20k and 100k. Prints each engine's time (median of the rounds), the ratio, and
how far their labels agree (adjusted Rand index). app.map.projection.DEFAULT_CLUSTERER is the
faster one; the outlier axis uses hdbscan's GLOSH either way.

    python -m bench.cluster [--sizes 20000 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def points(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = 12
    centres = rng.uniform(-10, 10, size=(k, 5))
    spread = rng.uniform(0.3, 1.5, size=k)
    which = rng.integers(0, k, size=int(n * 0.95))
    blobs = centres[which] + rng.normal(size=(which.size, 5)) * spread[which, None]
    noise = rng.uniform(-12, 12, size=(n - which.size, 5))
    return np.vstack([blobs, noise])


def main() -> int:
    from sklearn.metrics import adjusted_rand_score

    from app.map.projection import DEFAULT_CLUSTERER, cluster, has_hdbscan

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20000, 100000])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not has_hdbscan():
        print("\nclustering: the hdbscan package is not installed; skipped")
        return 0
    print(f"\nclustering: hdbscan vs scikit-learn HDBSCAN on 5-D points (default: {DEFAULT_CLUSTERER})")
    for n in args.sizes:
        x = points(n)
        mcs = max(3, min(50, n // 40))
        times: dict[str, list[float]] = {"hdbscan": [], "sklearn": []}
        labels = {}
        for _ in range(args.rounds):
            for engine in ("hdbscan", "sklearn"):
                t0 = time.perf_counter()
                labels[engine], _ = cluster(x, mcs, engine) if engine == "hdbscan" else _sklearn_only(x, mcs)
                times[engine].append(time.perf_counter() - t0)
        h, s = statistics.median(times["hdbscan"]), statistics.median(times["sklearn"])
        ari = adjusted_rand_score(labels["hdbscan"], labels["sklearn"])
        print(f"  {n:>7} points  hdbscan {h:6.2f} s  sklearn {s:6.2f} s  hdbscan/sklearn speed "
              f"{s / h:5.2f}x  label agreement (ARI) {ari:.3f}", flush=True)
    return 0


def _sklearn_only(x: np.ndarray, mcs: int) -> tuple[np.ndarray, None]:
    """scikit-learn's labels alone (without the GLOSH pass the map adds when hdbscan is installed)."""
    from sklearn.cluster import HDBSCAN

    return HDBSCAN(min_cluster_size=mcs, copy=True).fit_predict(x), None


if __name__ == "__main__":
    raise SystemExit(main())
