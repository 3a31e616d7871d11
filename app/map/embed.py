"""Embed a notebook's samples: only those without a current vector are computed."""

from __future__ import annotations

from typing import Any

from app.core.tasks import TaskState
from app.store.embeddings import missing_embeddings, save_embeddings
from app.store.notebook import Notebook
from app.store.scores import sample_texts

CHUNK = 256  # vectors committed per transaction: a cancel keeps what was done


def embed_notebook(nb: Notebook, embedder: Any, task: TaskState | None = None) -> tuple[int, int]:
    """Returns (computed, already there)."""
    task = task or TaskState()
    items = [(rid, text) for rid, text, _ in sample_texts(nb) if text.strip()]
    todo = missing_embeddings(nb, embedder.info.sha256, items)
    task.set_progress(0, len(todo), "embedding")
    done = 0
    for start in range(0, len(todo), CHUNK):
        task.check()
        chunk = todo[start : start + CHUNK]
        vectors = embedder.embed([t for _, t in chunk], cancel=task)
        save_embeddings(nb, embedder.info.sha256, chunk, vectors)
        done += len(chunk)
        task.set_progress(done, len(todo), "embedding")
    return done, len(items) - len(todo)
