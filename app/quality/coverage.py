"""Coverage of a target mix, and top-up runs that fill what the funnel dropped.

``coverage`` counts, per value of each target column (``target:`` in a categorical column of
the prompt's front matter, or targets asked for), the records of that prompt (any version) the
funnel keeps, against the target; with a per-row target, also the kept records of each input
row. ``topup`` generates, round by round, one sample per missing kept record with the value it
fills pinned (``app.generate.targets``), validates the new records and recomputes the funnel,
until nothing is missing, the rounds run out, or the funnel drops everything the top-up makes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from app.core.tasks import TaskState
from app.generate.runs import create_run, execute_run
from app.generate.targets import Count, Coverage, categorical, fresh_seed, plan_topup, resolve_targets
from app.prompts.templates import parse_template
from app.quality.funnel import FunnelResult, compute_funnel
from app.quality.validators import Rule
from app.store.coverage import input_row_counts
from app.store.notebook import Notebook
from app.store.queries import prompt_names, run_record_ids
from app.store.records import category_counts
from backends.protocols import SamplerSettings, TextGenerator


def coverage(nb: Notebook, prompt_name: str, column: str | None = None, *,
             asked: dict[str, dict[str | None, int]] | None = None, per_row: int | None = None,
             kept: Sequence[int] | None = None) -> Coverage:
    """For each target column of the prompt's latest version (or just ``column``, which may be
    any categorical column): value -> (kept, made, target). ``asked`` replaces the front
    matter's targets (``app.generate.targets.parse_target_args``); ``per_row`` adds each input
    row's kept records against that target. ``kept`` is the funnel's kept set when the caller
    has it (default: computed now, without writing verdicts)."""
    from app.core.errors import StudioError

    pv = nb.prompt_version(prompt_name)
    pt = parse_template(pv.template)
    wanted = resolve_targets(pt, asked)
    if column is not None:
        cats = categorical(pt)
        if column not in cats:
            raise StudioError(f"{prompt_name!r} has no categorical column {column!r} "
                              f"(its categorical columns: {', '.join(cats) or 'none'})")
        wanted = {column: wanted.get(column) or {str(v): 0 for v in cats[column].values}}
    if per_row is not None and per_row < 0:
        raise StudioError("--per-row must be a whole number >= 0")
    if kept is None:
        kept = compute_funnel(nb, save=False).kept_ids if wanted or per_row else []
    values: dict[str, dict[str, Count]] = {}
    for col, targets in wanted.items():
        made = category_counts(nb, prompt_name, col)
        kept_n = category_counts(nb, prompt_name, col, kept)
        values[col] = {v: Count(kept_n.get(v, 0), made.get(v, 0), n) for v, n in targets.items()}
    rows: dict[int, Count] = {}
    numbers: dict[int, int] = {}
    if per_row is not None:
        made_r, kept_r = input_row_counts(nb, prompt_name), input_row_counts(nb, prompt_name, kept)
        for n, (rid, _variables) in enumerate(nb.input_rows(), 1):
            rows[rid] = Count(kept_r.get(rid, 0), made_r.get(rid, 0), per_row)
            numbers[rid] = n
    return Coverage(prompt_name, pv.version, values, rows, numbers)


def target_prompts(nb: Notebook) -> list[str]:
    """The prompts whose latest version declares a target (what the window's coverage shows)."""
    from app.core.errors import TemplateError

    out = []
    for name in prompt_names(nb):
        try:
            if resolve_targets(parse_template(nb.prompt_version(name).template)):
                out.append(name)
        except TemplateError:  # a version saved with a broken front matter has no targets to show
            continue
    return out


def notebook_coverage(nb: Notebook) -> list[Coverage]:
    """Coverage of every prompt with targets, from one computation of the funnel."""
    names = target_prompts(nb)
    if not names:
        return []
    kept = compute_funnel(nb, save=False).kept_ids
    return [coverage(nb, name, kept=kept) for name in names]


# -- top-up -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    """One top-up round: its run, what it made and kept, and what is still missing after it."""

    number: int
    run_id: int
    made: int
    kept: int
    coverage: Coverage
    dropped_at: tuple[str, str, int] | None = None  # the stage that dropped most of its records, a reason, how many


@dataclass
class TopUp:
    prompt: str
    before: Coverage
    rounds: list[Round] = field(default_factory=list)
    after: Coverage | None = None
    stopped: str = ""  # why it stopped early: "" (complete or out of rounds), "cancelled", "kept nothing"

    @property
    def message(self) -> str:
        after = self.after or self.before
        if self.stopped == "cancelled":
            return "top-up cancelled: every record made before the stop is kept (and counts next time)"
        if self.stopped == "kept nothing":
            last = self.rounds[-1]
            where = (f"; most were dropped by {last.dropped_at[0]} ({last.dropped_at[2]} of {last.made}: "
                     f"{last.dropped_at[1]})" if last.dropped_at else "")
            return (f"stopped: round {last.number} kept none of its {last.made} new records{where}. "
                    "Another round would do the same; loosen that stage or change the prompt.")
        if not after.missing:
            return ("nothing missing: every target is met" if not self.rounds
                    else f"every target met after {len(self.rounds)} round(s)")
        return (f"still missing {after.missing} kept records after {len(self.rounds)} round(s); "
                "run the top-up again or give it more --rounds")


def _dropped_most(result: FunnelResult, ids: Sequence[int]) -> tuple[str, str, int] | None:
    dropped = [result.verdicts[i] for i in ids if i in result.verdicts and not result.verdicts[i].kept]
    if not dropped:
        return None
    stage, n = Counter(v.stage or "?" for v in dropped).most_common(1)[0]
    reason = Counter(v.reason or "" for v in dropped if v.stage == stage).most_common(1)[0][0]
    return stage, reason, n


def topup(nb: Notebook, generator: Callable[[], TextGenerator], prompt_name: str, *,
          asked: dict[str, dict[str | None, int]] | None = None, per_row: int | None = None,
          rules: list[Rule] | None = None, rules_source: str = "", rounds: int = 5, seed: int = 0,
          settings: SamplerSettings | None = None, task: TaskState | None = None,
          on_round: Callable[[Round], None] | None = None,
          on_record: Callable[[int], None] | None = None) -> TopUp:
    """Generate until every target is met: each round asks for one sample per missing kept
    record (the value it fills pinned, under a seed no earlier top-up used), validates (with
    ``rules``, default the notebook's active rules, plus the automatic output-schema check) and
    recomputes the funnel. Stops when nothing is missing, after ``rounds``, when cancelled, or
    when the funnel has dropped every record it made (e.g. a rule no output can pass). ``generator`` is called once, only if a round runs."""
    from app.core.errors import StudioError
    from app.quality.steps import validate

    if rounds < 1:
        raise StudioError("--rounds must be at least 1")
    task = task or TaskState()
    # every record is validated by the same rules before counting, so old and new records are judged alike
    validate(nb, rules, task, source=rules_source)
    funnel = compute_funnel(nb)
    cov = coverage(nb, prompt_name, asked=asked, per_row=per_row, kept=funnel.kept_ids)
    if not cov.values and not cov.rows:
        raise StudioError(f"{prompt_name!r} has no targets: declare `target: N` in a categorical column of its "
                          "front matter, or give --target COLUMN=N or --per-row N")
    result = TopUp(prompt_name, cov)
    for number in range(1, rounds + 1):
        if not cov.missing:
            break
        made_so_far = sum(c.made for counts in cov.values.values() for c in counts.values())
        plan = plan_topup(nb, prompt_name, cov, seed=fresh_seed(nb, prompt_name, seed), settings=settings,
                          start=made_so_far)
        if plan is None:
            break
        gen = generator()
        run = execute_run(nb, create_run(nb, plan, gen.info), gen, task, on_record=on_record)
        ids = run_record_ids(nb, run.id)
        if run.status == "cancelled":
            result.stopped = "cancelled"
            break
        validate(nb, rules, task, source=rules_source)
        funnel = compute_funnel(nb)
        cov = coverage(nb, prompt_name, asked=asked, per_row=per_row, kept=funnel.kept_ids)
        kept = sum(1 for i in ids if funnel.verdicts.get(i) is not None and funnel.verdicts[i].kept)
        done = Round(number, run.id, len(ids), kept, cov, _dropped_most(funnel, ids))
        result.rounds.append(done)
        if on_round is not None:
            on_round(done)
        if not any(r.kept for r in result.rounds):
            # the funnel dropped every record this top-up made: another round would only do the same
            # (a small round that keeps nothing after others kept some is bad luck; the next one asks again)
            result.stopped = "kept nothing"
            break
    result.after = cov
    return result
