"""Stored embeddings, read by semantic dedupe and the map.

The embedder itself arrives with the map issue (all-MiniLM-L6-v2 converted to
GGUF); until a notebook has embeddings, semantic dedupe says so clearly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.errors import StudioError
from app.store.notebook import Notebook


def load_embeddings(nb: Notebook, record_ids: Sequence[int]) -> tuple[list[int], np.ndarray]:
    has_table = nb.conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'embeddings'").fetchone()
    if not has_table:
        raise StudioError("this notebook has no embeddings yet: compute them first (synth-studio embed NB.db)")
    wanted = set(record_ids)
    ids, vecs = [], []
    for rid, blob in nb.conn.execute("SELECT record_id, vector FROM embeddings ORDER BY record_id"):
        if rid in wanted:
            ids.append(rid)
            vecs.append(np.frombuffer(blob, dtype=np.float32))
    missing = len(wanted) - len(ids)
    if missing:
        raise StudioError(f"{missing} records have no embedding yet: run synth-studio embed NB.db first")
    return ids, np.vstack(vecs) if vecs else np.zeros((0, 0), np.float32)
