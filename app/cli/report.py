"""CLI, the report: ``report`` (real vs synthetic, as a self-contained HTML page and/or JSON)."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.common import cancellable, print_json
from app.core.errors import StudioError


def cmd_report(args: argparse.Namespace) -> int:
    from app.jobs import report_job

    if not args.html and not args.json:
        raise StudioError("say where the report goes: --html report.html and/or --json")
    if args.html and not Path(args.html).resolve().parent.is_dir():
        raise StudioError(f"folder {Path(args.html).resolve().parent} does not exist")
    with cancellable("report", quiet=args.quiet or args.json, unit="step") as task:
        page = report_job(args.notebook, synthetic="all" if args.all else "kept", version=args.version, k=args.k,
                          task=task)
    if args.html:
        Path(args.html).write_text(page.html, encoding="utf-8")
    r = page.report
    if args.json:
        print_json({**r.to_dict(), "html": args.html})
        return 0
    print(f"real vs synthetic ({r.synthetic_set}): {r.real_count} real, {r.synthetic_count} synthetic records")
    print(f"  {'overall':<20} {r.score:.3f}")
    for part, value in r.parts.items():
        print(f"  {part:<20} {value:.3f}")
    for note in r.notes:
        print(f"  note: {note}")
    if args.html:
        print(f"wrote {args.html}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("report", help="real vs synthetic: column shapes, n-grams, embedding precision/recall, "
                                      "nearest real records, one-sided clusters; one score with its parts")
    s.add_argument("notebook")
    which = s.add_mutually_exclusive_group()
    which.add_argument("--version", default=None, metavar="TAG",
                       help="compare a frozen dataset version's records (default: the kept set now)")
    which.add_argument("--all", action="store_true", help="compare every synthetic sample, not just the kept set")
    s.add_argument("--html", default=None, metavar="OUT.html", help="write the report as one self-contained page")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.add_argument("--k", type=int, default=5, help="neighbours for the k-NN precision and recall (default 5)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_report)
