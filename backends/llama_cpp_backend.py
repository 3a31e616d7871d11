"""Text generation and judging in-process with llama.cpp, many sequences per batch.

llama-cpp-python's high-level ``Llama`` decodes one sequence at a time; on a CPU
that is bound by memory bandwidth (every token reads every weight). Decoding P
sequences in one ``llama_batch`` reads the weights once for P tokens, which turns
the loop compute-bound. This module owns the loop on the low-level API:

* continuous batching: up to P sequences decode together, each with its own
  seeded NumPy sampler; a finished sequence's slot is refilled from the queue;
* prefix reuse: a new sequence starts from the KV cache of whichever slot shares
  the longest prompt prefix with it (a chat preamble, a judge's instructions, a
  few-shot block), and a batch of requests with a common prefix evaluates it once;
* only the logits rows that are needed are read (``llama_get_logits_ith``),
  never ``logits_all`` (n_ctx x n_vocab floats).

The KV cache is not unified (one stream per sequence): measured, that is what lets
many sequences decode fast. Each sequence then has ``n_ctx`` cells of its own, so P
is chosen to keep the cache within a memory budget.

Results do not depend on P, bit for bit: prompts are decoded one sequence at a time
in small chunks and decode steps carry one token per sequence, which keeps every row
on the same llama.cpp kernels (see PREFILL_ROWS).
"""

from __future__ import annotations

import codecs
import ctypes
import json
import math
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from app.core.errors import ModelError
from app.core.scheduler import FreeCores, hold_cores
from backends.bundled import default_generator_model
from backends.gguf_info import GGUFInfo, file_sha256, read_gguf_info
from backends.protocols import (
    CancelCheck,
    ChoiceRequest,
    ChoiceResult,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    SamplerSettings,
    TokenCallback,
)
from backends.sampling import sample_token

if TYPE_CHECKING:
    from llama_cpp.llama_types import ChatCompletionRequestMessage

DEFAULT_N_CTX = 2048
N_BATCH = 2048  # tokens per llama_batch
# Prompt tokens go through llama_decode one sequence at a time, in balanced chunks of at most
# PREFILL_ROWS (and at least 2) tokens. On CPU, llama.cpp computes attention differently for
# 1 query row (FA off: another matmul path), for 64+ rows of one sequence (FA on: a tiled
# kernel) and for a lone sequence decoding over 512+ cached cells (FA on: split-KV). Each
# rounds differently, so a prompt's logits would depend on what else shared its batch.
# Kept inside one path, batched and sequential runs agree bit for bit (tests/test_batching.py).
PREFILL_ROWS = 32
# rows per llama.cpp micro-batch: a decode step's P + 1 rows fit in one; prompts prefilled
# together (_prefill_together) fill it with several sequences' chunks
GROUPED_UBATCH = 512
# prompt rows per llama_decode when several sequences' prompts are decoded together (at most
# N_BATCH): a stop asked during a long prefill is heard within one such call (~1 s on 2 cores)
GROUP_ROWS = 256
MAX_PARALLEL = 64  # sequences decoded together; on 2 cores, flash attention on, SmolLM2-135M: 1 -> 105, 32 -> ~210, 64 -> ~225 tok/s
KV_BUDGET_BYTES = 2 * 2**30  # the KV cache of all slots together
MIN_COPY_TOKENS = 16  # a shared prefix shorter than this is cheaper to recompute than to copy
# llama.cpp's split-KV path needs 512+ cells in view, which it reaches once a stream holds
# more than 256 (it pads the view to 256); a lone sequence this long gets a filler neighbour
# (below this the filler would only cost time: measured 25% at one sequence)
LONE_FILLER_FROM = 224
# a prompt chunk that ends this short of it may share a llama_decode with chunks of other lengths:
# a row of it left alone in a micro-batch stays off the split-KV path (see _prefill_together)
SHORT_CELLS = LONE_FILLER_FROM
MERGE_GAP = 1  # free slots between two runs of live ones worth a filler row (one micro-batch instead of two)

# llama_token_data {int32 id; float logit; float p}, as a NumPy record so a whole row is one array
_TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])

_backend_lock = threading.Lock()
_backend_ready = False


def _ensure_backend() -> None:
    """Initialise llama.cpp once per process, with its log quiet (errors only)."""
    global _backend_ready
    import llama_cpp

    with _backend_lock:
        if not _backend_ready:
            from llama_cpp._logger import set_verbose

            set_verbose(False)
            llama_cpp.llama_backend_init()
            _backend_ready = True


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


def kv_bytes_per_token(gguf: GGUFInfo) -> int:
    """f16 K and V for every layer, from the GGUF header (a generous guess when fields are missing)."""
    m, arch = gguf.metadata, gguf.architecture
    layers = int(m.get(f"{arch}.block_count") or 32)
    heads = int(m.get(f"{arch}.attention.head_count") or 32)
    heads_kv = int(m.get(f"{arch}.attention.head_count_kv") or heads)
    embd = int(m.get(f"{arch}.embedding_length") or 4096)
    k_dim = int(m.get(f"{arch}.attention.key_length") or embd // max(1, heads))
    v_dim = int(m.get(f"{arch}.attention.value_length") or k_dim)
    return layers * heads_kv * (k_dim + v_dim) * 2


def default_parallel(gguf: GGUFInfo, n_ctx: int) -> int:
    """As many sequences as fit the KV budget at ``n_ctx`` tokens each, up to MAX_PARALLEL."""
    per_seq = kv_bytes_per_token(gguf) * n_ctx
    return max(1, min(MAX_PARALLEL, KV_BUDGET_BYTES // max(1, per_seq)))


def tokenize_text(vocab: object, text: str, add_special: bool, parse_special: bool) -> list[int]:
    """llama_tokenize into a buffer sized by the text, retried once at the size llama.cpp asks for."""
    import llama_cpp as lc

    data = text.encode("utf-8")
    cap = len(data) + 8
    buf = (lc.llama_token * cap)()
    n = lc.llama_tokenize(vocab, data, len(data), buf, cap, add_special, parse_special)
    if n < 0:
        cap = -n
        buf = (lc.llama_token * cap)()
        n = lc.llama_tokenize(vocab, data, len(data), buf, cap, add_special, parse_special)
    return list(buf[:n])


def _property_order(schema: object) -> list[str]:
    """Every property name in the order the schema first writes it (nested objects included)."""
    names: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                names.extend(str(k) for k in props if k not in names)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    return names


GRAMMAR_SHORTLISTS = (64, 1024)  # best-ranked candidates the grammar checks before the whole vocabulary
MAX_INT_ENUM = 1024  # an integer range up to this size is written out for the grammar


def _bounded_ints(node: object) -> object:
    """The schema with each small bounded integer range spelled as an enum: llama-cpp-python's
    JSON-Schema-to-grammar converter ignores minimum/maximum, an enum it enforces. (Wider
    ranges and bounded numbers are left to the validate step's schema check.)"""
    if isinstance(node, list):
        return [_bounded_ints(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {k: _bounded_ints(v) for k, v in node.items()}
    if out.get("type") == "integer" and "enum" not in out:
        lo, hi = out.get("minimum"), out.get("maximum")
        ex_lo, ex_hi = out.get("exclusiveMinimum"), out.get("exclusiveMaximum")
        if isinstance(ex_lo, int | float):
            lo = math.floor(ex_lo) + 1
        if isinstance(ex_hi, int | float):
            hi = math.ceil(ex_hi) - 1
        if isinstance(lo, int | float) and isinstance(hi, int | float) and 0 <= hi - lo < MAX_INT_ENUM:
            out = {"enum": list(range(math.ceil(lo), math.floor(hi) + 1))}
    return out


def _json_chars(gbnf: str) -> str:
    """The grammar with JSON's rule for a string's characters: llama-cpp-python's converter lets
    raw control characters (a line break, a tab) into strings, which no JSON parser accepts."""
    loose = 'char ::= [^"\\\\] |'
    if loose not in gbnf:
        return gbnf
    return gbnf.replace(loose, 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |')


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _balanced_chunks(tokens: list[int]) -> list[list[int]]:
    """A prompt's tokens in chunks of even sizes (the larger ones last) of at most PREFILL_ROWS."""
    n_chunks = -(-len(tokens) // PREFILL_ROWS)
    chunks = []
    for c in range(n_chunks):
        size = len(tokens) // (n_chunks - c)
        chunks.append(tokens[:size])
        tokens = tokens[size:]
    return chunks


@dataclass(eq=False)
class _Seq:
    """One request in flight, in one slot (= llama.cpp sequence id)."""

    key: object
    slot: int
    pending: list[int]  # tokens still to decode (prompt remainder, then each sampled token)
    pos: int  # position of pending[0]
    n_prompt: int
    wants_logits: bool = True
    req: GenerationRequest | None = None
    rng: np.random.Generator | None = None
    max_tokens: int = 0
    decoder: codecs.IncrementalDecoder | None = None
    text: str = ""
    logprobs: list[float] = field(default_factory=list)
    grammar: object | None = None  # llama.cpp grammar sampler (its parse state) for a schema-bound request


class LlamaCppGenerator:
    """``TextGenerator`` and ``Judge`` on one llama.cpp model and context.

    ``parallel``: sequences decoded together (default: as many as the KV budget
    allows, at most MAX_PARALLEL). ``parallel=1`` is the plain sequential loop.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        parallel: int | None = None,
        prefix_cache: bool = True,
        group_prefill: bool = True,
        flash_attn: bool = True,
        adaptive_threads: bool = True,
        **_: object,
    ) -> None:
        import llama_cpp

        from backends.chat_template import chat_formatter

        lc = self._lc = llama_cpp
        self.info, gguf = _inspect(model_path)
        model_file = self.info.path
        if model_file is None:  # _inspect always resolves the file
            raise ModelError("no model file to load")
        self.parallel = max(1, int(parallel)) if parallel else default_parallel(gguf, n_ctx)
        threads = n_threads or default_threads()
        _ensure_backend()
        mparams = lc.llama_model_default_params()
        mparams.n_gpu_layers = n_gpu_layers
        self._model = lc.llama_model_load_from_file(model_file.encode("utf-8"), mparams)
        if not self._model:
            raise ModelError(f"llama.cpp could not load {model_file}")
        cparams = lc.llama_context_default_params()
        # one spare sequence beyond the P slots: a filler row there keeps a lone decoding
        # sequence out of llama.cpp's split-KV attention path (see PREFILL_ROWS)
        self._spare = self.parallel
        cparams.n_ctx = n_ctx * (self.parallel + 1)
        cparams.n_batch = N_BATCH
        cparams.n_ubatch = max(PREFILL_ROWS, self.parallel + 1, GROUPED_UBATCH)
        cparams.n_seq_max = self.parallel + 1
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        self.threads = threads
        # without a thread count of the user's, decode on the cores other processes leave free
        # (llama.cpp's threads spin-wait: one thread too many on a busy core costs most of the speed)
        self._free_cores = FreeCores(threads) if not n_threads and adaptive_threads else None
        # one KV stream per sequence: measured, that is what lets many sequences decode fast;
        # llama.cpp then only puts consecutive sequence ids into one micro-batch
        cparams.kv_unified = False
        cparams.no_perf = False
        # Flash attention on (llama.cpp's own choice on CPU): bare decode steps 20-30% faster
        # at 16-64 sequences, the whole loop 5-20%. Its kernels round differently by batch
        # shape, which the prefill/decode split below keeps fixed (tests run it on and off).
        self.flash_attn = bool(flash_attn)
        cparams.flash_attn_type = 1 if flash_attn else 0
        self._ctx = lc.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            lc.llama_model_free(self._model)
            raise ModelError(
                f"llama.cpp could not create a context of {n_ctx} tokens x {self.parallel} sequences "
                f"for {self.info.path} (out of memory? lower n_ctx or parallel)"
            )
        total = lc.llama_n_ctx(self._ctx)
        self.n_ctx = total // (self.parallel + 1)  # tokens one sequence may hold
        self.vocab = lc.llama_model_get_vocab(self._model)
        self.n_vocab = lc.llama_vocab_n_tokens(self.vocab)
        self._add_bos = bool(lc.llama_vocab_get_add_bos(self.vocab))
        self._mem = lc.llama_get_memory(self._ctx)
        self._batch = lc.llama_batch_init(N_BATCH, 0, 1)
        self._held: list[list[int]] = [[] for _ in range(self.parallel + 1)]  # KV contents per slot
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._closed = False
        self._pieces: dict[int, bytes] = {}
        self._eog = np.zeros(self.n_vocab, dtype=bool)
        for t in range(self.n_vocab):
            self._eog[t] = lc.llama_vocab_is_eog(self.vocab, t)
        self._gbnf: dict[str, str] = {}  # JSON Schema text -> GBNF grammar
        # candidates for the grammar sampler: every token (to mask a row) and one token (to check a choice)
        self._cand = np.zeros(self.n_vocab, dtype=_TOKEN_DATA)
        self._cand["id"] = np.arange(self.n_vocab, dtype=np.int32)
        self._one = np.zeros(1, dtype=_TOKEN_DATA)
        self.grammar_masks = 0  # decode steps whose sampled token the grammar refused (resampled under the mask)
        self.prefix_cache = prefix_cache  # off: every request decodes its whole prompt (for comparisons)
        # prompts of several new sequences (generation, judging) decoded together, their chunks in one
        # llama_decode (off: one sequence at a time; for the exactness tests and comparisons)
        self.group_prefill = group_prefill
        self.decode_seconds = 0.0  # wall time inside llama_decode, for the benchmark's overhead figure
        self.tokens_decoded = 0  # tokens sent through llama_decode (prefix reuse lowers it)
        self.filler_rows = 0  # throwaway rows added to decode steps (see _decode_step)
        # set to {} to record each generated token and the gap between the top two logits
        # before it (tests of batching)
        self.trace: dict[object, tuple[list[int], list[float]]] | None = None
        bos = self._token_text(lc.llama_vocab_bos(self.vocab))
        eos = self._token_text(lc.llama_vocab_eos(self.vocab))
        try:  # sandboxed and bounded, probed once: a hostile template is refused here
            self._formatter = (chat_formatter(gguf.chat_template, eos_token=eos, bos_token=bos,
                                              model=Path(model_file).name) if gguf.chat_template else None)
        except ModelError:
            self.close()
            raise
        self._bos_text = bos

    # -- tokens and text -------------------------------------------------------------------

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        raw = self._lc.llama_vocab_get_text(self.vocab, token)
        return raw.decode("utf-8", errors="replace") if raw else ""

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            buf = ctypes.create_string_buffer(64)
            n = self._lc.llama_token_to_piece(self.vocab, token, buf, 64, 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = self._lc.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
            piece = self._pieces[token] = buf.raw[:n]
        return piece

    def format_prompt(self, messages: Sequence[dict[str, str]]) -> str:
        """The model's own chat template applied to ``messages`` (generation prompt added)."""
        if self._formatter is None:
            turns = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages)
            return turns + "Assistant:"
        # chat turns are {"role", "content"} dicts: the TypedDicts llama-cpp-python declares
        return self._formatter(messages=cast("list[ChatCompletionRequestMessage]", list(messages))).prompt

    def _tokenize(self, text: str, add_bos: bool, special: bool) -> list[int]:
        return tokenize_text(self.vocab, text, add_bos, special)

    def tokenize(self, text: str) -> list[int]:
        add_bos = self._add_bos and not (self._bos_text and text.startswith(self._bos_text))
        return self._tokenize(text, add_bos, True)

    # -- the KV cache: slots, prefix reuse, batches -------------------------------------------

    def _place(self, slot: int, tokens: list[int], need_logits: bool = True) -> int:
        """Make ``slot`` hold the longest prefix of ``tokens`` any slot already holds;
        returns how many tokens it holds (the rest must be decoded)."""
        lc, mem, held = self._lc, self._mem, self._held
        if not self.prefix_cache:
            lc.llama_memory_seq_rm(mem, slot, -1, -1)
            held[slot] = []
            return 0
        # leave >= 2 tokens to decode when logits are wanted: one prompt row alone would take
        # another attention path than the same row inside a chunk (see PREFILL_ROWS)
        cap = max(0, len(tokens) - 2) if need_logits else len(tokens)
        own = min(_lcp(held[slot], tokens), cap)
        best, src = own, slot
        for s in range(self.parallel):
            if s != slot and held[s]:
                n = min(_lcp(held[s], tokens), cap)
                if n > best:
                    best, src = n, s
        if src != slot and best - own >= MIN_COPY_TOKENS:
            lc.llama_memory_seq_rm(mem, slot, -1, -1)
            # a whole-sequence copy works with unified and per-sequence KV streams alike
            lc.llama_memory_seq_cp(mem, src, slot, -1, -1)
            lc.llama_memory_seq_rm(mem, slot, best, -1)
            held[slot] = list(tokens[:best])
            return best
        if own == 0:
            lc.llama_memory_seq_rm(mem, slot, -1, -1)
        else:
            lc.llama_memory_seq_rm(mem, slot, own, -1)
        held[slot] = list(tokens[:own])
        return own

    def _prime_common_prefix(self, items: Sequence[tuple[int, list[int]]]) -> None:
        """When several new requests share a prefix no slot holds yet, decode it once
        (in the first request's slot) so the others copy it instead of recomputing it."""
        if len(items) < 2 or not self.prefix_cache:
            return
        first = items[0][1]
        common = min(len(t) for _, t in items) - 2
        for _, t in items[1:]:
            common = min(common, _lcp(first, t))
        if common < MIN_COPY_TOKENS:
            return
        prefix = first[:common]
        have = max(min(_lcp(h, prefix), common) for h in self._held)
        if common - have < MIN_COPY_TOKENS:
            return
        slot = items[0][0]
        start = self._place(slot, prefix, need_logits=False)
        self._prefill(_Seq(key=None, slot=slot, pending=prefix[start:], pos=start, n_prompt=common, wants_logits=False))

    def _llama_decode(self, n: int) -> None:
        if self._free_cores is not None:
            threads = self._free_cores.threads()
            if threads != self.threads:
                self._lc.llama_set_n_threads(self._ctx, threads, threads)
                self.threads = threads
        b = self._batch
        b.n_tokens = n
        t0 = time.perf_counter()
        rc = self._lc.llama_decode(self._ctx, b)
        self.decode_seconds += time.perf_counter() - t0
        if rc != 0:
            for slot in range(self.parallel + 1):  # the cache may no longer match what we think it holds
                self._held[slot] = []
                self._lc.llama_memory_seq_rm(self._mem, slot, -1, -1)
            raise ModelError(f"llama_decode failed (code {rc}): the KV cache is full; lower parallel or raise n_ctx")

    def _put(self, n: int, token: int, pos: int, slot: int, logits: bool) -> int:
        b = self._batch
        b.token[n] = token
        b.pos[n] = pos
        b.n_seq_id[n] = 1
        b.seq_id[n][0] = slot
        b.logits[n] = 1 if logits else 0
        return n + 1

    def _prefill(self, sq: _Seq) -> np.ndarray | None:
        """Decode a sequence's prompt tokens on their own, in balanced chunks of 2 to
        PREFILL_ROWS tokens; returns the last token's logits when the sequence wants them."""
        chunks = _balanced_chunks(sq.pending)
        row = None
        for c, take in enumerate(chunks):
            final = c == len(chunks) - 1
            n = 0
            for i, t in enumerate(take):
                n = self._put(n, t, sq.pos + i, sq.slot, sq.wants_logits and final and i == len(take) - 1)
            self._held[sq.slot].extend(take)
            sq.pos += len(take)
            self.tokens_decoded += n
            self._llama_decode(n)
        sq.pending = []
        if sq.wants_logits and chunks:
            ptr = self._lc.llama_get_logits_ith(self._ctx, -1)
            row = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()
        return row

    def _would_share_more(self, slot: int, full: list[int], tokens: list[int]) -> bool:
        """Whether ``slot``, once it holds all of ``full``, offers ``tokens`` a longer prefix than
        it holds now (then it must be decoded before ``tokens`` is placed, as one at a time would)."""
        cap = max(0, len(tokens) - 2)
        return min(_lcp(full, tokens), cap) > min(_lcp(self._held[slot], tokens), cap)

    def _prefill_together(self, seqs: Sequence[_Seq], cancel: CancelCheck | None = None) -> dict[int, np.ndarray]:
        """``_prefill`` of several sequences (each wants its logits), their k-th chunks decoded in one
        llama_decode (those past SHORT_CELLS only with chunks of their length): every sequence keeps
        the chunks it has alone (2 to PREFILL_ROWS rows, so the same attention path), and with a KV
        stream per sequence a row's result does not depend on the other sequences' rows beside it,
        so the logits are the same bit for bit (tests/test_batching.py); llama.cpp reads the weights
        once per micro-batch instead of once per sequence. Returns each slot's last-token logits
        (fewer: a stop was asked meanwhile)."""
        plans = [(sq, _balanced_chunks(sq.pending)) for sq in seqs]
        rows: dict[int, np.ndarray] = {}
        limit = min(GROUP_ROWS, N_BATCH)
        for k in range(max((len(ch) for _, ch in plans), default=0)):
            # llama.cpp cuts a batch into micro-batches with as many rows of each sequence, so a
            # longer chunk beside shorter ones leaves its last rows in a micro-batch of their own;
            # one row alone of a sequence whose cache view reaches 512 cells (more than 256 cells
            # used: views grow 256 at a time; see LONE_FILLER_FROM) takes another attention path
            # (split-KV) than the same row inside its chunk. Chunks that end within SHORT_CELLS share
            # calls whatever their lengths; longer ones share calls with chunks of their length only.
            by_length: dict[int, list[tuple[_Seq, list[int], bool]]] = {}
            for sq, chunks in plans:
                if k < len(chunks):
                    take = chunks[k]
                    bucket = 0 if sq.pos + len(take) <= SHORT_CELLS else len(take)
                    by_length.setdefault(bucket, []).append((sq, take, k == len(chunks) - 1))
            for same in by_length.values():
                n, last = 0, dict[int, int]()
                for sq, take, final in same:
                    if n + len(take) > limit:  # a call's share: a stop is heard between calls
                        rows.update(self._decode_for_logits(n, last))
                        n, last = 0, {}
                        if cancel is not None and cancel.is_interruption_requested():
                            return rows
                    for i, t in enumerate(take):
                        n = self._put(n, t, sq.pos + i, sq.slot, final and i == len(take) - 1)
                    if final:
                        last[sq.slot] = n - 1
                    self._held[sq.slot].extend(take)
                    sq.pos += len(take)
                rows.update(self._decode_for_logits(n, last))
                if cancel is not None and cancel.is_interruption_requested():
                    return rows
        for sq in seqs:
            sq.pending = []
            if sq.slot not in rows:  # nothing left to decode: _place always leaves a token
                raise RuntimeError(f"llama.cpp gave no logits for the prompt in slot {sq.slot}")
        return rows

    def _prefilled(self, seqs: Sequence[_Seq], cancel: CancelCheck | None) -> list[tuple[_Seq, np.ndarray]]:
        """(sequence, last-token logits) of ``seqs`` prefilled together, in their order; fewer when
        a stop was asked meanwhile."""
        rows = self._prefill_together(seqs, cancel)
        return [(sq, rows[sq.slot]) for sq in seqs if sq.slot in rows]

    def _decode_for_logits(self, n: int, last: dict[int, int]) -> dict[int, np.ndarray]:
        """Decode the batch's ``n`` rows; the logits of the rows in ``last`` (slot -> row)."""
        if not n:
            return {}
        self.tokens_decoded += n
        self._llama_decode(n)
        return {slot: np.ctypeslib.as_array(self._lc.llama_get_logits_ith(self._ctx, i),
                                            shape=(self.n_vocab,)).copy() for slot, i in last.items()}

    def _prefill_logits(self, sq: _Seq) -> np.ndarray:
        """``_prefill`` for a sequence that wants its logits (``_place`` always leaves it a token to decode)."""
        row = self._prefill(sq)
        if row is None:
            raise RuntimeError(f"llama.cpp gave no logits for the prompt in slot {sq.slot}")
        return row

    def _decode_step(self, seqs: Sequence[_Seq]) -> list[tuple[_Seq, int]]:
        """One token for each of ``seqs`` (each has exactly one pending: its last sampled
        token) in one llama_decode. Returns (seq, output row) for each.

        llama.cpp puts only consecutive sequence ids into one micro-batch, so rows are
        written in slot order and a one-slot gap between live slots gets a filler row (a
        throwaway token at the end of that free slot, removed afterwards): one micro-batch
        instead of two. With flash attention a lone sequence past LONE_FILLER_FROM tokens
        gets a filler neighbour too, which keeps it on the same attention kernel as a batch
        (see PREFILL_ROWS)."""
        lc = self._lc
        live = {sq.slot: sq for sq in seqs}
        order = sorted(live)
        fillers = [s + 1 for a, b in zip(order, order[1:]) for s in range(a, b - 1) if b - a - 1 <= MERGE_GAP]
        if self.flash_attn:  # a long run of one live slot: give it a free neighbour
            runs = set(order) | set(fillers)
            for s in sorted(runs):
                if s - 1 not in runs and s + 1 not in runs and (s not in live or live[s].pos >= LONE_FILLER_FROM):
                    fillers.append(s + 1 if s + 1 <= self._spare and s + 1 not in live else s - 1)
        for f in fillers:
            if len(self._held[f]) >= self.n_ctx:  # no room for a throwaway token: drop its cache
                lc.llama_memory_seq_rm(self._mem, f, -1, -1)
                self._held[f] = []
        n = 0
        outs: list[tuple[_Seq, int]] = []
        for slot in sorted(set(order) | set(fillers)):
            sq = live.get(slot)
            if sq is None:
                n = self._put(n, 0, len(self._held[slot]), slot, False)
                continue
            assert len(sq.pending) == 1
            n = self._put(n, sq.pending[0], sq.pos, slot, True)
            outs.append((sq, n - 1))
            self._held[slot].append(sq.pending[0])
            sq.pos += 1
            sq.pending = []
        if not outs:
            return outs
        self.tokens_decoded += len(outs)
        self.filler_rows += len(fillers)
        try:
            self._llama_decode(n)
        finally:
            for f in fillers:
                lc.llama_memory_seq_rm(self._mem, f, len(self._held[f]), -1)
        return outs

    def _logits(self, outs: Sequence[tuple[_Seq, int]]) -> np.ndarray:
        rows = np.empty((len(outs), self.n_vocab), dtype=np.float32)
        for j, (_, i) in enumerate(outs):
            ptr = self._lc.llama_get_logits_ith(self._ctx, i)
            rows[j] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
        return rows

    # -- ownership: one caller at a time ------------------------------------------------------

    def _acquire(self) -> None:
        if self._owner == threading.get_ident():
            raise ModelError("this model is already busy with an unfinished call in this thread")
        self._lock.acquire()
        self._owner = threading.get_ident()
        if self._closed:
            self._release()
            raise ModelError("this model has been closed")

    def _release(self) -> None:
        self._owner = None
        self._lock.release()

    # -- generation -------------------------------------------------------------------------

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        cancel: CancelCheck | None = None,
        on_token: TokenCallback | None = None,
    ) -> Iterator[GenerationResult]:
        with hold_cores(f"llama.cpp generating with {self.info.description}", cancel):
            self._acquire()
            try:
                yield from self._generate(list(requests), cancel, on_token)
            finally:
                self._release()

    def _start(self, req: GenerationRequest, slot: int, tokens: list[int]) -> _Seq:
        if not tokens:
            raise ModelError("the prompt is empty: there is nothing to continue from")
        room = self.n_ctx - len(tokens)
        if room < 1:
            raise ModelError(
                f"a prompt of {len(tokens)} tokens does not fit the model's context of {self.n_ctx} tokens"
            )
        grammar = self._new_grammar(req.json_schema) if req.json_schema is not None else None
        start = self._place(slot, tokens)
        return _Seq(
            key=req.key, slot=slot, pending=tokens[start:], pos=start, n_prompt=len(tokens), req=req,
            rng=np.random.default_rng(req.seed), max_tokens=min(req.settings.max_tokens, room),
            decoder=codecs.getincrementaldecoder("utf-8")(errors="replace"), grammar=grammar,
        )

    # -- JSON Schema: llama.cpp's grammar sampler, one parse state per sequence ----------------

    def _new_grammar(self, schema: str) -> object:
        gbnf = self._gbnf.get(schema)
        if gbnf is None:
            from llama_cpp.llama_grammar import json_schema_to_gbnf

            tree = json.loads(schema)
            try:  # fields in the order the schema writes them (the converter's default is alphabetical)
                gbnf = self._gbnf[schema] = _json_chars(
                    json_schema_to_gbnf(json.dumps(_bounded_ints(tree)), _property_order(tree)))
            except Exception as exc:  # the converter raises bare exceptions on schemas it cannot express
                raise ModelError(f"llama.cpp cannot turn this output schema into a grammar: {exc}") from None
        grammar = self._lc.llama_sampler_init_grammar(self.vocab, gbnf.encode("utf-8"), b"root")
        if not grammar:
            raise ModelError("llama.cpp refused the grammar made from the output schema")
        return cast(object, grammar)

    def _free_grammar(self, sq: _Seq) -> None:
        if sq.grammar is not None:
            self._lc.llama_sampler_free(sq.grammar)
            sq.grammar = None

    def _apply_grammar(self, grammar: object, cand: np.ndarray) -> None:
        arr = self._lc.llama_token_data_array(
            cand.ctypes.data_as(ctypes.POINTER(self._lc.llama_token_data)), cand.size, -1, False)
        self._lc.llama_sampler_apply(grammar, ctypes.byref(arr))

    def _grammar_allows(self, grammar: object, token: int) -> bool:
        one = self._one
        one["id"][0], one["logit"][0] = token, 0.0
        self._apply_grammar(grammar, one)
        return bool(np.isfinite(one["logit"][0]))

    def _sample_allowed(self, grammar: object, row: np.ndarray, s: SamplerSettings, rng: np.random.Generator) -> int:
        """Sample the next token from ``row`` with every token the grammar refuses masked out."""
        idx, p = self._allowed_distribution(grammar, row, s)
        return int(idx[rng.choice(idx.size, p=p)] if idx.size > 1 else idx[0])

    def _allowed_distribution(self, grammar: object, row: np.ndarray, s: SamplerSettings) -> tuple[np.ndarray, np.ndarray]:
        """The tokens (best first) and probabilities :func:`sample_token` would sample from with
        every token the grammar refuses masked out of ``row`` (greedy, top-k, then top-p).

        The grammar checks candidates best-ranked first, a shortlist at a time, and stops as
        soon as the tokens it has not checked cannot change the outcome: greedy needs the first
        allowed token; top-k the k best allowed ones; top-p the allowed tokens up to its cut,
        once even the most mass the unchecked ones could add (each below the best unchecked
        logit) leaves the cut where it is. Only a schema position with few allowed tokens and a
        flat distribution makes it check the whole vocabulary."""
        n = row.size
        k = s.top_k if 0 < s.top_k < n else n
        allowed: list[np.ndarray] = []
        checked = np.zeros(n, dtype=bool)
        start = 0
        for size in (*GRAMMAR_SHORTLISTS, n):
            if size <= start:
                continue
            if size < n:  # the next best-ranked candidates, in order
                top = np.argpartition(-row, size - 1)[:size]
                ids = top[np.argsort(-row[top], kind="stable")][start:]
            else:  # everything not checked yet
                ids = np.flatnonzero(~checked)
            checked[ids] = True
            cand = np.zeros(ids.size, dtype=_TOKEN_DATA)
            cand["id"] = ids
            self._apply_grammar(grammar, cand)
            ok = ids[np.isfinite(cand["logit"])]
            allowed.append(ok if size < n else ok[np.argsort(-row[ok], kind="stable")])
            start = size
            found = np.concatenate(allowed)[:k]
            if found.size == 0:
                if start < n:
                    continue
                raise ModelError("the output schema's grammar allows no next token (a schema llama.cpp cannot "
                                 "complete); simplify the schema")
            if s.temperature <= 0:
                return found[:1], np.ones(1)
            scaled = row[found].astype(np.float64) / s.temperature
            probs = np.exp(scaled - scaled[0])
            cut = found.size
            if s.top_p < 1.0:
                cum = np.cumsum(probs)
                lo = int(np.searchsorted(cum, s.top_p * cum[-1]))
                if start < n and found.size < k:
                    # the unchecked allowed tokens: at most k - found of them, each below the best unchecked logit
                    best_left = float(np.max(row[~checked]))
                    tail = (k - found.size) * math.exp(best_left / s.temperature - scaled[0])
                    hi = int(np.searchsorted(cum, s.top_p * (cum[-1] + tail)))
                    if hi != lo or hi >= found.size:
                        continue  # the cut could still move: check more candidates
                cut = lo + 1
            elif start < n and found.size < k:
                continue  # without top-p every allowed token among the top k has a chance: find them all
            return found[:cut], probs[:cut] / probs[:cut].sum()
        raise AssertionError("unreachable: the last shortlist is the whole vocabulary")

    def _finish(self, sq: _Seq, reason: str) -> GenerationResult:
        assert sq.decoder is not None
        self._free_grammar(sq)
        sq.text += sq.decoder.decode(b"", final=True)
        return GenerationResult(
            key=sq.key, text=sq.text.strip(), prompt_tokens=sq.n_prompt, completion_tokens=len(sq.logprobs),
            token_logprobs=sq.logprobs, finish_reason=reason,
        )

    def _generate(
        self, queue: list[GenerationRequest], cancel: CancelCheck | None, on_token: TokenCallback | None
    ) -> Iterator[GenerationResult]:
        queue.reverse()  # pop() from the end keeps the callers' order
        active: dict[int, _Seq] = {}
        try:
            yield from self._loop(queue, active, cancel, on_token)
        finally:  # an error or a caller that stops early: no grammar state is left behind
            for sq in active.values():
                self._free_grammar(sq)

    def _loop(
        self, queue: list[GenerationRequest], active: dict[int, _Seq], cancel: CancelCheck | None,
        on_token: TokenCallback | None,
    ) -> Iterator[GenerationResult]:
        while queue or active:
            if cancel is not None and cancel.is_interruption_requested():
                for sq in active.values():  # callers stop at the first one and store none of them
                    yield self._finish(sq, "cancelled")
                return
            free = [s for s in range(self.parallel) if s not in active]
            if queue and free:
                new = []
                for slot in free:
                    if not queue:
                        break
                    req = queue.pop()
                    new.append((slot, req, self.tokenize(self.format_prompt(req.messages))))
                self._prime_common_prefix([(slot, toks) for slot, _, toks in new])
                rows: list[tuple[_Seq, np.ndarray]] = []
                waiting: list[tuple[_Seq, list[int]]] = []  # started, prompt not yet decoded (group_prefill)
                for slot, req, toks in new:
                    if waiting and any(self._would_share_more(sq.slot, full, toks) for sq, full in waiting):
                        rows += self._prefilled([sq for sq, _ in waiting], cancel)
                        waiting = []
                    if cancel is not None and cancel.is_interruption_requested():
                        break  # the loop's top reports every active request as cancelled
                    sq = active[slot] = self._start(req, slot, toks)
                    if self.group_prefill:
                        waiting.append((sq, toks))
                    else:
                        rows.append((sq, self._prefill_logits(sq)))
                else:
                    rows += self._prefilled([sq for sq, _ in waiting], cancel)
                    if len(rows) == len(new):  # (a stop asked during the prefill: the loop's top says it)
                        yield from self._advance(active, [sq for sq, _ in rows], np.stack([r for _, r in rows]),
                                                 on_token)
                continue  # check for cancel between a long prefill and the next step
            outs = self._decode_step(list(active.values()))
            if outs:
                yield from self._advance(active, [sq for sq, _ in outs], self._logits(outs), on_token)

    def _advance(
        self, active: dict[int, _Seq], seqs: list[_Seq], logits: np.ndarray, on_token: TokenCallback | None
    ) -> Iterator[GenerationResult]:
        """Pick each sequence's next token from its logits row; finished ones leave ``active``."""
        m = logits.max(axis=1)
        lse = m + np.log(np.exp(logits - m[:, None]).sum(axis=1))
        greedy = logits.argmax(axis=1)
        if self.trace is not None:
            top2 = -np.partition(-logits, 1, axis=1)[:, :2]
            gaps = top2[:, 0] - top2[:, 1]
        done: list[GenerationResult] = []
        for j, sq in enumerate(seqs):
            req, rng, decoder = sq.req, sq.rng, sq.decoder
            if req is None or rng is None or decoder is None:  # _start sets all three
                raise RuntimeError(f"sequence {sq.slot} is generating but was not started by _start")
            s = req.settings
            tok = int(greedy[j]) if s.temperature <= 0 else sample_token(logits[j], s, rng)
            if sq.grammar is not None and not self._grammar_allows(sq.grammar, tok):
                # the model's own choice breaks the schema: choose again among the tokens the grammar
                # allows (sampling first and masking only on refusal gives the same distribution as
                # masking every step, at a fraction of the cost)
                self.grammar_masks += 1
                tok = self._sample_allowed(sq.grammar, logits[j], s, rng)
            if sq.grammar is not None and not self._eog[tok]:
                self._lc.llama_sampler_accept(sq.grammar, tok)
            reason = None
            if self.trace is not None:
                toks, margins = self.trace.setdefault(sq.key, ([], []))
                toks.append(tok)
                margins.append(float(gaps[j]))
            if self._eog[tok]:
                reason = "stop"
            else:
                sq.logprobs.append(float(logits[j, tok] - lse[j]))
                piece = decoder.decode(self._piece(tok))
                if piece:
                    sq.text += piece
                    if on_token is not None:
                        on_token(sq.key, piece)
                    for st in s.stop:
                        if not st:
                            continue
                        at = sq.text.find(st, max(0, len(sq.text) - len(piece) - len(st)))
                        if at >= 0:
                            sq.text = sq.text[:at]
                            reason = "stop"
                            break
                if reason is None and len(sq.logprobs) >= sq.max_tokens:
                    reason = "length"
            if reason is None:
                sq.pending.append(tok)
            else:
                del active[sq.slot]
                done.append(self._finish(sq, reason))
        yield from done

    # -- judging: next-token probabilities of a few answers ---------------------------------

    def _first_tokens(self, spellings: Sequence[str]) -> list[int]:
        toks = set()
        for sp in spellings:
            ids = self._tokenize(sp, False, False)
            if ids:
                toks.add(ids[0])
        return sorted(toks)

    def choice_probs(
        self, requests: Sequence[ChoiceRequest], cancel: CancelCheck | None = None
    ) -> Iterator[ChoiceResult]:
        """One forward pass per request over what follows the prefix it shares with
        the others; requests are decoded ``parallel`` at a time. Results come in order."""
        with hold_cores(f"llama.cpp judging with {self.info.description}", cancel):
            self._acquire()
            try:
                yield from self._choice_probs(list(requests), cancel)
            finally:
                self._release()

    def text_logprobs(
        self, items: Sequence[tuple[Sequence[dict[str, str]], str]], cancel: CancelCheck | None = None
    ) -> list[list[float]]:
        """Teacher-forced log-probability of each token of a given assistant text after its
        chat prompt: the likelihood of a text the model did not (or no longer) wrote, such as
        a record a person edited. Decoded like generation (one token per step), so an
        unedited text scores as it did when it was generated, up to re-tokenisation."""
        out: list[list[float]] = []
        with hold_cores(f"llama.cpp scoring with {self.info.description}", cancel):
            self._acquire()
            try:
                for messages, text in items:
                    if cancel is not None and cancel.is_interruption_requested():
                        break
                    prompt = self.tokenize(self.format_prompt(messages))
                    cont = self._tokenize(text, False, False)
                    if not cont or len(prompt) + len(cont) > self.n_ctx:
                        out.append([])
                        continue
                    start = self._place(0, prompt)
                    sq = _Seq(key=None, slot=0, pending=prompt[start:], pos=start, n_prompt=len(prompt))
                    row = self._prefill(sq)
                    lps: list[float] = []
                    for tok in cont:
                        assert row is not None
                        m = float(row.max())
                        lps.append(float(row[tok]) - (m + float(np.log(np.exp(row - m).sum()))))
                        sq.pending = [tok]
                        row = self._logits(self._decode_step([sq]))[0]
                    out.append(lps)
            finally:
                self._release()
        return out

    def _judge_tokens(self, req: ChoiceRequest) -> list[int]:
        prompt = req.raw_prompt if req.raw_prompt is not None else self.format_prompt(req.messages) + req.answer_prefix
        tokens = self.tokenize(prompt)
        if not tokens:
            raise ModelError("the judge prompt is empty")
        if len(tokens) >= self.n_ctx:
            raise ModelError(f"a judge prompt of {len(tokens)} tokens does not fit the context of {self.n_ctx}")
        return tokens

    def _choice_probs(self, requests: list[ChoiceRequest], cancel: CancelCheck | None) -> Iterator[ChoiceResult]:
        token_cache: dict[tuple[str, ...], list[int]] = {}
        for start in range(0, len(requests), self.parallel):
            if cancel is not None and cancel.is_interruption_requested():
                return
            group = requests[start : start + self.parallel]
            items = [(slot, self._judge_tokens(req)) for slot, req in enumerate(group)]
            self._prime_common_prefix(items)
            seqs, rows = [], {}
            waiting: list[tuple[_Seq, list[int]]] = []  # placed, not yet decoded (group_prefill)
            for (slot, toks), req in zip(items, group):
                if waiting and any(self._would_share_more(sq.slot, full, toks) for sq, full in waiting):
                    rows.update(self._prefill_together([sq for sq, _ in waiting], cancel))
                    waiting = []
                if cancel is not None and cancel.is_interruption_requested():
                    return
                n = self._place(slot, toks)
                sq = _Seq(key=req.key, slot=slot, pending=toks[n:], pos=n, n_prompt=len(toks))
                if self.group_prefill:
                    waiting.append((sq, toks))
                else:
                    rows[slot] = self._prefill_logits(sq)
                seqs.append(sq)
            rows.update(self._prefill_together([sq for sq, _ in waiting], cancel))
            if cancel is not None and cancel.is_interruption_requested():
                return
            for sq, req in zip(seqs, group):
                lg = rows[sq.slot].astype(np.float64)
                probs = np.exp(lg - lg.max())
                probs /= probs.sum()
                raw = {}
                for label, spellings in req.choices:
                    ids = token_cache.get(spellings)
                    if ids is None:
                        ids = token_cache[spellings] = self._first_tokens(spellings)
                    raw[label] = float(probs[ids].sum()) if ids else 0.0
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
                self._lc.llama_free(self._ctx)
                self._lc.llama_model_free(self._model)

    def __del__(self) -> None:  # a generator dropped without close() still frees llama.cpp's memory
        try:
            self.close()
        except Exception:
            pass
