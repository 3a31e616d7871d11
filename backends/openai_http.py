"""A backend for any server that speaks the OpenAI HTTP API with logprobs.

llama-server, vLLM and llama-cpp-python's own ``llama_cpp.server`` all do: users who
outgrow one machine run one of them on a GPU box and point the studio at its URL.
Generation uses ``/v1/chat/completions`` (the server applies the chat template);
judging reads the answer tokens' probabilities from ``top_logprobs`` of one token,
via ``/v1/completions`` for raw prompts and chat completions otherwise.

Requests run N at a time on threads; network errors, 429 and 5xx are retried with
exponential backoff; a server that drops logprobs or stops answering ends the call
with a ``ModelError`` that says so (what callers committed before stays committed).
Only the standard library is used.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from app.core.errors import ModelError
from backends.protocols import (
    CancelCheck,
    ChoiceRequest,
    ChoiceResult,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    TokenCallback,
)

DEFAULT_CONCURRENCY = 4
TOP_LOGPROBS = 20  # the most OpenAI's API allows; enough for a few answer spellings
RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    pass


class OpenAICompatibleGenerator:
    """``TextGenerator`` and ``Judge`` over HTTP.

    ``model_path`` is the server's base URL, e.g. ``http://127.0.0.1:8080/v1``,
    optionally followed by ``#model-name`` (otherwise the first model the server lists).
    """

    def __init__(
        self,
        model_path: str | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 0.5,
        **_: object,
    ) -> None:
        from backends import is_server_url

        if not is_server_url(model_path):
            raise ModelError(
                f"the openai backend needs a server URL such as http://127.0.0.1:8080/v1, not {model_path!r}"
            )
        url, _sep, name = str(model_path).partition("#")
        self.base_url = url.rstrip("/")
        self.concurrency = max(1, int(concurrency))
        self.api_key = api_key
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.model = name or self._first_model()
        self.info = ModelInfo(
            backend="openai",
            path=f"{self.base_url}#{self.model}",
            sha256=None,
            description=f"{self.model} at {self.base_url}",
        )

    # -- HTTP -----------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            req = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    answer: dict[str, Any] = json.loads(resp.read().decode("utf-8"))  # the API answers objects
                    return answer
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", errors="replace")[:300]
                if exc.code in RETRYABLE:
                    last = exc
                    continue
                raise ModelError(f"the server at {self.base_url} refused {path} (HTTP {exc.code}): {detail}") from exc
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
                last = exc
                continue
            except json.JSONDecodeError as exc:
                raise ModelError(f"the server at {self.base_url} answered {path} with something that is not JSON") from exc
        reason = getattr(last, "reason", last)
        raise ModelError(
            f"the server at {self.base_url} did not answer {path} after {self.retries + 1} tries: {reason}"
        )

    def _first_model(self) -> str:
        listing = self._call("GET", "/models")
        models = [m.get("id") for m in listing.get("data", []) if isinstance(m, dict)]
        if not models or not models[0]:
            raise ModelError(f"the server at {self.base_url} lists no models at /models")
        return str(models[0])

    # -- running many requests at once --------------------------------------------------------

    def _pool(
        self, items: Sequence[Any], work: Callable[[Any], Any], cancel: CancelCheck | None
    ) -> Iterator[tuple[Any, Any]]:
        """(item, result) as each finishes, at most ``concurrency`` in flight; stops
        submitting at cancel (in-flight answers are dropped)."""
        pending = list(reversed(items))
        running: dict[Future[Any], Any] = {}
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="openai-http")
        try:
            while pending or running:
                if cancel is not None and cancel.is_interruption_requested():
                    yield None, None
                    return
                while pending and len(running) < self.concurrency:
                    item = pending.pop()
                    running[pool.submit(work, item)] = item
                done, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
                for fut in done:
                    item = running.pop(fut)
                    yield item, fut.result()  # a ModelError propagates to the caller here
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    # -- generation ---------------------------------------------------------------------------

    def _chat(self, req: GenerationRequest) -> GenerationResult:
        s = req.settings
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(req.messages),
            "max_tokens": s.max_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "seed": req.seed,
            "logprobs": True,
            "top_logprobs": 1,
        }
        if s.top_k > 0:
            body["top_k"] = s.top_k  # not OpenAI's, but llama-server, vLLM and llama-cpp-python read it
        if s.stop:
            body["stop"] = list(s.stop)
        out = self._call("POST", "/chat/completions", body)
        try:
            choice = out["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ModelError(f"the server at {self.base_url} sent a chat completion without choices") from exc
        content = (choice.get("logprobs") or {}).get("content")
        if content is None:
            raise ModelError(
                f"the server at {self.base_url} returned no logprobs; the studio needs them for likelihoods "
                "and judges (llama-server and vLLM send them when asked; llama_cpp.server needs logits_all)"
            )
        logprobs = [float(t["logprob"]) for t in content]
        usage = out.get("usage") or {}
        reason = choice.get("finish_reason") or "stop"
        return GenerationResult(
            key=req.key,
            text=text.strip(),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or len(logprobs)),
            token_logprobs=logprobs,
            finish_reason="length" if reason == "length" else "stop",
        )

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        cancel: CancelCheck | None = None,
        on_token: TokenCallback | None = None,
    ) -> Iterator[GenerationResult]:
        for req, result in self._pool(requests, self._chat, cancel):
            if req is None:
                yield GenerationResult(key=None, text="", prompt_tokens=0, completion_tokens=0,
                                       token_logprobs=[], finish_reason="cancelled")
                return
            if on_token is not None and result.text:
                on_token(req.key, result.text)  # no streaming over HTTP here: the whole text at once
            yield result

    # -- judging ------------------------------------------------------------------------------

    def _choice(self, req: ChoiceRequest) -> ChoiceResult:
        if req.raw_prompt is not None:
            out = self._call("POST", "/completions", {
                "model": self.model, "prompt": req.raw_prompt, "max_tokens": 1, "temperature": 0,
                "logprobs": TOP_LOGPROBS,
            })
            try:
                top = out["choices"][0]["logprobs"]["top_logprobs"][0]
            except (KeyError, IndexError, TypeError) as exc:
                raise ModelError(f"the server at {self.base_url} returned no top logprobs for a completion") from exc
            pairs = list(top.items())
        else:
            out = self._call("POST", "/chat/completions", {
                "model": self.model, "messages": list(req.messages), "max_tokens": 1, "temperature": 0,
                "logprobs": True, "top_logprobs": TOP_LOGPROBS,
            })
            try:
                first = out["choices"][0]["logprobs"]["content"][0]
                pairs = [(t["token"], t["logprob"]) for t in first["top_logprobs"]]
            except (KeyError, IndexError, TypeError) as exc:
                raise ModelError(f"the server at {self.base_url} returned no top logprobs for a chat turn") from exc
        raw = {}
        for label, spellings in req.choices:
            wanted = set(spellings)
            raw[label] = sum(math.exp(float(lp)) for tok, lp in pairs if tok in wanted)
        total = sum(raw.values())
        return ChoiceResult(
            key=req.key,
            probs={k: (v / total if total > 0 else 1 / len(raw)) for k, v in raw.items()},
            mass=min(1.0, total),
        )

    def choice_probs(
        self, requests: Sequence[ChoiceRequest], cancel: CancelCheck | None = None
    ) -> Iterator[ChoiceResult]:
        """Results in the order of ``requests`` (answers arriving early wait for their turn)."""
        order = {id(r): i for i, r in enumerate(requests)}
        ready: dict[int, ChoiceResult] = {}
        nxt = 0
        for req, result in self._pool(requests, self._choice, cancel):
            if req is None:
                return
            ready[order[id(req)]] = result
            while nxt in ready:
                yield ready.pop(nxt)
                nxt += 1

    def close(self) -> None:
        pass
