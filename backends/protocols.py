"""The small Protocols every model backend implements.

Backends are batch-first: a list of requests goes in, results come out as they
finish (not necessarily in order; each carries its request's ``key``). That lets
batching, caching and parallel servers fit without changing the callers.

Requests and results are generic in the key's type ``K``: a backend hands back
whatever key it was given, so a caller that keys requests by record id gets int keys
back, typed, without a cast.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class SamplerSettings:
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    max_tokens: int = 256
    stop: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SamplerSettings:
        known = {k: d[k] for k in ("temperature", "top_p", "top_k", "max_tokens") if k in d}
        return cls(**known, stop=tuple(d.get("stop", ())))


@dataclass(frozen=True)
class GenerationRequest(Generic[K]):
    """One completion to make. ``messages`` are chat turns; the backend applies the model's chat template."""

    key: K
    messages: tuple[dict[str, str], ...]
    seed: int
    settings: SamplerSettings = field(default_factory=SamplerSettings)
    # a JSON Schema (canonical JSON text) the reply must satisfy: the local backend constrains
    # decoding to it (llama.cpp's grammar sampler), a server gets it as response_format
    json_schema: str | None = None


@dataclass
class GenerationResult(Generic[K]):
    key: K
    text: str
    prompt_tokens: int
    completion_tokens: int
    token_logprobs: list[float]
    finish_reason: str  # "stop" | "length" | "cancelled"


@dataclass(frozen=True)
class ModelInfo:
    backend: str
    path: str | None
    sha256: str | None
    description: str = ""
    reported: str = ""  # a server model: what the server says about it (JSON), recorded with each run


class CancelCheck(Protocol):
    def is_interruption_requested(self) -> bool: ...


TokenCallback = Callable[[K, str], None]  # (request key, text piece)


@dataclass(frozen=True)
class ChoiceRequest(Generic[K]):
    """Which of a few answers would the model give next? ``choices`` maps a label to its spellings."""

    key: K
    messages: tuple[dict[str, str], ...]
    choices: tuple[tuple[str, tuple[str, ...]], ...]  # ((label, (spelling, ...)), ...)
    answer_prefix: str = ""  # text already in the assistant's turn before the answer
    raw_prompt: str | None = None  # a completion-style prompt used as is (no chat template)


@dataclass
class ChoiceResult(Generic[K]):
    key: K
    probs: dict[str, float]  # renormalised over the choices: sums to 1
    mass: float  # how much of the model's next-token probability the choices hold (0..1)


@runtime_checkable
class Judge(Protocol):
    """Reads answer probabilities from one forward pass: no sampling, no parsing of text."""

    info: ModelInfo

    def choice_probs(
        self, requests: Sequence[ChoiceRequest[K]], cancel: CancelCheck | None = None
    ) -> Iterator[ChoiceResult[K]]: ...


class JudgeModel(Judge, Protocol):
    """A judge that holds a loaded model (memory, threads) until it is closed."""

    def close(self) -> None: ...


@runtime_checkable
class TextGenerator(Protocol):
    """Generates text for batches of requests, with the log-probability of each sampled token."""

    info: ModelInfo

    def generate(
        self,
        requests: Sequence[GenerationRequest[K]],
        cancel: CancelCheck | None = None,
        on_token: TokenCallback[K] | None = None,
    ) -> Iterator[GenerationResult[K]]:
        """Yield one result per request as each finishes.

        When ``cancel`` asks to stop, the request in progress ends with
        ``finish_reason == "cancelled"`` (callers do not store it) and no more are started.
        """
        ...

    def close(self) -> None: ...


@runtime_checkable
class TextScorer(Protocol):
    """A model that can say how likely a given text is after a prompt (teacher forcing)."""

    def text_logprobs(
        self, items: Sequence[tuple[Sequence[dict[str, str]], str]], cancel: CancelCheck | None = None
    ) -> list[list[float]]: ...
