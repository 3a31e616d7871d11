"""The funnel decides the dataset: which records are kept, and where and why the others fell out.

One definition of *kept*, used by the funnel view, the Records filter, export and the map:
a sample with text is kept when it passes every active stage and no person rejected it.
Samples of comparison runs (two prompt versions run side by side) are not in the dataset
until a person adds their run (or accepts one in review): "generated" counts only the
dataset's samples and says how many comparison samples it left out.
Stages, cheapest first: code validators, LLM judges (only those shown to beat chance, or
trusted by the person; the others are listed with what they would drop), duplicates (a
group keeps its representative), then the person's review: a rejection drops a record, an
accept keeps it whatever an automatic stage said, and the verdict records which drop the
person overrode. Everything is computed from what the notebook stores, and each run writes
the verdicts back so the window can filter by them in SQL.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, cast

from app.quality.trust import JUDGE_KINDS, criterion_of, judge_trust
from app.store.notebook import Notebook
from app.store.records import comparison_samples, rejected_sample_ids, sample_ids
from app.store.scores import (
    duplicate_members,
    duplicate_methods,
    failed_scores,
    latest_step_id,
    score_names,
    score_step,
    step_names,
)
from app.store.trust import accepted_sample_ids, save_verdicts


@dataclass(frozen=True)
class Verdict:
    record_id: int
    kept: bool
    stage: str | None  # the stage that dropped it (for a kept record: the drop a person overrode)
    reason: str | None


@dataclass
class FunnelResult:
    stages: list[dict[str, Any]]
    verdicts: dict[int, Verdict]

    @property
    def kept_ids(self) -> list[int]:
        return sorted(rid for rid, v in self.verdicts.items() if v.kept)


def compute_funnel(nb: Notebook, *, save: bool = True) -> FunnelResult:
    """Every stage's counts and every sample's verdict (written to the notebook when ``save``).

    Counted again only when the notebook changed since the last count on this connection (a write
    of its own, or a commit by any other connection or process): the window asks from several
    views at once, and on a big notebook a count reads millions of scores."""
    memo = nb.memo.get("funnel")
    if memo is not None and memo[0] == nb.change_mark():
        return cast(FunnelResult, memo[1])
    result = _count_funnel(nb, save=save)
    if save:  # after the verdicts are written: the state the next call compares with
        nb.memo["funnel"] = (nb.change_mark(), result)
    return result


def _count_funnel(nb: Notebook, *, save: bool) -> FunnelResult:
    compared = comparison_samples(nb)
    samples = sample_ids(nb)
    alive = set(samples) - set(compared)
    dropped_at: dict[int, tuple[str, str]] = {
        rid: ("comparison", f"made by comparison run {run}: not in the dataset until its run is added")
        for rid, run in compared.items()}
    stages: list[dict[str, Any]] = [{"stage": "generated", "kind": "all", "kept": len(alive), "dropped": 0,
                                     "excluded": len(compared), "reasons": _left_out(compared), "active": True}]

    def stage(name: str, kind: str, failing: dict[int, str], step_id: Any = None, *,
              active: bool = True, trust: str | None = None, note: str = "",
              details: dict[int, str] | None = None) -> None:
        nonlocal alive
        hit = {rid: why for rid, why in failing.items() if rid in alive}
        if active:
            alive = alive - set(hit)
            for rid, why in hit.items():
                dropped_at[rid] = (name, (details or {}).get(rid, why))
        reasons = Counter(hit.values()).most_common(3)
        stages.append({"stage": name, "kind": kind, "kept": len(alive), "dropped": len(hit) if active else 0,
                       "would_drop": 0 if active else len(hit), "active": active, "trust": trust, "note": note,
                       "reasons": [f"{why} ({n})" for why, n in reasons], "step_id": step_id})

    for name in score_names(nb, "validator"):
        stage(name, "validator", {rid: _reason_key("validator", why) for rid, why in failed_scores(nb, name)},
              score_step(nb, name))
    for kind in JUDGE_KINDS:
        for name in score_names(nb, kind):
            t = judge_trust(nb, criterion_of(name))
            stage(name, kind, {rid: _reason_key(kind, why) for rid, why in failed_scores(nb, name)},
                  score_step(nb, name), active=t.decides, trust=t.label,
                  note="" if t.decides else f"not filtering: {t.detail}")
    for name in score_names(nb, "rank"):  # best-of: the candidates ranked below the kept k of their row
        stage("best-of", "best-of", {rid: "ranked below the kept candidates" for rid, _ in failed_scores(nb, name)},
              score_step(nb, name))
    methods = set(duplicate_methods(nb)) | set(step_names(nb, "dedupe"))
    for method in sorted(methods):  # a dedupe that found nothing still shows, with 0 dropped
        members = _in_dataset(duplicate_members(nb, method), set(compared))
        stage(f"dedupe:{method}", "dedupe", {rid: f"{method} duplicate" for rid, _rep in members},
              latest_step_id(nb, "dedupe", method),
              details={rid: f"{method} duplicate of #{rep}" for rid, rep in members})
    rejected = rejected_sample_ids(nb)
    stage("review", "human", {rid: "rejected in review" for rid in rejected})
    dropped_at.update({rid: ("review", "rejected in review") for rid in rejected
                       if rid not in dropped_at})
    rescued = [rid for rid in accepted_sample_ids(nb) if rid in dropped_at]
    if rescued:
        alive |= set(rescued)
        stages.append({"stage": "accepted by a person", "kind": "human", "kept": len(alive), "dropped": 0,
                       "rescued": len(rescued), "active": True, "trust": None, "note": "",
                       "reasons": [f"kept over {s} ({n})" for s, n in
                                   Counter(dropped_at[r][0] for r in rescued).most_common(3)], "step_id": None})
    verdicts: dict[int, Verdict] = {}
    for rid in samples:
        where = dropped_at.get(rid)
        if rid in alive:
            verdicts[rid] = Verdict(rid, True, where[0] if where else None,
                                    f"accepted by a person over {where[0]}: {where[1]}" if where else None)
        else:
            assert where is not None
            verdicts[rid] = Verdict(rid, False, where[0], where[1])
    if save:
        save_verdicts(nb, [(v.record_id, v.kept, v.stage, v.reason) for v in verdicts.values()])
    return FunnelResult(stages, verdicts)


def funnel(nb: Notebook) -> list[dict[str, Any]]:
    """The funnel's stages with kept/dropped counts (and the verdicts written to the notebook)."""
    return compute_funnel(nb).stages


def kept_ids(nb: Notebook) -> list[int]:
    """The dataset: the ids of the samples the funnel keeps."""
    return compute_funnel(nb).kept_ids


def _left_out(compared: dict[int, int]) -> list[str]:
    """The note on "generated" about the comparison samples it leaves out (and how to add them)."""
    if not compared:
        return []
    runs = sorted(set(compared.values()))
    return [f"{len(compared)} comparison samples (run{'s' if len(runs) > 1 else ''} "
            f"{', '.join(map(str, runs))}) not in the dataset; add a run with Add to dataset in Compare "
            "prompts, or synth-studio compare NOTEBOOK PROMPT --adopt RUN"]


def _in_dataset(members: list[tuple[int, int]], outside: set[int]) -> list[tuple[int, int]]:
    """Duplicate (member, representative) pairs, each group represented by its lowest member in the
    dataset: a comparison sample outside it must not knock the dataset's copy of its text out."""
    groups: dict[int, list[int]] = {}
    for rid, rep in members:
        groups.setdefault(rep, [rep]).append(rid)
    out = []
    for rep, group in groups.items():
        inside = sorted(r for r in group if r not in outside)
        new_rep = inside[0] if rep in outside and inside else rep
        out += [(r, new_rep) for r in group if r != new_rep]
    return out


def _reason_key(kind: str, reason: str | None) -> str:
    """Group reasons into a few kinds ("banned phrase: 'delve'" stays; numbers are dropped)."""
    if not reason:
        return "failed"
    if kind != "validator":
        return "below threshold"
    return reason.split(" (")[0] if "banned" in reason else " ".join(
        w for w in reason.split() if not any(ch.isdigit() for ch in w)) or "failed"
