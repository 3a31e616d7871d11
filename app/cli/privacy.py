"""CLI, privacy and evaluation hygiene: ``redact``, ``canary``, ``split``, ``decontam``, ``copycheck``.

The checks store validator-kind scores (``copy:real``, ``copy:few-shot``, ``canary``,
``contamination:eval``), so ``synth-studio funnel`` shows each as a stage and export drops
the records that fail it.
"""

from __future__ import annotations

import argparse
from collections import Counter

from app.cli.common import cancellable, print_json, short
from app.store.notebook import Notebook


def cmd_redact(args: argparse.Namespace) -> int:
    from app.quality.redact import check_kinds, redact

    kinds = check_kinds(args.kinds) if args.kinds else None  # a typo fails before the notebook is touched
    with Notebook.open(args.notebook) as nb, cancellable("redact", quiet=args.json, unit="record") as task:
        done = redact(nb, args.ids, kinds, task)
    if args.json:
        print_json([{"record_id": r.record_id, "field": r.field, "kinds": dict(r.kinds), "edit_id": r.edit.id}
                    for r in done])
        return 0
    total: Counter[str] = Counter()
    for r in done:
        total.update(r.kinds)
        print(f"record {r.record_id}: {', '.join(f'{k} {n}' for k, n in r.kinds.items())} replaced (edit #{r.edit.id})")
    what = ", ".join(f"{n} {k}" for k, n in total.items())
    print(f"redacted {len(done)} records" + (f" ({what})" if what else "")
          + ("; each is an edit in the record's history (undo it there); run synth-studio rescore to update "
             "their scores" if done else ""))
    return 0


def cmd_canary_add(args: argparse.Namespace) -> int:
    from app.quality.canaries import plant_canary

    with Notebook.open(args.notebook) as nb:
        p = plant_canary(nb, args.text, args.record, args.column)
    if args.json:
        print_json({"canary_id": p.canary.id, "record_id": p.canary.record_id, "field": p.field, "edit_id": p.edit.id})
        return 0
    print(f"planted canary #{p.canary.id} in record {p.canary.record_id} ({p.field}; edit #{p.edit.id})")
    return 0


def cmd_canary_check(args: argparse.Namespace) -> int:
    from app.quality.canaries import check_canaries

    with Notebook.open(args.notebook) as nb, cancellable("canary", quiet=args.json, unit="record") as task:
        hits = check_canaries(nb, task)
    if args.json:
        print_json([{"record_id": h.record_id, "canary_id": h.canary.id, "planted_in": h.canary.record_id}
                    for h in hits])
        return 0
    for h in hits:
        print(f"record {h.record_id}: contains canary #{h.canary.id} (planted in record {h.canary.record_id})")
    print(f"{len(hits)} synthetic records contain a canary")
    return 0


def cmd_canary_list(args: argparse.Namespace) -> int:
    from app.store.privacy import canaries

    with Notebook.open(args.notebook) as nb:
        planted = canaries(nb)
    if args.json:
        print_json([c.__dict__ for c in planted])
        return 0
    for c in planted:
        print(f"#{c.id:<4} record {c.record_id}  {c.created}  {c.text!r}")
    if not planted:
        print("no canaries planted")
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    from app.data.splits import split_notebook

    with Notebook.open(args.notebook) as nb:
        result = split_notebook(nb, eval_share=args.eval, holdout_share=args.holdout, by=args.by, seed=args.seed)
    if args.json:
        print_json(result.__dict__)
        return 0
    counts = "  ".join(f"{s} {n}" for s, n in result.counts.items())
    print(f"split {sum(result.counts.values())} real records: {counts} ({result.changed} changed)")
    if args.by:
        for cat, c in result.by_category.items():
            print(f"  {short(cat, 30):<30} " + "  ".join(f"{s} {n}" for s, n in c.items()))
    return 0


def cmd_decontam(args: argparse.Namespace) -> int:
    from app.quality.copying import decontaminate

    with Notebook.open(args.notebook) as nb, cancellable("decontam", quiet=args.json, unit="record") as task:
        results = decontaminate(nb, args.n, args.threshold, task)
    flagged = [r for r in results if not r.passed]
    if args.json:
        print_json([r.__dict__ for r in flagged])
        return 0
    for r in flagged:
        print(f"record {r.record_id}: {r.share:.0%} of its {args.n}-grams in eval/holdout (mostly record {r.source_id})")
    print(f"{len(flagged)} of {len(results)} synthetic records overlap eval/holdout items beyond {args.threshold:.0%}")
    return 0


def cmd_copycheck(args: argparse.Namespace) -> int:
    from app.quality.copying import copy_check

    with Notebook.open(args.notebook) as nb, cancellable("copycheck", quiet=args.json, unit="record") as task:
        report = copy_check(nb, args.words, task)
    if args.json:
        print_json({"words": report.n, "checked": report.checked, "real": [c.__dict__ for c in report.real],
                    "few_shot": [c.__dict__ for c in report.few_shot]})
        return 0
    for what, found in (("real record", report.real), ("few-shot example", report.few_shot)):
        for c in found:
            print(f"record {c.record_id}: repeats {c.words} words of {what} {c.source_id}: \"{short(c.span, 80)}\"")
    print(f"of {report.checked} synthetic records, {len(report.real)} repeat {report.n}+ words of a real record, "
          f"{len(report.few_shot)} of a few-shot example in their prompt")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from app.quality.pii import KINDS

    s = sub.add_parser("redact", help="replace e-mails, phones, card numbers, IBANs and IPs with placeholders "
                                      "(recorded edits you can undo)")
    s.add_argument("notebook")
    s.add_argument("--ids", type=int, nargs="+", metavar="ID",
                   help="these records (default: every sample with personal data of the chosen kinds)")
    s.add_argument("--kinds", nargs="+", metavar="KIND",
                   help=f"{', '.join(KINDS)} (default: those of the notebook's pii rule)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_redact)

    s = sub.add_parser("canary", help="plant a canary string in a real row, or find synthetic records that contain one")
    s.add_argument("notebook")
    actions = s.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("add", help="append TEXT to a real row (recorded in its history)")
    a.add_argument("text")
    a.add_argument("--record", type=int, metavar="ID", help="the real row (default: the first real sample, "
                                                            "else the first real input row)")
    a.add_argument("--column", help="the input row's column to append to (default: its longest text)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_canary_add)
    a = actions.add_parser("check", help="score every synthetic record (a 'canary' funnel stage)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_canary_check)
    a = actions.add_parser("list", help="the planted canaries")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_canary_list)

    s = sub.add_parser("split", help="assign the real records to train / eval / holdout (seeded, stratified); "
                                     "few-shot never draws from eval or holdout")
    s.add_argument("notebook")
    s.add_argument("--eval", type=float, default=0.1, metavar="SHARE")
    s.add_argument("--holdout", type=float, default=0.1, metavar="SHARE")
    s.add_argument("--by", metavar="COLUMN", help="stratify by this input column (each value split in proportion)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_split)

    s = sub.add_parser("decontam", help="flag synthetic records whose word n-grams overlap eval/holdout items "
                                        "(a 'contamination:eval' funnel stage)")
    s.add_argument("notebook")
    s.add_argument("--n", type=int, default=8, help="words per n-gram (default 8)")
    s.add_argument("--threshold", type=float, default=0.2,
                   help="fail a record when more than this share of its n-grams are in eval items (default 0.2)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_decontam)

    s = sub.add_parser("copycheck", help="flag synthetic records that repeat a long span of a real record or of a "
                                         "few-shot example ('copy:real' / 'copy:few-shot' funnel stages)")
    s.add_argument("notebook")
    s.add_argument("--words", type=int, default=12, help="the shortest repeated span that counts (default 12)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_copycheck)
