"""CLI, stage 4 (quality): ``validate``, ``judge``, ``sanity``, ``dedupe``, ``metrics``, ``funnel``.

``metrics`` also compares a generated table with the real one when records have structured
outputs: per column of the input rows, 1 - KS (numeric) or 1 - TVD (categorical) against the
outputs' fields (``app.report.compute.compare_tables``), per prompt version."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from app.cli.common import add_model_args, cancellable, load_model, print_column_comparison, print_json
from app.quality.judge import Constitution
from app.store.notebook import Notebook

if TYPE_CHECKING:
    from app.quality.sanity import SanityReport


def constitution_for(args: argparse.Namespace, nb: Notebook | None = None) -> tuple[Constitution, str]:
    """(criteria, where they came from): the ``--criteria`` file, else the notebook's active criteria.

    A file is read before the notebook opens (``nb`` None), so a malformed one changes nothing.
    """
    from app.quality.criteria import notebook_constitution
    from app.quality.judge import load_criteria

    if args.criteria:
        return load_criteria(args.criteria), str(args.criteria)
    if nb is None:
        return Constitution("notebook", ()), "notebook"
    return notebook_constitution(nb), "notebook"


def _print_pass_fail(counts: dict[str, tuple[int, int]], as_json: bool) -> None:
    if as_json:
        print_json({name: {"passed": p, "failed": f} for name, (p, f) in counts.items()})
        return
    for name, (p, f) in counts.items():
        print(f"{name:<24} {p:>6} passed {f:>6} failed")


def cmd_validate(args: argparse.Namespace) -> int:
    from app.quality.steps import score_heuristics, validate
    from app.quality.validators import load_rules

    rules = load_rules(args.rules) if args.rules else None  # a malformed file fails before the notebook is touched
    with Notebook.open(args.notebook) as nb, cancellable("validate", quiet=args.json, unit="record") as task:
        counts = validate(nb, rules, task, source=str(args.rules or ""))
        score_heuristics(nb, task)
    _print_pass_fail(counts, args.json)
    return 0


def cmd_judge(args: argparse.Namespace) -> int:
    from app.quality.judge import judge_notebook, require_criteria

    constitution_for(args)  # a malformed --criteria file fails before anything loads
    with Notebook.open(args.notebook) as nb:
        constitution, source = constitution_for(args, nb)
        require_criteria(constitution)
        judge = load_model(args)
        try:
            with cancellable("judge", quiet=args.json, unit="record") as task:
                counts = judge_notebook(nb, judge, constitution, task, source=source)
        finally:
            judge.close()
    _print_pass_fail(counts, args.json)
    return 0


def cmd_sanity(args: argparse.Namespace) -> int:
    import dataclasses

    from app.quality.judge import require_criteria
    from app.quality.sanity import sanity_notebook

    constitution_for(args)
    with Notebook.open(args.notebook) as nb:
        constitution, _source = constitution_for(args, nb)
        require_criteria(constitution)
        judge = load_model(args)
        try:
            with cancellable("sanity", quiet=args.json, unit="example") as task:
                reports = sanity_notebook(nb, judge, constitution, task)
        finally:
            judge.close()
    if args.json:
        print_json([dataclasses.asdict(r) for r in reports])
        return 0
    for r in reports:
        print(sanity_lines(r))
    return 0


def sanity_lines(r: SanityReport) -> str:
    """A sanity report for a person: trust state, counts, AUC, p, kappa, confusion matrix, thresholds."""
    labels = f", {r.n_labels} of them your labels" if r.n_labels else ""
    state = r.trust or ("untrusted" if r.flagged else "trusted")
    head = f"{state:<16} {r.criterion}: {r.n_good} good / {r.n_bad} bad{labels}"
    if r.auc is None or r.p_value is None:
        return f"{head}\n    {r.verdict}"
    m = r.confusion or {}
    kappa = "-" if r.kappa is None else f"{r.kappa:.2f}"
    suggested = "-" if r.suggested_threshold is None else f"{r.suggested_threshold:.3g}"
    return (f"{head}\n"
            f"    AUC {r.auc:.2f}   p = {r.p_value:.3f}   kappa {kappa} on {r.agreement_on}   "
            f"threshold {r.threshold:g} (suggested {suggested})\n"
            f"    at {r.threshold:g}:          judge pass  judge fail\n"
            f"      labelled yes   {m.get('tp', 0):>10}  {m.get('fn', 0):>10}\n"
            f"      labelled no    {m.get('fp', 0):>10}  {m.get('tn', 0):>10}\n"
            f"    {r.verdict}")


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
    from app.report.compute import compare_tables

    with Notebook.open(args.notebook) as nb:
        rows = notebook_metrics(nb, by=args.by)
        tables = compare_tables(nb) if args.by == "prompt" else {}
    if args.json:
        print_json([{**r, "columns": tables[r["prompt_version"]].to_dict() if r["prompt_version"] in tables
                     else None} for r in rows])
        return 0
    if not rows:
        print("no records with text yet")
    for r in rows:
        upi = "-" if r["unique_per_input"] is None else f"{r['unique_per_input']:.2f}"
        print(f"{r['group']:<22} n={r['records']:<6} unique={r['unique']:<6} "
              f"distinct-1/2/3={r['distinct_1']:.2f}/{r['distinct_2']:.2f}/{r['distinct_3']:.2f} "
              f"overlap={r['pairwise_overlap_2']:.3f} compression={r['compression_ratio']:.2f} "
              f"unique/input={upi} words={r['mean_words']:.0f}")
        table = tables.get(r["prompt_version"])
        if table is None:
            continue
        print_column_comparison(table, "structured records", shared="the outputs' fields")
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
    s.add_argument("--rules", metavar="FILE",
                   help="a TOML/YAML rules file (default: the notebook's active rules; see `synth-studio criteria`)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_validate)

    for name, func, text in (("judge", cmd_judge, "score samples with one-question LLM judges (P(yes) from logprobs)"),
                             ("sanity", cmd_sanity, "check each judge against known-good/bad examples and your labels")):
        s = sub.add_parser(name, help=text)
        s.add_argument("notebook")
        s.add_argument("--criteria", metavar="FILE",
                       help="a TOML/YAML criteria file (default: the notebook's active criteria; "
                            "see `synth-studio criteria`)")
        add_model_args(s, "judge")
        s.add_argument("--json", action="store_true")
        s.set_defaults(func=func)

    s = sub.add_parser("dedupe", help="mark duplicate groups (exact, near via MinHash, or semantic)")
    s.add_argument("notebook")
    # the same names as app.quality.steps.DEDUPE_METHODS (a test checks), spelled out so that
    # building the parser imports no stage
    s.add_argument("--method", choices=["exact", "minhash", "minhash-words", "semantic"], default="exact",
                   help="exact: same words; minhash: near-duplicates, word edits included (the window's "
                        "default); minhash-words: the older word 3-shingle method; semantic: embeddings "
                        "(paraphrases)")
    s.add_argument("--threshold", type=float, default=None,
                   help="minhash: share of words in common, in order (word-level diff ratio, default 0.8); "
                        "minhash-words: word 3-shingle Jaccard (default 0.6); semantic: cosine (default 0.95)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_dedupe)

    s = sub.add_parser("metrics", help="diversity and collapse metrics per prompt version; for structured "
                                       "outputs, each column's similarity to the input rows (KS numeric, TVD "
                                       "categorical)")
    s.add_argument("notebook")
    s.add_argument("--by", choices=["prompt", "model"], default="prompt",
                   help="one line per prompt version (default) or per model that made the records")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_metrics)

    s = sub.add_parser("funnel", help="records kept and dropped at each quality stage, and why")
    s.add_argument("notebook")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_funnel)
