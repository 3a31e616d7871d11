"""Redaction: each span of personal data in a record replaced by a placeholder ([EMAIL], [PHONE],
[CARD], [IBAN], [IP]) through :meth:`Notebook.edit_record`, so every redaction is in the record's
history and undoing the edit puts the text back."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from app.core.errors import StudioError
from app.core.tasks import TaskState
from app.quality.pii import KINDS, find_pii, redact_text
from app.store.criteria import latest_versions
from app.store.notebook import Edit, Notebook
from app.store.privacy import sample_outputs


@dataclass(frozen=True)
class Redaction:
    record_id: int
    field: str  # output, or variables for an input row
    kinds: Counter[str]  # spans replaced, by kind
    edit: Edit


def rule_kinds(nb: Notebook) -> list[str]:
    """The kinds the notebook's active pii rules look for (every kind when it has none)."""
    found: set[str] = set()
    for v in latest_versions(nb, "rule", active_only=True):
        if v.spec.get("type") == "pii":
            found |= set(v.spec.get("kinds") or KINDS)
    return [k for k in KINDS if k in found] or list(KINDS)


def check_kinds(kinds: Iterable[str]) -> list[str]:
    kinds = list(kinds)
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise StudioError(f"unknown kind {bad[0]!r} (kinds: {', '.join(KINDS)})" if bad
                          else f"choose at least one kind ({', '.join(KINDS)})")
    return kinds


def redact(nb: Notebook, record_ids: Sequence[int] | None = None, kinds: Iterable[str] | None = None,
           task: TaskState | None = None, author: str = "redact") -> list[Redaction]:
    """Replace the personal data of the chosen ``kinds`` (default: the notebook's pii rules' kinds) in
    ``record_ids`` (a sample's text, an input row's text columns), or in every sample whose text has
    some (every record the pii rule fails). Returns what each record had replaced."""
    task = task or TaskState()
    wanted = check_kinds(kinds) if kinds is not None else rule_kinds(nb)
    if record_ids is None:
        targets = [rid for rid, text in sample_outputs(nb) if find_pii(text, wanted)]
    else:
        targets = list(dict.fromkeys(record_ids))
        for rid in targets:
            nb.record(rid)  # a clear error for an unknown id before anything changes
    done = []
    for i, rid in enumerate(targets):
        task.check()
        task.set_progress(i, len(targets), "redacting")
        rec = nb.record(rid)
        counts: Counter[str] = Counter()
        if rec["output"] is not None:
            new, spans = redact_text(rec["output"], wanted)
            counts.update(s.kind for s in spans)
            field, edit = "output", nb.edit_record(rid, "output", new, author=author) if spans else None
        else:
            variables = dict(rec["variables"])
            for key, value in variables.items():
                if isinstance(value, str):
                    variables[key], spans = redact_text(value, wanted)
                    counts.update(s.kind for s in spans)
            field, edit = "variables", nb.edit_record(rid, "variables", variables, author=author) if counts else None
        if edit is not None:
            done.append(Redaction(rid, field, counts, edit))
    task.set_progress(len(targets), len(targets), "done")
    return done
