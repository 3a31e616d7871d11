"""CLI, stage 4 (quality): ``validate``, ``judge``, ``sanity``, ``dedupe``, ``metrics``, ``funnel``."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.common import add_model_args, cancellable, load_model, print_json
from app.core.paths import resources_dir
from app.store.notebook import Notebook


def criteria_path(args: argparse.Namespace) -> Path:
    return Path(args.criteria) if args.criteria else resources_dir() / "quality" / "default_constitution.toml"


def _print_pass_fail(counts: dict[str, tuple[int, int]], as_json: bool) -> None:
    if as_json:
        print_json({name: {"passed": p, "failed": f} for name, (p, f) in counts.items()})
        return
    for name, (p, f) in counts.items():
        print(f"{name:<24} {p:>6} passed {f:>6} failed")


def cmd_validate(args: argparse.Namespace) -> int:
    from app.quality.steps import score_heuristics, validate
    from app.quality.validators import load_rules

    path = Path(args.rules) if args.rules else resources_dir() / "quality" / "default_rules.toml"
    rules = load_rules(path)  # a malformed file fails before the notebook is touched
    with Notebook.open(args.notebook) as nb, cancellable("validate", quiet=args.json, unit="record") as task:
        counts = validate(nb, rules, task, source=str(path))
        score_heuristics(nb, task)
    _print_pass_fail(counts, args.json)
    return 0


def cmd_judge(args: argparse.Namespace) -> int:
    from app.quality.judge import judge_notebook, load_criteria

    path = criteria_path(args)
    constitution = load_criteria(path)
    with Notebook.open(args.notebook) as nb:
        judge = load_model(args)
        try:
            with cancellable("judge", quiet=args.json, unit="record") as task:
                counts = judge_notebook(nb, judge, constitution, task, source=str(path))
        finally:
            judge.close()
    _print_pass_fail(counts, args.json)
    return 0


def cmd_sanity(args: argparse.Namespace) -> int:
    from app.quality.judge import load_criteria, sanity_notebook

    constitution = load_criteria(criteria_path(args))
    with Notebook.open(args.notebook) as nb:
        judge = load_model(args)
        try:
            with cancellable("sanity", quiet=args.json, unit="example") as task:
                reports = sanity_notebook(nb, judge, constitution, task)
        finally:
            judge.close()
    if args.json:
        print_json([r.__dict__ for r in reports])
    else:
        for r in reports:
            mark = "FLAGGED" if r.flagged else "ok     "
            print(f"{mark} {r.criterion:<20} {r.n_good} good / {r.n_bad} bad examples: {r.verdict}")
    return 0


def cmd_dedupe(args: argparse.Namespace) -> int:
    from app.quality.steps import dedupe

    with Notebook.open(args.notebook) as nb:
        groups = dedupe(nb, args.method, args.threshold)
    dropped = sum(len(m) - 1 for m in groups.values())
    if args.json:
        print_json({"groups": [{"representative": rep, "members": m} for rep, m in groups.items()],
                    "duplicates": dropped})
        return 0
    print(f"{args.method}: {len(groups)} groups, {dropped} duplicates marked (representatives kept)")
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from app.quality.diversity import notebook_metrics

    with Notebook.open(args.notebook) as nb:
        rows = notebook_metrics(nb)
    if args.json:
        print_json(rows)
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
        print_json(stages)
        return 0
    for st in stages:
        why = f"  ({'; '.join(st['reasons'])})" if st["reasons"] else ""
        if st.get("rescued"):
            print(f"{st['stage']:<28} {st['kept']:>7} kept {st['rescued']:>7} rescued{why}")
        elif not st["active"]:
            print(f"{st['stage']:<28} {st['kept']:>7} kept       - dropped  [{st['trust']}: would drop "
                  f"{st['would_drop']}; {st['note']}]")
        else:
            trust = f"  [{st['trust']}]" if st.get("trust") else ""
            print(f"{st['stage']:<28} {st['kept']:>7} kept {st['dropped']:>7} dropped{why}{trust}")
    return 0


def cmd_rescore(args: argparse.Namespace) -> int:
    from app.cli.common import check_model, model_options
    from app.jobs import rescore_job

    check_model(args)
    with cancellable("rescore", quiet=False, unit="record") as task:
        print(rescore_job(args.notebook, criteria=args.criteria, rules=args.rules, model_path=args.model,
                          backend=args.backend, model_options=model_options(args), task=task))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("rescore", help="recompute the scores and likelihoods that edits made stale")
    s.add_argument("notebook")
    s.add_argument("--criteria", metavar="FILE", help="criteria for the stale judge scores")
    s.add_argument("--rules", metavar="FILE", help="rules for the stale validator scores")
    add_model_args(s, "judge/scoring")
    s.set_defaults(func=cmd_rescore)

    s = sub.add_parser("validate", help="run code validators (and heuristic scorers) over the samples")
    s.add_argument("notebook")
    s.add_argument("--rules", metavar="FILE", help="a TOML/YAML rules file (default: resources/quality/default_rules.toml)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_validate)

    for name, func, text in (("judge", cmd_judge, "score samples with one-question LLM judges (P(yes) from logprobs)"),
                             ("sanity", cmd_sanity, "check each judge against known-good/bad examples and your labels")):
        s = sub.add_parser(name, help=text)
        s.add_argument("notebook")
        s.add_argument("--criteria", metavar="FILE",
                       help="a TOML/YAML criteria file (default: resources/quality/default_constitution.toml)")
        add_model_args(s, "judge")
        s.add_argument("--json", action="store_true")
        s.set_defaults(func=func)

    s = sub.add_parser("dedupe", help="mark duplicate groups (exact, near via MinHash, or semantic)")
    s.add_argument("notebook")
    s.add_argument("--method", choices=["exact", "minhash", "semantic"], default="exact")
    s.add_argument("--threshold", type=float, default=None,
                   help="minhash: word-shingle Jaccard (default 0.6); semantic: cosine (default 0.95)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_dedupe)

    s = sub.add_parser("metrics", help="diversity and collapse metrics per prompt version")
    s.add_argument("notebook")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_metrics)

    s = sub.add_parser("funnel", help="records kept and dropped at each quality stage, and why")
    s.add_argument("notebook")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_funnel)
