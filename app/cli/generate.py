"""CLI, stage 3 (generate): ``generate``, ``runs``, ``best-of``, ``transform``."""

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
    model_options,
    print_json,
    sampler_settings,
)
from app.core.errors import StudioError
from app.jobs import generate_job
from app.quality.judge import Constitution
from app.store.notebook import Notebook
from app.store.queries import run_record_count, run_record_ids


def cmd_generate(args: argparse.Namespace) -> int:
    from app.generate.runs import model_label, parse_model_weights, planned_samples, spread_group

    models = None
    if args.models:
        if args.model:
            raise StudioError("give either --model (one model) or --models (several), not both")
        models = parse_model_weights(args.models)
    with cancellable("generate", quiet=args.quiet, unit="sample") as task:
        run = generate_job(args.notebook, args.prompt, samples=args.samples, limit_rows=args.limit_rows,
                           seed=args.seed, settings=sampler_settings(args), model_path=args.model,
                           backend=args.backend, model_options=model_options(args), resume=args.resume, over=args.over,
                           over_kept=args.over_kept, models=models, task=task)
    with Notebook.open(args.notebook) as nb:
        runs = spread_group(nb, nb.run(run.id))
        made = {r.id: run_record_count(nb, r.id) for r in runs}
    total = sum(planned_samples(r) for r in runs)
    if any(r.status != "completed" for r in runs):
        print(f"{'run ' + str(run.id) if len(runs) == 1 else 'runs ' + ', '.join(str(r.id) for r in runs)} "
              f"cancelled: {sum(made.values())} of {total} samples kept; finish with --resume", file=sys.stderr)
        return EXIT_CANCELLED
    if len(runs) == 1:
        print(f"run {run.id} complete: {made[run.id]} samples from {run.model_path or run.backend}")
        return 0
    print(f"{total} samples spread over {len(runs)} models:")
    for r in runs:
        print(f"  run {r.id}: {made[r.id]} samples from {model_label(r.model_path, r.backend)}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from app.generate.runs import model_label, planned_samples

    with Notebook.open(args.notebook) as nb:
        rows = []
        for r in nb.runs():
            pv = nb.prompt_version_by_id(r.prompt_version_id)
            rows.append({**r.__dict__, "prompt": pv.label, "made": run_record_count(nb, r.id),
                         "planned": planned_samples(r), "model": model_label(r.model_path, r.backend),
                         "spread": r.settings.get("spread")})
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        part = (f"  [part {row['spread']['part'] + 1} of {len(row['spread']['weights'])}, group {row['spread']['group']}]"
                if row["spread"] else "")
        print(f"run {row['id']:<4} {row['prompt']:<20} {row['status']:<10} {row['made']}/{row['planned']} samples  "
              f"seed {row['seed']}  model {row['model']} ({str(row['model_sha256'])[:12]})  {row['created']}{part}")
    if not rows:
        print("no runs yet")
    return 0


def cmd_best_of(args: argparse.Namespace) -> int:
    from app.generate.best_of import select_best
    from app.generate.runs import create_run, execute_run, prepare_run
    from app.quality.pairwise import pairwise_scores
    from app.quality.steps import validate
    from app.quality.trust import require_trusted
    from app.quality.validators import load_rules

    if args.n < 2:
        raise StudioError("--n must be at least 2 (candidates per input row)")
    if args.keep >= args.n:
        raise StudioError("--keep must be smaller than --n")
    by = args.by.removeprefix("gated:")
    needs_constitution = by.startswith("judge:") or by == "constitution"
    rules = load_rules(args.rules) if args.rules else None
    constitution = None
    if needs_constitution:
        from app.cli.quality import constitution_for

        constitution_for(args)  # a malformed --criteria file fails before the notebook is touched
    with Notebook.open(args.notebook) as nb:
        if needs_constitution:
            constitution = _ranking_criteria(args, nb, by)
        check_model(args)
        plan = prepare_run(nb, args.prompt, samples=args.n, limit_rows=args.limit_rows, seed=args.seed,
                           settings=sampler_settings(args))
        model = load_model(args)
        try:
            if constitution is not None:  # refuse an untrusted judge before generating anything
                for c in constitution.criteria:
                    require_trusted(nb, c.score_name, model.info.sha256, c.version_id, scored=False)
            with cancellable("best-of", quiet=args.quiet, unit="sample") as task:
                run = execute_run(nb, create_run(nb, plan, model.info), model, task)
                if run.status != "completed":
                    raise StudioError(f"run {run.id} did not complete ({run.status}); finish it with generate --resume")
                ids = run_record_ids(nb, run.id)
                if rules:
                    validate(nb, rules, source=args.rules)
                if constitution is not None:
                    from app.quality.judge import judge_notebook

                    judge_notebook(nb, model, constitution, task, record_ids=ids)
                rank_by = args.by
                if rank_by == "pairwise":
                    pairwise_scores(nb, run.id, model)
                    rank_by = "pairwise:winrate"
                result = select_best(nb, run.id, rank_by, keep=args.keep, trust_check=require_trusted)
        finally:
            model.close()
    print(f"run {run.id}: {result.rows} rows x {args.n} candidates; kept {result.kept}, "
          f"rejected {result.rejected} (linked to their row's winner). Export pairs: "
          f"synth-studio export {args.notebook} pairs.jsonl --format dpo")
    return 0


def _ranking_criteria(args: argparse.Namespace, nb: Notebook, by: str) -> Constitution:
    """The criteria best-of judges with: the one named by ``judge:NAME`` (from --criteria or the
    notebook, active or not), or every active one for ``constitution``."""
    from app.cli.quality import constitution_for
    from app.quality.criteria import notebook_constitution

    if by == "constitution":
        constitution, _source = constitution_for(args, nb)
        return constitution
    wanted = by.removeprefix("judge:")
    if not args.criteria:
        return notebook_constitution(nb, [wanted])
    constitution, source = constitution_for(args, nb)
    chosen = tuple(c for c in constitution.criteria if c.name == wanted)
    if not chosen:
        raise StudioError(f"no criterion named {wanted!r} in {source}")
    return Constitution(constitution.name, chosen)


def cmd_transform(args: argparse.Namespace) -> int:
    from app.generate.transform import bucket_difficulty, rewrite, source_records

    with Notebook.open(args.notebook) as nb:
        ids = source_records(nb, args.op, args.limit)
        if not ids:
            raise StudioError("no records to transform (generate or import some first)")
        model = load_model(args)
        try:
            with cancellable(f"transform:{args.op}", quiet=args.quiet, unit="record") as task:
                if args.op == "difficulty":
                    counts = bucket_difficulty(nb, model, record_ids=ids, task=task)
                    print("difficulty: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
                    return 0
                run = rewrite(nb, model, args.op, record_ids=ids, tone=args.tone, seed=args.seed, task=task)
        finally:
            model.close()
        made = run_record_count(nb, run.id)
    if run.status == "cancelled":
        print(f"run {run.id} cancelled after {made} of {len(ids)}; finish with: synth-studio generate "
              f"{args.notebook} --prompt transform:{args.op} --resume", file=sys.stderr)
        return EXIT_CANCELLED
    print(f"run {run.id}: {made} new records (transform:{args.op}), each linked to its source")
    return 0


def cmd_prepare_model(args: argparse.Namespace) -> int:
    from backends.prepare import prepare_model, quality_cost

    print(f"preparing {args.model or 'the bundled model'} as {args.type} (llama.cpp requantizes it once; "
          "cached by the source file's hash)...", flush=True)
    prepared = prepare_model(args.model, args.type)
    print(f"prepared: {prepared.path}\n  sha256 {prepared.sha256} (from {prepared.source_sha256[:12]}...)")
    if not args.no_check:
        print("measuring what it changes (the same prompts, greedy, on both files)...", flush=True)
        cost = quality_cost(args.model, prepared.path)
        print(f"quality cost: {cost.line()}")
    print(f"use it with --model {prepared.path} (its own hash goes into each run's lineage)")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("generate", help="generate samples from a prompt over the input rows")
    s.add_argument("notebook")
    s.add_argument("--prompt", required=True, metavar="NAME")
    s.add_argument("--samples", type=int, default=1, metavar="K", help="samples per input row")
    s.add_argument("--limit-rows", type=int, metavar="N")
    add_sampler_args(s, temperature=0.8)
    add_model_args(s)
    s.add_argument("--n-gpu-layers", type=int, default=0)
    s.add_argument("--resume", action="store_true", help="finish the prompt's last unfinished run")
    s.add_argument("--over", metavar="SOURCE",
                   help="chain: run over another prompt's samples instead of the input rows (run:ID, prompt:NAME, "
                        "prompt:NAME@v2); the template reads {{ output }}, its fields and the parent's variables")
    s.add_argument("--over-kept", action="store_true", help="with --over: only the parents the funnel keeps")
    s.add_argument("--models", nargs="+", metavar="MODEL[=WEIGHT]",
                   help="spread the samples over several models (one run each, same seeds): round-robin, or by "
                        "weight (a.gguf=2 b.gguf=1); split metrics with `metrics --by model`, colour the map by model")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_generate)

    s = sub.add_parser("prepare-model", help="requantize a model for faster batched CPU decoding (q4_0, q8_0: "
                       "llama.cpp has repacked kernels for them) and print what it changes")
    s.add_argument("--model", metavar="GGUF", help="the model to prepare (default: the bundled one)")
    s.add_argument("--type", default="q4_0", choices=["q4_0", "q8_0"],
                   help="q4_0: fastest, a small quality cost; q8_0: nearly lossless")
    s.add_argument("--no-check", action="store_true", help="skip measuring the quality cost")
    s.set_defaults(func=cmd_prepare_model)

    s = sub.add_parser("runs", help="list generation runs with their lineage")
    s.add_argument("notebook")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_runs)

    s = sub.add_parser("best-of", help="generate N candidates per row and keep the best K by a score")
    s.add_argument("notebook")
    s.add_argument("--prompt", required=True, metavar="NAME")
    s.add_argument("--n", type=int, default=4)
    s.add_argument("--keep", type=int, default=1)
    s.add_argument("--by", default="likelihood", metavar="SCORE",
                   help="likelihood | judge:NAME | constitution | pairwise | score:NAME | validator:NAME | gated:<any of these>")
    s.add_argument("--criteria", metavar="FILE",
                   help="criteria for judge:/constitution ranking (default: the notebook's; the judge must be "
                        "trusted: `synth-studio sanity`, or `synth-studio criteria trust`)")
    s.add_argument("--rules", metavar="FILE", help="validators to run first (needed for gated:)")
    s.add_argument("--limit-rows", type=int, metavar="N")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    add_sampler_args(s, temperature=0.9)
    add_model_args(s)
    s.set_defaults(func=cmd_best_of)

    s = sub.add_parser("transform", help="rewrite records (succinct, tone, steps) or bucket them by difficulty")
    s.add_argument("notebook")
    s.add_argument("--op", required=True, choices=["succinct", "tone", "steps", "difficulty"])
    s.add_argument("--tone", default="friendly, professional", help="for --op tone")
    s.add_argument("--limit", type=int, default=None, help="at most N source records")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_args(s)
    s.set_defaults(func=cmd_transform)
