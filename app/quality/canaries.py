"""Canaries: a distinctive string planted in a real seed row; a synthetic record that contains it
copied that row, whatever else it changed.

Planting appends the string to the row's text (a real sample) or to one of its text columns
(an input row) through :meth:`Notebook.edit_record`, so it is in the row's history and can be
undone; the notebook remembers each canary and where it went. Checking stores a validator-kind
``canary`` score on every synthetic sample, so the funnel drops the ones that contain one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.core.errors import StudioError
from app.core.tasks import TaskState
from app.store.notebook import Edit, Notebook
from app.store.privacy import Canary, add_canary, canaries, first_seed_row, is_made_real, synthetic_samples
from app.store.scores import Score, add_step, save_scores

MIN_CHARS = 8  # shorter strings turn up in ordinary text


@dataclass(frozen=True)
class Planted:
    canary: Canary
    field: str  # output, or the input row's column it was appended to
    edit: Edit


def plant_canary(nb: Notebook, text: str, record_id: int | None = None, column: str | None = None,
                 author: str = "canary") -> Planted:
    """Append ``text`` to a real row (``record_id``, else the first real sample, else the first real
    input row) and remember it as a canary. ``column`` chooses an input row's column (default: its
    longest text column)."""
    text = " ".join(text.split())
    if len(text) < MIN_CHARS:
        raise StudioError(f"a canary must be distinctive: at least {MIN_CHARS} characters, not {text!r}")
    if any(c.text == text for c in canaries(nb)):
        raise StudioError(f"the canary {text!r} is already planted; choose another text")
    if record_id is None:
        record_id = first_seed_row(nb)
        if record_id is None:
            raise StudioError("no real rows to plant a canary in: import real data first (synth-studio import)")
    elif not is_made_real(nb, record_id):
        raise StudioError(f"record {record_id} is not a real record: plant canaries in real seed rows")
    rec = nb.record(record_id)
    if rec["output"] is not None and column is None:
        field, edit = "output", nb.edit_record(record_id, "output", f"{rec['output'].rstrip()} {text}", author=author)
    else:
        variables = dict(rec["variables"])
        texts = {k: v for k, v in variables.items() if isinstance(v, str)}
        if column is None:
            if not texts:
                raise StudioError(f"record {record_id} has no text column to plant a canary in")
            column = max(texts, key=lambda k: len(texts[k]))
        elif column not in texts:
            have = ", ".join(sorted(texts)) or "none"
            raise StudioError(f"record {record_id} has no text column {column!r} (its text columns: {have})")
        variables[column] = f"{texts[column].rstrip()} {text}".strip()
        field, edit = column, nb.edit_record(record_id, "variables", variables, author=author)
    assert edit is not None  # the text grew, so the edit changed something
    return Planted(add_canary(nb, text, record_id), field, edit)


@dataclass(frozen=True)
class CanaryHit:
    record_id: int
    canary: Canary


def _pattern(c: Canary) -> str:
    # case and spacing may change on the way through a model; the words may not
    return r"\s+".join(re.escape(word) for word in c.text.split())


def check_canaries(nb: Notebook, task: TaskState | None = None) -> list[CanaryHit]:
    """Score every synthetic sample for containing a planted canary (``canary``); returns the hits."""
    task = task or TaskState()
    planted = canaries(nb)
    if not planted:
        raise StudioError("no canaries planted yet: synth-studio canary NB.db add \"TEXT\"")
    pattern = re.compile("|".join(f"({_pattern(c)})" for c in planted), re.I)
    synth = synthetic_samples(nb)
    step = add_step(nb, "canary", "canary", {"canaries": [c.id for c in planted]})
    hits, scores = [], []
    for i, s in enumerate(synth):
        if i % 500 == 0:
            task.check()
            task.set_progress(i, len(synth), "canaries")
        m = pattern.search(s.output)
        if m is None:
            scores.append(Score(s.id, "canary", "validator", 0.0, True, f"contains none of {len(planted)} canaries"))
            continue
        c = planted[(m.lastindex or 1) - 1]
        hits.append(CanaryHit(s.id, c))
        where = f" planted in record #{c.record_id}" if c.record_id is not None else ""
        scores.append(Score(s.id, "canary", "validator", 1.0, False, f"contains canary #{c.id}{where}: \"{c.text}\""))
    save_scores(nb, scores, step)
    task.set_progress(len(synth), len(synth), "done")
    return hits
