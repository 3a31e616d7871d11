"""Comparing two prompt versions on the same input rows and seeds.

Both versions run with the same plan and the same per-sample seeds (seeds are
keyed by input row, not by version), so each pair of outputs differs only by
the template. The comparison shows the template diff, the outputs side by side
and metric deltas: length, diversity, collapse, and pass rates of any validator
or judge that has scored both runs.

Comparison runs are marked (settings ``purpose``: ``compare``) and stay out of the dataset:
the funnel counts them but does not keep them, so they are neither exported nor frozen into a
version, until a person adds a run (:func:`adopt_comparison`; purpose ``compare-adopted``).
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from typing import Any

from app.core.errors import StudioError
from app.core.tasks import TaskState
from app.generate.runs import create_run, execute_run, prepare_run
from app.quality.diversity import text_metrics
from app.store.notebook import Notebook, Run
from app.store.records import set_run_purpose
from app.store.runs import run_samples
from app.store.scores import pass_rates
from backends.protocols import SamplerSettings, TextGenerator

COMPARE = "compare"  # a run's settings purpose: made to compare versions, not in the dataset
ADOPTED = "compare-adopted"  # a comparison run a person added to the dataset


def run_versions(nb: Notebook, name: str, a: int, b: int, generator: TextGenerator, *, samples: int = 1,
                 limit_rows: int | None = 5, seed: int = 0, settings: SamplerSettings | None = None,
                 task: TaskState | None = None) -> tuple[Run, Run]:
    """Run versions ``a`` and ``b`` of prompt ``name`` on the same rows and seeds, as comparison
    runs (outside the dataset until :func:`adopt_comparison`)."""
    if a == b:
        raise StudioError("choose two different versions to compare")
    plans = [prepare_run(nb, name, samples=samples, limit_rows=limit_rows, seed=seed, settings=settings,
                         prompt_version=v) for v in (a, b)]  # both checked before either runs
    plans = [replace(p, extra={**p.extra, "purpose": COMPARE}) for p in plans]
    runs = []
    for plan in plans:
        run = execute_run(nb, create_run(nb, plan, generator.info), generator, task)
        if run.status != "completed":
            raise StudioError(f"run {run.id} was {run.status}; the comparison needs both runs complete")
        runs.append(run)
    return runs[0], runs[1]


def in_dataset(run: Run) -> bool:
    """Whether a run's samples count in the funnel (all but comparison runs no one added)."""
    return run.settings.get("purpose") != COMPARE


def adopt_comparison(nb: Notebook, run_id: int) -> bool:
    """Add comparison run ``run_id``'s samples to the dataset (the funnel then filters them like any
    others); False when they are in it already."""
    run = nb.run(run_id)
    if in_dataset(run):
        return False
    set_run_purpose(nb, run_id, ADOPTED)
    return True


def _records(nb: Notebook, run_id: int) -> dict[tuple[int | None, int], dict[str, Any]]:
    return {(r["input_record_id"], r["sample_index"]): r for r in run_samples(nb, run_id)}


def _pass_rates(nb: Notebook, ids: list[int]) -> dict[str, float]:
    if not ids:
        return {}
    return pass_rates(nb, ids)


def compare_runs(nb: Notebook, run_a: int, run_b: int) -> dict[str, Any]:
    ra, rb = nb.run(run_a), nb.run(run_b)
    pa, pb = nb.prompt_version_by_id(ra.prompt_version_id), nb.prompt_version_by_id(rb.prompt_version_id)
    diff = list(difflib.unified_diff(pa.template.splitlines(), pb.template.splitlines(),
                                     fromfile=pa.label, tofile=pb.label, lineterm=""))
    recs_a, recs_b = _records(nb, run_a), _records(nb, run_b)
    keys = [k for k in recs_a if k in recs_b]
    pairs = [{"input_record_id": k[0], "sample_index": k[1], "seed": recs_a[k]["seed"],
              "seed_b": recs_b[k]["seed"], "a": recs_a[k]["output"], "b": recs_b[k]["output"],
              "a_id": recs_a[k]["id"], "b_id": recs_b[k]["id"]} for k in keys]

    def metrics(recs: dict, ids: list[int]) -> dict[str, Any]:
        outs = [recs[k]["output"] for k in keys]
        per_input: dict[Any, list[str]] = {}
        for k in keys:
            per_input.setdefault(k[0], []).append(recs[k]["output"])
        m = text_metrics(outs, per_input)
        lps = [recs[k]["mean_logprob"] for k in keys if recs[k]["mean_logprob"] is not None]
        m["mean_logprob"] = sum(lps) / len(lps) if lps else None
        m["pass_rates"] = _pass_rates(nb, ids)
        return m

    ma = metrics(recs_a, [recs_a[k]["id"] for k in keys])
    mb = metrics(recs_b, [recs_b[k]["id"] for k in keys])
    delta = {k: mb[k] - ma[k] for k in ma if isinstance(ma[k], (int, float)) and isinstance(mb.get(k), (int, float))}
    delta["pass_rates"] = {n: mb["pass_rates"][n] - ma["pass_rates"][n]
                           for n in ma["pass_rates"] if n in mb["pass_rates"]}
    return {"name": pa.name, "version_a": pa.version, "version_b": pb.version,
            "a": pa.label, "b": pb.label, "run_a": run_a, "run_b": run_b, "diff": diff, "pairs": pairs,
            "in_dataset_a": in_dataset(ra), "in_dataset_b": in_dataset(rb),
            "metrics_a": ma, "metrics_b": mb, "delta": delta}
