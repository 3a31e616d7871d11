"""Exporting what the user trusts: plain tables or chat-format SFT data.

Files are written to a temporary name and renamed into place, so a failed export
never leaves half a file where the user expects a whole one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from app.core.errors import StudioError
from app.store.notebook import RECORD_STATUSES, Notebook
from app.store.records import export_rows

EXPORT_TYPES = (".jsonl", ".csv", ".parquet")
FORMATS = ("plain", "sft", "dpo")
DEFAULT_STATUSES = ("new", "accepted", "flagged")  # everything but rejected
_PROMPT_KEYS = ("prompt", "instruction", "input", "question")


def _user_text(row: dict[str, Any]) -> str | None:
    if row["prompt"]:
        return row["prompt"]
    for k in _PROMPT_KEYS:
        v = row["variables"].get(k)
        if isinstance(v, str) and v.strip():
            return v
    return None


def export(
    nb: Notebook,
    out: str | Path,
    *,
    fmt: str = "plain",
    statuses: Iterable[str] = DEFAULT_STATUSES,
) -> tuple[int, int]:
    """Write records to ``out``; returns (written, skipped). The file type follows the extension."""
    out = Path(out)
    ext = out.suffix.lower()
    if ext not in EXPORT_TYPES:
        raise StudioError(f"cannot export to {out.name}: use a {', '.join(EXPORT_TYPES)} file name")
    if fmt not in FORMATS:
        raise StudioError(f"unknown export format {fmt!r} (use {', '.join(FORMATS)})")
    statuses = list(statuses)
    bad = [s for s in statuses if s not in RECORD_STATUSES]
    if bad:
        raise StudioError(f"unknown status {bad[0]!r} (use {', '.join(RECORD_STATUSES)})")
    if not out.parent.exists():
        raise StudioError(f"folder {out.parent} does not exist")
    rows = export_rows(nb, statuses)
    skipped = 0
    if fmt == "dpo":
        from app.export.dpo import dpo_pairs

        items = dpo_pairs(nb)  # rejected candidates are the point here, whatever the status filter
        if not items:
            raise StudioError("no preference pairs yet: run synth-studio best-of first")
    elif fmt == "sft":
        items = []
        for r in rows:
            user = _user_text(r)
            if user is None:
                skipped += 1
                continue
            items.append({
                "messages": [
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": r["output"]},
                ],
                "id": r["id"],
            })
    else:
        items = rows
    tmp = out.with_name(out.name + ".partial")
    try:
        if ext == ".jsonl":
            with tmp.open("w", encoding="utf-8") as fh:
                for item in items:
                    fh.write(json.dumps(item, ensure_ascii=False) + "\n")
        else:
            df = pd.DataFrame(items)
            if ext == ".csv":
                for col in ("variables", "messages"):
                    if col in df.columns:
                        df[col] = df[col].map(lambda v: json.dumps(v, ensure_ascii=False))
                df.to_csv(tmp, index=False)
            else:
                if "variables" in df.columns:
                    # Variables differ per prompt; a JSON string keeps the schema stable.
                    df["variables"] = df["variables"].map(lambda v: json.dumps(v, ensure_ascii=False))
                df.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return len(items), skipped
