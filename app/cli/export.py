"""CLI, stage 7 (export): ``export``."""

from __future__ import annotations

import argparse

from app.store.notebook import Notebook


def cmd_export(args: argparse.Namespace) -> int:
    from app.export.formats import export

    statuses = args.status.split(",") if args.status else None
    with Notebook.open(args.notebook) as nb:
        written, skipped = export(nb, args.out, fmt=args.format, statuses=statuses,
                                  select="all" if args.all else "kept")
    what = ("records" if args.format in ("plain", "sft") else "pairs") + (
        "" if args.all or args.status else " (the funnel's kept set)")
    note = f" ({skipped} skipped: no prompt to pair with)" if skipped else ""
    print(f"wrote {written} {what} to {args.out}{note}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("export", help="export records to JSONL/CSV/Parquet")
    s.add_argument("notebook")
    s.add_argument("out")
    s.add_argument("--format", choices=["plain", "sft", "dpo", "dpo-chat"], default="plain",
                   help="plain records (scores as columns), chat-format SFT (messages), DPO pairs as strings "
                   "(prompt, chosen, rejected) or dpo-chat: the same pairs as chat message lists (TRL's "
                   "conversational format)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--all", action="store_true",
                   help="every sample with text, with its funnel verdict as columns (default: the kept set)")
    g.add_argument("--status", metavar="LIST",
                   help="every sample with one of these comma-separated statuses, whatever the funnel says")
    s.set_defaults(func=cmd_export)
