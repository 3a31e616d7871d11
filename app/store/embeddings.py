"""Stored embeddings: one float32 vector per record and embedder, read by semantic
dedupe and the map. A vector remembers the hash of the text it was computed from,
so an edited record counts as missing and is embedded again."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from app.core.errors import StudioError
from app.store.migrations import now
from app.store.notebook import Notebook


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def missing_embeddings(nb: Notebook, embedder_sha: str, items: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
    """The (id, text) of ``items`` with no vector from this embedder for their current text."""
    have = dict(nb.conn.execute("SELECT record_id, text_hash FROM embeddings WHERE embedder_sha256 = ?",
                                (embedder_sha,)).fetchall())
    return [(rid, t) for rid, t in items if have.get(rid) != text_hash(t)]


def save_embeddings(nb: Notebook, embedder_sha: str, items: Sequence[tuple[int, str]], vectors: np.ndarray) -> None:
    stamp = now()
    with nb.transaction() as c:
        c.executemany(
            "INSERT OR REPLACE INTO embeddings (record_id, embedder_sha256, text_hash, dim, vector, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(rid, embedder_sha, text_hash(t), int(v.shape[0]), np.asarray(v, np.float32).tobytes(), stamp)
             for (rid, t), v in zip(items, vectors)],
        )


def embedders_in(nb: Notebook) -> list[str]:
    return [r[0] for r in nb.conn.execute(
        "SELECT embedder_sha256 FROM embeddings GROUP BY embedder_sha256 ORDER BY MAX(created_at) DESC")]


def load_embeddings(nb: Notebook, record_ids: Sequence[int], embedder_sha: str | None = None
                    ) -> tuple[list[int], np.ndarray]:
    """(ids, vectors) for ``record_ids``, from ``embedder_sha`` or the most recently used embedder."""
    shas = embedders_in(nb)
    if not shas:
        raise StudioError("this notebook has no embeddings yet: compute them first (synth-studio embed NB.db)")
    sha = embedder_sha or shas[0]
    wanted = set(record_ids)
    ids, vecs = [], []
    for rid, blob in nb.conn.execute(
            "SELECT record_id, vector FROM embeddings WHERE embedder_sha256 = ? ORDER BY record_id", (sha,)):
        if rid in wanted:
            ids.append(rid)
            vecs.append(np.frombuffer(blob, dtype=np.float32))
    missing = len(wanted) - len(ids)
    if missing:
        raise StudioError(f"{missing} records have no embedding yet: run synth-studio embed NB.db first")
    return ids, np.vstack(vecs) if vecs else np.zeros((0, 0), np.float32)


def embedded_sample_ids(nb: Notebook, embedder_sha: str) -> list[int]:
    """Ids of the samples that have a vector from this embedder, in id order."""
    return [r[0] for r in nb.conn.execute(
        "SELECT e.record_id FROM embeddings e JOIN records r ON r.id = e.record_id "
        "WHERE e.embedder_sha256 = ? AND r.role = 'sample' ORDER BY e.record_id", (embedder_sha,))]
