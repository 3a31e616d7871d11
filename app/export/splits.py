"""Export by split: one file per split beside the name asked for (``data.jsonl`` ->
``data.train.jsonl``, ``data.eval.jsonl``, ``data.holdout.jsonl``).

A row's split is its ``split`` field (``app.store.records.export_rows`` has it). Synthetic records
are never split, so they, and real records not split, go to train; eval and holdout hold only
real records put there by ``synth-studio split``. Every split's file is written, empty or not, so
a script can count on all three and an old file is never left behind looking current.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from app.store.splits import SPLITS

Row = dict[str, Any]


def split_paths(out: str | Path) -> dict[str, Path]:
    """{split: file} for an export to ``out``: the split's name before the extension."""
    out = Path(out)
    return {s: out.with_name(f"{out.stem}.{s}{out.suffix}") for s in SPLITS}


def write_by_split(rows: Iterable[Row], out: str | Path, writer: Callable[[list[Row], Path], object], *,
                   split_of: Callable[[Row], str | None] | None = None) -> dict[str, tuple[Path, int]]:
    """Call ``writer(rows_of_split, path)`` once per split; returns {split: (path, rows written)}.

    ``split_of`` reads a row's split when the rows do not carry a ``split`` field (e.g. chat-format
    items, by their id); a row with none goes to train.
    """
    groups: dict[str, list[Row]] = {s: [] for s in SPLITS}
    for row in rows:
        split = split_of(row) if split_of is not None else row.get("split")
        groups[split if isinstance(split, str) and split in groups else "train"].append(row)
    paths = split_paths(out)
    for split, items in groups.items():
        writer(items, paths[split])
    return {s: (paths[s], len(groups[s])) for s in SPLITS}
