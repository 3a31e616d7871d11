"""Running quality steps over a notebook's samples, recording each as a reproducible step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.core.errors import TemplateError
from app.core.tasks import TaskState
from app.prompts.templates import parse_template
from app.quality.scorers import SCORERS
from app.quality.validators import Rule, load_rules, spec_of_rule
from app.store.criteria import sample_contexts
from app.store.notebook import Notebook
from app.store.records import sample_prompt_versions
from app.store.scores import Score, sample_texts, save_step_scores

BATCH = 500
SCHEMA_RULE = "schema"  # the automatic check of structured outputs (a score named validator:schema)


def output_schemas(nb: Notebook) -> dict[int, dict[str, Any]]:
    """record id -> the ``output_schema`` of the prompt version that made it, for every sample
    with text whose prompt declares one."""
    made_by = sample_prompt_versions(nb)
    used = set(made_by.values())
    schemas: dict[int, dict[str, Any]] = {}
    for pv in nb.prompt_versions():
        if pv.id not in used:
            continue
        try:
            schema = parse_template(pv.template).output_schema
        except TemplateError:  # a version saved before its front matter was checked: nothing to check against
            continue
        if schema:
            schemas[pv.id] = schema
    return {rid: schemas[pv] for rid, pv in made_by.items() if pv in schemas}


def validate(nb: Notebook, rules: list[Rule] | None = None, task: TaskState | None = None,
             source: str = "") -> dict[str, tuple[int, int]]:
    """Apply every rule (the notebook's active rules by default) to every sample; returns {rule name: (passed, failed)}.

    A rule setting written as a template is rendered from each record's input row (and its output).
    A ``schema`` rule checks each output against its prompt's ``output_schema``. When no rule
    is of type ``schema``, every record whose prompt declares an ``output_schema`` is still
    checked against it, under the rule name ``schema`` (records of other prompts get no such
    score), so an output that breaks its schema drops in the funnel with the reason.
    """
    task = task or TaskState()
    if rules is None:
        from app.quality.criteria import notebook_rules

        rules = notebook_rules(nb)
        source = source or "notebook"
    rules = list(rules)
    schemas = output_schemas(nb)
    auto: Rule | None = None
    if schemas and not any(r.type == "schema" for r in rules):
        taken = {r.name for r in rules}
        auto = Rule(SCHEMA_RULE if SCHEMA_RULE not in taken else "output-schema", "schema")
        rules.append(auto)
    settings = {"source": source, "rules": [{**spec_of_rule(r), "criterion_version_id": r.version_id,
                                             **({"automatic": True} if r is auto else {})} for r in rules]}
    items = sample_contexts(nb)
    counts = {r.name: [0, 0] for r in rules}

    def checked() -> Iterator[Score]:
        for start in range(0, len(items), BATCH):
            task.check()
            for item in items[start : start + BATCH]:
                schema = schemas.get(item.record_id)
                for rule in rules:
                    if rule is auto and schema is None:  # only records whose prompt declares a schema
                        continue
                    v = rule.check(item.output, item.completion_tokens, item.variables, schema)
                    counts[rule.name][0 if v.passed else 1] += 1
                    yield Score(item.record_id, f"validator:{rule.name}", "validator", v.value, v.passed,
                                v.reason, criterion_version_id=rule.version_id)
            task.set_progress(min(start + BATCH, len(items)), len(items), "validating")
        task.check()

    # The scores stream into one transaction with the step row as the records are checked (never all
    # of them in memory: 7M scores at a million records), and commit together once every record is
    # checked: a run stopped part-way (cancelled, killed, a full disk) rolls back, leaving no validate
    # step that the funnel would show as done with only some records checked.
    save_step_scores(nb, "validate", Path(source).name or "rules", settings, checked())
    return {k: (a, b) for k, (a, b) in counts.items()}


def validate_file(nb: Notebook, path: str | Path, task: TaskState | None = None) -> dict[str, tuple[int, int]]:
    return validate(nb, load_rules(path), task, source=str(path))


def score_heuristics(nb: Notebook, task: TaskState | None = None) -> int:
    texts = sample_texts(nb)
    scores = (Score(rid, f"score:{name}", "scorer", float(fn(text)), None)
              for rid, text, _ in texts for name, fn in SCORERS.items())  # streamed into the notebook
    save_step_scores(nb, "score", "heuristics", {"scorers": list(SCORERS)}, scores)
    return len(texts) * len(SCORERS)



# "minhash" is the near-duplicate default (the window's button, the quality cell, the CLI): character
# shingles verified by a word-level diff. "minhash-words" is the method it replaced (word
# 3-shingle Jaccard), kept for comparison and for notebooks that used it.
DEDUPE_METHODS = ("exact", "minhash", "minhash-words", "semantic")
NEAR_DUPLICATES = "minhash"


def dedupe(nb: Notebook, method: str, threshold: float | None = None) -> dict[int, list[int]]:
    """Mark duplicate groups (never deletes); returns {representative: members}."""
    from app.core.errors import StudioError
    from app.quality import dedupe as dd
    from app.store.scores import save_dedupe

    items = [(rid, text) for rid, text, _ in sample_texts(nb)]
    if method == "exact":
        groups = dd.exact_groups(items)
        settings: dict = {"normalise": "lowercase, words only"}
    elif method == "minhash":
        t = 0.8 if threshold is None else threshold
        if not 0 < t <= 1:
            raise StudioError("--threshold for minhash is the share of words in common, in order, in (0, 1]")
        groups = dd.near_duplicate_groups(items, threshold=t)
        settings = {"threshold": t, "similarity": "word-level diff ratio", "num_perm": 128,
                    "shingle_chars": dd.CHAR_SHINGLE}
    elif method == "minhash-words":
        t = 0.6 if threshold is None else threshold
        if not 0 < t <= 1:
            raise StudioError("--threshold for minhash-words is a Jaccard similarity in (0, 1]")
        groups = dd.minhash_groups(items, threshold=t)
        settings = {"threshold": t, "num_perm": 128, "shingle_words": 3}
    elif method == "semantic":
        from app.store.embeddings import load_embeddings

        t = 0.95 if threshold is None else threshold
        ids, vectors = load_embeddings(nb, [rid for rid, _ in items])
        groups = dd.semantic_groups(ids, vectors, threshold=t)
        settings = {"threshold": t}
    else:
        raise StudioError(f"unknown dedupe method {method!r} (use {', '.join(DEDUPE_METHODS)})")
    save_dedupe(nb, method, settings, groups)
    return groups
