"""CLI, stage 3 (generate), tabular mode: ``tabular``: new rows of the imported table, the given
columns taken from real rows and the rest written by the model under a schema derived from the
table; then each column of the new rows compared with the real one (as ``metrics`` does)."""

from __future__ import annotations

import argparse
import sys

from app.cli.common import (
    EXIT_CANCELLED,
    add_model_args,
    add_sampler_args,
    cancellable,
    check_model,
    load_model,
    print_column_comparison,
    print_json,
    sampler_settings,
)
from app.core.errors import StudioError
from app.store.notebook import Notebook


def _given(spec: str | None) -> list[str]:
    return [c.strip() for c in (spec or "").split(",") if c.strip()]


def cmd_tabular(args: argparse.Namespace) -> int:
    from app.generate.runs import create_run, execute_run
    from app.generate.tabular import plan_tabular, save_tabular_prompt
    from app.prompts.structured import validate_output
    from app.prompts.templates import parse_template
    from app.report.compute import compare_table
    from app.store.queries import run_record_ids
    from app.store.records import outputs_by_id

    given = _given(args.given)
    settings = sampler_settings(args)
    if args.rows < 1:
        raise StudioError("--rows must be at least 1")
    if args.examples < 0:
        raise StudioError("--examples must be 0 or more")
    with Notebook.open(args.notebook) as nb:
        check_model(args)  # cheap checks first: a bad column or model file changes nothing
        pv = save_tabular_prompt(nb, given, name=args.name, examples=args.examples)
        plan = plan_tabular(nb, pv.name, given, rows=args.rows, seed=args.seed, settings=settings)
        model = load_model(args)
        try:
            with cancellable("tabular", quiet=args.quiet or args.json, unit="row") as task:
                run = execute_run(nb, create_run(nb, plan, model.info), model, task)
        finally:
            model.close()
        ids = run_record_ids(nb, run.id)
        schema = parse_template(pv.template).output_schema or {}
        outputs = outputs_by_id(nb, ids)
        valid = sum(validate_output(outputs.get(i), schema) is None for i in ids)
        table = compare_table(nb, record_ids=ids)
    if args.json:
        print_json({"run": run.id, "status": run.status, "prompt": pv.label, "given": given, "rows": len(ids),
                    "match_schema": valid, "columns": table.to_dict() if table is not None else None})
        return EXIT_CANCELLED if run.status == "cancelled" else 0
    if run.status == "cancelled":
        print(f"run {run.id} cancelled: {len(ids)} of {args.rows} rows kept; finish it with: synth-studio generate "
              f"{args.notebook} --prompt {pv.name} --resume", file=sys.stderr)
        return EXIT_CANCELLED
    print(f"{pv.label}: {', '.join(given) or 'no column'} given, "
          f"{', '.join(parse_template(pv.template).fields)} written by {run.model_path or run.backend}")
    if table is not None:
        print_column_comparison(table, f"rows of run {run.id}")
    compared = ", ".join(c.column for c in table.columns) if table is not None and table.columns else "none"
    print(f"run {run.id}: {len(ids)} rows ({valid} match the schema); columns compared: {compared}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("tabular", help="generate new rows of the imported table: the --given columns from real rows, "
                                       "the rest by the model under a schema derived from the table")
    s.add_argument("notebook")
    s.add_argument("--given", metavar="COL,COL", default="",
                   help="columns each new row takes from a real row drawn at random (default: none, every column "
                        "is written)")
    s.add_argument("--rows", type=int, required=True, metavar="N", help="new rows to generate")
    s.add_argument("--name", default="tabular", help="the prompt the derived template is saved as (default: tabular)")
    s.add_argument("--examples", type=int, default=5, metavar="K", help="real rows shown in the prompt (default 5)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    add_sampler_args(s, temperature=0.9)
    add_model_args(s)
    s.add_argument("--n-gpu-layers", type=int, default=0)
    s.set_defaults(func=cmd_tabular)
