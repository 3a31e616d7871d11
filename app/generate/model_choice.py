"""Finding GGUF models on this machine and remembering each notebook's choice.

The places searched: the bundled models, the Hugging Face cache, LM Studio, ``~/models``,
Ollama's store (its blobs are GGUF files named by digest; the manifests say which blob is
which ``name:tag``), llama.cpp's download cache, and the files and folders the person added
in the model manager (``Settings.model_folders``, kept across starts).
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.credentials import has_credentials
from app.core.errors import StudioError
from app.core.settings import Settings, edit_settings, load_settings
from app.store.notebook import Notebook
from backends import is_server_url  # re-exported: the CLI and widgets ask app.generate.model_choice

if TYPE_CHECKING:
    from backends.gguf_info import GGUFInfo

MAX_FILES_PER_PLACE = 500
OLLAMA = "Ollama"
OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
_DIGEST = re.compile(r"sha256[:-]([0-9a-f]{64})")


def ollama_stores() -> list[Path]:
    """Ollama's model folders: ``OLLAMA_MODELS`` when set, else the user's (and on Linux the service's)."""
    if os.environ.get("OLLAMA_MODELS"):
        return [Path(os.environ["OLLAMA_MODELS"]).expanduser()]
    stores = [Path.home() / ".ollama" / "models"]
    if sys.platform.startswith("linux"):  # the Linux installer runs Ollama as its own user
        stores.append(Path("/usr/share/ollama/.ollama/models"))
    return stores


def llama_cpp_cache() -> Path:
    """Where ``llama-cli -hf`` and ``llama-server -hf`` keep downloads (llama.cpp's fs_get_cache_directory)."""
    if os.environ.get("LLAMA_CACHE"):
        return Path(os.environ["LLAMA_CACHE"]).expanduser()
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "llama.cpp"
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local") / "llama.cpp"
    return Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "llama.cpp"


def search_places() -> list[tuple[str, Path]]:
    """(label, folder or file) pairs where GGUF models usually live, the person's own last."""
    home = Path.home()
    hf = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", home / ".cache" / "huggingface")) / "hub")
    return [
        ("Hugging Face cache", hf),
        ("LM Studio", home / ".lmstudio" / "models"),
        ("LM Studio", home / ".cache" / "lm-studio" / "models"),
        ("~/models", home / "models"),
        *[(OLLAMA, store) for store in ollama_stores()],
        ("llama.cpp cache", llama_cpp_cache()),
        *[("added", Path(p).expanduser()) for p in load_settings()[0].model_folders],
    ]


def remember_model_place(path: str | Path) -> None:
    """Search a GGUF file or folder the person added from now on (kept in the settings)."""
    p = str(Path(path).expanduser().resolve())
    with edit_settings() as s:
        if p not in s.model_folders:
            s.model_folders.append(p)


def ollama_models(store: Path) -> list[tuple[str, Path]]:
    """(``name:tag``, blob) for each model in an Ollama store.

    A manifest ``manifests/<host>/<namespace>/<model>/<tag>`` lists layers; the one of media
    type ``application/vnd.ollama.image.model`` is the GGUF, ``blobs/sha256-<hex>``. A blob
    that is missing (a pull cut short) is listed anyway, so the model manager says so.
    """
    manifests = store / "manifests"
    if not manifests.is_dir():
        return []
    found: list[tuple[str, Path]] = []
    # Ollama's own registry first: a blob pulled under two names is listed once, by its shorter name
    for m in sorted(manifests.glob("*/*/*/*"), key=lambda m: (m.parts[-4] != "registry.ollama.ai", m.parts[-4:])):
        if not m.is_file():
            continue
        try:
            doc = json.loads(m.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        layers = doc.get("layers") if isinstance(doc, dict) else None
        digests = [layer.get("digest") for layer in layers or [] if isinstance(layer, dict)
                   and layer.get("mediaType") == OLLAMA_MODEL_LAYER] if isinstance(layers, list) else []
        match = _DIGEST.fullmatch(digests[0]) if digests and isinstance(digests[0], str) else None
        if match is None:
            continue
        blob = store / "blobs" / f"sha256-{match[1]}"
        if not blob.exists() and (store / "blobs" / f"sha256:{match[1]}").exists():  # older Ollama's names
            blob = store / "blobs" / f"sha256:{match[1]}"
        host, namespace, model, tag = m.relative_to(manifests).parts
        found.append((_ollama_name(host, namespace, model, tag), blob))
        if len(found) >= MAX_FILES_PER_PLACE:
            break
    return found


def _ollama_name(host: str, namespace: str, model: str, tag: str) -> str:
    """The name ``ollama list`` shows: the default registry and its ``library`` namespace left out."""
    if host != "registry.ollama.ai":
        return f"{host}/{namespace}/{model}:{tag}"
    return f"{model}:{tag}" if namespace == "library" else f"{namespace}/{model}:{tag}"


BUNDLED_MODEL_NAME = "SmolLM2-135M-Instruct (bundled)"  # what the window calls the default model, everywhere


def display_name(path: str | None) -> str:
    """One name per model across the window: Ollama's name:tag, a server's address, the file
    name, or the bundled model's name."""
    if not path:
        return BUNDLED_MODEL_NAME
    if is_server_url(path):
        return f"server: {path}"
    return model_name(path) or Path(path).name


def model_name(path: str | None) -> str | None:
    """What a model file is called where it was found (Ollama's ``name:tag`` for one of its blobs), else None."""
    if not path or is_server_url(path):
        return None
    p = Path(path)
    if p.parent.name != "blobs":
        return None
    return next((name for name, blob in ollama_models(p.parent.parent) if blob.name == p.name), None)


@dataclass
class ModelEntry:
    path: str
    source: str
    info: GGUFInfo | None = None  # None when the file cannot be read (``error`` says why)
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    name: str | None = None  # what it is called where it was found (Ollama's name:tag); None: the GGUF's own name

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        return self.info.name if self.info is not None else Path(self.path).name

    @property
    def warning(self) -> str | None:
        """What the person should know before choosing it (a model without a chat template)."""
        if self.info is not None and not self.info.has_chat_template:
            return (f"{self.display_name} has no chat template: it still generates, with a plain "
                    f"'Role: text' prompt instead of the format it was trained on, so a chat model may answer worse")
        return None


def find_models(extra_folders: list[Path] | None = None) -> list[ModelEntry]:
    """The bundled models first, then GGUFs in the usual places (metadata read from each file)."""
    from backends.bundled import default_generator_model
    from backends.gguf_info import read_gguf_info

    found: list[tuple[str, Path, str | None]] = []
    try:
        found.append(("bundled", default_generator_model(), None))
    except StudioError:
        pass
    places = search_places() + [("folder", Path(f)) for f in (extra_folders or [])]
    for label, place in places:
        if label == OLLAMA:
            found += [(label, blob, name) for name, blob in ollama_models(place)]
        elif place.is_file():  # a file the person added
            found.append((label, place, None))
        elif place.is_dir():
            for i, p in enumerate(sorted(place.rglob("*.gguf"))):
                if i >= MAX_FILES_PER_PLACE:
                    break
                found.append((label, p, None))
    entries, seen = [], set()
    for label, p, name in found:
        key = os.path.realpath(p)
        if key in seen:
            continue
        seen.add(key)
        try:
            entries.append(ModelEntry(str(p), label, read_gguf_info(p), name=name))
        except StudioError as exc:
            entries.append(ModelEntry(str(p), label, None, str(exc), name=name))
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
    if choice.is_server and has_credentials(str(choice.path)):
        # the notebook is a file people share: a password in the URL would travel with it
        raise StudioError("the server URL holds a user name or password; give the URL without it and the key in "
                          "the model manager's API key field (kept in the OS keyring) or with --api-key")
    if choice.n_ctx < 128:
        raise StudioError("n_ctx must be at least 128 tokens")
    nb.set_meta("model", choice.__dict__)


def with_preferences(choice: ModelChoice, settings: Settings | None = None) -> ModelChoice:
    """``choice`` with what it leaves open taken from the person's Preferences: the default model
    when the notebook names none (no default: the bundled one), the compute threads when it sets none."""
    s = settings if settings is not None else load_settings()[0]
    if choice.is_server:
        return choice
    return replace(choice, path=choice.path or s.default_model, threads=choice.threads or s.compute_threads)


def job_model_args(nb: Notebook) -> dict[str, Any]:
    """The notebook's model choice, completed from the Preferences, as keyword arguments for ``app.jobs``."""
    c = with_preferences(notebook_model(nb))
    return {"model_path": c.path,
            "model_options": {"n_ctx": c.n_ctx, "n_threads": c.threads, "n_gpu_layers": c.n_gpu_layers,
                              "parallel": c.parallel}}
