"""Running quality steps over a notebook's samples, recording each as a reproducible step."""

from __future__ import annotations

from pathlib import Path

from app.core.tasks import TaskState
from app.quality.scorers import SCORERS
from app.quality.validators import Rule, load_rules
from app.store.notebook import Notebook
from app.store.scores import Score, add_step, sample_texts, save_scores

BATCH = 500


def validate(nb: Notebook, rules: list[Rule], task: TaskState | None = None, source: str = "") -> dict[str, tuple[int, int]]:
    """Apply every rule to every sample; returns {rule name: (passed, failed)}."""
    task = task or TaskState()
    settings = {"source": source, "rules": [{"name": r.name, "type": r.type,
                                             **{k: v for k, v in r.params.items() if not k.startswith("_")}}
                                            for r in rules]}
    step = add_step(nb, "validate", Path(source).name or "rules", settings)
    items = sample_texts(nb)
    counts = {r.name: [0, 0] for r in rules}
    for start in range(0, len(items), BATCH):
        task.check()
        scores = []
        for rid, text, tokens in items[start : start + BATCH]:
            for rule in rules:
                v = rule.check(text, tokens)
                counts[rule.name][0 if v.passed else 1] += 1
                scores.append(Score(rid, f"validator:{rule.name}", "validator", v.value, v.passed, v.reason))
        save_scores(nb, scores, step)
        task.set_progress(min(start + BATCH, len(items)), len(items), "validating")
    return {k: (a, b) for k, (a, b) in counts.items()}


def validate_file(nb: Notebook, path: str | Path, task: TaskState | None = None) -> dict[str, tuple[int, int]]:
    return validate(nb, load_rules(path), task, source=str(path))


def score_heuristics(nb: Notebook, task: TaskState | None = None) -> int:
    step = add_step(nb, "score", "heuristics", {"scorers": list(SCORERS)})
    scores = [Score(rid, f"score:{name}", "scorer", float(fn(text)), None)
              for rid, text, _ in sample_texts(nb) for name, fn in SCORERS.items()]
    return save_scores(nb, scores, step)



def dedupe(nb: Notebook, method: str, threshold: float | None = None) -> dict[int, list[int]]:
    """Mark duplicate groups (never deletes); returns {representative: members}."""
    from app.core.errors import StudioError
    from app.quality import dedupe as dd
    from app.store.scores import save_duplicates

    items = [(rid, text) for rid, text, _ in sample_texts(nb)]
    if method == "exact":
        groups = dd.exact_groups(items)
        settings: dict = {"normalise": "lowercase, words only"}
    elif method == "minhash":
        t = 0.6 if threshold is None else threshold
        if not 0 < t <= 1:
            raise StudioError("--threshold for minhash is a Jaccard similarity in (0, 1]")
        groups = dd.minhash_groups(items, threshold=t)
        settings = {"threshold": t, "num_perm": 128, "shingle_words": 3}
    elif method == "semantic":
        from app.store.embeddings import load_embeddings

        t = 0.95 if threshold is None else threshold
        ids, vectors = load_embeddings(nb, [rid for rid, _ in items])
        groups = dd.semantic_groups(ids, vectors, threshold=t)
        settings = {"threshold": t}
    else:
        raise StudioError(f"unknown dedupe method {method!r} (use exact, minhash or semantic)")
    step = add_step(nb, "dedupe", method, settings)
    save_duplicates(nb, method, groups, step)
    return groups
