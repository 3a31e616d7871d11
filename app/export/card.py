"""What ships beside exported data: a manifest (``<name>.manifest.json``) and a Hugging Face
dataset card (``README.md``) whose YAML header lets ``datasets.load_dataset(folder)`` read the
exported file.

The card's ``configs`` point at the exported file (so the manifest beside it is not read as
data) and ``dataset_info.features`` are the types of the file as written, read back with
pyarrow, so the card and the data cannot disagree. Every file is written to a temporary name
and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from app.core.errors import StudioError
from app.export.versions import CURRENT, Snapshot
from app.store.notebook import Notebook

CARD_NAME = "README.md"
SPLIT = "train"
# size_categories as the Hub spells them: (upper bound, label)
_SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
          (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))
# words in prompt names and templates -> the Hub's task category (first match wins; else text-generation)
_TASK_WORDS = (("summar", "summarization"), ("translat", "translation"), ("classif", "text-classification"),
               ("sentiment", "text-classification"), ("question", "question-answering"),
               ("answer", "question-answering"))


def manifest_path(out: Path) -> Path:
    """``out.jsonl`` -> ``out.manifest.json``, beside it."""
    return out.with_name(out.stem + ".manifest.json")


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_release_files(out: Path) -> None:
    """Remove the dataset card and manifest an earlier export left beside ``out``, before ``out`` is
    replaced: stopped part-way (killed, a full disk), an export then leaves no card or manifest that
    describes another file than the one beside it. The card goes first, so that it is never left
    without its manifest."""
    for path in (out.parent / CARD_NAME, manifest_path(out)):
        path.unlink(missing_ok=True)


def check_card_target(out: Path) -> None:
    """Refuse (before anything is written) to replace a README.md that is not one of our cards."""
    card = out.parent / CARD_NAME
    if card.exists() and "- synth-studio\n" not in card.read_text(encoding="utf-8", errors="replace"):
        raise StudioError(f"{card} exists and is not a Synth Studio dataset card: export into a folder of its own")


def size_category(n: int) -> str:
    return next((label for bound, label in _SIZES if n < bound), "n>1B")


def task_category(fmt: str, manifest: dict[str, Any]) -> str:
    """A guess from the prompts' names (DPO pairs and chat SFT data are text generation)."""
    if fmt in ("plain",):
        names = " ".join(p["name"].lower() for p in manifest.get("prompts", []))
        for word, task in _TASK_WORDS:
            if word in names:
                return task
    return "text-generation"


# -- features: the exported file's types as the card's dataset_info ----------------------------------


def _dtype(t: pa.DataType) -> Any:
    """One arrow type as ``datasets`` writes it in a card (``Features._to_yaml_list``)."""
    if pa.types.is_struct(t):
        return {"struct": [_feature(t.field(i).name, t.field(i).type) for i in range(t.num_fields)]}
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = _dtype(t.value_type)
        return {"list": inner["struct"] if "struct" in inner else inner.get("dtype", inner)}
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return {"dtype": "string"}
    if pa.types.is_floating(t):
        return {"dtype": f"float{t.bit_width}"}
    if pa.types.is_boolean(t):
        return {"dtype": "bool"}
    return {"dtype": str(t)}  # int64, null, timestamp[...] spell the same in both


def _feature(name: str, t: pa.DataType) -> dict[str, Any]:
    return {"name": name, **_dtype(t)}


def file_schema(path: Path, items: Sequence[dict[str, Any]]) -> pa.Schema:
    """The types a reader sees in the written file (read back the way ``datasets`` reads it)."""
    ext = path.suffix.lower()
    if ext == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_schema(path)
    if ext == ".csv":
        import pandas as pd

        return pa.Table.from_pandas(pd.read_csv(path), preserve_index=False).schema
    if not items:
        return pa.schema([])
    import pyarrow.json as paj

    try:  # one block, so every row takes part in the inference
        return paj.read_json(path, read_options=paj.ReadOptions(block_size=path.stat().st_size + 1)).schema
    except pa.ArrowInvalid:
        pass
    try:
        return pa.Table.from_pylist(list(items)).schema
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a column of mixed kinds (JSON objects and texts)
        pass
    names: dict[str, None] = {}
    for item in items:
        names.update(dict.fromkeys(item))
    fields = []
    for n in names:
        try:
            t = pa.array([item.get(n) for item in items]).type
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            t = pa.string()  # what a reader can make of it: each value's JSON or text
        fields.append((n, t))
    return pa.schema(fields)


def features(schema: pa.Schema) -> list[dict[str, Any]]:
    return [_feature(f.name, f.type) for f in schema]


# -- the real-vs-synthetic report (another stage) -------------------------------------------------------


def report_headline(nb: Notebook, snap: Snapshot) -> dict[str, Any] | None:
    """The real-vs-synthetic report's headline numbers for the card's records, or None when
    the report cannot be made (no real records to compare with)."""
    from app.report.compute import compute_report

    try:
        report = compute_report(nb, record_ids=[r.record_id for r in snap.records],
                                label="the kept set" if snap.version is None else f"version {snap.tag}")
    except StudioError:
        return None
    return {"overall score": float(report.score), **{k: float(v) for k, v in report.parts.items()},
            "real records": int(report.real_count), "synthetic records": int(report.synthetic_count)}


# -- the manifest and the card ------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_release_files(nb: Notebook, out: Path, snap: Snapshot, fmt: str,
                        items: Sequence[dict[str, Any]]) -> tuple[Path, Path]:
    """Write the manifest and the dataset card beside the exported ``out``; returns their paths."""
    v = snap.version
    files = [{"path": out.name, "format": fmt, "rows": len(items), "bytes": out.stat().st_size,
              "sha256": _sha256_file(out)}]
    manifest = {
        "tag": None if v is None else v.tag,
        "parent": None if v is None else v.parent_tag,
        "message": None if v is None else v.message,
        "created": None if v is None else v.created,
        "content_hash": snap.content_hash,
        "manifest": snap.manifest,
        "files": files,
        "card": CARD_NAME,
    }
    mpath = manifest_path(out)
    write_text_atomic(mpath, json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n")
    card = out.parent / CARD_NAME
    write_text_atomic(card, render_card(nb, out, snap, fmt, items, files, mpath.name))
    return mpath, card


def render_card(nb: Notebook, out: Path, snap: Snapshot, fmt: str, items: Sequence[dict[str, Any]],
                files: list[dict[str, Any]], manifest_name: str) -> str:
    m = snap.manifest
    title = str(nb.get_meta("title") or nb.path.stem)
    n = len(items)
    feats = features(file_schema(out, items))
    header: dict[str, Any] = {
        "pretty_name": title if snap.version is None else f"{title} ({snap.tag})",
        "license": "unknown",
        "size_categories": [size_category(n)],
        "task_categories": [task_category(fmt, m)],
        "tags": ["synthetic", "synth-studio"],
        "configs": [{"config_name": "default", "data_files": [{"split": SPLIT, "path": out.name}]}],
        "dataset_info": {"config_name": "default", "features": feats,
                         "splits": [{"name": SPLIT, "num_examples": n}]},
    }
    yaml_text = yaml.safe_dump(header, sort_keys=False, allow_unicode=True)
    yaml_text = yaml_text.replace("license: unknown\n", "license: unknown  # placeholder: set the licence you ship "
                                  "under (https://huggingface.co/docs/hub/repositories-licenses)\n", 1)
    parts = ["---", yaml_text.rstrip("\n"), "---", "", f"# {title}" + ("" if snap.version is None else f" — {snap.tag}"),
             ""]
    what = "records" if fmt in ("plain", "sft") else "preference pairs"
    parts.append(f"A synthetic dataset made with Synth Studio: {n} {what} in `{out.name}` ({fmt} format), "
                 f"from {m['totals']['records']} kept records.")
    parts.append("")
    parts += _version_section(snap)
    parts += _made_section(m)
    parts += _report_section(report_headline(nb, snap))
    parts += ["## Files", "", "| file | rows | sha256 |", "|---|---|---|"]
    parts += [f"| `{f['path']}` | {f['rows']} | `{f['sha256'][:16]}` |" for f in files]
    parts += ["", f"`{manifest_name}` holds the full manifest (every setting above, machine-readable) and the "
              "content hash.", "", "## Fields", ""]
    parts += [f"- `{f['name']}`: {f.get('dtype') or ('struct' if 'struct' in f else 'list')}" for f in feats]
    parts += ["", "## Licence", "",
              "Not set yet: replace `license: unknown` above with the licence you ship under, and check the "
              "licences of the models and of any real data the prompts drew on.", ""]
    return "\n".join(parts)


def _version_section(snap: Snapshot) -> list[str]:
    v = snap.version
    if v is None:
        return ["## Version", "", f"Not a frozen version: the funnel's kept set at export time ({CURRENT}). "
                f"Content hash `{snap.content_hash}`.", ""]
    lines = ["## Version", "", f"- tag: `{v.tag}`", f"- parent: {f'`{v.parent_tag}`' if v.parent_tag else '—'}",
             f"- frozen: {v.created}", f"- content hash: `{v.content_hash}`"]
    if v.message:
        lines.append(f"- message: {v.message}")
    return [*lines, ""]


def _made_section(m: dict[str, Any]) -> list[str]:
    lines = ["## How it was made", "", "### Prompts", ""]
    if m["prompts"]:
        lines += ["| prompt | version | sha256 | records |", "|---|---|---|---|"]
        lines += [f"| {p['name']} | {p['version']} | `{p['hash'][:16]}` | {p['records']} |" for p in m["prompts"]]
    else:
        lines.append("No prompts: the records were imported.")
    lines += ["", "### Models", ""]
    models = m["models"]
    if models["generation"] or models["scores"]:
        lines += ["| used for | model | sha256 | records |", "|---|---|---|---|"]
        lines += [f"| generation ({g['backend']}) | {g['model'] or g['backend']} | `{g['sha256'] or '—'}` | "
                  f"{g['records']} |" for g in models["generation"]]
        lines += [f"| {s['score']} ({s['kind']}) | {s['step'] or '—'} | `{s['model_sha256']}` | {s['records']} |"
                  for s in models["scores"]]
    else:
        lines.append("No model made or scored these records.")
    if m["criteria"]:
        lines += ["", "### Criteria and rules (active)", "", "| kind | name | version | sha256 |", "|---|---|---|---|"]
        lines += [f"| {c['kind']} | {c['name']} | {c['version']} | `{c['hash'][:16]}` |" for c in m["criteria"]]
    lines += ["", "### Filters (the funnel)", "", "| stage | kind | kept | dropped | note |", "|---|---|---|---|---|"]
    for s in m["funnel"]["stages"]:
        note = s.get("note") or ("; ".join(s.get("reasons") or []))
        dropped = s.get("dropped", 0) if s.get("active", True) else f"(would drop {s.get('would_drop', 0)})"
        lines.append(f"| {s['stage']} | {s['kind']} | {s['kept']} | {dropped} | {note.replace('|', '/')} |")
    t = m["totals"]
    lines += ["", f"Kept {t['records']} of {t['generated']} samples ({t['words']} words; statuses: "
              + (", ".join(f"{k} {v}" for k, v in t["statuses"].items()) or "none") + ").", ""]
    return lines


def _report_section(numbers: dict[str, Any] | None) -> list[str]:
    lines = ["## Real vs synthetic", ""]
    if not numbers:
        return [*lines, "No real-vs-synthetic report for this notebook (import real records and run the report).", ""]
    lines += ["| measure | value |", "|---|---|"]
    lines += [f"| {k} | {f'{v:.3g}' if isinstance(v, float) else v} |" for k, v in numbers.items()]
    return [*lines, ""]
