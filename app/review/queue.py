"""The review queue, ordered by what a person's minute is worth, each record with why it is there.

Order (a record sits where it is first found, carrying every reason it was found for):

1. **Failed a stage**: failures of validators and trusted judges, closest to passing first, then
   the funnel's other drops (best-of, duplicates); at most ``per_stage`` per stage, the stages
   taken in turn. Then records that pass **near a threshold** (within ``near`` of the score's
   range, e.g. 0.52 against 0.5).
2. **Judges not yet trusted** (untrusted or unchecked): records where the judge contradicts itself
   on two duplicates, then its most uncertain records (P(yes) within ``unsure`` of its threshold,
   nearest first) that the person has not answered; at most ``per_judge`` of each per judge. The person's answers are
   the labels that calibrate it.
3. **Both ends of each axis**: longest and shortest, most and least likely, the most unusual.
4. **One record per cluster** of the latest map, the one nearest its centroid, biggest cluster first.
5. **An audit sample** of the kept set, ``audit`` records drawn with ``seed``.
6. The rest, in id order.

Records a person already reviewed (``app.store.review.reviewed_ids``) go last, or are left out by
the ``unreviewed`` view.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from app.core.errors import StudioError
from app.map.axes import extrema
from app.quality.funnel import Verdict, compute_funnel
from app.quality.trust import Trust, judge_trust
from app.review.labels import CriterionInfo, criteria, threshold_of
from app.store.maps import latest_map
from app.store.notebook import Notebook
from app.store.review import (
    GateScore,
    cluster_representatives,
    duplicate_disagreements,
    failing_counts,
    gate_scores,
    label_agreement,
    records_failing,
    reviewed_ids,
    sample_statuses,
    score_step_settings,
)
from app.store.trust import labels_for

VIEWS = ("all", "unreviewed", "kept", "flagged")  # and "failing:<score name>"
# axis -> (what its top end is called, what its bottom end is called, how a value reads); None: end not asked for
AXIS_ENDS: dict[str, tuple[str | None, str | None, str]] = {
    "length": ("longest", "shortest", "{:.0f} chars"),
    "likelihood": ("most likely", "least likely", "mean logprob {:.2f}"),
    # the bottom of the outlier axis is the clusters' cores, which the cluster step already samples
    "outlier": ("most unusual", None, "outlier score {:.2f}"),
}


@dataclass(frozen=True)
class Reason:
    kind: str  # failed | near | judge | extreme | cluster | audit
    text: str
    criterion: str | None = None  # the criterion the person is asked about, if any


@dataclass(frozen=True)
class QueueItem:
    record_id: int
    reasons: tuple[Reason, ...]
    reviewed: bool  # when the queue was built

    @property
    def why(self) -> str:
        return "; ".join(r.text for r in self.reasons) or "not prioritised (id order)"

    @property
    def criterion(self) -> str | None:
        return next((r.criterion for r in self.reasons if r.criterion), None)


@dataclass(frozen=True)
class Gate:
    """How far a pass/fail score sits from its threshold, in units of the score's range."""

    score: GateScore
    threshold: float | None
    margin: float  # inf when unknown (a regex validator has no number)

    def describe(self) -> str:
        v, t = self.score.value, self.threshold
        if v is None or t is None:
            return self.score.reason
        if self.score.kind == "validator":  # its reason reads in the rule's unit: "9 words"
            return f"{self.score.reason}, limit {t:g}"
        return f"{_num(v)} vs {t:g}"


def _num(x: float) -> str:
    return f"{x:.2f}" if abs(x) < 10 and x != int(x) else f"{x:g}"


def _gates(nb_criteria: dict[str, CriterionInfo], settings: dict[str, dict[str, Any]], scores: Iterable[GateScore]
           ) -> dict[str, list[Gate]]:
    """Score name -> its scores with their distance to the threshold."""
    out: dict[str, list[Gate]] = {}
    for s in scores:
        t: float | None = None
        scale = 1.0
        if s.kind == "validator":
            t, scale = _rule_bound(settings.get(s.name, {}), s.name.removeprefix("validator:"), s.value)
        else:
            info = nb_criteria.get(s.name.removeprefix("judge:"))
            t = threshold_of(s.reason, info.threshold if info else 0.5)
            scale = info.scale if info else 1.0
        margin = math.inf if s.value is None or t is None else abs(s.value - t) / scale
        out.setdefault(s.name, []).append(Gate(s, t, margin))
    return out


def _rule_bound(settings: dict[str, Any], rule: str, value: float | None) -> tuple[float | None, float]:
    """A validator's nearest numeric bound (a length rule's min or max) and the scale to measure by."""
    spec: dict[str, Any] = next((r for r in settings.get("rules", []) if r.get("name") == rule), {})
    bounds = [float(spec[k]) for k in ("min", "max") if isinstance(spec.get(k), (int, float))]
    if value is None or not bounds:
        return None, 1.0
    bound = min(bounds, key=lambda b: abs(value - b))
    return bound, max(abs(bound), 1.0)


def _take_turns(lists: Sequence[Sequence[tuple[int, Reason]]]) -> list[tuple[int, Reason]]:
    """One from each list in turn, so no single stage or judge fills the front of the queue."""
    out = []
    for i in range(max((len(x) for x in lists), default=0)):
        out += [x[i] for x in lists if i < len(x)]
    return out


def build_queue(nb: Notebook, *, view: str = "all", seed: int = 0, near: float = 0.1, unsure: float = 0.25,
                per_stage: int = 20, per_judge: int = 10, extremes: int = 1, audit: int = 10) -> list[QueueItem]:
    """Every sample with text, in review order (see the module docstring), filtered by ``view``:
    all (reviewed last), unreviewed, kept (by the funnel), flagged, or failing:<score name>."""
    if view not in VIEWS and not view.startswith("failing:"):
        raise StudioError(f"unknown review view {view!r}; views: {', '.join(VIEWS)}, failing:<score name>")
    statuses = sample_statuses(nb)
    reviewed = reviewed_ids(nb)
    funnel = compute_funnel(nb, save=False)
    info = criteria(nb)
    gates = _gates(info, score_step_settings(nb), gate_scores(nb))
    trust = {name: judge_trust(nb, name.removeprefix("judge:")) for name, g in gates.items()
             if g[0].score.kind != "validator"}
    found: dict[int, list[Reason]] = {}

    def add(pairs: Iterable[tuple[int, Reason]]) -> None:
        for rid, reason in pairs:
            if rid in statuses:
                found.setdefault(rid, []).append(reason)

    deciding = [n for n in gates if n not in trust or trust[n].decides]  # validators, then trusted judges
    add(_failures(gates, deciding, funnel.verdicts.values(), per_stage))
    add(_near(gates, deciding, near, per_stage))
    add(_unsure_judges(nb, gates, trust, unsure, per_judge))
    add(_extremes(nb, extremes))
    add(_clusters(nb))
    kept = funnel.kept_ids
    add((rid, Reason("audit", "audit sample of kept")) for rid in random.Random(seed).sample(kept, min(audit, len(kept))))
    order = list(found) + [rid for rid in statuses if rid not in found]
    items = [QueueItem(rid, tuple(found.get(rid, ())), rid in reviewed) for rid in order]
    items.sort(key=lambda it: it.reviewed)  # stable: the reviewed keep their order, after the rest
    if view == "unreviewed":
        return [it for it in items if not it.reviewed]
    if view == "kept":
        return [it for it in items if funnel.verdicts[it.record_id].kept]
    if view == "flagged":
        return [it for it in items if statuses[it.record_id] == "flagged"]
    if view.startswith("failing:"):
        failing = set(records_failing(nb, view.removeprefix("failing:")))
        return [it for it in items if it.record_id in failing]
    return items


def _failures(gates: dict[str, list[Gate]], deciding: list[str], verdicts: Iterable[Verdict],
              per_stage: int) -> list[tuple[int, Reason]]:
    lists = []
    for name in deciding:
        fails = sorted((g for g in gates[name] if not g.score.passed), key=lambda g: (g.margin, g.score.record_id))
        lists.append([(g.score.record_id, Reason(
            "failed", f"failed {name} ({g.score.reason if g.score.kind == 'validator' else g.describe()})"
            + (" (stale: edited after scoring)" if g.score.stale else ""), _criterion(name))) for g in fails[:per_stage]])
    other: dict[str, list[tuple[int, Reason]]] = {}  # drops no pass/fail score explains: best-of, duplicates
    for v in sorted(verdicts, key=lambda v: v.record_id):
        if not v.kept and v.stage and v.stage not in gates and v.stage != "review":
            other.setdefault(v.stage, []).append((v.record_id, Reason("failed", f"dropped at {v.stage}: {v.reason}")))
    lists += [x[:per_stage] for x in other.values()]
    return _take_turns(lists)


def _near(gates: dict[str, list[Gate]], deciding: list[str], near: float, per_stage: int) -> list[tuple[int, Reason]]:
    lists = []
    for name in deciding:
        close = sorted((g for g in gates[name] if g.score.passed and not g.score.stale and g.margin <= near),
                       key=lambda g: (g.margin, g.score.record_id))
        lists.append([(g.score.record_id, Reason("near", f"near threshold of {name} ({g.describe()})",
                                                 _criterion(name))) for g in close[:per_stage]])
    return _take_turns(lists)


def _unsure_judges(nb: Notebook, gates: dict[str, list[Gate]], trust: dict[str, Trust], unsure: float,
                   per_judge: int) -> list[tuple[int, Reason]]:
    """Records whose answer would teach an untrusted or unchecked judge the most."""
    disagree, uncertain = [], []
    for name, t in trust.items():
        if t.state not in ("untrusted", "unchecked"):
            continue
        by_id = {g.score.record_id: g for g in gates[name]}
        answered = labels_for(nb, t.criterion)
        who = f"{t.label} judge {t.criterion}"
        pairs = [(rid, mate, method) for rid, mate, method in duplicate_disagreements(nb, name)
                 if rid not in answered and rid in by_id and mate in by_id]
        disagree.append([(rid, Reason(
            "judge", f"{who} {_verb(by_id[rid])} ({_num(by_id[rid].score.value or 0)}) but "
                     f"{'passes' if by_id[mate].score.passed else 'fails'} its {method} duplicate #{mate} ({_num(by_id[mate].score.value or 0)})",
            t.criterion)) for rid, mate, method in pairs[:per_judge]])
        close = sorted((g for g in gates[name] if not g.score.stale and g.score.record_id not in answered
                        and g.margin <= unsure), key=lambda g: (g.margin, g.score.record_id))
        uncertain.append([(g.score.record_id, Reason(
            "judge", f"{who} is unsure ({g.describe()}): your answer calibrates it", t.criterion))
            for g in close[:per_judge]])
    return _take_turns(disagree) + _take_turns(uncertain)


def _verb(g: Gate) -> str:
    return "passes it" if g.score.passed else "fails it"


def _criterion(score_name: str) -> str | None:
    return None if score_name.startswith("validator:") else score_name.removeprefix("judge:")


def _extremes(nb: Notebook, k: int) -> list[tuple[int, Reason]]:
    out = []
    for axis, (top_name, bottom_name, fmt) in AXIS_ENDS.items():
        try:
            top, bottom = extrema(nb, axis, k)
        except StudioError:  # no value on this axis yet (no likelihoods, no map)
            continue
        for name, ends in ((top_name, top), (bottom_name, bottom)):
            if name is not None:
                out += [(e.record_id, Reason("extreme", f"{name} ({fmt.format(e.value)})")) for e in ends]
    return out


def _clusters(nb: Notebook) -> list[tuple[int, Reason]]:
    stored = latest_map(nb)
    if stored is None:
        return []
    out = []
    for cluster, rid, size in cluster_representatives(nb, stored.id):
        label = stored.labels.get(cluster, "")
        out.append((rid, Reason("cluster", f"cluster {cluster}" + (f" '{label}'" if label else "")
                                + f", nearest its centre ({size} records)")))
    return out


def view_choices(nb: Notebook) -> list[tuple[str, str]]:
    """(label, view) for the queue's filter menu."""
    return ([("all (reviewed last)", "all"), ("unreviewed", "unreviewed"), ("kept by the funnel", "kept"),
             ("flagged", "flagged")]
            + [(f"failing {name} ({n})", f"failing:{name}") for name, n in failing_counts(nb)])


# -- progress --------------------------------------------------------------------------------------


def review_line(nb: Notebook) -> str:
    """E.g. "38 of 120 samples reviewed (32%)": the Review cell's line about the notebook as it is."""
    from app.store.queries import review_progress

    rows = review_progress(nb)
    n = sum(r["samples"] for r in rows)
    done = sum(r["reviewed"] for r in rows)
    return (f"{done} of {n} samples reviewed ({100 * done / n:.0f}%)" if n
            else "nothing to review yet: generate or import samples first")


@dataclass(frozen=True)
class ReviewProgress:
    reviewed: int
    total: int
    judges: dict[str, tuple[int, int]]  # criterion -> (labels compared with its judge, disagreements)

    @property
    def line(self) -> str:
        """E.g. "38 of 120 reviewed, 4 disagreements with judge polite (of 12 labels)"."""
        parts = [f"{self.reviewed} of {self.total} reviewed"]
        parts += [f"{d} disagreement{'' if d == 1 else 's'} with judge {c} (of {n} label{'' if n == 1 else 's'})"
                  for c, (n, d) in self.judges.items() if n]
        return ", ".join(parts)


def progress(nb: Notebook, record_ids: Iterable[int]) -> ReviewProgress:
    """How many of the queue's records a person has reviewed (now, not when the queue was built),
    and per judge how many of the person's labels its pass/fail contradicts."""
    ids = set(record_ids)
    return ReviewProgress(len(ids & reviewed_ids(nb)), len(ids), label_agreement(nb))
