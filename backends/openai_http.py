"""A backend for any server that speaks the OpenAI HTTP API with logprobs.

llama-server, vLLM and llama-cpp-python's own ``llama_cpp.server`` all do: users who
outgrow one machine run one of them on a GPU box and point the studio at its URL.
Generation uses ``/v1/chat/completions`` (the server applies the chat template);
judging reads the answer tokens' probabilities from the top logprobs of one token,
via ``/v1/completions`` for raw prompts and chat completions otherwise, in whichever
shape the server answers (``backends.server_logprobs``).

Requests run N at a time on threads over kept-alive connections; network errors, 429
and 5xx are retried a bounded number of times with jittered backoff, honouring
``Retry-After`` (``backends.http_client``); a server that drops logprobs or stops
answering ends the call with a ``ModelError`` that says so (what callers committed
before stays committed).

The API key comes from ``app.core.credentials`` (``--api-key``, the key stored for the
server, ``SYNTH_STUDIO_API_KEY``, ``OPENAI_API_KEY``) and is sent as ``Authorization:
Bearer``; it never appears in ``info`` or in an error message.

A server model has no file to hash, so ``info.sha256`` is ``"server:"`` + the sha256 of
what the server reports about it (its id and the stable fields of its ``/v1/models``
entry; llama-server's ``/props`` model file name): runs record it, and resuming a run
against a different server model is refused like a different GGUF file.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import PurePosixPath
from typing import Any

from app.core.credentials import api_key_for, scrub, split_credentials
from app.core.errors import ModelError
from backends.http_client import JsonClient
from backends.protocols import (
    CancelCheck,
    ChoiceRequest,
    ChoiceResult,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    TokenCallback,
)
from backends.server_logprobs import first_token_alternatives

DEFAULT_CONCURRENCY = 4
TOP_LOGPROBS = 20  # the most OpenAI's API allows; enough for a few answer spellings
# What identifies a served model in a /v1/models entry (OpenAI, vLLM's root/parent, llama-server's
# meta). Left out: "created" (llama-server sends the current time), vLLM's "permission" (fresh ids
# each call), and serving settings that do not change the model: max_model_len, llama-server's n_ctx.
IDENTITY_FIELDS = ("id", "owned_by", "root", "parent", "meta")
IDENTITY_META = ("vocab_type", "n_vocab", "n_ctx_train", "n_embd", "n_params", "size", "ftype")


class OpenAICompatibleGenerator:
    """``TextGenerator`` and ``Judge`` over HTTP.

    ``model_path`` is the server's base URL, e.g. ``http://127.0.0.1:8080/v1``,
    optionally followed by ``#model-name`` (otherwise the first model the server lists).
    ``api_key`` overrides the key lookup of ``app.core.credentials``.
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
                scrub(f"the openai backend needs a server URL such as http://127.0.0.1:8080/v1, not {model_path!r}")
            )
        url, _sep, name = str(model_path).partition("#")
        url = url.rstrip("/")
        plain_url = split_credentials(url)[0]
        self.concurrency = max(1, int(concurrency))
        self._schema_style = "json_schema"  # how this server takes an output schema (see _chat)
        self.client = JsonClient(url, api_key=api_key_for(plain_url, api_key), timeout=timeout, retries=retries,
                                 backoff=backoff, pool_size=self.concurrency)
        self.base_url = self.client.url  # without user:password@, so it can be shown and stored
        self.model = name
        listing = self.client.request("GET", "/models", optional=bool(name))
        entries = [m for m in (listing or {}).get("data", []) if isinstance(m, dict) and m.get("id")]
        if not self.model:
            if not entries:
                raise ModelError(f"the server at {self.base_url} lists no models at /models")
            self.model = str(entries[0]["id"])
        entry = next((m for m in entries if m["id"] == self.model), entries[0] if len(entries) == 1 else {})
        props = self.client.request("GET", "/props", root=True, optional=True) or {}
        self.server_model = self._identity(entry, props)
        digest = hashlib.sha256(json.dumps(self.server_model, sort_keys=True).encode()).hexdigest()
        self.info = ModelInfo(
            backend="openai",
            path=f"{self.base_url}#{self.model}",
            sha256=f"server:{digest}",
            description=f"{self.model} at {self.base_url} ({self._facts(entry)}server model {digest[:12]})",
            reported=json.dumps(self.server_model, sort_keys=True),
        )

    # -- what the server says it serves -------------------------------------------------------

    def _identity(self, entry: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
        """The stable facts the server reports about the model (see IDENTITY_FIELDS)."""
        ident = {k: entry[k] for k in IDENTITY_FIELDS if entry.get(k) not in (None, "", [], {})}
        if isinstance(ident.get("meta"), dict):
            ident["meta"] = {k: v for k, v in ident["meta"].items() if k in IDENTITY_META}
        ident["id"] = self.model
        model_path = props.get("model_path")
        if isinstance(model_path, str) and model_path:
            ident["model_file"] = PurePosixPath(model_path.replace("\\", "/")).name  # where it lies is not what it is
        return ident

    @staticmethod
    def _facts(entry: dict[str, Any]) -> str:
        found = entry.get("meta")
        meta: dict[str, Any] = found if isinstance(found, dict) else {}
        facts = []
        if isinstance(meta.get("n_params"), (int, float)) and meta["n_params"] > 0:
            n = float(meta["n_params"])
            facts.append(f"{n / 1e9:.1f}B parameters" if n >= 1e9 else f"{n / 1e6:.0f}M parameters")
        if isinstance(meta.get("size"), (int, float)) and meta["size"] > 0:
            facts.append(f"{meta['size'] / 2**20:.0f} MiB")
        if isinstance(entry.get("max_model_len"), int):
            facts.append(f"context {entry['max_model_len']}")
        return "".join(f + ", " for f in facts)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = self.client.request(method, path, body)
        assert answer is not None  # only optional requests answer None
        return answer

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
        if req.json_schema is not None:
            # OpenAI's structured outputs (llama-server and vLLM read the same shape); a server that
            # refuses it (llama-cpp-python's) is asked once more in its own shape, remembered. The
            # reply is checked against the schema by the validate step (a mismatch is a failure)
            schema = json.loads(req.json_schema)
            formats = {"json_schema": {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}},
                       "json_object": {"type": "json_object", "schema": schema}}
            style = self._schema_style
            body["response_format"] = formats[style]
            try:
                out = self._call("POST", "/chat/completions", body)
            except ModelError as exc:
                if style != "json_schema" or "response_format" not in str(exc):
                    raise
                body["response_format"] = formats["json_object"]
                out = self._call("POST", "/chat/completions", body)
                self._schema_style = "json_object"
        else:
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
            # logprobs: N is OpenAI's and vLLM's; llama-server reads it as n_probs
            out = self._call("POST", "/completions", {
                "model": self.model, "prompt": req.raw_prompt, "max_tokens": 1, "temperature": 0,
                "logprobs": TOP_LOGPROBS,
            })
            what = "a completion"
        else:
            out = self._call("POST", "/chat/completions", {
                "model": self.model, "messages": list(req.messages), "max_tokens": 1, "temperature": 0,
                "logprobs": True, "top_logprobs": TOP_LOGPROBS,
            })
            what = "a chat turn"
        pairs = first_token_alternatives(out)
        if not pairs:
            raise ModelError(f"the server at {self.base_url} returned no top logprobs for {what} (it must send "
                             "logprobs; llama_cpp.server needs logits_all)")
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
        self.client.close()
