"""Text generation in-process with llama.cpp (llama-cpp-python).

``Llama`` loads the model and context; the decode loop is ours, on the low-level
batch API, so that each step reads only the last row of logits (the sampled
token's log-probability) instead of ``logits_all``, which would allocate
n_ctx x n_vocab floats. One owner per ``Llama``: calls are serialised by a lock.
"""

from __future__ import annotations

import codecs
import ctypes
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from app.errors import ModelError
from backends.bundled import default_generator_model
from backends.gguf_info import GGUFInfo, file_sha256, read_gguf_info
from backends.protocols import (
    CancelCheck,
    ChoiceRequest,
    ChoiceResult,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    TokenCallback,
)
from backends.sampling import log_softmax_at, sample_token

DEFAULT_N_CTX = 2048
N_BATCH = 512


def default_threads() -> int:
    """Every core this process may use (llama-cpp-python's default is half of them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def describe_model(model_path: str | os.PathLike[str] | None) -> ModelInfo:
    """Check a GGUF file and hash it without loading it (fast, and a clear error if it is bad)."""
    return _inspect(model_path)[0]


def _inspect(model_path: str | os.PathLike[str] | None) -> tuple[ModelInfo, GGUFInfo]:
    path = Path(model_path) if model_path else default_generator_model()
    info = read_gguf_info(path)
    return ModelInfo(
        backend="llama-cpp",
        path=str(Path(info.path).resolve()),
        sha256=file_sha256(path),
        description=f"{info.name} ({info.architecture}, {info.file_type})",
    ), info


class LlamaCppGenerator:
    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        **_: object,
    ) -> None:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._lc = llama_cpp
        self.info, gguf = _inspect(model_path)
        threads = n_threads or default_threads()
        try:
            self.llm = llama_cpp.Llama(
                model_path=self.info.path,
                n_ctx=n_ctx,
                n_batch=N_BATCH,
                n_threads=threads,
                n_threads_batch=threads,
                n_gpu_layers=n_gpu_layers,
                logits_all=False,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp could not load {self.info.path}: {exc}") from exc
        self.n_ctx = self.llm.n_ctx()
        self.vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        self._batch = llama_cpp.llama_batch_init(N_BATCH, 0, 1)
        self._lock = threading.Lock()
        self._closed = False
        self._kv_tokens: list[int] = []  # what sequence 0 of the KV cache holds, position by position
        bos = self._token_text(llama_cpp.llama_vocab_bos(self.vocab))
        eos = self._token_text(llama_cpp.llama_vocab_eos(self.vocab))
        self._formatter = (
            Jinja2ChatFormatter(template=gguf.chat_template, eos_token=eos, bos_token=bos)
            if gguf.chat_template
            else None
        )
        self._bos_text = bos

    # -- helpers ---------------------------------------------------------------------

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        raw = self._lc.llama_vocab_get_text(self.vocab, token)
        return raw.decode("utf-8", errors="replace") if raw else ""

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self._lc.llama_token_to_piece(self.vocab, token, buf, 64, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lc.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
        return buf.raw[:n]

    def format_prompt(self, messages: Sequence[dict[str, str]]) -> str:
        """The model's own chat template applied to ``messages`` (generation prompt added)."""
        if self._formatter is None:
            turns = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages)
            return turns + "Assistant:"
        return self._formatter(messages=list(messages)).prompt

    def tokenize(self, text: str) -> list[int]:
        add_bos = self._add_bos and not (self._bos_text and text.startswith(self._bos_text))
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def _eval_prompt(self, tokens: list[int]) -> None:
        """Decode a prompt, reusing the KV cache of the longest prefix it shares with
        what the cache holds (the chat preamble, a judge's instructions, ...)."""
        cached = self._kv_tokens
        n = 0
        limit = min(len(cached), len(tokens) - 1)  # always decode >= 1 token, for fresh logits
        while n < limit and cached[n] == tokens[n]:
            n += 1
        mem = self._lc.llama_get_memory(self.llm.ctx)
        if n == 0:
            self._lc.llama_memory_clear(mem, True)
        else:
            self._lc.llama_memory_seq_rm(mem, 0, n, -1)
        self._kv_tokens = list(tokens[:n])
        self._decode(tokens[n:], n)
        self._kv_tokens.extend(tokens[n:])

    def _decode(self, tokens: Sequence[int], start_pos: int) -> None:
        """Decode ``tokens`` for sequence 0, asking for logits of the last one only."""
        b = self._batch
        for off in range(0, len(tokens), N_BATCH):
            chunk = tokens[off : off + N_BATCH]
            for i, t in enumerate(chunk):
                b.token[i] = t
                b.pos[i] = start_pos + off + i
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = 0
                b.logits[i] = 0
            b.logits[len(chunk) - 1] = 1
            b.n_tokens = len(chunk)
            rc = self._lc.llama_decode(self.llm.ctx, b)
            if rc != 0:
                raise ModelError(f"llama_decode failed (code {rc}); the context may be too small")

    def _last_logits(self) -> np.ndarray:
        ptr = self._lc.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    # -- the protocol ----------------------------------------------------------------------

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        cancel: CancelCheck | None = None,
        on_token: TokenCallback | None = None,
    ) -> Iterator[GenerationResult]:
        for req in requests:
            if cancel is not None and cancel.is_interruption_requested():
                return
            with self._lock:
                result = self._generate_one(req, cancel, on_token)
            yield result
            if result.finish_reason == "cancelled":
                return

    def _generate_one(
        self, req: GenerationRequest, cancel: CancelCheck | None, on_token: TokenCallback | None
    ) -> GenerationResult:
        if self._closed:
            raise ModelError("this model has been closed")
        s = req.settings
        prompt_tokens = self.tokenize(self.format_prompt(req.messages))
        room = self.n_ctx - len(prompt_tokens)
        if room < 1:
            raise ModelError(
                f"a prompt of {len(prompt_tokens)} tokens does not fit the model's context of {self.n_ctx} tokens"
            )
        max_tokens = min(s.max_tokens, room)
        rng = np.random.default_rng(req.seed)
        self._eval_prompt(prompt_tokens)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text, logprobs, reason = "", [], "length"
        pos = len(prompt_tokens)
        for _ in range(max_tokens):
            if cancel is not None and cancel.is_interruption_requested():
                reason = "cancelled"
                break
            logits = self._last_logits()
            tok = sample_token(logits, s, rng)
            if self._lc.llama_vocab_is_eog(self.vocab, tok):
                reason = "stop"
                break
            logprobs.append(log_softmax_at(logits, tok))
            piece = decoder.decode(self._piece(tok))
            text += piece
            if piece and on_token is not None:
                on_token(req.key, piece)
            hit = next((st for st in s.stop if st and st in text), None)
            if hit is not None:
                text = text[: text.index(hit)]
                reason = "stop"
                break
            self._decode([tok], pos)
            self._kv_tokens.append(tok)
            pos += 1
        text += decoder.decode(b"", final=True)
        return GenerationResult(
            key=req.key,
            text=text.strip(),
            prompt_tokens=len(prompt_tokens),
            completion_tokens=len(logprobs),
            token_logprobs=logprobs,
            finish_reason=reason,
        )

    # -- judging: next-token probabilities of a few answers ---------------------------------

    def _first_tokens(self, spellings: Sequence[str]) -> set[int]:
        toks = set()
        for sp in spellings:
            ids = self.llm.tokenize(sp.encode("utf-8"), add_bos=False, special=False)
            if ids:
                toks.add(ids[0])
        return toks

    def choice_probs(
        self, requests: Sequence[ChoiceRequest], cancel: CancelCheck | None = None
    ) -> Iterator[ChoiceResult]:
        token_cache: dict[tuple[str, ...], set[int]] = {}
        for req in requests:
            if cancel is not None and cancel.is_interruption_requested():
                return
            with self._lock:
                if req.raw_prompt is not None:
                    prompt = req.raw_prompt
                else:
                    prompt = self.format_prompt(req.messages) + req.answer_prefix
                tokens = self.tokenize(prompt)
                if len(tokens) >= self.n_ctx:
                    raise ModelError(f"a judge prompt of {len(tokens)} tokens does not fit the context of {self.n_ctx}")
                self._eval_prompt(tokens)
                logits = self._last_logits().astype(np.float64)
                m = logits.max()
                probs = np.exp(logits - m)
                probs /= probs.sum()
                raw = {}
                for label, spellings in req.choices:
                    ids = token_cache.setdefault(spellings, self._first_tokens(spellings))
                    raw[label] = float(sum(probs[i] for i in ids))
            total = sum(raw.values())
            yield ChoiceResult(
                key=req.key,
                probs={k: (v / total if total > 0 else 1 / len(raw)) for k, v in raw.items()},
                mass=total,
            )

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._lc.llama_batch_free(self._batch)
                self.llm.close()
