"""Sentence embeddings through llama.cpp, many texts per batch.

Any GGUF embedding model works (nomic-embed, bge, the converted MiniLM, ...): each
text is one sequence in a ``llama_batch``, llama.cpp pools its tokens (mean, CLS,
... as the model says) and we L2-normalise, so a dot product is a cosine.
Encoder models need a whole sequence in one micro-batch, so texts are cut to the
context length and batches are packed up to ``n_batch`` tokens.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.core.errors import ModelError
from app.core.scheduler import FreeCores, hold_cores
from backends.gguf_info import file_sha256, read_gguf_info
from backends.protocols import CancelCheck

N_BATCH = 512  # one whole text per sequence must fit a micro-batch (encoders see all of it at once)
# Texts per llama_decode. Measured on 2 CPU cores with MiniLM (1000 short sentences):
# 1 per batch 196/s, 4 186/s, 16 124/s, 64 51/s: llama.cpp attends across the whole
# micro-batch under a mask, so on CPU packing texts costs quadratically. On a GPU it pays.
CPU_SEQS, GPU_SEQS = 1, 32


@dataclass(frozen=True)
class EmbedderInfo:
    path: str
    sha256: str
    name: str
    dim: int


def default_embedder_path() -> Path:
    from backends.bert_gguf import converted_minilm

    return converted_minilm()


class LlamaEmbedder:
    def __init__(self, model_path: str | os.PathLike[str] | None = None, *, n_ctx: int = 512,
                 n_threads: int | None = None, n_gpu_layers: int = 0, max_seqs: int | None = None,
                 **_: object) -> None:
        import llama_cpp as lc

        from backends.llama_cpp_backend import _ensure_backend, default_threads

        path = Path(model_path) if model_path else default_embedder_path()
        gguf = read_gguf_info(path)
        self._lc = lc
        _ensure_backend()
        mp = lc.llama_model_default_params()
        mp.n_gpu_layers = n_gpu_layers
        self._model = lc.llama_model_load_from_file(str(path).encode(), mp)
        if not self._model:
            raise ModelError(f"llama.cpp could not load the embedding model {path}")
        train_ctx = gguf.context_length or n_ctx
        self.n_ctx = min(n_ctx, train_ctx)
        cp = lc.llama_context_default_params()
        self.max_seqs = max_seqs or (GPU_SEQS if n_gpu_layers else CPU_SEQS)
        self.n_batch = N_BATCH if self.max_seqs == 1 else N_BATCH * 8
        cp.n_ctx = cp.n_batch = cp.n_ubatch = self.n_batch
        cp.n_seq_max = self.max_seqs
        cp.embeddings = True
        cp.kv_unified = True
        cp.flash_attn_type = 0
        cp.n_threads = cp.n_threads_batch = self.threads = n_threads or default_threads()
        # without a thread count of the user's, use the cores other processes leave free (spin-waiting threads)
        self._free_cores = FreeCores(self.threads) if not n_threads else None
        self._ctx = lc.llama_init_from_model(self._model, cp)
        if not self._ctx:
            lc.llama_model_free(self._model)
            raise ModelError(f"llama.cpp could not create an embedding context for {path}")
        if lc.llama_pooling_type(self._ctx) == 0:  # LLAMA_POOLING_TYPE_NONE
            self.close()
            raise ModelError(f"{path.name} does not pool its tokens into one vector: not a sentence-embedding model")
        self.vocab = lc.llama_model_get_vocab(self._model)
        self.dim = lc.llama_model_n_embd(self._model)
        self._batch = lc.llama_batch_init(self.n_batch, 0, 1)
        self._lock = threading.Lock()
        self._closed = False
        self.info = EmbedderInfo(path=str(path.resolve()), sha256=file_sha256(path),
                                 name=gguf.name or path.stem, dim=self.dim)

    def _tokens(self, text: str) -> list[int]:
        from backends.llama_cpp_backend import tokenize_text

        toks = tokenize_text(self.vocab, text, True, False)
        limit = min(self.n_ctx, N_BATCH)
        if len(toks) > limit:  # keep the end token(s) the model expects ([SEP])
            toks = toks[: limit - 1] + toks[-1:]
        return toks or [0]

    def embed(self, texts: Sequence[str], cancel: CancelCheck | None = None,
              progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """(len(texts), dim) float32, each row L2-normalised."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with hold_cores(f"embedding with {self.info.name}", cancel), self._lock:
            if self._closed:
                raise ModelError("this embedder has been closed")
            lc, b = self._lc, self._batch
            mem = lc.llama_get_memory(self._ctx)
            i = 0
            while i < len(texts):
                if cancel is not None and cancel.is_interruption_requested():
                    from app.core.errors import Cancelled

                    raise Cancelled()
                n = 0
                group: list[int] = []  # indexes into texts, one per sequence of this batch
                while i < len(texts) and len(group) < self.max_seqs:
                    toks = self._tokens(texts[i])
                    if group and n + len(toks) > self.n_batch:
                        break
                    s = len(group)
                    for p, t in enumerate(toks):
                        b.token[n], b.pos[n], b.n_seq_id[n], b.logits[n] = t, p, 1, 1
                        b.seq_id[n][0] = s
                        n += 1
                    group.append(i)
                    i += 1
                b.n_tokens = n
                if mem:
                    lc.llama_memory_clear(mem, True)
                if self._free_cores is not None and (threads := self._free_cores.threads()) != self.threads:
                    lc.llama_set_n_threads(self._ctx, threads, threads)
                    self.threads = threads
                rc = lc.llama_decode(self._ctx, b)
                if rc != 0:
                    raise ModelError(f"llama.cpp failed to embed a batch (code {rc})")
                for s, idx in enumerate(group):
                    ptr = lc.llama_get_embeddings_seq(self._ctx, s)
                    if not ptr:
                        raise ModelError("llama.cpp returned no pooled embedding")
                    v = np.ctypeslib.as_array(ptr, shape=(self.dim,)).astype(np.float32)
                    norm = float(np.linalg.norm(v))
                    out[idx] = v / norm if norm > 0 else v
                if progress is not None:
                    progress(i, len(texts))
        return out

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                if hasattr(self, "_batch"):
                    self._lc.llama_batch_free(self._batch)
                self._lc.llama_free(self._ctx)
                self._lc.llama_model_free(self._model)
