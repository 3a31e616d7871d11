"""After a person edits a record, its scores and likelihood describe the old text: they are
marked stale (in the same transaction as the edit) and recomputed here in one action."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.tasks import TaskState
from app.quality.judge import Constitution, judge_notebook
from app.quality.steps import score_heuristics, validate
from app.quality.validators import Rule
from app.store.notebook import Notebook
from app.store.trust import set_likelihood, stale_likelihood_records, stale_scores
from backends.protocols import Judge, TextScorer


@dataclass(frozen=True)
class Recomputed:
    records: int  # records that had anything stale
    scores: int  # stale scores recomputed
    likelihoods: int  # likelihoods recomputed
    left: list[str]  # stale scores nothing here could recompute (their rule or criterion is gone)


def recompute_stale(nb: Notebook, model: Judge | None, *, rules: list[Rule], constitution: Constitution | None,
                    task: TaskState | None = None) -> Recomputed:
    """Re-run what went stale: the validators, heuristic scores and judges whose scores an edit
    made stale (judges on the edited records only), and the likelihood of each edited text."""
    task = task or TaskState()
    stale = stale_scores(nb)
    records = {rid for ids in stale.values() for rid in ids}
    likelihood = stale_likelihood_records(nb)
    records |= {rid for rid, _, _ in likelihood}
    done = 0
    left: list[str] = []
    names = set(stale)
    wanted_rules = [r for r in rules if f"validator:{r.name}" in names]
    if wanted_rules:
        validate(nb, wanted_rules, task, source="recompute stale")
        done += sum(len(stale[f"validator:{r.name}"]) for r in wanted_rules)
    if any(n.startswith("score:") for n in names):
        score_heuristics(nb, task)
        done += sum(len(v) for n, v in stale.items() if n.startswith("score:"))
    criteria = [c for c in (constitution.criteria if constitution else ()) if c.score_name in names]
    if criteria and model is not None and constitution is not None:
        ids = sorted({rid for c in criteria for rid in stale[c.score_name]})
        judge_notebook(nb, model, Constitution(constitution.name, tuple(criteria)), task, source="recompute stale",
                       record_ids=ids)
        done += sum(len(stale[c.score_name]) for c in criteria)
    covered = {f"validator:{r.name}" for r in wanted_rules} | {c.score_name for c in criteria if model is not None}
    left = sorted(n for n in names if n not in covered and not n.startswith("score:"))
    n_lp = 0
    if likelihood and isinstance(model, TextScorer):
        task.set_progress(0, len(likelihood), "likelihood")
        values = []
        for i, (rid, prompt, output) in enumerate(likelihood):
            task.check()
            got = model.text_logprobs([(({"role": "user", "content": prompt},), output)], cancel=task)
            lps = got[0] if got else []
            if lps:
                values.append((rid, sum(lps) / len(lps), len(lps)))
            task.set_progress(i + 1, len(likelihood), "likelihood")
        set_likelihood(nb, values)
        n_lp = len(values)
    return Recomputed(len(records), done, n_lp, left)
