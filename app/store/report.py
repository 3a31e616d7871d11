"""What the real-vs-synthetic report reads: which samples are real and which synthetic, their
text and input columns, and their current embedding vectors (clusters come from ``maps.py``).

Record ids go in as one JSON parameter (``json_each``): a report can hold more records than
SQLite allows ``?`` placeholders.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.store.embeddings import embedders_in, text_hash
from app.store.notebook import Notebook

_SAMPLES = "role = 'sample' AND output IS NOT NULL"


@dataclass(frozen=True)
class ReportRow:
    """One sample as the report compares it."""

    id: int
    origin: str
    output: str
    variables: dict[str, Any]


def real_sample_ids(nb: Notebook) -> list[int]:
    """Ids of the real samples (imported with their text), in id order."""
    return [r[0] for r in nb.conn.execute(f"SELECT id FROM records WHERE {_SAMPLES} AND origin = 'real' ORDER BY id")]


def has_real_samples(nb: Notebook) -> bool:
    """Whether any real sample (imported with its text) exists; stops at the first."""
    return bool(nb.conn.execute("SELECT EXISTS (SELECT 1 FROM records INDEXED BY records_real "
                                f"WHERE {_SAMPLES} AND origin = 'real')").fetchone()[0])


def synthetic_sample_ids(nb: Notebook) -> list[int]:
    """Ids of every sample that is not real (generated, or generated and then edited by a person), in id order."""
    return [r[0] for r in nb.conn.execute(
        f"SELECT id FROM records WHERE {_SAMPLES} AND origin != 'real' ORDER BY id")]


def report_rows(nb: Notebook, record_ids: Iterable[int]) -> list[ReportRow]:
    """The samples with text among ``record_ids``, in id order (ids of inputs or missing records are left out)."""
    rows = nb.conn.execute(
        f"SELECT id, origin, output, variables FROM records WHERE {_SAMPLES} "
        "AND id IN (SELECT value FROM json_each(?)) ORDER BY id", (json.dumps(list(record_ids)),))
    return [ReportRow(r[0], r[1], r[2], json.loads(r[3] or "{}")) for r in rows]


def current_vectors(nb: Notebook, record_ids: Iterable[int], embedder_sha: str | None = None
                    ) -> tuple[str | None, list[int], np.ndarray]:
    """(embedder, ids, vectors) of those of ``record_ids`` whose vector describes their current text.

    From ``embedder_sha`` or the most recently used embedder; a vector of text that was edited
    since it was computed is left out, like a missing one. ``(None, [], empty)`` without embeddings.
    """
    shas = embedders_in(nb)
    if not shas:
        return None, [], np.zeros((0, 0), np.float32)
    sha = embedder_sha or shas[0]
    ids: list[int] = []
    vecs: list[np.ndarray] = []
    for rid, stored_hash, output, blob in nb.conn.execute(
            "SELECT e.record_id, e.text_hash, r.output, e.vector FROM embeddings e JOIN records r ON r.id = e.record_id "
            "WHERE e.embedder_sha256 = ? AND e.record_id IN (SELECT value FROM json_each(?)) ORDER BY e.record_id",
            (sha, json.dumps(list(record_ids)))):
        if output is not None and stored_hash == text_hash(output):
            ids.append(rid)
            vecs.append(np.frombuffer(blob, dtype=np.float32))
    return sha, ids, np.vstack(vecs) if vecs else np.zeros((0, 0), np.float32)

