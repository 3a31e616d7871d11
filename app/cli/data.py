"""CLI, stage 1 (data): ``new`` and ``import``."""

from __future__ import annotations

import argparse

from app.jobs import import_job
from app.store.notebook import Notebook


def cmd_new(args: argparse.Namespace) -> int:
    if args.sample == "chain":
        from app.cells import create_chain_notebook

        create_chain_notebook(args.notebook).close()
        print(f"created notebook {args.notebook}: quiz topics, prompts question -> answer (chained) and a judge "
              f"criterion; run it: synth-studio generate {args.notebook} --prompt question, then "
              f"synth-studio generate {args.notebook} --prompt answer --over prompt:question")
        return 0
    nb = Notebook.create(args.notebook)
    nb.close()
    print(f"created notebook {args.notebook}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from app.core.tasks import TaskState

    print(import_job(args.notebook, args.file, origin=args.origin, output_column=args.output_column,
                     task=TaskState()))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("new", help="create an empty notebook file (or a sample one)")
    s.add_argument("notebook")
    s.add_argument("--sample", choices=["chain"], help="chain: quiz question -> answer -> judge (resources/chain)")
    s.set_defaults(func=cmd_new)

    s = sub.add_parser("import", help="import a CSV/TSV/JSONL/JSON/Parquet table as records")
    s.add_argument("notebook")
    s.add_argument("file")
    s.add_argument("--origin", choices=["real", "synthetic"], default="real")
    s.add_argument("--output-column", metavar="NAME",
                   help="the column holding each record's text (default: output; SFT/DPO files and the "
                        "studio's own exports are recognised and come in as records)")
    s.set_defaults(func=cmd_import)
