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

from app.core.errors import ModelError
from app.core.paths import cache_dir

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


# GGUF value types (gguf spec): id -> struct format of a scalar; 8 = string, 9 = array
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


class _Reader:
    """Reads a GGUF header from a buffer without materialising arrays (vocabularies
    of 50k+ tokens are skipped in place, which is what makes this fast)."""

    def __init__(self, buf: memoryview) -> None:
        self.buf, self.pos = buf, 0

    def take(self, fmt: str) -> Any:
        import struct

        v = struct.unpack_from("<" + fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize("<" + fmt)
        return v

    def string(self) -> str:
        n = self.take("Q")
        if n > len(self.buf) - self.pos:
            raise ValueError("string runs past the end of the file")
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        import struct

        if vtype in _SCALARS:
            return self.take(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.take("I"), self.take("Q")
            if etype in _SCALARS:
                self.pos += count * struct.calcsize("<" + _SCALARS[etype])
            else:
                for _ in range(count):
                    self.value(etype)
            if self.pos > len(self.buf):
                raise ValueError("array runs past the end of the file")
            return None  # arrays (token lists, merges) are not needed here
        raise ValueError(f"unknown GGUF value type {vtype}")


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
    import mmap

    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    p = check_gguf_path(path)
    size = p.stat().st_size
    try:
        with p.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            r = _Reader(memoryview(mm))
            try:
                r.take("I")  # magic, checked above
                version = r.take("I")
                if version < 2:
                    raise ValueError(f"GGUF version {version} is too old")
                n_tensors, n_kv = r.take("Q"), r.take("Q")
                meta: dict[str, Any] = {}
                for _ in range(n_kv):
                    key = r.string()
                    meta[key] = r.value(r.take("I"))
                tensors = []
                for _ in range(n_tensors):
                    r.string()  # name
                    dims = [r.take("Q") for _ in range(r.take("I"))]
                    tensors.append((dims, r.take("I"), r.take("Q")))
                header_end = r.pos
            finally:
                r.buf.release()
    except (ValueError, OverflowError) as exc:
        raise ModelError(f"{p} is truncated or corrupt: {exc}") from None
    except Exception as exc:  # struct.error and friends: the header itself is cut short
        raise ModelError(f"{p} is truncated or corrupt: {type(exc).__name__}: {exc}") from None
    alignment = int(meta.get("general.alignment") or 32)
    data_start = (header_end + alignment - 1) // alignment * alignment
    end, n_params = data_start, 0
    params_by_type: dict[str, int] = {}
    for dims, ttype, offset in tensors:
        n = 1
        for d in dims:
            n *= d
        n_params += n
        try:
            qtype = GGMLQuantizationType(ttype)
            block, type_size = GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError):
            raise ModelError(f"{p} uses a tensor type ({ttype}) this studio does not know") from None
        end = max(end, data_start + offset + n // block * type_size)
        params_by_type[qtype.name] = params_by_type.get(qtype.name, 0) + n
    if end > size or not tensors:
        raise ModelError(f"{p} is truncated: its tensors need {end} bytes but the file has {size}")
    arch = str(meta.get("general.architecture") or "unknown")
    ftype = meta.get("general.file_type")
    try:
        from gguf import LlamaFileType

        ftype_name = LlamaFileType(int(ftype)).name.removeprefix("MOSTLY_") if ftype is not None else ""
    except (ValueError, ImportError):
        ftype_name = str(ftype)
    if not ftype_name:  # older converters leave general.file_type out: name the type most weights are stored in
        ftype_name = max(params_by_type.items(), key=lambda kv: kv[1])[0]
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
        digest: str = cache[key]
        return digest
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
