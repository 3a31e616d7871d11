"""Preference pairs for DPO: the best and worst ranked candidate of each best-of row."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from app.store.notebook import Notebook
from app.store.runs import ranked_candidates


def dpo_pairs(nb: Notebook) -> list[dict[str, str]]:
    """(prompt, chosen, rejected) per best-of row: the top-ranked and the bottom-ranked candidate."""
    rows = ranked_candidates(nb)
    groups: dict[tuple[int, int], list[Any]] = defaultdict(list)
    for r in rows:
        groups[(r["run_id"], r["row_index"])].append(r)
    pairs = []
    for members in groups.values():
        best, worst = members[0], members[-1]
        if best["id"] == worst["id"] or best["output"] == worst["output"]:
            continue
        pairs.append({"prompt": best["prompt"], "chosen": best["output"], "rejected": worst["output"],
                      "chosen_id": best["id"], "rejected_id": worst["id"]})
    return pairs
