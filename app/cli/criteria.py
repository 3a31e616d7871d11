"""CLI, stage 4 (quality): ``criteria`` — your own judges' questions and validator rules, in the notebook.

    synth-studio criteria list NB.db                         # criteria and rules: version, active, trust, AUC, kappa
    synth-studio criteria show NB.db NAME [--rule]           # the spec (TOML) and its versions
    synth-studio criteria add NB.db NAME --question "Does this text mention {{ input.topic }}?"
    synth-studio criteria edit NB.db NAME --threshold 0.4    # a changed spec is a new version
    synth-studio criteria import NB.db FILE [--inactive]     # [[criterion]] and [[rule]] tables (TOML/YAML)
    synth-studio criteria export NB.db FILE|- [--all]
    synth-studio criteria propose NB.db --prompt NAME [--save]   # yes/no questions from the prompt's instructions
    synth-studio criteria activate|deactivate NB.db NAME [--rule]
    synth-studio criteria trust|distrust NB.db NAME [--reason TEXT]
    synth-studio criteria reset-trust NB.db NAME
    synth-studio criteria label NB.db RECORD CRITERION yes|no|clear
    synth-studio criteria preview NB.db NAME RECORD          # the question as asked about one record
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from typing import Any

from app.cli.common import print_json, short
from app.core.errors import StudioError
from app.store.notebook import Notebook


def _kind(args: argparse.Namespace) -> str:
    return "rule" if getattr(args, "rule", False) else "criterion"


def _value(text: str) -> Any:
    """A --set value: a TOML value when it parses as one (120, 0.4, true, ["a", "b"]), else the text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _apply(spec: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The spec with the command's options applied (lists given on the command line replace the old ones,
    except --good / --bad, which add examples)."""
    spec = dict(spec)
    for key in ("question", "type", "format", "guidelines", "threshold", "samples"):
        value = getattr(args, key, None)
        if value is not None:
            spec[key] = value
    if getattr(args, "invert", None) is not None:
        spec["invert"] = args.invert
    if getattr(args, "point", None):
        spec["points"] = list(args.point)
    if getattr(args, "level", None):
        levels = {}
        for item in args.level:
            key, sep, text = item.partition("=")
            if not sep:
                raise StudioError(f"--level takes N=DESCRIPTION, e.g. --level '1=useless', not {item!r}")
            levels[key.strip()] = text.strip()
        spec["levels"] = levels
    for key in ("good", "bad"):
        extra = getattr(args, key, None)
        if extra:
            spec[key] = list(spec.get(key, [])) + list(extra)
    for item in getattr(args, "set", None) or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise StudioError(f"--set takes KEY=VALUE, e.g. --set max=120, not {item!r}")
        spec[key.strip()] = _value(text.strip())
    for key in getattr(args, "unset", None) or []:
        spec.pop(key, None)
    return spec


def _saved(v: Any, created: bool) -> str:
    state = "" if v.active else " (inactive: `synth-studio criteria activate` to use it)"
    return f"saved {v.kind} {v.label}{state}" if created else f"unchanged: {v.kind} {v.label} (no new version)"


def cmd_list(args: argparse.Namespace) -> int:
    from app.quality.criteria import list_entries

    with Notebook.open(args.notebook) as nb:
        entries = list_entries(nb)
    if args.json:
        print_json([{"kind": e.kind, "name": e.name, "version": e.version.version, "version_id": e.version.id,
                     "active": e.version.active, "trust": e.trust_label or None,
                     "trust_detail": e.trust.detail if e.trust else None, "auc": e.auc, "kappa": e.kappa,
                     "spec": e.version.spec} for e in entries])
        return 0
    for e in entries:
        on = "active  " if e.version.active else "inactive"
        measures = ""
        if e.kind == "criterion":
            auc = "-" if e.auc is None else f"{e.auc:.2f}"
            kappa = "-" if e.kappa is None else f"{e.kappa:.2f}"
            measures = f"{e.trust_label:<20} AUC {auc:<5} kappa {kappa:<5}"
        spec = e.version.spec
        what = spec.get("question") or (" ".join(f"{k}={v}" for k, v in spec.items() if k != "name")
                                        if e.kind == "rule" else spec.get("type", ""))
        print(f"{e.kind:<9} {e.name:<24} v{e.version.version:<3} {on} {measures:<44} {short(str(what), 60)}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from app.quality.criteria import criterion_trust, require_version, version_toml
    from app.store.criteria import version_history

    with Notebook.open(args.notebook) as nb:
        v = require_version(nb, _kind(args), args.name, args.version)
        history = version_history(nb, v.kind, v.name)
        trust = criterion_trust(nb, v)[0] if v.kind == "criterion" else None
    print(version_toml(v), end="")
    print(f"# {v.label}, {'active' if v.active else 'inactive'}; versions: "
          + ", ".join(f"v{h.version} ({h.created[:16]})" for h in history))
    if trust is not None:
        print(f"# judge: {trust.label}: {trust.detail}")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from app.quality.criteria import save_spec
    from app.store.criteria import get_version

    kind = _kind(args)
    with Notebook.open(args.notebook) as nb:
        if get_version(nb, kind, args.name) is not None:
            raise StudioError(f"a {kind} named {args.name!r} exists; change it with `synth-studio criteria edit`")
        v, created = save_spec(nb, kind, _apply({"name": args.name}, args), active=not args.inactive)
    print(_saved(v, created))
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    from app.quality.criteria import editable_spec, parse_document, require_version, save_spec, spec_of
    from app.quality.validators import spec_of_rule

    kind = _kind(args)
    with Notebook.open(args.notebook) as nb:
        spec = editable_spec(require_version(nb, kind, args.name))
        if args.file:
            with open(args.file, encoding="utf-8") as fh:
                constitution, rules = parse_document(fh.read(), args.file)
            tables = ([spec_of(c) for c in constitution.criteria] if kind == "criterion"
                      else [{"name": r.name, **spec_of_rule(r)} for r in rules])
            if len(tables) != 1:
                raise StudioError(f"{args.file} must hold exactly one [[{kind}]] table to edit {args.name!r}")
            spec = {**tables[0], "name": args.name}
        v, created = save_spec(nb, kind, _apply(spec, args))
    print(_saved(v, created))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from app.quality.criteria import import_file

    with Notebook.open(args.notebook) as nb:
        saved = import_file(nb, args.file, active=False if args.inactive else None)
    for v, created in saved:
        print(_saved(v, created))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from app.quality.criteria import export_file, export_toml

    with Notebook.open(args.notebook) as nb:
        if args.file == "-":
            sys.stdout.write(export_toml(nb, include_inactive=args.all))
            return 0
        n = export_file(nb, args.file, include_inactive=args.all)
    print(f"wrote {n} criteria and rules to {args.file}")
    return 0


def cmd_propose(args: argparse.Namespace) -> int:
    from app.quality.criteria import proposals_toml, propose_for_prompt, save_proposals

    with Notebook.open(args.notebook) as nb:
        proposals = propose_for_prompt(nb, args.prompt)
        saved = save_proposals(nb, proposals) if args.save else []
    if args.json:
        print_json([{"kind": p.kind, "name": p.name, "spec": p.spec, "sentence": p.sentence} for p in proposals])
        return 0
    if not proposals:
        print(f"no instructions found in {args.prompt!r} (sentences such as \"Mention ...\", \"Do not ...\", "
              "\"... must ...\", \"under N words\")")
        return 0
    print(proposals_toml(proposals), end="")
    if saved:
        print(f"# saved {len(saved)} inactive: " + ", ".join(v.label for v in saved)
              + ". Edit them (criteria edit), check them (sanity), then criteria activate NAME.")
    else:
        print("# edit these, then import them (criteria import), or run again with --save (saved inactive)")
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    from app.quality.criteria import activate

    on = args.command_name == "activate"
    with Notebook.open(args.notebook) as nb:
        activate(nb, _kind(args), args.name, on)
    print(f"{_kind(args)} {args.name} {'active' if on else 'inactive'}")
    return 0


def cmd_trust(args: argparse.Namespace) -> int:
    from app.quality.criteria import set_trust

    decision = {"trust": True, "distrust": False, "reset-trust": None}[args.command_name]
    with Notebook.open(args.notebook) as nb:
        t = set_trust(nb, args.name, decision, reason=getattr(args, "reason", "") or "")
    print(f"{args.name}: {t.label} ({t.detail}); it {'filters and ranks' if t.decides else 'neither filters nor ranks'}")
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from app.quality.criteria import label_record

    value = {"yes": True, "no": False, "clear": None}[args.answer]
    with Notebook.open(args.notebook) as nb:
        label_record(nb, args.record, args.criterion, value)
    what = "removed" if value is None else f"{args.answer} (counts as a {'good' if value else 'bad'} example)"
    print(f"record {args.record}, {args.criterion}: {what}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from app.quality.criteria import criterion_of_version, preview_criterion, require_version

    with Notebook.open(args.notebook) as nb:
        c = criterion_of_version(require_version(nb, "criterion", args.name))
        p = preview_criterion(nb, c, args.record)
    if p.error:
        raise StudioError(f"record {args.record}: {p.error}")
    for q in p.questions:
        print(f"question: {q}")
    print("--- the judge reads ---")
    print(p.prompt)
    return 0


def _spec_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--rule", action="store_true", help="a validator rule rather than a judge's criterion")
    s.add_argument("--question", help="the yes/no question; a template: {{ input.NAME }}, {{ prompt }}, {{ output }}")
    s.add_argument("--type", help="yes_no (default), rubric or additive; for a rule: its type (length, regex, ...)")
    s.add_argument("--point", action="append", metavar="QUESTION", help="additive: one yes/no question per point")
    s.add_argument("--level", action="append", metavar="N=TEXT", help="rubric: describe level N (1..5)")
    s.add_argument("--good", action="append", metavar="TEXT", help="a known-good example (should pass)")
    s.add_argument("--bad", action="append", metavar="TEXT", help="a known-bad example (should fail)")
    s.add_argument("--threshold", type=float, help="pass at or above this score")
    s.add_argument("--invert", action=argparse.BooleanOptionalAction, default=None,
                   help="yes/no: pass when the answer is No")
    s.add_argument("--samples", type=int, help="average over this many wordings of the question (1-4)")
    s.add_argument("--format", choices=["completion", "chat"])
    s.add_argument("--guidelines", help="grading notes shown before every text")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any other setting, e.g. --set unit=words --set max=120 (rules) or max='{{ max_words }}'")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("criteria", help="your criteria (judges' questions) and validator rules, kept in the notebook")
    csub = p.add_subparsers(dest="criteria_command", metavar="ACTION", required=True)

    def action(name: str, func: Any, text: str) -> argparse.ArgumentParser:
        s: argparse.ArgumentParser = csub.add_parser(name, help=text, description=text)
        s.add_argument("notebook")
        s.set_defaults(func=func, command_name=name)
        return s

    s = action("list", cmd_list, "criteria and rules with version, active flag, trust state, AUC and kappa")
    s.add_argument("--json", action="store_true")

    s = action("show", cmd_show, "a criterion's or rule's spec (TOML), its versions and its trust state")
    s.add_argument("name")
    s.add_argument("--rule", action="store_true")
    s.add_argument("--version", type=int)

    s = action("add", cmd_add, "add a criterion (or --rule) to the notebook")
    s.add_argument("name")
    _spec_options(s)
    s.add_argument("--inactive", action="store_true", help="save it switched off")

    s = action("edit", cmd_edit, "change a criterion or rule: a changed spec is saved as a new version")
    s.add_argument("name")
    _spec_options(s)
    s.add_argument("--unset", action="append", metavar="KEY", help="remove a setting")
    s.add_argument("--file", help="replace the spec with the one [[criterion]]/[[rule]] table in this TOML/YAML file")

    s = action("import", cmd_import, "save the [[criterion]] and [[rule]] tables of a TOML/YAML file as versions")
    s.add_argument("file")
    s.add_argument("--inactive", action="store_true", help="save them switched off")

    s = action("export", cmd_export, "write the active criteria and rules as TOML (- for stdout)")
    s.add_argument("file")
    s.add_argument("--all", action="store_true", help="include inactive ones")

    s = action("propose", cmd_propose, "propose yes/no criteria from a prompt's own instructions (no model)")
    s.add_argument("--prompt", required=True, metavar="NAME")
    s.add_argument("--save", action="store_true", help="save them in the notebook, inactive, to edit first")
    s.add_argument("--json", action="store_true")

    for name, text in (("activate", "use a criterion or rule when judging / validating"),
                       ("deactivate", "stop using a criterion or rule (its versions are kept)")):
        s = action(name, cmd_activate, text)
        s.add_argument("name")
        s.add_argument("--rule", action="store_true")

    for name, text in (("trust", "let this judge filter and rank even though its sanity check did not show it "
                                 "beats chance (shown as 'trusted by you')"),
                       ("distrust", "never let this judge filter or rank"),
                       ("reset-trust", "follow the judge's sanity check again")):
        s = action(name, cmd_trust, text)
        s.add_argument("name")
        if name != "reset-trust":
            s.add_argument("--reason", default="", help="why (kept with the decision)")

    s = action("label", cmd_label, "your answer to a criterion's question about one record (sanity evidence)")
    s.add_argument("record", type=int)
    s.add_argument("criterion")
    s.add_argument("answer", choices=["yes", "no", "clear"])

    s = action("preview", cmd_preview, "a criterion's question as it is asked about one record")
    s.add_argument("name")
    s.add_argument("record", type=int)
