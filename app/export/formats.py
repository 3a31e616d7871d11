"""Exporting what the user trusts: the funnel's kept set as plain tables (scores as columns),
chat-format SFT data or DPO preference pairs.

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
from app.export.dpo import as_layout, dpo_pairs, user_text
from app.quality.funnel import compute_funnel
from app.store.notebook import RECORD_STATUSES, Notebook
from app.store.records import export_rows
from app.store.trust import score_table

EXPORT_TYPES = (".jsonl", ".csv", ".parquet")
FORMATS = ("plain", "sft", "dpo", "dpo-chat")
SELECTIONS = ("kept", "all")
DEFAULT_STATUSES = ("new", "accepted", "flagged")  # everything but rejected (for --status)


def export(
    nb: Notebook,
    out: str | Path,
    *,
    fmt: str = "plain",
    statuses: Iterable[str] | None = None,
    select: str = "kept",
) -> tuple[int, int]:
    """Write records to ``out``; returns (written, skipped). The file type follows the extension.

    By default the funnel's kept set is what ships; ``select="all"`` writes every sample with
    text (with its verdict as columns), ``statuses`` every sample of those statuses.
    """
    out = Path(out)
    ext = out.suffix.lower()
    if ext not in EXPORT_TYPES:
        raise StudioError(f"cannot export to {out.name}: use a {', '.join(EXPORT_TYPES)} file name")
    if fmt not in FORMATS:
        raise StudioError(f"unknown export format {fmt!r} (use {', '.join(FORMATS)})")
    if select not in SELECTIONS:
        raise StudioError(f"unknown selection {select!r} (use {', '.join(SELECTIONS)})")
    status_list = list(statuses) if statuses is not None else list(RECORD_STATUSES)
    bad = [s for s in status_list if s not in RECORD_STATUSES]
    if bad:
        raise StudioError(f"unknown status {bad[0]!r} (use {', '.join(RECORD_STATUSES)})")
    if not out.parent.exists():
        raise StudioError(f"folder {out.parent} does not exist")
    result = compute_funnel(nb)
    rows = export_rows(nb, status_list)
    if select == "kept" and statuses is None:
        kept = set(result.kept_ids)
        rows = [r for r in rows if r["id"] in kept]
    chosen_from = {r["id"] for r in rows}
    skipped = 0
    items: list[dict[str, Any]]
    if fmt in ("dpo", "dpo-chat"):
        pairs = dpo_pairs(nb, keep=chosen_from)
        if not pairs:
            raise StudioError("no preference pairs among these records: run best-of, edit records, or accept and "
                              "reject samples of the same input row in review")
        items = [as_layout(p, "conversational" if fmt == "dpo-chat" else "string") for p in pairs]
    elif fmt == "sft":
        items = []
        for r in rows:
            user = user_text(r["prompt"], r["variables"])
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
        scores = score_table(nb, [r["id"] for r in rows])
        names = sorted({n for s in scores.values() for n in s})
        items = []
        for r in rows:
            v = result.verdicts.get(r["id"])
            item = {**r, "kept": bool(v and v.kept), "dropped_at": None if v is None or v.kept else v.stage,
                    "reason": v.reason if v else None}
            item.update({n: scores.get(r["id"], {}).get(n) for n in names})
            items.append(item)
    tmp = out.with_name(out.name + ".partial")
    try:
        if ext == ".jsonl":
            with tmp.open("w", encoding="utf-8") as fh:
                for item in items:
                    fh.write(json.dumps(item, ensure_ascii=False) + "\n")
        else:
            df = pd.DataFrame(items)
            if ext == ".csv":
                for col in ("variables", "messages", "prompt", "chosen", "rejected"):
                    if col in df.columns:
                        df[col] = df[col].map(lambda v: v if isinstance(v, str) or v is None
                                              else json.dumps(v, ensure_ascii=False))
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
