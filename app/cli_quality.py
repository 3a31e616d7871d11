"""The quality-funnel commands of ``synth-studio`` (validate, judge, sanity, best-of, ...)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from app.cli_common import EXIT_CANCELLED, _print_json, _settings
from app.errors import StudioError
from app.models import is_server_url
from app.store.notebook import Notebook


def cmd_validate(args: argparse.Namespace) -> int:
    from app.paths import resources_dir
    from app.quality.run import score_heuristics, validate
    from app.quality.validators import load_rules

    path = Path(args.rules) if args.rules else resources_dir() / "quality" / "default_rules.toml"
    rules = load_rules(path)  # a malformed file fails before the notebook is touched
    with Notebook.open(args.notebook) as nb:
        counts = validate(nb, rules, source=str(path))
        score_heuristics(nb)
    if args.json:
        _print_json({name: {"passed": p, "failed": f} for name, (p, f) in counts.items()})
        return 0
    for name, (p, f) in counts.items():
        print(f"{name:<24} {p:>6} passed {f:>6} failed")
    return 0


def _load_judge(args: argparse.Namespace):
    import backends

    if args.backend == "llama-cpp" and not is_server_url(args.model):
        from backends.llama_cpp_backend import describe_model

        describe_model(args.model)  # a clear error for a bad model file before loading
    return backends.load_generator(args.backend, args.model, n_ctx=args.n_ctx, n_threads=args.threads)


def _criteria_path(args: argparse.Namespace) -> Path:
    from app.paths import resources_dir

    return Path(args.criteria) if args.criteria else resources_dir() / "quality" / "default_constitution.toml"


def cmd_judge(args: argparse.Namespace) -> int:
    from app.quality.judge import judge_notebook, load_criteria
    from app.tasks import TaskState

    path = _criteria_path(args)
    constitution = load_criteria(path)
    with Notebook.open(args.notebook) as nb:
        judge = _load_judge(args)
        try:
            task = TaskState()
            previous = signal.signal(signal.SIGINT, lambda *_: task.request_interruption())
            try:
                counts = judge_notebook(nb, judge, constitution, task, source=str(path))
            finally:
                signal.signal(signal.SIGINT, previous)
        finally:
            judge.close()
    if args.json:
        _print_json({k: {"passed": p, "failed": f} for k, (p, f) in counts.items()})
        return 0
    for name, (p, f) in counts.items():
        print(f"{name:<24} {p:>6} passed {f:>6} failed")
    return 0


def cmd_sanity(args: argparse.Namespace) -> int:
    from app.quality.judge import load_criteria, sanity_notebook

    constitution = load_criteria(_criteria_path(args))
    with Notebook.open(args.notebook) as nb:
        judge = _load_judge(args)
        try:
            reports = sanity_notebook(nb, judge, constitution)
        finally:
            judge.close()
    if args.json:
        _print_json([r.__dict__ for r in reports])
    else:
        for r in reports:
            mark = "FLAGGED" if r.flagged else "ok     "
            print(f"{mark} {r.criterion:<20} {r.n_good} good / {r.n_bad} bad examples: {r.verdict}")
    return 0


def cmd_dedupe(args: argparse.Namespace) -> int:
    from app.quality.run import dedupe

    with Notebook.open(args.notebook) as nb:
        groups = dedupe(nb, args.method, args.threshold)
    dropped = sum(len(m) - 1 for m in groups.values())
    if args.json:
        _print_json({"groups": [{"representative": rep, "members": m} for rep, m in groups.items()],
                     "duplicates": dropped})
        return 0
    print(f"{args.method}: {len(groups)} groups, {dropped} duplicates marked (representatives kept)")
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from app.quality.metrics import notebook_metrics

    with Notebook.open(args.notebook) as nb:
        rows = notebook_metrics(nb)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no records with text yet")
    for r in rows:
        upi = "-" if r["unique_per_input"] is None else f"{r['unique_per_input']:.2f}"
        print(f"{r['prompt_version']:<22} n={r['records']:<6} unique={r['unique']:<6} "
              f"distinct-1/2/3={r['distinct_1']:.2f}/{r['distinct_2']:.2f}/{r['distinct_3']:.2f} "
              f"overlap={r['pairwise_overlap_2']:.3f} compression={r['compression_ratio']:.2f} "
              f"unique/input={upi} words={r['mean_words']:.0f}")
    return 0


def cmd_funnel(args: argparse.Namespace) -> int:
    from app.quality.funnel import funnel

    with Notebook.open(args.notebook) as nb:
        stages = funnel(nb)
    if args.json:
        _print_json(stages)
        return 0
    for st in stages:
        why = f"  ({'; '.join(st['reasons'])})" if st["reasons"] else ""
        print(f"{st['stage']:<28} {st['kept']:>7} kept {st['dropped']:>7} dropped{why}")
    return 0


def cmd_best_of(args: argparse.Namespace) -> int:
    import backends
    from app.pipeline.generate import create_run, execute_run, prepare_run
    from app.quality.run import validate
    from app.quality.select import pairwise_scores, select_best
    from app.quality.validators import load_rules
    from app.tasks import TaskState

    if args.n < 2:
        raise StudioError("--n must be at least 2 (candidates per input row)")
    if args.keep >= args.n:
        raise StudioError("--keep must be smaller than --n")
    needs_judge = args.by.removeprefix("gated:").startswith("judge:") or args.by in ("constitution", "pairwise",
                                                                                       "gated:constitution")
    rules = load_rules(args.rules) if args.rules else None
    constitution = None
    if needs_judge and args.by != "pairwise":
        from app.quality.judge import load_criteria

        constitution = load_criteria(_criteria_path(args))
        wanted = args.by.removeprefix("gated:").removeprefix("judge:")
        if args.by.removeprefix("gated:").startswith("judge:") and wanted not in [c.name for c in constitution.criteria]:
            raise StudioError(f"no criterion named {wanted!r} in {_criteria_path(args)}")
    with Notebook.open(args.notebook) as nb:
        if args.backend == "llama-cpp" and not is_server_url(args.model):
            from backends.llama_cpp_backend import describe_model

            describe_model(args.model)
        plan = prepare_run(nb, args.prompt, samples=args.n, limit_rows=args.limit_rows, seed=args.seed,
                           settings=_settings(args))
        model = backends.load_generator(args.backend, args.model, n_ctx=args.n_ctx, n_threads=args.threads)
        try:
            run = execute_run(nb, create_run(nb, plan, model.info), model, TaskState())
            if run.status != "completed":
                raise StudioError(f"run {run.id} did not complete ({run.status}); finish it with generate --resume")
            ids = [r[0] for r in nb.conn.execute("SELECT id FROM records WHERE run_id = ?", (run.id,))]
            if rules:
                validate(nb, rules, source=args.rules)
            if constitution is not None:
                from app.quality.judge import judge_notebook

                judge_notebook(nb, model, constitution, record_ids=ids)
            by = args.by
            if by == "pairwise":
                pairwise_scores(nb, run.id, model)
                by = "pairwise:winrate"
            result = select_best(nb, run.id, by, keep=args.keep)
        finally:
            model.close()
    print(f"run {run.id}: {result.rows} rows x {args.n} candidates; kept {result.kept}, "
          f"rejected {result.rejected} (linked to their row's winner). Export pairs: "
          f"synth-studio export {args.notebook} pairs.jsonl --format dpo")
    return 0


def cmd_transform(args: argparse.Namespace) -> int:
    from app.quality.transform import bucket_difficulty, rewrite, source_records
    from app.tasks import TaskState

    with Notebook.open(args.notebook) as nb:
        ids = source_records(nb, args.op, args.limit)
        if not ids:
            raise StudioError("no records to transform (generate or import some first)")
        model = _load_judge(args)
        try:
            task = TaskState()
            previous = signal.signal(signal.SIGINT, lambda *_: task.request_interruption())
            try:
                if args.op == "difficulty":
                    counts = bucket_difficulty(nb, model, record_ids=ids, task=task)
                    print("difficulty: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
                    return 0
                run = rewrite(nb, model, args.op, record_ids=ids, tone=args.tone, seed=args.seed, task=task)
            finally:
                signal.signal(signal.SIGINT, previous)
        finally:
            model.close()
        made = nb.conn.execute("SELECT COUNT(*) FROM records WHERE run_id = ?", (run.id,)).fetchone()[0]
    if run.status == "cancelled":
        print(f"run {run.id} cancelled after {made} of {len(ids)}; finish with: synth-studio generate "
              f"{args.notebook} --prompt transform:{args.op} --resume", file=sys.stderr)
        return EXIT_CANCELLED
    print(f"run {run.id}: {made} new records (transform:{args.op}), each linked to its source")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from app.compare import compare_runs, run_versions

    with Notebook.open(args.notebook) as nb:
        if args.runs:
            cmp = compare_runs(nb, args.runs[0], args.runs[1])
        else:
            if args.a is None or args.b is None:
                raise StudioError("give --a and --b (two versions of the prompt) or --runs RUN_A RUN_B")
            nb.prompt_version(args.name, args.a), nb.prompt_version(args.name, args.b)  # clear errors first
            model = _load_judge(args)
            try:
                ra, rb = run_versions(nb, args.name, args.a, args.b, model, samples=args.samples,
                                      limit_rows=args.limit_rows, seed=args.seed, settings=_settings(args))
            finally:
                model.close()
            cmp = compare_runs(nb, ra.id, rb.id)
    if args.json:
        _print_json(cmp)
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
    return 0
