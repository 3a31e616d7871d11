"""Judges you can trust: each criterion version is checked, per model, before it may decide anything.

The evidence is the criterion's known good/bad examples and the person's labels for that
criterion (a yes/no answer to its question about a record, given in review or with
``synth-studio criteria label``). Record statuses and automatic rejections are never
evidence: a best-of loser was rejected *because* a judge ranked it low, so counting it as
"bad" would let the judge under test grade itself.

For each criterion the check reports the AUC (the chance that a good example scores above
a bad one; 0.5 is chance), the one-sided rank-test p-value (could a judge at chance rank
them this well?), the confusion matrix at the criterion's threshold and Cohen's kappa
against the person's labels (against the known examples while there are no labels), and
the threshold that would separate them best. The judge is *trusted* when p < alpha; the
result is stored for that criterion version and model, and ``app.quality.trust`` reads it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from app.core.tasks import TaskState
from app.quality.judge import Constitution, Criterion, Example, Subject, as_subject, score_subjects
from app.quality.trust import judge_trust
from app.store.criteria import labelled_contexts
from app.store.notebook import Notebook
from app.store.scores import add_step
from app.store.trust import save_sanity
from backends.protocols import Judge

ALPHA = 0.1
LABEL_SOURCE = "your label"


@dataclass(frozen=True)
class SanityReport:
    criterion: str
    n_good: int
    n_bad: int
    auc: float | None  # P(score of a good example > score of a bad one); 0.5 = chance
    accuracy: float | None  # at the criterion's pass threshold
    p_value: float | None  # one-sided: could a judge at chance rank this well?
    suggested_threshold: float | None  # the cut that best separates these examples
    flagged: bool  # not shown to beat chance (or unchecked)
    verdict: str
    details: list[dict[str, Any]] = field(default_factory=list)
    threshold: float | None = None  # the criterion's own pass threshold
    confusion: dict[str, int] | None = None  # tp, fn (label yes), fp, tn (label no): judge pass/fail vs label
    kappa: float | None = None  # Cohen's kappa of the judge's pass/fail with the labels
    agreement_on: str = ""  # "your labels" or "known examples": what confusion and kappa count
    n_labels: int = 0  # of the person's labels used
    criterion_version_id: int | None = None
    model_sha256: str | None = None
    trust: str = ""  # the trust state once this result is stored ("trusted", "untrusted", "trusted by you", ...)

    @property
    def trusted(self) -> bool:
        return not self.flagged


def _auc(good: list[float], bad: list[float]) -> float:
    wins = sum((g > b) + 0.5 * (g == b) for g in good for b in bad)
    return wins / (len(good) * len(bad))


def rank_test_p_value(good: list[float], bad: list[float], max_exact: int = 20000) -> float:
    """One-sided Mann-Whitney p-value that good examples score higher than bad ones by chance alone."""
    import itertools
    import math

    import numpy as np

    n1, n2 = len(good), len(bad)
    u_obs = _auc(good, bad) * n1 * n2
    pooled = np.array(good + bad, dtype=float)
    if math.comb(n1 + n2, n1) <= max_exact:
        total = hits = 0
        for idx in itertools.combinations(range(n1 + n2), n1):
            mask = np.zeros(n1 + n2, bool)
            mask[list(idx)] = True
            u = _auc(list(pooled[mask]), list(pooled[~mask])) * n1 * n2
            hits += u >= u_obs - 1e-9
            total += 1
        return hits / total
    mu, sd = n1 * n2 / 2, math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    z = (u_obs - mu - 0.5) / sd
    return 0.5 * math.erfc(z / math.sqrt(2))


def best_threshold(good: list[float], bad: list[float]) -> float | None:
    """Midpoint cut with the best accuracy on the examples (ties: the lowest such cut)."""
    values = sorted(set(good + bad))
    if len(values) < 2:
        return None
    best, best_acc = None, -1.0
    for lo, hi in zip(values, values[1:]):
        cut = (lo + hi) / 2
        acc = (sum(g >= cut for g in good) + sum(b < cut for b in bad)) / (len(good) + len(bad))
        if acc > best_acc + 1e-12:
            best, best_acc = cut, acc
    return best


def confusion_matrix(good: list[float], bad: list[float], threshold: float) -> dict[str, int]:
    """The judge's pass (score >= threshold) against the label: tp/fn for yes-labels, fp/tn for no-labels."""
    return {"tp": sum(g >= threshold for g in good), "fn": sum(g < threshold for g in good),
            "fp": sum(b >= threshold for b in bad), "tn": sum(b < threshold for b in bad)}


def cohen_kappa(m: dict[str, int]) -> float | None:
    """Agreement beyond chance between the judge's pass/fail and the labels (1 = perfect, 0 = chance)."""
    n = m["tp"] + m["fn"] + m["fp"] + m["tn"]
    if n == 0:
        return None
    observed = (m["tp"] + m["tn"]) / n
    yes_label, yes_judge = (m["tp"] + m["fn"]) / n, (m["tp"] + m["fp"]) / n
    expected = yes_label * yes_judge + (1 - yes_label) * (1 - yes_judge)
    if expected >= 1 - 1e-12:  # both say the same one thing every time: agreement beyond chance is undefined
        return None
    return (observed - expected) / (1 - expected)


def sanity_check(judge: Judge, c: Criterion, extra_good: Iterable[tuple[str, Example]] = (),
                 extra_bad: Iterable[tuple[str, Example]] = (), alpha: float = ALPHA,
                 task: TaskState | None = None) -> SanityReport:
    """How well the judge separates good from bad examples of one criterion.

    ``extra_good``/``extra_bad`` are (source, text or Subject) pairs: the person's labels
    (source ``LABEL_SOURCE``-prefixed, e.g. "your label on record 12"). A criterion is
    flagged when its judge is not shown to beat chance.
    """
    good = [("example", x) for x in c.good] + list(extra_good)
    bad = [("example", x) for x in c.bad] + list(extra_bad)
    t = c.pass_threshold
    items = [(("g", i), as_subject(x)) for i, (_, x) in enumerate(good)] + \
            [(("b", i), as_subject(x)) for i, (_, x) in enumerate(bad)]
    scores, errors = score_subjects(judge, c, items, task) if len(good) >= 2 and len(bad) >= 2 else ({}, {})
    details = [{"label": "good" if k[0] == "g" else "bad", "source": (good if k[0] == "g" else bad)[k[1]][0],
                "score": scores.get(k), "error": errors.get(k), "text": s.output[:200]} for k, s in items]
    g_idx = [i for i in range(len(good)) if ("g", i) in scores]
    b_idx = [i for i in range(len(bad)) if ("b", i) in scores]
    n_labels = sum(src.startswith(LABEL_SOURCE) for src, _ in good + bad)
    if len(g_idx) < 2 or len(b_idx) < 2:
        why = (f"{len(errors)} examples could not be asked ({next(iter(errors.values()))})" if errors else
               "needs at least 2 good and 2 bad examples (add good = [...] and bad = [...], or label records)")
        return SanityReport(c.name, len(good), len(bad), None, None, None, None, True, f"unchecked: {why}", details,
                            threshold=t, n_labels=n_labels, criterion_version_id=c.version_id,
                            model_sha256=judge.info.sha256)
    gs = [scores[("g", i)] for i in g_idx]
    bs = [scores[("b", i)] for i in b_idx]
    auc = _auc(gs, bs)
    acc = (sum(g >= t for g in gs) + sum(b < t for b in bs)) / (len(gs) + len(bs))
    p = rank_test_p_value(gs, bs)
    suggested = best_threshold(gs, bs)
    # agreement with the person: their labels when they gave any, else the criterion's own examples
    lab_g = [scores[("g", i)] for i in g_idx if good[i][0].startswith(LABEL_SOURCE)]
    lab_b = [scores[("b", i)] for i in b_idx if bad[i][0].startswith(LABEL_SOURCE)]
    on = "your labels" if lab_g or lab_b else "known examples"
    confusion = confusion_matrix(lab_g, lab_b, t) if lab_g or lab_b else confusion_matrix(gs, bs, t)
    kappa = cohen_kappa(confusion)
    flagged = p >= alpha
    kappa_text = "" if kappa is None else f", kappa {kappa:.2f} on {on}"
    if flagged:
        verdict = (f"no better than chance (AUC {auc:.2f}, p = {p:.2f}{kappa_text}): do not trust this judge; "
                   "rephrase the question, add examples, or use a bigger model")
    else:
        verdict = f"better than chance (AUC {auc:.2f}, p = {p:.3f}, accuracy {acc:.0%} at {t:g}{kappa_text})"
        if suggested is not None and abs(suggested - t) > 1e-9:
            verdict += f"; these examples separate best at threshold = {suggested:.3g}"
    return SanityReport(c.name, len(good), len(bad), auc, acc, p, suggested, flagged, verdict, details,
                        threshold=t, confusion=confusion, kappa=kappa, agreement_on=on, n_labels=n_labels,
                        criterion_version_id=c.version_id, model_sha256=judge.info.sha256)


def person_labels(nb: Notebook, criterion: str) -> tuple[list[tuple[str, Example]], list[tuple[str, Example]]]:
    """The person's yes / no labels for ``criterion`` as (source, Subject) pairs: extra good / bad examples."""
    good: list[tuple[str, Example]] = []
    bad: list[tuple[str, Example]] = []
    for ctx, value in labelled_contexts(nb, criterion):
        item = (f"{LABEL_SOURCE} on record {ctx.record_id}", Subject(ctx.output, ctx.variables, ctx.prompt))
        (good if value else bad).append(item)
    return good, bad


def result_of(r: SanityReport) -> dict[str, Any]:
    """What the notebook stores of a report (everything but the per-example texts' full length)."""
    return {k: v for k, v in dataclasses.asdict(r).items() if k not in ("trust",)}


def sanity_notebook(nb: Notebook, judge: Judge, constitution: Constitution | None = None,
                    task: TaskState | None = None, alpha: float = ALPHA) -> list[SanityReport]:
    """Check every criterion (the notebook's active ones by default) and store each result for its
    version and the judge's model; the reports carry the trust state that follows."""
    if constitution is None:
        from app.quality.criteria import notebook_constitution

        constitution = notebook_constitution(nb)
    reports = []
    for c in constitution.criteria:
        good, bad = person_labels(nb, c.name)
        r = sanity_check(judge, c, good, bad, alpha=alpha, task=task)
        if r.auc is not None:  # an unchecked criterion stores nothing: it stays "unchecked"
            save_sanity(nb, c.name, c.version_id, judge.info.sha256, r.trusted, result_of(r))
        state = judge_trust(nb, c.name, judge.info.sha256, c.version_id, scored=False)
        reports.append(dataclasses.replace(r, trust=state.label))
    add_step(nb, "sanity", constitution.name,
             {r.criterion: {"auc": r.auc, "p": r.p_value, "kappa": r.kappa, "flagged": r.flagged,
                            "criterion_version_id": r.criterion_version_id} for r in reports},
             judge.info.sha256)
    return reports
