"""The funnel: how many records survive each stage, and why the others fell out.

Stages, cheapest first: code validators, LLM judges, duplicates (a group keeps
its representative), then the human review (rejected records). Everything is
computed from what the notebook stores, so the same notebook gives the same
funnel, and each stage names the step (with its stored settings) that made it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from app.store.notebook import Notebook
from app.store.records import rejected_sample_ids, sample_ids
from app.store.scores import (
    duplicate_members,
    duplicate_methods,
    failed_scores,
    latest_step_id,
    score_names,
    score_step,
    step_names,
)


def funnel(nb: Notebook) -> list[dict[str, Any]]:
    alive = set(sample_ids(nb))
    stages: list[dict[str, Any]] = [{"stage": "generated", "kind": "all", "kept": len(alive), "dropped": 0,
                                     "reasons": []}]

    def stage(name: str, kind: str, failing: dict[int, str], step_id: Any = None) -> None:
        nonlocal alive
        dropped = {rid: why for rid, why in failing.items() if rid in alive}
        alive = alive - set(dropped)
        reasons = Counter(dropped.values()).most_common(3)
        stages.append({"stage": name, "kind": kind, "kept": len(alive), "dropped": len(dropped),
                       "reasons": [f"{why} ({n})" for why, n in reasons], "step_id": step_id})

    for kind in ("validator", "judge", "rubric", "additive"):
        for name in score_names(nb, kind):
            failing = {rid: _reason_key(kind, why) for rid, why in failed_scores(nb, name)}
            stage(name, kind, failing, score_step(nb, name))
    methods = set(duplicate_methods(nb)) | set(step_names(nb, "dedupe"))
    for method in sorted(methods):  # a dedupe that found nothing still shows, with 0 dropped
        failing = {rid: f"{method} duplicate" for rid, _rep in duplicate_members(nb, method)}
        stage(f"dedupe:{method}", "dedupe", failing, latest_step_id(nb, "dedupe", method))
    rejected = {rid: "rejected in review" for rid in rejected_sample_ids(nb)}
    stage("review", "human", rejected)
    return stages


def _reason_key(kind: str, reason: str | None) -> str:
    """Group reasons into a few kinds ("banned phrase: 'delve'" stays; numbers are dropped)."""
    if not reason:
        return "failed"
    if kind != "validator":
        return "below threshold"
    return reason.split(" (")[0] if "banned" in reason else " ".join(
        w for w in reason.split() if not any(ch.isdigit() for ch in w)) or "failed"
