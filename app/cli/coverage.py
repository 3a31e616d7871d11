"""CLI, target mix: ``coverage`` (kept records per category value or input row against the
targets) and ``topup`` (generate until every target is met, counting only what the funnel keeps)."""

from __future__ import annotations

import argparse
import sys

from app.cli.common import (
    EXIT_CANCELLED,
    add_model_args,
    add_sampler_args,
    cancellable,
    model_options,
    print_json,
    sampler_settings,
)
from app.generate.targets import Coverage


def coverage_lines(cov: Coverage) -> list[str]:
    """The coverage as a plain table: one line per value (and per input row)."""
    lines = [f"{'column':<14} {'value':<20} {'kept':>6} {'target':>6} {'missing':>7} {'made':>6}"]
    for col, counts in cov.values.items():
        for value, c in counts.items():
            lines.append(f"{col:<14} {value:<20} {c.kept:>6} {c.target:>6} {c.missing:>7} {c.made:>6}")
    for rid, c in cov.rows.items():
        lines.append(f"{'input row':<14} {cov.row_label(rid):<20} {c.kept:>6} {c.target:>6} {c.missing:>7} {c.made:>6}")
    if len(lines) == 1:
        lines.append("(no targets: declare `target: N` in a categorical column, or give --per-row N)")
    return lines


def _missing_line(cov: Coverage) -> str:
    parts = [f"{col}={v} {n}" for col, m in cov.value_missing().items() for v, n in m.items()]
    rows = cov.row_missing()
    if rows:
        parts.append(f"{len(rows)} input rows {sum(rows.values())}")
    return ", ".join(parts) or "nothing"


def cmd_coverage(args: argparse.Namespace) -> int:
    from app.generate.targets import parse_target_args
    from app.quality.coverage import coverage
    from app.store.notebook import Notebook

    asked = parse_target_args(args.target or [])
    with Notebook.open(args.notebook) as nb:
        cov = coverage(nb, args.prompt, args.column, asked=asked, per_row=args.per_row)
    if args.json:
        print_json(cov.to_dict())
        return 0
    print(f"{cov.prompt} (targets of v{cov.version}; kept = what the funnel keeps, any version)")
    print("\n".join(coverage_lines(cov)))
    print(f"missing: {_missing_line(cov)}")
    return 0


def cmd_topup(args: argparse.Namespace) -> int:
    from app.jobs import topup_job
    from app.quality.coverage import Round

    def on_round(r: Round) -> None:
        print(f"round {r.number}: run {r.run_id} made {r.made}, kept {r.kept}; still missing: "
              f"{_missing_line(r.coverage)}", flush=True)

    with cancellable("top-up", quiet=args.quiet, unit="sample") as task:
        result = topup_job(args.notebook, args.prompt, targets=args.target or [], per_row=args.per_row,
                           rules=args.rules, rounds=args.rounds, seed=args.seed, settings=sampler_settings(args),
                           model_path=args.model, backend=args.backend, model_options=model_options(args),
                           on_round=on_round, task=task)
    if result.stopped == "cancelled":
        print(result.message, file=sys.stderr)
        return EXIT_CANCELLED
    after = result.after or result.before
    print("\n".join(coverage_lines(after)))
    if result.stopped:
        print(result.message, file=sys.stderr)
        return 1
    print(result.message)
    return 0 if not after.missing else 1


def _target_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--target", action="append", metavar="COLUMN=N",
                   help="kept records wanted per value of a categorical column (COLUMN=N, or COLUMN:VALUE=N for one "
                        "value; repeatable); default: the `target:` of the prompt's front matter")
    s.add_argument("--per-row", type=int, metavar="N", help="also want N kept records per input row")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("coverage", help="kept records per category value (and input row) against the targets")
    s.add_argument("notebook")
    s.add_argument("--prompt", required=True, metavar="NAME")
    s.add_argument("--column", metavar="NAME", help="only this categorical column (with or without a target)")
    _target_args(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_coverage)

    s = sub.add_parser("topup", help="generate until each category value (or input row) has its target of kept "
                                     "records, in rounds that fill what the funnel dropped")
    s.add_argument("notebook")
    s.add_argument("--prompt", required=True, metavar="NAME")
    _target_args(s)
    s.add_argument("--rules", metavar="FILE",
                   help="validators each round applies (default: the notebook's active rules); a prompt's "
                        "output_schema is always checked")
    s.add_argument("--rounds", type=int, default=5, help="at most this many top-up runs (default 5)")
    add_sampler_args(s, temperature=0.8)
    add_model_args(s)
    s.add_argument("--n-gpu-layers", type=int, default=0)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_topup)
