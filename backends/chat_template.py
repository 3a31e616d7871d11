"""A GGUF's own chat template, rendered sandboxed and bounded.

A model file carries its chat template as Jinja text, written by whoever made the file. llama-cpp-
python renders it in Jinja's immutable sandbox, which blocks the known escapes (``__class__``,
``__globals__``, ``cycler``, ``self._TemplateReference__context``: a ``SecurityError``), but not a
template that loops for ever or writes gigabytes. :class:`BoundedChatFormatter` renders chunk by
chunk and stops at :data:`SECONDS` or :data:`MAX_CHARS`, and :func:`chat_formatter` renders a probe
conversation when the model loads, so a hostile or broken template is refused with one clear line
before any work starts.
"""

from __future__ import annotations

import time
from typing import Any

from llama_cpp.llama_chat_format import ChatFormatterResponse, Jinja2ChatFormatter

from app.core.errors import ModelError

SECONDS = 2.0  # one render; the real ones take well under a millisecond
MAX_CHARS = 4_000_000  # far beyond any context a prompt could fill
PROBE = [{"role": "user", "content": "Hello"}]


class BoundedChatFormatter(Jinja2ChatFormatter):
    def __call__(self, *, messages: Any, **kwargs: Any) -> ChatFormatterResponse:
        def raise_exception(message: str) -> None:
            raise ValueError(message)

        deadline = time.monotonic() + SECONDS
        parts: list[str] = []
        size = 0
        for chunk in self._environment.generate(
                messages=messages, eos_token=self.eos_token, bos_token=self.bos_token,
                raise_exception=raise_exception, add_generation_prompt=self.add_generation_prompt,
                strftime_now=self.strftime_now, **kwargs):
            parts.append(chunk)
            size += len(chunk)
            if size > MAX_CHARS:
                raise ModelError(f"the model's chat template wrote more than {MAX_CHARS:,} characters for one "
                                 "prompt: refused")
            if time.monotonic() > deadline:
                raise ModelError(f"the model's chat template took more than {SECONDS:g} s for one prompt: refused")
        return ChatFormatterResponse(prompt="".join(parts), stop=[self.eos_token])


def chat_formatter(template: str, *, eos_token: str, bos_token: str, model: str) -> BoundedChatFormatter:
    """The formatter for ``model``'s template, after one sandboxed probe render; raises ModelError
    naming the model when the template does not compile, escapes the sandbox or exceeds the bounds."""
    import jinja2
    from jinja2.sandbox import SecurityError

    try:
        formatter = BoundedChatFormatter(template=template, eos_token=eos_token, bos_token=bos_token)
        formatter(messages=PROBE)
    except SecurityError as exc:
        raise ModelError(f"{model}: its chat template tried something the sandbox forbids ({exc}); "
                         "the model was not loaded") from None
    except jinja2.TemplateError as exc:
        raise ModelError(f"{model}: its chat template is not valid Jinja ({exc})") from None
    except ModelError as exc:
        raise ModelError(f"{model}: {exc}") from None
    except Exception as exc:  # the template's own raise_exception, a type error in its logic
        raise ModelError(f"{model}: its chat template cannot format a plain user message ({exc})") from None
    return formatter
