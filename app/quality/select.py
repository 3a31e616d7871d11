"""Choosing among candidates: best-of-N, pairwise preference and self-consistency.

Best-of-N keeps the top k candidates of each input row by a chosen score; the
others stay in the store as ``rejected``, linked to the row's winner, so the
best/worst pairs can be exported as DPO data.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.errors import StudioError
from app.store.notebook import Notebook
from app.store.scores import Score, add_step, save_scores
from backends.protocols import ChoiceRequest, Judge

AUTHOR = "best-of"


def candidate_groups(nb: Notebook, run_id: int) -> dict[int, list[dict[str, Any]]]:
    """The run's candidates per input row (row_index -> records)."""
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in nb.conn.execute(
        "SELECT id, row_index, output, mean_logprob, prompt FROM records WHERE run_id = ? ORDER BY row_index, "
        "sample_index", (run_id,)
    ):
        groups[r["row_index"]].append(dict(r))
    return dict(groups)


def ranking_values(nb: Notebook, record_ids: Sequence[int], by: str) -> dict[int, float]:
    """A value per record for ``by``: a stored score, ``likelihood``, ``constitution`` (all
    judge scores added), or ``gated:<score>`` (the score, with validator failures ranked last)."""
    ids = list(record_ids)
    marks = ",".join("?" * len(ids))
    gated = by.startswith("gated:")
    name = by.removeprefix("gated:")
    if name == "likelihood":
        values = {r[0]: r[1] for r in nb.conn.execute(
            f"SELECT id, mean_logprob FROM records WHERE id IN ({marks})", ids) if r[1] is not None}
    elif name == "constitution":
        values = {r[0]: r[1] for r in nb.conn.execute(
            f"SELECT record_id, SUM(value) FROM scores WHERE kind IN ('judge', 'rubric', 'additive') "
            f"AND record_id IN ({marks}) GROUP BY record_id", ids)}
    else:
        values = {r[0]: r[1] for r in nb.conn.execute(
            f"SELECT record_id, value FROM scores WHERE name = ? AND record_id IN ({marks})", [name, *ids])
            if r[1] is not None}
    missing = [i for i in ids if i not in values]
    if missing:
        raise StudioError(f"{len(missing)} candidates have no {name!r} score yet; compute it first "
                          "(synth-studio judge / validate), or rank --by likelihood")
    if gated:
        failed = {r[0] for r in nb.conn.execute(
            f"SELECT DISTINCT record_id FROM scores WHERE kind = 'validator' AND passed = 0 "
            f"AND record_id IN ({marks})", ids)}
        lowest = min(values.values()) if values else 0.0
        values = {i: (v if i not in failed else lowest - 1e6 + v) for i, v in values.items()}
    return values


@dataclass(frozen=True)
class BestOfResult:
    rows: int
    kept: int
    rejected: int


def select_best(nb: Notebook, run_id: int, by: str, keep: int = 1) -> BestOfResult:
    """Rank each row's candidates by ``by``; keep the top ``keep``, reject and link the rest."""
    if keep < 1:
        raise StudioError("--keep must be at least 1")
    groups = candidate_groups(nb, run_id)
    if not groups:
        raise StudioError(f"run {run_id} has no candidates")
    step = add_step(nb, "best-of", by, {"run_id": run_id, "by": by, "keep": keep})
    kept = rejected = 0
    rank_scores = []
    for members in groups.values():
        values = ranking_values(nb, [m["id"] for m in members], by)
        ordered = sorted(members, key=lambda m: (-values[m["id"]], m["id"]))
        winner = ordered[0]["id"]
        for rank, m in enumerate(ordered, 1):
            rank_scores.append(Score(m["id"], "best-of:rank", "rank", float(rank), rank <= keep,
                                     f"{rank} of {len(ordered)} by {by} ({values[m['id']]:.4g})"))
            with nb.transaction() as c:
                c.execute("UPDATE records SET derivation = ?, parent_record_id = ? WHERE id = ?",
                          ("best-of:kept" if rank <= keep else "best-of:rejected",
                           None if m["id"] == winner else winner, m["id"]))
            if rank <= keep:
                kept += 1
            else:
                nb.edit_record(m["id"], "status", "rejected", author=AUTHOR)
                rejected += 1
    save_scores(nb, rank_scores, step)
    return BestOfResult(len(groups), kept, rejected)


def dpo_pairs(nb: Notebook) -> list[dict[str, str]]:
    """(prompt, chosen, rejected) per best-of row: the top-ranked and the bottom-ranked candidate."""
    rows = nb.conn.execute(
        "SELECT r.id, r.run_id, r.row_index, r.prompt, r.output, s.value AS rank FROM records r "
        "JOIN scores s ON s.record_id = r.id AND s.name = 'best-of:rank' "
        "WHERE r.output IS NOT NULL ORDER BY r.run_id, r.row_index, s.value"
    ).fetchall()
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


# -- pairwise preference ---------------------------------------------------------------------------


def _pair_request(key: Any, prompt: str, first: str, second: str) -> ChoiceRequest:
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


# -- self-consistency ----------------------------------------------------------------------------------

_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")


def final_answer(text: str) -> str | None:
    """The short final answer of a sample: "Answer: X" if present, else the last number, else the last line."""
    m = re.search(r"(?i)(?:final answer|answer)\s*[:=]\s*(.+)", text)
    if m:
        return m.group(1).strip().rstrip(".").lower()
    nums = _NUMBER.findall(text)
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


def pairwise_scores(nb: Notebook, run_id: int, judge: Judge) -> int:
    """Round-robin A-vs-B preference within each row; stored as ``pairwise:winrate``."""
    step = add_step(nb, "pairwise", "round-robin", {"run_id": run_id, "orders": "both"}, judge.info.sha256)
    scores = []
    for members in candidate_groups(nb, run_id).values():
        rates = round_robin(judge, members[0]["prompt"] or "", [m["output"] for m in members])
        scores += [Score(m["id"], "pairwise:winrate", "pairwise", r, None, f"mean preference {r:.3f}",
                         judge.info.sha256) for m, r in zip(members, rates)]
    return save_scores(nb, scores, step)
