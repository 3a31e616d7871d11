"""CLI, stage 7 (export): ``export``."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.store.notebook import Notebook


def cmd_export(args: argparse.Namespace) -> int:
    from app.export.formats import export

    statuses = args.status.split(",") if args.status else None
    with Notebook.open(args.notebook) as nb:
        written, skipped = export(nb, args.out, fmt=args.format, statuses=statuses,
                                  select="all" if args.all else "kept", version=args.version, card=args.card,
                                  by_split=args.by_split, structured=args.structured)
    what = ("records" if args.format in ("plain", "sft") else "pairs") + (
        "" if args.all or args.status else f" (version {args.version})" if args.version and args.version != "current"
        else " (the funnel's kept set)")
    note = f" ({skipped} skipped: no prompt to pair with)" if skipped else ""
    if args.by_split:
        from app.export.splits import split_paths

        where = ", ".join(str(p) for p in split_paths(Path(args.out)).values())
        print(f"wrote {written} {what} by split to {where}{note}")
    else:
        print(f"wrote {written} {what} to {args.out}{note}")
    if args.version or args.card:
        from app.export.card import CARD_NAME, manifest_path

        out = Path(args.out)
        print(f"wrote {manifest_path(out)} and the dataset card {out.parent / CARD_NAME}")
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
    s.add_argument("--version", metavar="TAG",
                   help="exactly this dataset version's records as frozen (or current: the kept set now), with "
                   "OUT.manifest.json and a Hugging Face dataset card (README.md) beside the file")
    s.add_argument("--by-split", action="store_true",
                   help="one file per split (OUT.train / OUT.eval / OUT.holdout; see synth-studio split)")
    s.add_argument("--card", action="store_true",
                   help="write the manifest and dataset card for the kept set now (implied by --version)")
    s.add_argument("--structured", choices=["nest", "flatten"], default=None,
                   help="records whose output is a JSON object (a prompt's output_schema): nest = output is the "
                   "object in JSONL (the JSON text in CSV/Parquet); flatten = output stays the text and each field "
                   "gets an output.<field> column (default: nest for JSONL, flatten for CSV and Parquet)")
    s.set_defaults(func=cmd_export)
