"""A deterministic fake generator for tests and demos.

Same request (messages, seed, settings) -> same text, token count and logprobs,
with no model file. ``SYNTH_STUDIO_FAKE_DELAY`` (seconds per token) slows it down
so tests can cancel or kill a run part-way.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from backends.protocols import (
    CancelCheck,
    ChoiceRequest,
    ChoiceResult,
    GenerationRequest,
    GenerationResult,
    K,
    ModelInfo,
    TokenCallback,
)

_WORDS = (
    "the customer reports that login fails after password reset and asks for help with the "
    "billing page which shows an error when the invoice is downloaded on mobile devices so "
    "please check account settings refund request shipping delay order tracking number"
).split()


class FakeGenerator:
    def __init__(self, model_path: str | None = None, delay: float | None = None, **_: object) -> None:
        self.delay = float(os.environ.get("SYNTH_STUDIO_FAKE_DELAY", "0")) if delay is None else delay
        # a named fake (``--model fake-b``) is another "model": its own hash and its own texts
        self.name = model_path
        sha = "fake-model-v1" if model_path is None else "fake:" + hashlib.sha256(model_path.encode()).hexdigest()[:16]
        self.info = ModelInfo(backend="fake", path=model_path, sha256=sha, description="deterministic fake")

    def _rng(self, req: GenerationRequest[Any]) -> np.random.Generator:
        text = "\x00".join(m["content"] for m in req.messages)
        named = "" if self.name is None else f"{self.name}\x00"
        digest = hashlib.sha256(f"{named}{req.seed}\x00{req.settings.temperature}\x00{text}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def generate(
        self,
        requests: Sequence[GenerationRequest[K]],
        cancel: CancelCheck | None = None,
        on_token: TokenCallback[K] | None = None,
    ) -> Iterator[GenerationResult[K]]:
        for req in requests:
            if cancel is not None and cancel.is_interruption_requested():
                return
            rng = self._rng(req)
            if req.json_schema is not None:
                text = json.dumps(fake_instance(json.loads(req.json_schema), rng), ensure_ascii=False)
                if on_token is not None:
                    on_token(req.key, text)
                n_words = len(text.split())
                yield GenerationResult(key=req.key, text=text,
                                       prompt_tokens=sum(len(m["content"].split()) for m in req.messages),
                                       completion_tokens=n_words,
                                       token_logprobs=[float(-rng.gamma(1.5, 0.6)) for _ in range(n_words)],
                                       finish_reason="stop")
                continue
            n = int(rng.integers(3, max(4, min(req.settings.max_tokens, 40)) + 1))
            n = min(n, req.settings.max_tokens)
            words, logprobs, reason = [], [], "stop"
            for i in range(n):
                if cancel is not None and cancel.is_interruption_requested():
                    reason = "cancelled"
                    break
                if self.delay:
                    time.sleep(self.delay)
                w = _WORDS[int(rng.integers(len(_WORDS)))]
                words.append(w)
                logprobs.append(float(-rng.gamma(1.5, 0.6)))
                if on_token is not None:
                    on_token(req.key, (" " if i else "") + w)
            if reason != "cancelled" and n == req.settings.max_tokens:
                reason = "length"
            prompt_tokens = sum(len(m["content"].split()) for m in req.messages)
            yield GenerationResult(
                key=req.key,
                text=" ".join(words),
                prompt_tokens=prompt_tokens,
                completion_tokens=len(words),
                token_logprobs=logprobs,
                finish_reason=reason,
            )
            if reason == "cancelled":
                return

    def choice_probs(
        self, requests: Sequence[ChoiceRequest[K]], cancel: CancelCheck | None = None
    ) -> Iterator[ChoiceResult[K]]:
        """A judge at chance level: deterministic, unrelated to the question's meaning."""
        for req in requests:
            if cancel is not None and cancel.is_interruption_requested():
                return
            text = req.raw_prompt if req.raw_prompt is not None else "\x00".join(m["content"] for m in req.messages)
            digest = hashlib.sha256(text.encode()).digest()
            weights = [digest[i] + 1 for i in range(len(req.choices))]
            total = sum(weights)
            yield ChoiceResult(key=req.key, probs={label: w / total for (label, _), w in zip(req.choices, weights)},
                               mass=0.9)

    def text_logprobs(self, items: Sequence[tuple[Sequence[dict[str, str]], str]],
                      cancel: object = None) -> list[list[float]]:
        """A deterministic stand-in: each word costs more the longer it is."""
        return [[-0.1 * len(w) for w in text.split()] for _messages, text in items]

    def close(self) -> None:
        pass


def fake_instance(schema: Any, rng: np.random.Generator, depth: int = 0) -> Any:
    """A deterministic value satisfying the simple JSON Schemas prompts declare (object,
    string with enum/length, integer/number with bounds, boolean, array), as the local
    backend's grammar would force. Local ``$ref``s and ``anyOf``/``oneOf`` take the first branch."""
    if not isinstance(schema, dict):
        return None
    if "enum" in schema:
        return schema["enum"][int(rng.integers(len(schema["enum"])))]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return fake_instance(schema[key][0], rng, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: fake_instance(v, rng, depth + 1) for k, v in props.items()} if depth < 8 else {}
    if kind == "array":
        lo = int(schema.get("minItems", 1))
        hi = max(lo, int(schema.get("maxItems", lo + 2)))
        return [fake_instance(schema.get("items", {}), rng, depth + 1) for _ in range(int(rng.integers(lo, hi + 1)))]
    if kind in ("integer", "number"):
        low = float(schema.get("minimum", 0))
        high = float(schema.get("maximum", low + 100))
        x = float(rng.uniform(low, high))
        return int(round(min(max(x, low), high))) if kind == "integer" else round(x, 2)
    if kind == "boolean":
        return bool(rng.integers(2))
    if kind == "null":
        return None
    lo = int(schema.get("minLength", 1))
    words = [_WORDS[int(rng.integers(len(_WORDS)))] for _ in range(int(rng.integers(2, 8)))]
    text = " ".join(words)
    if "maxLength" in schema:
        text = text[: int(schema["maxLength"])]
    return text + "x" * max(0, lo - len(text))
