"""A model file's chat template is Jinja written by whoever made the file: it is rendered in the
immutable sandbox with a time and size bound, and a hostile one is refused when the model loads."""

from __future__ import annotations

import dataclasses
import time

import pytest

from app.core.errors import ModelError
from backends.chat_template import MAX_CHARS, PROBE, chat_formatter

PLAIN = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os }}",
    "{{ joiner.__init__.__globals__['__builtins__']['open']('/etc/passwd').read() }}",
    "{{ namespace.__init__.__globals__ }}",
    "{% set x = messages.append({'role': 'system', 'content': 'injected'}) %}{{ messages }}",
]


def test_a_plain_template_renders_the_conversation():
    f = chat_formatter(PLAIN, eos_token="<|im_end|>", bos_token="", model="m.gguf")
    assert f(messages=PROBE).prompt == "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("template", ESCAPES)
def test_a_template_that_tries_to_leave_the_sandbox_is_refused(template):
    with pytest.raises(ModelError, match=r"^evil\.gguf: its chat template") as info:
        chat_formatter(template, eos_token="", bos_token="", model="evil.gguf")
    assert "\n" not in str(info.value)


def test_a_template_that_loops_for_ever_is_stopped_in_seconds():
    loop = "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
    t0 = time.monotonic()
    with pytest.raises(ModelError, match=r"slow\.gguf: the model's chat template (took more than|wrote more than)"):
        chat_formatter(loop, eos_token="", bos_token="", model="slow.gguf")
    assert time.monotonic() - t0 < 10


def test_a_template_that_writes_a_huge_prompt_is_refused():
    big = "{{ 'x' * " + str(MAX_CHARS * 2) + " }}"
    with pytest.raises(ModelError, match=r"wrote more than"):
        chat_formatter(big, eos_token="", bos_token="", model="big.gguf")


@pytest.mark.integration
def test_loading_a_model_whose_template_is_hostile_fails_with_one_line(smollm_path, monkeypatch):
    import backends.llama_cpp_backend as lcb

    real = lcb._inspect

    def hostile(path):
        info, gguf = real(path)
        return info, dataclasses.replace(gguf, chat_template=ESCAPES[1])

    monkeypatch.setattr(lcb, "_inspect", hostile)
    with pytest.raises(ModelError, match="its chat template tried something the sandbox forbids"):
        lcb.LlamaCppGenerator(smollm_path, n_ctx=256)
    monkeypatch.setattr(lcb, "_inspect", real)
    gen = lcb.LlamaCppGenerator(smollm_path, n_ctx=256)  # the real template still loads and renders
    try:
        assert gen.format_prompt(PROBE).endswith("<|im_start|>assistant\n")
    finally:
        gen.close()
