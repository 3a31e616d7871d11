"""``python -m bench.report``: the real-vs-synthetic report's time on 20k records.

A notebook of ``--real`` real and ``--synthetic`` synthetic samples (texts from 30 topic
vocabularies, a categorical and a numeric input column, and 384-d embeddings around the topics'
centres, the synthetic ones slightly off and missing some topics) is written straight through
the store (no model), with a map whose clusters are the topics. Then the report is computed and
drawn as ``synth-studio report`` does (``app.jobs.report_job``), and the
time of each part is printed (progress lines as it goes). Target from the issue in brackets.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 384
TOPICS = 30


def build(path: Path, n_real: int, n_synth: int, seed: int = 0) -> None:
    from app.store.embeddings import save_embeddings
    from app.store.maps import save_map
    from app.store.notebook import Notebook

    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(3000)]
    topic_words = [rng.choice(vocab, size=60, replace=False) for _ in range(TOPICS)]
    centres = rng.normal(size=(TOPICS, DIM))
    with Notebook.create(path) as nb:
        points = []
        for origin, n, shift, topics in (("real", n_real, 0.0, TOPICS), ("synthetic", n_synth, 0.15, TOPICS - 4)):
            topic = rng.integers(0, topics, n)
            lengths = rng.integers(8, 60, n) + (6 if origin == "synthetic" else 0)
            texts = [" ".join(rng.choice(topic_words[t], size=int(k))) for t, k in zip(topic, lengths)]
            rows = [({"topic": f"topic {t}", "rating": int(rng.integers(1, 6))}, text) for t, text in zip(topic, texts)]
            first = nb.conn.execute("SELECT COALESCE(MAX(id), 0) FROM records").fetchone()[0] + 1
            nb.add_imported_rows(rows, origin=origin, source="bench")
            ids = list(range(first, first + n))
            x = centres[topic] + 0.6 * rng.normal(size=(n, DIM)) + shift * rng.normal(size=DIM)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            save_embeddings(nb, "bench-embedder", list(zip(ids, texts)), x.astype(np.float32))
            points += [(rid, float(rng.normal()), float(rng.normal()), int(t), 0.0, 0.0) for rid, t in zip(ids, topic)]
        save_map(nb, "bench", "bench-embedder", "pca", {}, {t: f"topic {t}" for t in range(TOPICS)}, points)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.report")
    p.add_argument("--real", type=int, default=10_000)
    p.add_argument("--synthetic", type=int, default=10_000)
    p.add_argument("--html", default=None, metavar="OUT.html", help="also keep the page")
    args = p.parse_args()
    home = tempfile.mkdtemp(prefix="synth-bench-")
    os.environ.setdefault("SYNTH_STUDIO_HOME", home)

    from app.core.tasks import TaskState
    from app.jobs import report_job

    path = Path(home) / "report.db"
    t0 = time.perf_counter()
    build(path, args.real, args.synthetic)
    print(f"notebook: {args.real} real + {args.synthetic} synthetic records, {DIM}-d vectors, "
          f"written in {time.perf_counter() - t0:.1f} s (not counted)")
    marks: dict[str, float] = {}  # each step's first progress report
    shown: dict[str, int] = {}

    def progress(done: int, total: int, message: str) -> None:
        now = time.perf_counter()
        marks.setdefault(message, now)
        tenth = 10 * done // total if total else -1
        if shown.get(message) != tenth:  # progress lines: each step, and each tenth of a long one
            shown[message] = tenth
            print(f"  [{now - t0:5.1f} s] {message}" + (f" {done}/{total}" if total else ""), flush=True)

    t0 = time.perf_counter()
    page = report_job(path, synthetic="all", task=TaskState(progress))
    total = time.perf_counter() - t0
    r = page.report
    order = sorted(marks.items(), key=lambda kv: kv[1]) + [("end", t0 + total)]
    for (label, start), (_, end) in zip(order, order[1:]):
        print(f"  {label:<24} {end - start:6.2f} s")
    print(f"report of {r.real_count} real vs {r.synthetic_count} synthetic records: {total:.1f} s  [< 60 s on 2 cores]")
    print(f"  score {r.score:.3f}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.parts.items()))
    print(f"  page {len(page.html) / 1e6:.1f} MB, {page.html.count('data:image/png')} inline figures")
    if args.html:
        Path(args.html).write_text(page.html, encoding="utf-8")
        print(f"wrote {args.html}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
