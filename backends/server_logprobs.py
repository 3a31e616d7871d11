"""Reading the next token's top alternatives out of the answers servers really send.

Servers agree on asking (``logprobs``/``top_logprobs``) but not on answering:

- OpenAI, vLLM and llama-cpp-python, ``/v1/completions``: ``choices[0].logprobs.top_logprobs``,
  one ``{token: logprob}`` object per generated token.
- OpenAI and vLLM, ``/v1/chat/completions``; llama-server, both ``/v1/completions`` and
  ``/v1/chat/completions``: ``choices[0].logprobs.content``, one entry per generated token, each
  with a ``top_logprobs`` list of ``{token, logprob}`` (llama-server adds ``id`` and ``bytes``; with
  ``post_sampling_probs`` it sends ``top_probs`` of ``{token, prob}`` instead).
- llama-server's native ``/completion``: ``completion_probabilities`` shaped like ``content``
  above; builds before the end of 2024 sent ``probs`` lists of ``{tok_str, prob}``.

:func:`first_token_alternatives` reads all of them; ``tests/fixtures/server_logprobs/`` holds one
recorded answer of each shape.
"""

from __future__ import annotations

import math
from typing import Any


def _text(entry: dict[str, Any]) -> str | None:
    for key in ("token", "tok_str"):
        if isinstance(entry.get(key), str):
            return str(entry[key])
    raw = entry.get("bytes")
    if isinstance(raw, list) and all(isinstance(b, int) for b in raw):
        return bytes(raw).decode("utf-8", errors="replace")
    return None


def _logprob(entry: dict[str, Any]) -> float | None:
    if isinstance(entry.get("logprob"), (int, float)):
        return float(entry["logprob"])
    p = entry.get("prob")
    if isinstance(p, (int, float)):
        return math.log(p) if p > 0 else -math.inf
    return None


def _from_list(items: Any) -> list[tuple[str, float]]:
    out = []
    for entry in items if isinstance(items, list) else []:
        if isinstance(entry, dict):
            text, lp = _text(entry), _logprob(entry)
            if text is not None and lp is not None:
                out.append((text, lp))
    return out


def _from_token_entry(first: Any) -> list[tuple[str, float]] | None:
    """One generated token's entry in ``content`` or ``completion_probabilities``."""
    if not isinstance(first, dict):
        return None
    for key in ("top_logprobs", "top_probs", "probs"):
        if key in first:
            return _from_list(first[key])
    return None


def first_token_alternatives(answer: dict[str, Any]) -> list[tuple[str, float]] | None:
    """(token text, log-probability) of the first generated token's top alternatives, or None
    when the answer holds no top logprobs in any shape the module docstring lists."""
    native = answer.get("completion_probabilities")
    if isinstance(native, list) and native:
        return _from_token_entry(native[0])
    try:
        logprobs = answer["choices"][0]["logprobs"]
    except (KeyError, IndexError, TypeError):
        return None
    if not isinstance(logprobs, dict):
        return None
    top = logprobs.get("top_logprobs")
    if isinstance(top, list) and top:
        first = top[0]
        if isinstance(first, dict):
            return [(str(t), float(lp)) for t, lp in first.items() if isinstance(lp, (int, float))]
        return _from_list(first)  # a list of {token, logprob}: seen from some proxies
    content = logprobs.get("content")
    if isinstance(content, list) and content:
        return _from_token_entry(content[0])
    return None
