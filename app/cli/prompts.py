"""CLI, stage 2 (prompts): ``prompt add | list | preview``."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.common import print_json
from app.core.errors import StudioError
from app.store.notebook import Notebook
from app.store.queries import records_per_prompt_version


def cmd_prompt_add(args: argparse.Namespace) -> int:
    from app.prompts.templates import parse_template

    path = Path(args.template)
    if not path.exists():
        raise StudioError(f"template file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise StudioError(f"{path} is not valid UTF-8 text") from None
    try:
        parse_template(text)
    except StudioError as exc:
        raise StudioError(f"{path}: {exc}") from None
    with Notebook.open(args.notebook) as nb:
        pv, created = nb.add_prompt_version(args.name, text)
    if created:
        print(f"saved prompt {pv.name!r} as version {pv.version}")
    else:
        print(f"prompt {pv.name!r} is unchanged (still version {pv.version})")
    return 0


def cmd_prompt_list(args: argparse.Namespace) -> int:
    with Notebook.open(args.notebook) as nb:
        versions = nb.prompt_versions()
        counts = records_per_prompt_version(nb)
    rows = [
        {"name": v.name, "version": v.version, "id": v.id, "hash": v.hash[:12], "parent_id": v.parent_id,
         "created": v.created, "records": counts.get(v.id, 0)}
        for v in versions
    ]
    if args.json:
        print_json(rows)
    elif not rows:
        print("no prompts yet (add one with: synth-studio prompt add NB.db NAME --template FILE)")
    else:
        for r in rows:
            print(f"{r['name']:<24} v{r['version']:<4} {r['hash']}  {r['records']:>6} records  {r['created']}")
    return 0


def cmd_prompt_preview(args: argparse.Namespace) -> int:
    from app.generate.runs import preview

    with Notebook.open(args.notebook) as nb:
        text, variables = preview(nb, args.name, row=args.row, seed=args.seed, version=args.version)
    if args.json:
        print_json({"prompt": text, "variables": variables})
    else:
        print(text)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("prompt", help="add or list prompt templates (every save is a version)")
    psub = s.add_subparsers(dest="prompt_command", metavar="ACTION", required=True)
    a = psub.add_parser("add", help="save a template file as a prompt (a new version if NAME exists)")
    a.add_argument("notebook")
    a.add_argument("name")
    a.add_argument("--template", required=True, metavar="FILE")
    a.set_defaults(func=cmd_prompt_add)
    a = psub.add_parser("list", help="list prompt versions")
    a.add_argument("notebook")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_prompt_list)
    a = psub.add_parser("preview", help="render a prompt against an input row, without running the model")
    a.add_argument("notebook")
    a.add_argument("name")
    a.add_argument("--row", type=int, default=1, help="which input row (1-based, default 1)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--version", type=int, default=None)
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_prompt_preview)
