"""CLI, stage 6 (review): ``records``, ``edit``, ``history``, ``compare``.

``compare`` runs are comparisons, outside the dataset until ``compare --adopt RUN`` adds one."""

from __future__ import annotations

import argparse
import json

from app.cli.common import (
    add_model_args,
    add_sampler_args,
    cancellable,
    load_model,
    print_json,
    sampler_settings,
    short,
)
from app.core.errors import StudioError
from app.store.notebook import RECORD_STATUSES, Notebook
from app.store.search import search_records


def cmd_records(args: argparse.Namespace) -> int:
    with Notebook.open(args.notebook) as nb:
        role = None if args.all else ("input" if args.inputs else "sample")
        rows = (search_records(nb, args.search, role=role, limit=args.limit) if args.search
                else nb.records(role=role, limit=args.limit))
        if args.json:
            for r in rows:
                r.pop("token_logprobs", None) if not args.logprobs else None
            print_json(rows)
            return 0
        if not rows:
            print(f"no records match {args.search!r}" if args.search else "no records yet")
            return 0
        for r in rows:
            lp = f"{r['mean_logprob']:.2f}" if r["mean_logprob"] is not None else "   - "
            print(f"{r['id']:>6}  {r['role']:<6} {r['status']:<8} {r['origin']:<12} lp {lp}  {short(r['output'] or json.dumps(r['variables'], ensure_ascii=False))}")
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    if args.output is None and args.status is None:
        raise StudioError("nothing to change: give --output TEXT and/or --status STATUS")
    with Notebook.open(args.notebook) as nb:
        nb.record(args.record_id)  # a clear error for an unknown id before anything changes
        changed = []
        if args.output is not None:
            if nb.edit_record(args.record_id, "output", args.output, author=args.author):
                changed.append("output")
        if args.status is not None:
            if nb.edit_record(args.record_id, "status", args.status, author=args.author):
                changed.append("status")
    print(f"record {args.record_id}: " + (f"changed {', '.join(changed)}" if changed else "no change"))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    with Notebook.open(args.notebook) as nb:
        edits = nb.history(args.record_id) if nb.record(args.record_id) else []
    if args.json:
        print_json([e.__dict__ for e in edits])
        return 0
    for e in edits:
        print(f"#{e.id} {e.created} {e.author}: {e.field}: {short(e.old, 30)!r} -> {short(e.new, 30)!r}")
    if not edits:
        print("no edits")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from app.review.compare import adopt_comparison, compare_runs, run_versions

    with Notebook.open(args.notebook) as nb:
        if args.adopt:
            for run_id in args.adopt:
                run = nb.run(run_id)
                if nb.prompt_version_by_id(run.prompt_version_id).name != args.name:
                    raise StudioError(f"run {run_id} is not a run of prompt {args.name!r}")
            for run_id in args.adopt:
                added = adopt_comparison(nb, run_id)
                print(f"run {run_id}: " + ("added to the dataset (the funnel now filters its samples)" if added
                                           else "already in the dataset"))
            return 0
        if args.runs:
            cmp = compare_runs(nb, args.runs[0], args.runs[1])
        else:
            if args.a is None or args.b is None:
                raise StudioError("give --a and --b (two versions of the prompt) or --runs RUN_A RUN_B")
            nb.prompt_version(args.name, args.a), nb.prompt_version(args.name, args.b)  # clear errors first
            model = load_model(args)
            try:
                with cancellable("compare", quiet=args.json, unit="sample") as task:
                    ra, rb = run_versions(nb, args.name, args.a, args.b, model, samples=args.samples,
                                          limit_rows=args.limit_rows, seed=args.seed, settings=sampler_settings(args),
                                          task=task)
            finally:
                model.close()
            cmp = compare_runs(nb, ra.id, rb.id)
    if args.json:
        print_json(cmp)
        return 0
    print("\n".join(cmp["diff"]) or "(templates are identical)")
    ma, mb, d = cmp["metrics_a"], cmp["metrics_b"], cmp["delta"]
    print(f"\n{'metric':<22} {cmp['a']:>14} {cmp['b']:>14} {'delta':>10}")
    for k in ("mean_words", "distinct_2", "pairwise_overlap_2", "compression_ratio", "unique_per_input", "mean_logprob"):
        if isinstance(ma.get(k), (int, float)) and isinstance(mb.get(k), (int, float)):
            print(f"{k:<22} {ma[k]:>14.3f} {mb[k]:>14.3f} {d.get(k, 0):>+10.3f}")
    for name, delta in d["pass_rates"].items():
        print(f"{name:<22} {ma['pass_rates'][name]:>14.0%} {mb['pass_rates'][name]:>14.0%} {delta:>+10.0%}")
    for p in cmp["pairs"][: args.show]:
        print(f"\n--- row {p['input_record_id']} sample {p['sample_index']} (seed {p['seed']})")
        print(f"[{cmp['a']}] {p['a']}\n[{cmp['b']}] {p['b']}")
    outside = [str(cmp[f"run_{k}"]) for k in "ab" if not cmp[f"in_dataset_{k}"]]
    if outside:
        which = (f"run {outside[0]} is a comparison" if len(outside) == 1
                 else f"runs {' and '.join(outside)} are comparisons")
        print(f"\n{which}: not in the dataset "
              f"(add one: synth-studio compare {args.notebook} {cmp['name']} --adopt RUN)")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("records", help="list records")
    s.add_argument("notebook")
    s.add_argument("--json", action="store_true")
    s.add_argument("--limit", type=int, default=None)
    g = s.add_mutually_exclusive_group()
    g.add_argument("--inputs", action="store_true", help="list the input rows instead of samples")
    g.add_argument("--all", action="store_true", help="list inputs and samples")
    s.add_argument("--logprobs", action="store_true", help="include per-token logprobs in --json")
    s.add_argument("--search", metavar="WORDS", help="only records whose output or variables have these words "
                   "(each a prefix, all of them; full-text index)")
    s.set_defaults(func=cmd_records)

    s = sub.add_parser("edit", help="edit a record (recorded in its history)")
    s.add_argument("notebook")
    s.add_argument("record_id", type=int)
    s.add_argument("--output", metavar="TEXT")
    s.add_argument("--status", choices=list(RECORD_STATUSES))
    s.add_argument("--author", default="user")
    s.set_defaults(func=cmd_edit)

    s = sub.add_parser("history", help="show a record's edit history")
    s.add_argument("notebook")
    s.add_argument("record_id", type=int)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_history)

    s = sub.add_parser("compare", help="run two prompt versions on the same rows and seeds; diff and metric deltas")
    s.add_argument("notebook")
    s.add_argument("name", help="the prompt name")
    s.add_argument("--a", type=int, help="version A")
    s.add_argument("--b", type=int, help="version B")
    s.add_argument("--runs", type=int, nargs=2, metavar=("RUN_A", "RUN_B"), help="compare two existing runs instead")
    s.add_argument("--adopt", type=int, action="append", metavar="RUN",
                   help="add comparison run RUN to the dataset (its samples are left out until then); repeatable")
    s.add_argument("--samples", type=int, default=1)
    s.add_argument("--limit-rows", type=int, default=5)
    s.add_argument("--show", type=int, default=3, help="output pairs to print")
    s.add_argument("--json", action="store_true")
    add_sampler_args(s, temperature=0.8)
    add_model_args(s)
    s.set_defaults(func=cmd_compare)
