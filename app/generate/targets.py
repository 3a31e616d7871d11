"""Target mix: how many kept records each category value (or input row) still lacks, and the
top-up run that asks for exactly those.

A categorical column of a prompt's front matter may declare ``target: N`` (or ``{value: N}``):
kept records wanted per value (``app/prompts/columns.py``). What counts as kept is the funnel's
business (``app.quality.coverage`` counts it, a stage above this one); this module is the pure
part: the counts' shape, the targets asked for on the command line, the missing numbers, and a
:class:`~app.generate.runs.RunPlan` whose rows pin the value each row fills.

A top-up run is an ordinary run with ``extra = {"pins": [...], "purpose": "top-up"}``: one pin
(``{column: value}``, or None for a row that only fills an input row's own target) per plan row.
Its seeds are keyed by (input row, place in the plan), so it may name one input row many times,
and it resumes slot by slot like any other run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from app.core.errors import StudioError
from app.generate.runs import RunPlan, prepare_run
from app.prompts.columns import Column, targets
from app.prompts.templates import PromptTemplate, parse_template
from app.store.notebook import Notebook
from backends.protocols import SamplerSettings

PURPOSE = "top-up"


class Count(NamedTuple):
    """One value's (or input row's) coverage: kept by the funnel, made in all, wanted kept."""

    kept: int
    made: int
    target: int

    @property
    def missing(self) -> int:
        return max(0, self.target - self.kept)


@dataclass(frozen=True)
class Coverage:
    """A prompt's coverage: per target column, value -> :class:`Count`; per input row (when a
    per-row target was asked for), input record id -> :class:`Count`."""

    prompt: str
    version: int  # the latest version, whose front matter the targets come from
    values: dict[str, dict[str, Count]] = field(default_factory=dict)
    rows: dict[int, Count] = field(default_factory=dict)
    row_numbers: dict[int, int] = field(default_factory=dict)  # input record id -> its 1-based row

    def value_missing(self) -> dict[str, dict[str, int]]:
        """column -> {value: kept records still missing}, only where something is missing."""
        out = {col: {v: c.missing for v, c in counts.items() if c.missing} for col, counts in self.values.items()}
        return {col: m for col, m in out.items() if m}

    def row_missing(self) -> dict[int, int]:
        return {rid: c.missing for rid, c in self.rows.items() if c.missing}

    @property
    def missing(self) -> int:
        return (sum(n for m in self.value_missing().values() for n in m.values())
                + sum(self.row_missing().values()))

    def row_label(self, input_id: int) -> str:
        n = self.row_numbers.get(input_id)
        return f"row {n} (#{input_id})" if n else f"#{input_id}"

    def to_dict(self) -> dict[str, Any]:
        def one(c: Count) -> dict[str, int]:
            return {"kept": c.kept, "made": c.made, "target": c.target, "missing": c.missing}

        return {"prompt": self.prompt, "version": self.version, "missing": self.missing,
                "columns": {col: {v: one(c) for v, c in counts.items()} for col, counts in self.values.items()},
                "rows": [{"input_record_id": rid, "row": self.row_numbers.get(rid), **one(c)}
                         for rid, c in self.rows.items()]}


def categorical(pt: PromptTemplate) -> dict[str, Column]:
    return {name: col for name, col in pt.columns.items() if col.kind == "categories"}


def parse_target_args(specs: Sequence[str]) -> dict[str, dict[str | None, int]]:
    """``COLUMN=N`` (every value of the column) or ``COLUMN:VALUE=N`` (that value) ->
    {column: {value or None: N}}; checked against a template by :func:`resolve_targets`."""
    out: dict[str, dict[str | None, int]] = {}
    for spec in specs:
        what, eq, n = spec.rpartition("=")
        if not eq or not what.strip() or not n.strip().isdigit():
            raise StudioError(f"--target {spec!r}: write COLUMN=N or COLUMN:VALUE=N (N a whole number >= 0)")
        column, colon, value = what.partition(":")
        out.setdefault(column.strip(), {})[value.strip() if colon else None] = int(n)
    return out


def resolve_targets(pt: PromptTemplate, asked: dict[str, dict[str | None, int]] | None = None,
                    ) -> dict[str, dict[str, int]]:
    """column -> {value: kept records wanted}: the ones ``asked`` for (see :func:`parse_target_args`),
    or else the ones the front matter declares."""
    if not asked:
        return targets(pt.columns)
    cats = categorical(pt)
    out: dict[str, dict[str, int]] = {}
    for column, wanted in asked.items():
        col = cats.get(column)
        if col is None:
            have = ", ".join(cats) or "none (declare one under columns: with categories:)"
            raise StudioError(f"--target {column}: not a categorical column of this prompt (its categorical "
                              f"columns: {have})")
        values = [str(v) for v in col.values]
        for value, n in wanted.items():
            if value is not None and value not in values:
                raise StudioError(f"--target {column}:{value}: not one of its categories ({', '.join(values)})")
            for v in values if value is None else [value]:
                out.setdefault(column, {})[v] = n
    return out


def pin_rows(missing: dict[str, dict[str, int]], columns: dict[str, Column]) -> list[dict[str, Any]]:
    """The pins of the rows that fill ``missing``: each column's values repeated by what they
    lack, and the columns zipped, so one row may fill a value of two columns at once."""
    lists: dict[str, list[Any]] = {}
    for column, wanted in missing.items():
        real = {str(v): v for v in columns[column].values}  # pin the category as written (1, not "1")
        lists[column] = [real.get(v, v) for v, n in wanted.items() for _ in range(n)]
    longest = max((len(v) for v in lists.values()), default=0)
    return [{c: vals[i] for c, vals in lists.items() if i < len(vals)} for i in range(longest)]


def assign_rows(pins: list[dict[str, Any]], inputs: Sequence[int | None], row_missing: dict[int, int],
                start: int = 0) -> tuple[list[int | None], list[dict[str, Any] | None]]:
    """The plan (one input row per plan row) and its pins: pinned rows go first to the input rows
    that lack kept records, then round-robin over ``inputs`` from ``start``; what those rows
    still lack afterwards gets rows of its own, with nothing pinned."""
    needy: list[int] = []
    for k in range(max(row_missing.values(), default=0)):  # interleaved: every needy row once, then again
        needy.extend(rid for rid in inputs if rid is not None and row_missing.get(rid, 0) > k)
    plan: list[int | None] = []
    out_pins: list[dict[str, Any] | None] = []
    turn = start
    for pin in pins:
        if needy:
            plan.append(needy.pop(0))
        else:
            plan.append(inputs[turn % len(inputs)])
            turn += 1
        out_pins.append(pin)
    plan.extend(needy)
    out_pins.extend([None] * len(needy))
    return plan, out_pins


def fresh_seed(nb: Notebook, prompt_name: str, base: int) -> int:
    """The first seed from ``base`` up that no earlier top-up of this prompt used, so each round
    (and a top-up run again later) asks for new samples rather than the same ones."""
    versions = {pv.id for pv in nb.prompt_versions() if pv.name == prompt_name}
    used = {r.seed for r in nb.runs() if r.prompt_version_id in versions and r.settings.get("purpose") == PURPOSE}
    seed = base
    while seed in used:
        seed += 1
    return seed


def plan_topup(nb: Notebook, prompt_name: str, coverage: Coverage, *, seed: int = 0,
               settings: SamplerSettings | None = None, start: int = 0) -> RunPlan | None:
    """A run of the prompt's latest version that asks for what ``coverage`` lacks: one sample per
    missing kept record, its value pinned; None when nothing is missing. The template, rows and
    settings are checked as for any run (:func:`~app.generate.runs.prepare_run`)."""
    missing, row_missing = coverage.value_missing(), coverage.row_missing()
    if not missing and not row_missing:
        return None
    base = prepare_run(nb, prompt_name, seed=seed, settings=settings)
    pt_columns = categorical(parse_template(nb.prompt_version_by_id(base.prompt_version_id).template))
    unknown = set(missing) - set(pt_columns)
    if unknown:
        raise StudioError(f"the latest version of {prompt_name!r} has no column {', '.join(sorted(unknown))}")
    if row_missing and base.plan == [None]:
        raise StudioError("a per-row target needs input rows; this notebook has none")
    plan, pins = assign_rows(pin_rows(missing, pt_columns), list(base.plan), row_missing, start)
    return replace(base, samples_per_row=1, plan=plan, extra={"pins": pins, "purpose": PURPOSE})

