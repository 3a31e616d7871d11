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


def funnel(nb: Notebook) -> list[dict[str, Any]]:
    c = nb.conn
    alive = {r[0] for r in c.execute("SELECT id FROM records WHERE role = 'sample' AND output IS NOT NULL")}
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
        names = [r[0] for r in c.execute(
            "SELECT DISTINCT name FROM scores WHERE kind = ? ORDER BY name", (kind,))]
        for name in names:
            failing = {rid: _reason_key(kind, why) for rid, why in c.execute(
                "SELECT record_id, reason FROM scores WHERE name = ? AND passed = 0", (name,))}
            step = c.execute("SELECT MAX(step_id) FROM scores WHERE name = ?", (name,)).fetchone()[0]
            stage(name, kind, failing, step)
    methods = {r[0] for r in c.execute("SELECT DISTINCT method FROM duplicates")}
    methods |= {r[0] for r in c.execute("SELECT DISTINCT name FROM steps WHERE kind = 'dedupe'")}
    for method in sorted(methods):  # a dedupe that found nothing still shows, with 0 dropped
        failing = {rid: f"{method} duplicate" for rid, _rep in c.execute(
            "SELECT record_id, representative_id FROM duplicates WHERE method = ? AND record_id != representative_id",
            (method,))}
        step = c.execute("SELECT MAX(id) FROM steps WHERE kind = 'dedupe' AND name = ?", (method,)).fetchone()[0]
        stage(f"dedupe:{method}", "dedupe", failing, step)
    rejected = {r[0]: "rejected in review" for r in c.execute(
        "SELECT id FROM records WHERE role = 'sample' AND status = 'rejected'")}
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
