"""A model prepared for batched CPU decoding: the same weights requantized to a type llama.cpp has
repacked x86 kernels for (Q4_0, Q8_0; none for Q4_1, the bundled file's type).

It is an explicit step with a recorded cost, never a silent swap:

- :func:`prepare_model` requantizes through libllama's own ``llama_model_quantize`` into the user
  cache, named by the source file's hash and the type, so it is made once per source; the file is
  written under a temporary name and renamed when whole, and a JSON note beside it records the
  source, its hash, the type and the prepared file's own hash (which goes into each run's lineage
  like any model file's, when the user generates with it).
- :func:`quality_cost` measures what the requantization changed on a fixed set of prompts: the mean
  absolute difference of per-token log-probabilities of the same texts under both files, and how
  often greedy decoding writes the same text. The CLI (``synth-studio prepare-model``) prints it
  before the user chooses the file with ``--model``.
"""

from __future__ import annotations

import ctypes
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from app.core.errors import ModelError
from app.core.paths import cache_dir

TYPES = {"q8_0": 7, "q4_0": 2}  # llama_ftype: LLAMA_FTYPE_MOSTLY_Q8_0, LLAMA_FTYPE_MOSTLY_Q4_0
PROMPTS = (
    "Write a short customer support ticket about a failed bank sync.",
    "Explain in two sentences what to do about a locked account.",
    "Write a polite reply to a customer who was charged twice.",
    "List three things to check about a slow dashboard.",
    "Summarise why invoices might show the wrong VAT rate.",
    "Describe how to export data to CSV in three steps.",
    "Write a friendly welcome message for a new user.",
    "What is a good password policy? Answer briefly.",
    "Write one sentence about the weather in spring.",
    "Give two tips for writing clear emails.",
    "Explain what a refund is to a child.",
    "Write a haiku about spreadsheets.",
)


@dataclass(frozen=True)
class PreparedModel:
    path: str
    sha256: str
    type: str
    source: str
    source_sha256: str


@dataclass(frozen=True)
class QualityCost:
    mean_abs_logprob_diff: float  # per token, nats, the same texts scored by both files
    tokens: int
    greedy_same: float  # share of prompts whose greedy text is identical
    prompts: int

    def line(self) -> str:
        return (f"mean |difference| of token log-probabilities {self.mean_abs_logprob_diff:.3f} nats over "
                f"{self.tokens} tokens; greedy output identical for {self.greedy_same:.0%} of {self.prompts} prompts")


def prepared_path(source_sha256: str, qtype: str) -> Path:
    return cache_dir() / "prepared" / f"{source_sha256[:16]}-{qtype}.gguf"


def prepare_model(source: str | os.PathLike[str] | None, qtype: str = "q4_0", *,
                  threads: int | None = None) -> PreparedModel:
    """The prepared file for ``source`` (the bundled model when None), made once and cached."""
    import llama_cpp

    from backends.gguf_info import file_sha256
    from backends.llama_cpp_backend import _ensure_backend, default_threads, describe_model

    if qtype not in TYPES:
        raise ModelError(f"cannot prepare a model as {qtype!r}: choose {' or '.join(TYPES)}")
    info = describe_model(source)
    if info.path is None or info.sha256 is None:
        raise ModelError("no model file to prepare")
    dest = prepared_path(info.sha256, qtype)
    note = dest.with_suffix(".json")
    if dest.is_file() and note.is_file():
        return PreparedModel(**json.loads(note.read_text(encoding="utf-8")))
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    _ensure_backend()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = TYPES[qtype]
    params.allow_requantize = True  # the source is already quantized (the bundled file is Q4_1)
    params.nthread = threads or default_threads()
    rc = llama_cpp.llama_model_quantize(str(info.path).encode(), str(partial).encode(), ctypes.byref(params))
    if rc != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise ModelError(f"llama.cpp could not requantize {Path(info.path).name} to {qtype} (code {rc})")
    os.replace(partial, dest)
    prepared = PreparedModel(str(dest), file_sha256(dest), qtype, str(info.path), info.sha256)
    note.write_text(json.dumps(asdict(prepared), indent=2), encoding="utf-8")
    return prepared


def quality_cost(source: str | os.PathLike[str] | None, prepared: str | os.PathLike[str],
                 prompts: Sequence[str] = PROMPTS, max_tokens: int = 48) -> QualityCost:
    """What the prepared file changes: the source's greedy answers to ``prompts`` scored token by
    token under both files, and whether the prepared file's greedy answers are the same texts."""
    from backends.llama_cpp_backend import LlamaCppGenerator
    from backends.protocols import GenerationRequest, SamplerSettings

    reqs = [GenerationRequest(key=i, messages=({"role": "user", "content": p},), seed=1,
                              settings=SamplerSettings(temperature=0, max_tokens=max_tokens))
            for i, p in enumerate(prompts)]
    texts, logprobs = {}, {}
    for name, path in (("source", source), ("prepared", prepared)):
        gen = LlamaCppGenerator(path, n_ctx=512)
        try:
            texts[name] = {r.key: r.text for r in gen.generate(reqs)}
            # both files score the same texts: the source's own answers
            items = [(r.messages, texts["source"][r.key]) for r in reqs]
            logprobs[name] = gen.text_logprobs(items)
        finally:
            gen.close()
    diffs = [abs(a - b) for x, y in zip(logprobs["source"], logprobs["prepared"]) if len(x) == len(y)
             for a, b in zip(x, y)]
    same = sum(texts["source"][k] == texts["prepared"][k] for k in texts["source"]) / len(reqs)
    return QualityCost(sum(diffs) / len(diffs) if diffs else 0.0, len(diffs), same, len(reqs))
