"""Finding GGUF models on this machine and remembering each notebook's choice."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.errors import StudioError
from app.store.notebook import Notebook
from backends import is_server_url  # re-exported: the CLI and widgets ask app.generate.model_choice

MAX_FILES_PER_PLACE = 500


def search_places() -> list[tuple[str, Path]]:
    """(label, folder) pairs where GGUF files usually live."""
    home = Path.home()
    hf = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", home / ".cache" / "huggingface")) / "hub")
    return [
        ("Hugging Face cache", hf),
        ("LM Studio", home / ".lmstudio" / "models"),
        ("LM Studio", home / ".cache" / "lm-studio" / "models"),
        ("Ollama-free GGUFs", home / "models"),
    ]


@dataclass
class ModelEntry:
    path: str
    source: str
    info: Any = None  # backends.gguf_info.GGUFInfo when readable
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def find_models(extra_folders: list[Path] | None = None) -> list[ModelEntry]:
    """The bundled models first, then GGUFs in the usual places (metadata read from each file)."""
    from backends.bundled import default_generator_model
    from backends.gguf_info import read_gguf_info

    found: list[tuple[str, Path]] = []
    try:
        found.append(("bundled", default_generator_model()))
    except StudioError:
        pass
    places = search_places() + [("folder", Path(f)) for f in (extra_folders or [])]
    for label, folder in places:
        if not folder.is_dir():
            continue
        for i, p in enumerate(sorted(folder.rglob("*.gguf"))):
            if i >= MAX_FILES_PER_PLACE:
                break
            found.append((label, p))
    entries, seen = [], set()
    for label, p in found:
        key = os.path.realpath(p)
        if key in seen:
            continue
        seen.add(key)
        try:
            entries.append(ModelEntry(str(p), label, read_gguf_info(p)))
        except StudioError as exc:
            entries.append(ModelEntry(str(p), label, None, str(exc)))
    return entries


@dataclass(frozen=True)
class ModelChoice:
    path: str | None = None  # None: the bundled default
    n_ctx: int = 2048
    threads: int | None = None  # None: every core
    n_gpu_layers: int = 0
    parallel: int | None = None  # sequences decoded together; None: as many as the KV budget allows

    @property
    def is_server(self) -> bool:
        return is_server_url(self.path)


def notebook_model(nb: Notebook) -> ModelChoice:
    d = nb.get_meta("model") or {}
    return ModelChoice(**{k: d[k] for k in ("path", "n_ctx", "threads", "n_gpu_layers", "parallel") if k in d})


def set_notebook_model(nb: Notebook, choice: ModelChoice) -> None:
    if choice.path is not None and not choice.is_server:
        from backends.gguf_info import check_gguf_path

        check_gguf_path(choice.path)
    if choice.n_ctx < 128:
        raise StudioError("n_ctx must be at least 128 tokens")
    nb.set_meta("model", choice.__dict__)


def job_model_args(nb: Notebook) -> dict[str, Any]:
    """The notebook's model choice as keyword arguments for the jobs in ``app.jobs``."""
    c = notebook_model(nb)
    return {"model_path": c.path,
            "model_options": {"n_ctx": c.n_ctx, "n_threads": c.threads, "n_gpu_layers": c.n_gpu_layers,
                              "parallel": c.parallel}}
