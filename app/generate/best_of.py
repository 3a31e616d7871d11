"""Choosing among candidates of one input row: best-of-N and self-consistency.

Best-of-N keeps the top k candidates of each input row by a chosen score; the
others stay in the store as ``rejected``, linked to the row's winner, so the
best/worst pairs can be exported as DPO data.

Ranking by a judge (``judge:NAME``, ``constitution``) needs that judge trusted: shown to
beat chance, or trusted by the person. That decision belongs to the quality stage
(``app.quality.trust.require_trusted``), a later stage than this one, so callers pass it
in as ``trust_check``; without one, ranking by a judge is refused.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.core.errors import StudioError
from app.store.notebook import Notebook
from app.store.records import mean_logprobs, set_derivation
from app.store.runs import run_candidates
from app.store.scores import (
    Score,
    add_step,
    failed_validator_ids,
    judge_score_names_of,
    judge_score_totals,
    save_scores,
    score_values,
)

AUTHOR = "best-of"

TrustCheck = Callable[[Notebook, str], None]  # raises StudioError when the judge behind a score may not rank


def candidate_groups(nb: Notebook, run_id: int) -> dict[int, list[dict[str, Any]]]:
    """The run's candidates per input row (row_index -> records)."""
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in run_candidates(nb, run_id):
        groups[r["row_index"]].append(r)
    return dict(groups)


def ranking_values(nb: Notebook, record_ids: Sequence[int], by: str,
                   trust_check: TrustCheck | None = None) -> dict[int, float]:
    """A value per record for ``by``: a stored score, ``likelihood``, ``constitution`` (all
    judge scores added), or ``gated:<score>`` (the score, with validator failures ranked last).

    Every judge behind the value must pass ``trust_check`` (none given: judges may not rank)."""
    ids = list(record_ids)
    gated = by.startswith("gated:")
    name = by.removeprefix("gated:")
    if name == "likelihood":
        values = mean_logprobs(nb, ids)
    elif name == "constitution":
        values = {rid: v for rid, v in judge_score_totals(nb, ids).items() if v is not None}
    else:
        values = {rid: v for rid, v in score_values(nb, name, ids).items() if v is not None}
    missing = [i for i in ids if i not in values]
    if missing:
        raise StudioError(f"{len(missing)} candidates have no {name!r} score yet; compute it first "
                          "(synth-studio judge / validate), or rank --by likelihood")
    judges = [name] if name.startswith("judge:") else judge_score_names_of(nb, ids) if name == "constitution" else []
    for score_name in judges:
        if trust_check is None:
            raise StudioError(f"ranking by {score_name} needs its judge's trust checked "
                              "(app.quality.trust.require_trusted)")
        trust_check(nb, score_name)
    if gated:
        failed = failed_validator_ids(nb, ids)
        lowest = min(values.values()) if values else 0.0
        values = {i: (v if i not in failed else lowest - 1e6 + v) for i, v in values.items()}
    return values


@dataclass(frozen=True)
class BestOfResult:
    rows: int
    kept: int
    rejected: int


def select_best(nb: Notebook, run_id: int, by: str, keep: int = 1, *,
                trust_check: TrustCheck | None = None) -> BestOfResult:
    """Rank each row's candidates by ``by``; keep the top ``keep``, reject and link the rest.

    Every value is read (and every judge's trust checked) before anything changes."""
    if keep < 1:
        raise StudioError("--keep must be at least 1")
    groups = candidate_groups(nb, run_id)
    if not groups:
        raise StudioError(f"run {run_id} has no candidates")
    values = ranking_values(nb, [m["id"] for members in groups.values() for m in members], by, trust_check)
    step = add_step(nb, "best-of", by, {"run_id": run_id, "by": by, "keep": keep})
    kept = rejected = 0
    rank_scores = []
    for members in groups.values():
        ordered = sorted(members, key=lambda m: (-values[m["id"]], m["id"]))
        winner = ordered[0]["id"]
        for rank, m in enumerate(ordered, 1):
            rank_scores.append(Score(m["id"], "best-of:rank", "rank", float(rank), rank <= keep,
                                     f"{rank} of {len(ordered)} by {by} ({values[m['id']]:.4g})"))
            set_derivation(nb, m["id"], "best-of:kept" if rank <= keep else "best-of:rejected",
                           None if m["id"] == winner else winner)
            if rank <= keep:
                kept += 1
            else:
                nb.edit_record(m["id"], "status", "rejected", author=AUTHOR)
                rejected += 1
    save_scores(nb, rank_scores, step)
    return BestOfResult(len(groups), kept, rejected)


# -- self-consistency ----------------------------------------------------------------------------------

_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")


def final_answer(text: str) -> str | None:
    """The short final answer of a sample: "Answer: X" if present, else the last number, else the last line."""
    m = re.search(r"(?i)(?:final answer|answer)\s*[:=]\s*(.+)", text)
    if m:
        answer: str = m.group(1)  # (.+) always takes part in the match
        return answer.strip().rstrip(".").lower()
    nums: list[str] = _NUMBER.findall(text)  # no capturing groups: the matched strings
    if nums:
        return nums[-1].replace(",", ".")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].lower().rstrip(".") if lines else None


def majority_vote(texts: Sequence[str]) -> tuple[str | None, float]:
    """The most common final answer and the share of samples that agree with it."""
    answers = [a for a in (final_answer(t) for t in texts) if a is not None]
    if not answers:
        return None, 0.0
    answer, count = Counter(answers).most_common(1)[0]
    return answer, count / len(texts)


def self_consistency(nb: Notebook, run_id: int) -> dict[int, tuple[str | None, float]]:
    """Majority answer and agreement per input row of a run; stores ``consistency:agrees`` per sample."""
    groups = candidate_groups(nb, run_id)
    step = add_step(nb, "consistency", "majority-vote", {"run_id": run_id})
    out, scores = {}, []
    for row, members in groups.items():
        answer, agreement = majority_vote([m["output"] for m in members])
        out[row] = (answer, agreement)
        for m in members:
            agrees = final_answer(m["output"]) == answer and answer is not None
            scores.append(Score(m["id"], "consistency:agrees", "validator", agreement, agrees,
                                f"majority answer {answer!r} ({agreement:.0%} agree)"))
    save_scores(nb, scores, step)
    return out
