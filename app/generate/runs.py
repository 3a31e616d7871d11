"""Generation runs: every input row x K samples, each record committed as it finishes.

A run is planned once (which input rows, how many samples, which seed, which
model file and settings) and that plan is stored before any model call. Each
slot (row, sample) then becomes one record the moment it is complete, so a run
stopped in any way (cancel, crash, kill -9) keeps every finished record, and
``resume`` fills in exactly the slots that are missing.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import Cancelled, ModelError, StudioError, TemplateError
from app.core.paths import model_label
from app.core.tasks import TaskState
from app.prompts.structured import parse_output, schema_json
from app.prompts.templates import PromptTemplate, check_rows, parse_template, render, slot_variables
from app.store.notebook import Notebook, PromptVersion, Run
from app.store.records import chain_sources, few_shot_samples, plan_records
from app.store.runs import run_slot_record_ids, spread_runs
from backends.protocols import (
    GenerationRequest,
    ModelInfo,
    SamplerSettings,
    TextGenerator,
)

CHUNK = 256  # requests handed to the backend at a time (it batches them and streams results back)


def sample_seed(run_seed: int, input_id: int | str | None, sample_index: int) -> int:
    """The seed of one sample: stable for (run seed, input row, sample number).

    Keyed by the input record's id rather than its position, so two prompt
    versions run with the same seed see the same seeds for the same rows.
    """
    digest = hashlib.sha256(f"{run_seed}:{input_id}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def few_shot_pool(nb: Notebook, pt: PromptTemplate, limit: int = 200) -> list[dict[str, Any]]:
    if pt.few_shot_k <= 0 and "examples" not in pt.body and "few_shot" not in pt.body:
        return []
    return [{"id": rid, "output": output, **variables}
            for rid, output, variables in few_shot_samples(nb, pt.few_shot_from, limit)]


def preview(
    nb: Notebook, prompt_name: str, *, row: int = 1, seed: int = 0, version: int | None = None
) -> tuple[str, dict[str, Any]]:
    """Render a saved prompt against the ``row``-th input row (1-based) exactly as sample 0 of a run would."""
    pv = nb.prompt_version(prompt_name, version)
    return preview_text(nb, pv.template, row=row, seed=seed)


def preview_text(nb: Notebook, template: str, *, row: int = 1, seed: int = 0) -> tuple[str, dict[str, Any]]:
    """Render any template text (e.g. unsaved edits) against an input row, without the model."""
    pt = parse_template(template)
    inputs = nb.input_rows()
    if inputs:
        if not 1 <= row <= len(inputs):
            raise StudioError(f"row {row} does not exist (the notebook has {len(inputs)} input rows)")
        input_id, variables = inputs[row - 1]
    else:
        input_id, variables = None, {}
    missing = pt.required_variables - set(variables)
    if missing:
        have = ", ".join(sorted(variables)) or "none"
        where = f"input row {row}" if inputs else "the notebook (no input rows yet)"
        raise TemplateError(f"the template uses {', '.join(sorted(missing))} but {where} has no such column "
                            f"(its columns: {have})")
    variables = slot_variables(pt, variables, sample_seed(seed, input_id, 0))
    return render(pt, variables, seed=sample_seed(seed, input_id, 0), examples=few_shot_pool(nb, pt)), variables


# what a chained record reads from its parent but does not store (its parent link keeps them)
PARENT_ONLY = ("text", "output")


def plan_variables(nb: Notebook, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Variables of each planned record. Input rows give their columns; a sample (the parent
    of a chained or transformed record) gives its own variables, its text as ``output`` (and
    ``text``), and, for a structured output, each field that no variable already names."""
    out: dict[int, dict[str, Any]] = {}
    for rid, role, variables, output in plan_records(nb, ids):
        if role == "sample":
            fields = parse_output(output) or {}
            variables = {**{k: v for k, v in fields.items() if k not in variables}, **variables,
                         "text": output or "", "output": output or ""}
        out[rid] = variables
    return out


def parse_over(nb: Notebook, over: str) -> tuple[str, list[int]]:
    """``run:12``, ``prompt:NAME`` or ``prompt:NAME@v2`` -> (its canonical spelling, the parent
    samples a chained prompt runs over)."""
    kind, _, what = over.partition(":")
    if kind == "run" and what.strip().isdigit():
        run = nb.run(int(what))
        return f"run:{run.id}", chain_sources(nb, run_id=run.id)
    if kind == "prompt" and what:
        name, _, ver = what.partition("@")
        if ver:
            if not ver.lstrip("v").isdigit():
                raise StudioError(f"--over {over}: write the version as NAME@v2")
            pv = nb.prompt_version(name, int(ver.lstrip("v")))
            return f"prompt:{name}@v{pv.version}", chain_sources(nb, prompt_version_ids=[pv.id])
        nb.prompt_version(name)  # a clear error when there is no such prompt
        ids = [v.id for v in nb.prompt_versions() if v.name == name]
        return f"prompt:{name}", chain_sources(nb, prompt_version_ids=ids)
    raise StudioError(f"--over {over!r}: use run:ID, prompt:NAME or prompt:NAME@vN")


@dataclass
class _Slot:
    row_index: int
    sample_index: int
    input_id: int | None
    variables: dict[str, Any]
    seed: int
    prompt: str


def row_key(run_settings: dict[str, Any], input_id: int | None, row_index: int) -> int | str | None:
    """What a row's sample seeds are keyed by: its input record, or, in a run whose plan may
    repeat an input (a top-up, tabular rows), the input and the row's place in the plan."""
    return f"{input_id}/{row_index}" if run_settings.get("pins") is not None else input_id


def _stored(variables: dict[str, Any], chained: bool, parent: dict[str, Any],
            given: list[str] | None = None, own: set[str] | None = None) -> dict[str, Any]:
    """What a record keeps of its variables: a chained record does not copy its parent's text
    and fields (its parent link leads to them); a tabular row keeps only the given columns
    (and its own sampled or pinned values), not the real row's other values."""
    if given is not None:
        keep = set(given) | (own or set())
        return {k: v for k, v in variables.items() if k in keep}
    if not chained:
        return variables
    fields = parse_output(parent.get("output")) or {}
    return {k: v for k, v in variables.items()
            if k not in PARENT_ONLY and not (k in fields and parent.get(k) == fields[k])}


def _slots(nb: Notebook, run: Run, pv: PromptVersion) -> tuple[int, Iterator[_Slot]]:
    """How many slots of ``run`` are missing, and those slots, their prompts rendered as they are
    taken: a plan of a million rows starts generating at once instead of rendering them all first."""
    pt = parse_template(pv.template)
    inputs = plan_variables(nb, [i for i in run.plan if i is not None])
    rows = []
    for i in run.plan:
        if i is not None and i not in inputs:
            raise StudioError(f"input row {i} of run {run.id} no longer exists")
        rows.append(inputs.get(i, {}) if i is not None else {})
    check_rows(pt, rows)
    examples = few_shot_pool(nb, pt)
    done = nb.done_slots(run.id)
    pins: list[dict[str, Any] | None] = run.settings.get("pins") or [None] * len(run.plan)
    chained = bool(run.settings.get("over"))
    given = run.settings.get("given") if isinstance(run.settings.get("given"), list) else None
    owned = owned_slots(run)
    todo = [(row_index, s) for row_index in range(len(run.plan)) for s in range(run.samples_per_row)
            if (row_index, s) not in done and (owned is None or (row_index, s) in owned)]

    def rendered() -> Iterator[_Slot]:
        for row_index, s in todo:
            input_id, variables = run.plan[row_index], rows[row_index]
            seed = sample_seed(run.seed, row_key(run.settings, input_id, row_index), s)
            values = slot_variables(pt, variables, seed, pins[row_index])
            prompt = render(pt, values, seed=seed, examples=examples)
            own = set(pt.columns) | set(pins[row_index] or {})
            yield _Slot(row_index, s, input_id, _stored(values, chained, variables, given, own), seed, prompt)

    return len(todo), rendered()


# -- several models: one generation spread over them ---------------------------------------


def spread_parts(weights: Sequence[float], n: int) -> list[int]:
    """Which model makes each of ``n`` slots, in slot order: smooth weighted round-robin, so the
    counts follow the weights exactly (2:1 over 30 slots is 20 and 10) and the models interleave
    (equal weights are plain round-robin). Deterministic: a resume recomputes the same split."""
    if not weights or any(w <= 0 for w in weights):
        raise StudioError("model weights must be positive numbers")
    total = float(sum(weights))
    current = [0.0] * len(weights)
    parts = []
    for _ in range(n):
        for j, w in enumerate(weights):
            current[j] += w
        j = max(range(len(weights)), key=lambda i: (current[i], -i))
        current[j] -= total
        parts.append(j)
    return parts


def owned_slots(run: Run) -> set[tuple[int, int]] | None:
    """The (row, sample) slots this run makes when its generation is spread over several models
    (slots in row order, then sample order); None for a one-model run (every slot)."""
    spread = run.settings.get("spread")
    if not isinstance(spread, dict):
        return None
    k = run.samples_per_row
    parts = spread_parts(spread["weights"], len(run.plan) * k)
    return {(i // k, i % k) for i, part in enumerate(parts) if part == spread["part"]}


def planned_samples(run: Run) -> int:
    """How many samples the run makes (its share, when spread over several models)."""
    owned = owned_slots(run)
    return len(run.plan) * run.samples_per_row if owned is None else len(owned)


def parse_model_weights(specs: Sequence[str]) -> list[tuple[str, float]]:
    """``a.gguf b.gguf=2 http://host/v1#m=0.5`` -> [(model, weight)]; a model written twice is refused."""
    out: list[tuple[str, float]] = []
    for spec in specs:
        model, w = spec, 1.0
        head, eq, tail = spec.rpartition("=")
        if eq and head:
            try:
                model, w = head, float(tail)
            except ValueError:
                pass  # the "=" belongs to the path
        if not model or (eq and not head):
            raise StudioError(f"--models {spec!r}: write a model path, optionally followed by =WEIGHT")
        if not 0 < w < float("inf"):
            raise StudioError(f"--models {spec!r}: the weight must be a positive number")
        if model in [m for m, _ in out]:
            raise StudioError(f"--models: {model} is named twice (give it a larger weight instead)")
        out.append((model, w))
    if len(out) < 2:
        raise StudioError("--models needs at least two models (use --model for one)")
    return out


def create_spread_runs(nb: Notebook, plan: RunPlan, models: Sequence[tuple[ModelInfo, float]]) -> list[Run]:
    """Store a plan spread over several models: one run per model (each keeps its own model's
    lineage), the same plan and seeds, each making its share of the slots."""
    group = secrets.token_hex(6)
    weights = [w for _, w in models]
    labels = [model_label(m.path, m.backend) for m, _ in models]
    runs = []
    for part, (info, _) in enumerate(models):
        extra = {**plan.extra, "spread": {"group": group, "part": part, "weights": weights, "models": labels}}
        runs.append(create_run(nb, RunPlan(plan.prompt_version_id, plan.settings, plan.seed, plan.samples_per_row,
                                           plan.plan, extra), info))
    return runs


def spread_group(nb: Notebook, run: Run) -> list[Run]:
    """Every run of the generation ``run`` belongs to (just ``run`` when it used one model)."""
    spread = run.settings.get("spread")
    return spread_runs(nb, spread["group"]) if isinstance(spread, dict) else [run]


@dataclass(frozen=True)
class RunPlan:
    """Everything a run needs, checked, but not yet written to the notebook."""

    prompt_version_id: int
    settings: SamplerSettings
    seed: int
    samples_per_row: int
    plan: Sequence[int | None]  # input record ids, one per row (None: a template with no input rows)
    # stored with the run's settings: "over" (the parents of a chained run), "pins" (per row: the
    # variables a top-up fixes), "purpose" (e.g. "top-up", "tabular")
    extra: dict[str, Any] = field(default_factory=dict)


CHECK_ROWS = 256  # rows rendered when a run is planned


def prepare_run(
    nb: Notebook,
    prompt_name: str,
    *,
    samples: int = 1,
    limit_rows: int | None = None,
    seed: int = 0,
    settings: SamplerSettings | None = None,
    prompt_version: int | None = None,
    over: str | None = None,
    only: Sequence[int] | None = None,
) -> RunPlan:
    """Check everything a run needs without writing anything (template, rows, settings).

    ``over`` chains the prompt onto another's samples (``run:12``, ``prompt:NAME@v2``): each
    parent sample is a row, read as its variables plus ``output`` and its structured fields;
    ``only`` keeps just those parents (e.g. the kept set)."""
    if samples < 1:
        raise StudioError("--samples must be at least 1")
    if limit_rows is not None and limit_rows < 1:
        raise StudioError("--limit-rows must be at least 1")
    settings = settings or SamplerSettings()
    if settings.max_tokens < 1:
        raise StudioError("--max-tokens must be at least 1")
    if not 0 <= settings.temperature <= 5:
        raise StudioError("--temperature must be between 0 and 5")
    pv = nb.prompt_version(prompt_name, prompt_version)
    pt = parse_template(pv.template)
    extra: dict[str, Any] = {}
    if over is not None:
        spelled, parents = parse_over(nb, over)
        if only is not None:
            keep = set(only)
            parents = [p for p in parents if p in keep]
        if not parents:
            raise StudioError(f"--over {spelled}: no samples to run over (none made yet, all rejected, "
                              "or none kept)")
        parents = parents[:limit_rows] if limit_rows else parents
        variables_of = plan_variables(nb, parents)
        inputs = [(p, variables_of[p]) for p in parents]
        extra["over"] = spelled
    else:
        inputs = nb.input_rows(limit_rows)
    if not inputs and pt.required_variables:
        raise StudioError(
            f"the template uses {', '.join(sorted(pt.required_variables))} but the notebook has no "
            "input rows; import a table first (synth-studio import NB.db FILE)"
        )
    plan: list[int | None] = [i for i, _ in inputs] or [None]
    rows = [v for _, v in inputs] or [{}]
    check_rows(pt, rows)
    # Render the first rows' samples now so a template error surfaces before the run exists (every
    # row's variables were checked above; the rest render as they are generated, so a big plan
    # starts at once).
    examples = few_shot_pool(nb, pt)
    for input_id, variables in itertools.islice(zip(plan, rows), CHECK_ROWS):
        s0 = sample_seed(seed, input_id, 0)
        render(pt, slot_variables(pt, variables, s0), seed=s0, examples=examples)
    return RunPlan(pv.id, settings, seed, samples, plan, extra)


def matching_run(nb: Notebook, plan: RunPlan, *, model_sha256: str | None, model_path: str | None) -> Run | None:
    """The newest run of exactly this plan (prompt version, rows, samples, seed, settings) on this
    model (the same file content, or for a server the same address), or None. Running it again
    would only add copies: a notebook's Run all uses this to do nothing the second time."""
    want = json.loads(json.dumps({**plan.settings.to_dict(), **plan.extra}, sort_keys=True))
    for run in reversed(nb.runs()):
        have = {k: v for k, v in run.settings.items() if k != "server_model"}
        same_model = (run.model_sha256 == model_sha256) if model_sha256 else (run.model_path == model_path)
        if (run.prompt_version_id == plan.prompt_version_id and run.seed == plan.seed
                and run.samples_per_row == plan.samples_per_row and list(run.plan) == list(plan.plan)
                and have == want and same_model):
            return run
    return None


def create_run(nb: Notebook, plan: RunPlan, model: ModelInfo) -> Run:
    """Store a checked plan as a new run (status ``running``) before any model call."""
    return nb.create_run(
        prompt_version_id=plan.prompt_version_id,
        backend=model.backend,
        model_path=model.path,
        model_sha256=model.sha256,
        # a server model has no file to hash: keep what the server reported about it next to its id
        settings={**plan.settings.to_dict(), **plan.extra,
                  **({"server_model": json.loads(model.reported)} if model.reported else {})},
        seed=plan.seed,
        samples_per_row=plan.samples_per_row,
        plan=plan.plan,
    )


def resumable_run(nb: Notebook, prompt_name: str, model: ModelInfo) -> Run:
    nb.prompt_version(prompt_name)  # a clear error if the prompt does not exist
    run = nb.latest_unfinished_run(prompt_name)
    if run is None:
        raise StudioError(f"nothing to resume: every run of prompt {prompt_name!r} is complete")
    if run.model_sha256 != model.sha256:
        raise ModelError(
            f"run {run.id} was made with a different model file (sha256 {str(run.model_sha256)[:12]}..., "
            f"{run.model_path}); resume it with that model so its records stay comparable"
        )
    return run


def resumable_spread(nb: Notebook, prompt_name: str) -> list[Run] | None:
    """The unfinished runs of the prompt's last generation when it was spread over several models
    (each resumes with its own model file); None when that generation used one model."""
    nb.prompt_version(prompt_name)
    run = nb.latest_unfinished_run(prompt_name)
    if run is None or not isinstance(run.settings.get("spread"), dict):
        return None
    return [r for r in spread_group(nb, run) if r.status != "completed"]


def execute_run(
    nb: Notebook,
    run: Run,
    generator: TextGenerator,
    task: TaskState | None = None,
    on_record: Callable[[int], None] | None = None,
    on_token: Callable[[Any, str], None] | None = None,
    group: tuple[int, int, str] | None = None,
) -> Run:
    """Generate every missing slot of ``run``; returns the run with its final status.
    ``group`` = (samples made before this run, samples in all, label) when the run is one part
    of a generation spread over several models, so progress counts the whole generation."""
    task = task or TaskState()
    pv = nb.prompt_version_by_id(run.prompt_version_id)
    settings = SamplerSettings.from_dict(run.settings)
    derivation = pv.name if pv.name.startswith("transform:") else ("chain" if run.settings.get("over") else None)
    schema = parse_template(pv.template).output_schema
    json_schema = schema_json(schema) if schema is not None else None
    before, total, label = group or (0, planned_samples(run), f"run {run.id}")
    missing, slots = _slots(nb, run, pv)
    done = before + planned_samples(run) - missing
    nb.set_run_status(run.id, "running")
    task.set_progress(done, total, label)
    try:
        while True:
            task.check()
            chunk = {(s.row_index, s.sample_index): s for s in itertools.islice(slots, CHUNK)}
            if not chunk:
                break
            requests = [
                GenerationRequest(
                    key=key,
                    messages=({"role": "user", "content": s.prompt},),
                    seed=s.seed,
                    settings=settings,
                    json_schema=json_schema,
                )
                for key, s in chunk.items()
            ]
            for result in generator.generate(requests, cancel=task, on_token=on_token):
                if result.finish_reason == "cancelled":
                    break
                s = chunk[result.key]
                record_id = nb.add_generated_record(
                    run_id=run.id,
                    prompt_version_id=pv.id,
                    input_record_id=s.input_id,
                    row_index=s.row_index,
                    sample_index=s.sample_index,
                    seed=s.seed,
                    variables=s.variables,
                    prompt=s.prompt,
                    output=result.text,
                    prompt_tokens=result.prompt_tokens,
                    completion_tokens=result.completion_tokens,
                    token_logprobs=result.token_logprobs,
                    finish_reason=result.finish_reason,
                    derivation=derivation,
                )
                done += 1
                task.set_progress(done, total, label)
                if on_record is not None:
                    on_record(record_id)
            task.check()
    except Cancelled:
        nb.set_run_status(run.id, "cancelled")
        return nb.run(run.id)
    except KeyboardInterrupt:  # Ctrl-C that did not wait for the next check: stopped, not failed (resumable)
        nb.set_run_status(run.id, "cancelled")
        raise
    except BaseException as exc:
        nb.set_run_status(run.id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    nb.set_run_status(run.id, "completed")
    return nb.run(run.id)


def iter_run_records(nb: Notebook, run_id: int) -> Iterator[dict[str, Any]]:
    for record_id in run_slot_record_ids(nb, run_id):
        yield nb.record(record_id)
