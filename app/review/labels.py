"""A person's answers to the criteria's questions, asked from the review card.

A label is stored as "does this record pass the criterion" (``labels.value``, 1 = passes), the
same sense as a judge's ``passed``, so the two compare directly. The person answers the question
as written: for an inverted criterion ("Is this rude?", passing on No) a Yes is stored as fails.
Labels come only from a person's answer here, never from an accept or reject.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from app.quality.trust import JUDGE_KINDS, judge_trust
from app.store.criteria import latest_versions
from app.store.notebook import Notebook
from app.store.review import score_step_settings
from app.store.scores import score_names, scores_for
from app.store.trust import record_labels, set_label, stale_score_names

DEFAULT_THRESHOLD = {"yes_no": 0.5, "rubric": 3.0}
_THRESHOLD_IN_REASON = re.compile(r"vs threshold (-?\d+(?:\.\d+)?(?:e-?\d+)?)")


@dataclass(frozen=True)
class CriterionInfo:
    """One criterion a person can answer: its question and how its judge's score passes."""

    name: str
    question: str
    type: str = "yes_no"  # yes_no | rubric | additive
    threshold: float = 0.5
    invert: bool = False
    scale: float = 1.0  # the score's range, so distances to the threshold compare across criteria

    @property
    def score_name(self) -> str:
        return f"judge:{self.name}"

    @property
    def prompt(self) -> str:
        """The question as the card asks it (what Y and N mean when it is not a plain yes/no)."""
        if self.type != "yes_no":
            return f"Does it pass {self.name}? ({self.question or self.type}, passes at {self.threshold:g})"
        return self.question + (" (Yes fails it)" if self.invert else "")


def criterion_info(name: str, spec: dict[str, Any]) -> CriterionInfo:
    kind = str(spec.get("type") or "yes_no")
    points = spec.get("points") or []
    threshold = spec.get("threshold")
    if threshold is None:
        threshold = len(points) / 2 if kind == "additive" else DEFAULT_THRESHOLD.get(kind, 0.5)
    scale = {"yes_no": 1.0, "rubric": 4.0}.get(kind, float(max(len(points), 1)))
    return CriterionInfo(name, str(spec.get("question") or ""), kind, float(threshold), bool(spec.get("invert")),
                         scale)


def criteria(nb: Notebook) -> dict[str, CriterionInfo]:
    """The criteria a person can answer, by name: the notebook's active criteria and every criterion
    a judge has scored (unless the notebook switched it off), with the question from its spec."""
    specs = {v.name: (v.spec, v.active) for v in latest_versions(nb, "criterion")}
    step_settings = score_step_settings(nb)
    out: dict[str, CriterionInfo] = {}
    for kind in JUDGE_KINDS:
        for score in score_names(nb, kind):
            name = score.removeprefix("judge:")
            if name in specs and not specs[name][1]:
                continue
            spec = specs[name][0] if name in specs else step_settings.get(score, {}).get("criterion") or {}
            out[name] = criterion_info(name, spec)
    for name, (spec, active) in specs.items():
        if active and name not in out:
            out[name] = criterion_info(name, spec)
    return dict(sorted(out.items()))


def threshold_of(reason: str, fallback: float) -> float:
    """The threshold a judge score was passed at (its reason says "0.523 vs threshold 0.5")."""
    m = _THRESHOLD_IN_REASON.search(reason or "")
    return float(m.group(1)) if m else fallback


@dataclass(frozen=True)
class CriterionCard:
    """One criterion on one record's card: the question, the judge's score, its trust, the person's answer."""

    info: CriterionInfo
    value: float | None  # the judge's score (None: not judged)
    passed: bool | None
    threshold: float
    stale: bool  # scored before the text was edited
    trust: str  # trusted | untrusted | unchecked | trusted by you | switched off by you
    trusted: bool  # may filter and rank
    answer: bool | None  # the person's answer to the question as asked (None: not answered)


def card_criteria(nb: Notebook, record_id: int) -> list[CriterionCard]:
    """Every answerable criterion for one record, by name."""
    scores = {s.name: s for s in scores_for(nb, record_id)}
    stale = set(stale_score_names(nb, record_id))
    labels = record_labels(nb, record_id)
    out = []
    for name, info in criteria(nb).items():
        s = scores.get(info.score_name)
        t = judge_trust(nb, name)
        label = labels.get(name)
        out.append(CriterionCard(info, None if s is None else s.value, None if s is None else s.passed,
                                 threshold_of(s.reason, info.threshold) if s else info.threshold,
                                 info.score_name in stale, t.label, t.decides,
                                 None if label is None else label != info.invert))
    return out


def label_value(info: CriterionInfo, yes: bool) -> bool:
    """What a Yes or No to the question stores: whether the record passes the criterion."""
    return yes != info.invert


def answer(nb: Notebook, record_id: int, criterion: str, yes: bool | None, author: str = "user") -> None:
    """Store a person's Yes/No to ``criterion``'s question about one record (``None`` removes it)."""
    info = criteria(nb).get(criterion) or CriterionInfo(criterion, "")
    set_label(nb, record_id, criterion, None if yes is None else label_value(info, yes), author)
