"""CLI, stage 7 (export): ``export``."""

from __future__ import annotations

import argparse

from app.store.notebook import Notebook


def cmd_export(args: argparse.Namespace) -> int:
    from app.export.formats import DEFAULT_STATUSES, export

    statuses = args.status.split(",") if args.status else DEFAULT_STATUSES
    with Notebook.open(args.notebook) as nb:
        written, skipped = export(nb, args.out, fmt=args.format, statuses=statuses)
    note = f" ({skipped} skipped: no prompt to pair with)" if skipped else ""
    print(f"wrote {written} records to {args.out}{note}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("export", help="export records to JSONL/CSV/Parquet")
    s.add_argument("notebook")
    s.add_argument("out")
    s.add_argument("--format", choices=["plain", "sft", "dpo"], default="plain",
                   help="plain records, chat-format SFT (messages), or DPO pairs (prompt, chosen, rejected)")
    s.add_argument("--status", metavar="LIST", help="comma-separated statuses to include (default: all but rejected)")
    s.set_defaults(func=cmd_export)
