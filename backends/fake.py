"""A deterministic fake generator for tests and demos.

Same request (messages, seed, settings) -> same text, token count and logprobs,
with no model file. ``SYNTH_STUDIO_FAKE_DELAY`` (seconds per token) slows it down
so tests can cancel or kill a run part-way.
"""

from __future__ import annotations

import hashlib
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
        self.info = ModelInfo(backend="fake", path=None, sha256="fake-model-v1", description="deterministic fake")

    def _rng(self, req: GenerationRequest[Any]) -> np.random.Generator:
        text = "\x00".join(m["content"] for m in req.messages)
        digest = hashlib.sha256(f"{req.seed}\x00{req.settings.temperature}\x00{text}".encode()).digest()
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
