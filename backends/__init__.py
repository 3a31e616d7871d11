"""Model backends behind small Protocols, registered by name and imported lazily.

A backend whose library is missing degrades that one feature with a clear
message; importing this package never imports llama.cpp.
"""

from __future__ import annotations

import importlib
from typing import Any

from app.core.errors import ModelError
from backends.protocols import (
    GenerationRequest,
    GenerationResult,
    Judge,
    JudgeModel,
    ModelInfo,
    SamplerSettings,
    TextGenerator,
)

# name -> "module:factory"; factories take (model_path, **options)
_GENERATORS: dict[str, str] = {
    "llama-cpp": "backends.llama_cpp_backend:LlamaCppGenerator",
    "fake": "backends.fake:FakeGenerator",
    "openai": "backends.openai_http:OpenAICompatibleGenerator",
}


def generator_names() -> list[str]:
    return list(_GENERATORS)


def register_generator(name: str, target: str) -> None:
    _GENERATORS[name] = target


def is_server_url(path: object) -> bool:
    """A model "path" that is an OpenAI-compatible server's URL (http://host:port/v1[#model])."""
    return bool(path) and str(path).startswith(("http://", "https://"))


def load_generator(name: str, model_path: str | None = None, **options: Any) -> TextGenerator:
    if name == "llama-cpp" and is_server_url(model_path):
        name = "openai"  # a URL instead of a file: an OpenAI-compatible server
    try:
        target = _GENERATORS[name]
    except KeyError:
        raise ModelError(f"unknown backend {name!r}; available: {', '.join(_GENERATORS)}") from None
    module_name, attr = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(f"backend {name!r} is not available: {exc}") from exc
    generator: TextGenerator = getattr(module, attr)(model_path, **options)
    return generator


def load_judge(name: str, model_path: str | None = None, **options: Any) -> JudgeModel:
    """Like :func:`load_generator`, for judging (every registered backend can judge)."""
    model = load_generator(name, model_path, **options)
    if not isinstance(model, Judge):
        model.close()
        raise ModelError(f"backend {name!r} cannot judge: it gives no answer probabilities")
    return model


__all__ = [
    "GenerationRequest",
    "GenerationResult",
    "Judge",
    "JudgeModel",
    "ModelInfo",
    "SamplerSettings",
    "TextGenerator",
    "generator_names",
    "is_server_url",
    "load_generator",
    "load_judge",
    "register_generator",
]
