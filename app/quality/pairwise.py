"""Pairwise preference: a judge compares two candidates of the same row, in both orders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.generate.best_of import candidate_groups
from app.store.notebook import Notebook
from app.store.scores import Score, add_step, save_scores
from backends.protocols import ChoiceRequest, Judge


def _pair_request(key: int, prompt: str, first: str, second: str) -> ChoiceRequest[int]:
    raw = (f"Task: {prompt}\n\nResponse A: {first}\n\nResponse B: {second}\n\n"
           "Question: Which response is better, A or B?\nAnswer (A or B):")
    return ChoiceRequest(key=key, messages=(), choices=(("A", ("A", " A")), ("B", ("B", " B"))), raw_prompt=raw)


@dataclass(frozen=True)
class Preference:
    p_a: float  # P(A is better), position bias cancelled
    p_a_first: float  # P(A) with A shown first
    p_a_second: float  # P(A) with A shown second
    position_bias: float  # how much being first helps, averaged over both texts


def pairwise_preference(judge: Judge, prompt: str, a: str, b: str) -> Preference:
    """Ask A-vs-B in both orders and average, so a judge's taste for position cancels."""
    r1, r2 = judge.choice_probs([_pair_request(1, prompt, a, b), _pair_request(2, prompt, b, a)])
    if r1.key != 1:
        r1, r2 = r2, r1
    p_first = r1.probs["A"]  # A shown first
    p_second = r2.probs["B"]  # A shown second (as "B")
    bias = (r1.probs["A"] + r2.probs["A"]) / 2 - 0.5
    return Preference((p_first + p_second) / 2, p_first, p_second, bias)


def round_robin(judge: Judge, prompt: str, candidates: Sequence[str]) -> list[float]:
    """Each candidate's mean preference against all others (a pairwise ranking score)."""
    n = len(candidates)
    wins = [0.0] * n
    for i in range(n):
        for j in range(i + 1, n):
            p = pairwise_preference(judge, prompt, candidates[i], candidates[j]).p_a
            wins[i] += p
            wins[j] += 1 - p
    return [w / (n - 1) if n > 1 else 1.0 for w in wins]


def pairwise_scores(nb: Notebook, run_id: int, judge: Judge) -> int:
    """Round-robin A-vs-B preference within each row; stored as ``pairwise:winrate``."""
    step = add_step(nb, "pairwise", "round-robin", {"run_id": run_id, "orders": "both"}, judge.info.sha256)
    scores = []
    for members in candidate_groups(nb, run_id).values():
        rates = round_robin(judge, members[0]["prompt"] or "", [m["output"] for m in members])
        scores += [Score(m["id"], "pairwise:winrate", "pairwise", r, None, f"mean preference {r:.3f}",
                         judge.info.sha256) for m, r in zip(members, rates)]
    return save_scores(nb, scores, step)
