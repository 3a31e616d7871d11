"""``python -m bench.fts``: the Records search on 100k records, full-text index against the old LIKE.

Fills a fresh notebook through the store's bulk path (``Notebook.add_imported_rows``, one
transaction, the FTS triggers included), then, for words from rare to common, times what the
Records view does per search: count the matches and fetch the first page (200 rows by id).
``fts`` is ``RecordFilter(text=...)`` as it is now (records_fts MATCH); ``like`` is the search
as it was (``output LIKE '%word%'``, a full scan). Median of ``--runs`` runs each. Target: FTS
under 100 ms.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.store.notebook import Notebook
from app.store.queries import RecordFilter, count_records, record_page
from app.store.search import substring_clause

PAGE = 200
TOPICS = ["billing", "refunds", "login", "payroll", "exports", "invoices", "receipts", "banking"]


@dataclass(frozen=True)
class LikeFilter(RecordFilter):
    """The Records search before the index: ``like`` as a substring of the output."""

    like: str = ""

    def where(self) -> tuple[str, list[Any]]:
        sql, params = super().where()
        like, like_params = substring_clause(self.like)
        return f"{sql} AND {like}", params + like_params


def vocabulary(n: int, rng: random.Random) -> list[str]:
    syllables = ["ka", "lo", "mi", "ren", "sto", "va", "pel", "dor", "qui", "zan", "to", "bre", "fu", "gal"]
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def fill(nb: Notebook, n: int, seed: int) -> list[str]:
    """``n`` records of ~25 words drawn Zipf-like from a 5,000-word vocabulary; returns it, commonest first."""
    rng = random.Random(seed)
    vocab = vocabulary(5000, rng)
    rng.shuffle(vocab)
    cum_weights = list(itertools.accumulate(1 / (i + 1) for i in range(len(vocab))))
    rows = []
    for i in range(n):
        words = rng.choices(vocab, cum_weights=cum_weights, k=rng.randint(15, 35))
        rows.append(({"topic": TOPICS[i % len(TOPICS)], "customer": f"c{i}"}, " ".join(words).capitalize() + "."))
    nb.add_imported_rows(rows, origin="synthetic", source="bench")
    return vocab


def timed(nb: Notebook, flt: RecordFilter, runs: int) -> tuple[float, int]:
    """Median milliseconds of count + first page, and the count."""
    times, count = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        count = count_records(nb, flt)
        record_page(nb, 0, PAGE, flt)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fts", description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=7, help="runs per measurement (the median is printed)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    os.environ.setdefault("SYNTH_STUDIO_HOME", tempfile.mkdtemp(prefix="synth-bench-"))

    with tempfile.TemporaryDirectory(prefix="synth-bench-fts-") as tmp, Notebook.create(Path(tmp) / "fts.db") as nb:
        t0 = time.perf_counter()
        vocab = fill(nb, args.records, args.seed)
        print(f"inserted {args.records} records in one transaction (FTS triggers included): "
              f"{time.perf_counter() - t0:.1f} s")
        queries = [(vocab[3000], "rare word"), (vocab[300], "uncommon word"), (vocab[10], "common word"),
                   (vocab[0], "commonest word"), (TOPICS[0], "a variable's value"),
                   (f"{vocab[10]} {vocab[300]}", "two words")]
        worst = 0.0
        for text, what in queries:
            fts_ms, fts_n = timed(nb, RecordFilter(text=text), args.runs)
            like_ms, like_n = timed(nb, LikeFilter(like=text), args.runs)
            worst = max(worst, fts_ms)
            print(f"  {what:<19} {text!r:<24} fts {fts_ms:7.1f} ms ({fts_n:>6} found)   "
                  f"like {like_ms:7.1f} ms ({like_n:>6} found)   like/fts x{like_ms / max(fts_ms, 1e-6):.1f}")
        print(f"slowest FTS search: {worst:.1f} ms  [target < 100 ms] {'ok' if worst < 100 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
