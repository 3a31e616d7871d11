"""Read and check GGUF model files before llama.cpp ever sees them.

llama.cpp reports a bad file as a bare "failed to load model"; checking the
header, metadata and tensor extents here turns a missing, non-GGUF or truncated
file into a message that says which. The same metadata feeds the model manager.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import ModelError
from app.paths import cache_dir

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class GGUFInfo:
    path: str
    size_bytes: int
    architecture: str
    name: str
    parameter_count: int
    file_type: str
    context_length: int | None
    embedding_length: int | None
    has_chat_template: bool
    chat_template: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)


def _field_value(f: Any) -> Any:
    from gguf import GGUFValueType

    if not f.types:
        return None
    if f.types[0] == GGUFValueType.ARRAY:
        return None  # token lists etc.: large and not needed here
    part = f.parts[f.data[0]]
    if f.types[0] == GGUFValueType.STRING:
        return bytes(part).decode("utf-8", errors="replace")
    return part.tolist()[0] if hasattr(part, "tolist") else part


def check_gguf_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelError(f"model file not found: {p}")
    if p.is_dir():
        raise ModelError(f"{p} is a folder; choose a .gguf file inside it")
    with p.open("rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise ModelError(f"{p} is not a GGUF model file (it does not start with the GGUF header)")
    return p


def read_gguf_info(path: str | os.PathLike[str]) -> GGUFInfo:
    """Parse a GGUF file's header; raise :class:`ModelError` if it is not a whole GGUF file."""
    p = check_gguf_path(path)
    size = p.stat().st_size
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(p), "r")
    except ModelError:
        raise
    except Exception as exc:  # the reader raises ValueError/IndexError/struct errors on damage
        raise ModelError(f"{p} is truncated or corrupt: {exc}") from exc
    end = 0
    n_params = 0
    for t in reader.tensors:
        end = max(end, int(t.data_offset) + int(t.n_bytes))
        n_params += int(t.n_elements)
    if end > size or not reader.tensors:
        raise ModelError(f"{p} is truncated: its tensors need {end} bytes but the file has {size}")
    meta: dict[str, Any] = {}
    for key, f in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        try:
            meta[key] = _field_value(f)
        except Exception:  # an exotic field type is not worth refusing a model over
            meta[key] = None
    arch = str(meta.get("general.architecture") or "unknown")
    ftype = meta.get("general.file_type")
    try:
        from gguf import LlamaFileType

        ftype_name = LlamaFileType(int(ftype)).name.removeprefix("MOSTLY_") if ftype is not None else "unknown"
    except (ValueError, ImportError):
        ftype_name = str(ftype)
    chat_template = meta.get("tokenizer.chat_template")
    return GGUFInfo(
        path=str(p),
        size_bytes=size,
        architecture=arch,
        name=str(meta.get("general.name") or p.stem),
        parameter_count=n_params,
        file_type=ftype_name,
        context_length=meta.get(f"{arch}.context_length"),
        embedding_length=meta.get(f"{arch}.embedding_length"),
        has_chat_template=bool(chat_template),
        chat_template=chat_template,
        metadata=meta,
    )


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a model file, cached by (path, size, mtime) so it is computed once."""
    p = Path(path).resolve()
    st = p.stat()
    key = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    cache_file = cache_dir() / "model_hashes.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]
    h = hashlib.sha256()
    with p.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    cache[key] = digest
    tmp = cache_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(cache))
    tmp.replace(cache_file)
    return digest
