"""Preference pairs for DPO, from three sources of a person's (or a ranking's) choice:

- best-of: the top- and bottom-ranked candidate of each best-of row;
- edits: a text a person edited (the edited text chosen, the text as made rejected);
- review: an accepted and a rejected sample of the same input row and prompt version.

Two layouts, as TRL's DPOTrainer reads them: ``string`` (prompt, chosen, rejected as text)
and ``conversational`` (each a list of chat messages).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from typing import Any

from app.store.notebook import Notebook
from app.store.records import edited_outputs, reviewed_siblings
from app.store.runs import ranked_candidates

LAYOUTS = ("string", "conversational")
_PROMPT_KEYS = ("prompt", "instruction", "input", "question")


def user_text(prompt: str | None, variables: dict[str, Any]) -> str | None:
    """What the user turn said: the rendered prompt, else an input column that reads like one."""
    if prompt:
        return prompt
    for k in _PROMPT_KEYS:
        v = variables.get(k)
        if isinstance(v, str) and v.strip():
            return v
    return None


def dpo_pairs(nb: Notebook, keep: Collection[int] | None = None) -> list[dict[str, Any]]:
    """Every preference pair; with ``keep``, only pairs whose chosen record is in it (e.g. the kept set)."""
    pairs: list[dict[str, Any]] = []

    def add(source: str, prompt: str | None, chosen: str, rejected: str, chosen_id: int, rejected_id: int) -> None:
        if prompt is None or chosen == rejected or (keep is not None and chosen_id not in keep):
            return
        pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "chosen_id": chosen_id,
                      "rejected_id": rejected_id, "source": source})

    groups: dict[tuple[int, int], list[Any]] = defaultdict(list)
    for r in ranked_candidates(nb):
        groups[(r["run_id"], r["row_index"])].append(r)
    for members in groups.values():
        best, worst = members[0], members[-1]
        if best["id"] != worst["id"]:
            add("best-of", best["prompt"], best["output"], worst["output"], best["id"], worst["id"])
    for e in edited_outputs(nb):
        # the same record on both sides: chosen is the person's text, rejected the model's
        add("edit", user_text(e["prompt"], e["variables"]), e["output"], e["original"], e["id"], e["id"])
    rows: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for r in reviewed_siblings(nb):
        rows[(r["input_record_id"], r["prompt_version_id"])].append(r)
    for members in rows.values():
        accepted = [m for m in members if m["status"] == "accepted"]
        rejected = [m for m in members if m["status"] == "rejected"]
        for a in accepted:
            for b in rejected:
                add("review", user_text(a["prompt"], a["variables"]), a["output"], b["output"], a["id"], b["id"])
    return pairs


def as_layout(pair: dict[str, Any], layout: str) -> dict[str, Any]:
    """One pair in TRL's string or conversational layout (ids and source kept as extra columns)."""
    if layout == "string":
        return pair
    return {**pair,
            "prompt": [{"role": "user", "content": pair["prompt"]}],
            "chosen": [{"role": "assistant", "content": pair["chosen"]}],
            "rejected": [{"role": "assistant", "content": pair["rejected"]}]}
