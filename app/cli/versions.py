"""CLI, stage 7 (export), dataset versions: ``version``, ``versions``, ``diff``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from app.cli.common import print_json, short
from app.core.tasks import TaskState
from app.store.notebook import Notebook

if TYPE_CHECKING:
    from app.export.versions import VersionDiff


def cmd_version(args: argparse.Namespace) -> int:
    from app.jobs import version_job

    v = version_job(args.notebook, args.tag, message=args.message or "", task=TaskState())
    parent = f", parent {v.parent_tag}" if v.parent_tag else " (the first version)"
    print(f"froze {v.records} kept records as {v.tag}{parent}: content hash {v.content_hash}")
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    from app.export.versions import versions

    with Notebook.open(args.notebook) as nb:
        vs = versions(nb)
    if args.json:
        print_json([{"tag": v.tag, "message": v.message, "created": v.created, "records": v.records,
                     "content_hash": v.content_hash, "parent": v.parent_tag,
                     "prompts": [f"{p['name']} v{p['version']}" for p in v.manifest.get("prompts", [])]}
                    for v in vs])
        return 0
    if not vs:
        print(f"no versions yet: freeze the kept set with synth-studio version {args.notebook} --tag v1")
        return 0
    print(f"{'tag':<12} {'created':<19} {'records':>7}  {'hash':<12}  parent        message")
    for v in vs:
        print(f"{short(v.tag, 12):<12} {v.created[:19].replace('T', ' '):<19} {v.records:>7}  {v.content_hash[:12]}  "
              f"{short(v.parent_tag or '—', 12):<12}  {short(v.message, 50)}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from app.jobs import diff_job

    d = diff_job(args.notebook, args.before, args.after, task=TaskState())
    if args.json:
        print_json(d.to_dict())
        return 0
    for line in diff_lines(d, limit=args.limit):
        print(line)
    return 0


def _num(v: float | None, fmt: str = "{:.3g}") -> str:
    return "—" if v is None else fmt.format(v)


def diff_lines(d: VersionDiff, limit: int | None = None) -> list[str]:
    """The diff as text: counts, funnel stages, shifts, clusters, then each change."""
    out = [f"{d.before} ({d.count_before} records, {d.hash_before[:12]}) -> {d.after} ({d.count_after} records, "
           f"{d.hash_after[:12]})"]
    if d.identical:
        return [*out, "identical: same records, same text, made the same way"]
    out.append(f"added {len(d.added)}, removed {len(d.removed)}, edited {len(d.edited)}, "
               f"status changed {len(d.status_changes)}")
    if d.prompts_before != d.prompts_after:
        out.append(f"prompts: {', '.join(d.prompts_before) or '—'} -> {', '.join(d.prompts_after) or '—'}")
    stages = [s for s in d.stages if s.changed]
    if stages:
        out += ["", "funnel (kept / dropped):"]
        out += [f"  {s.stage:<28} {_num(s.kept_before, '{}')}/{_num(s.dropped_before, '{}')} -> "
                f"{_num(s.kept_after, '{}')}/{_num(s.dropped_after, '{}')}" for s in stages]
    out += ["", "distributions (mean, median; KS statistic):"]
    out += [f"  {s.name:<28} mean {_num(s.mean_before)} -> {_num(s.mean_after)}, median {_num(s.median_before)} -> "
            f"{_num(s.median_after)}; KS {_num(s.ks, '{:.3f}')} (p {_num(s.p_value)})" for s in d.distributions]
    if d.score_changes:
        out += ["", "scores changed on records in both:"]
        out += [f"  {c.name:<28} {c.changed} changed, mean shift {_num(c.mean_shift, '{:+.3g}')}"
                for c in d.score_changes]
    if d.clusters:
        out += ["", "clusters:"]
        out += [f"  cluster {c.cluster:<4} {c.before} -> {c.after} ({'grew' if c.after > c.before else 'shrank'})"
                for c in d.clusters]
    shown = lambda xs: xs if limit is None else xs[:limit]  # noqa: E731
    for title, recs in (("added", d.added), ("removed", d.removed)):
        if recs:
            out += ["", f"{title}:"]
            out += [f"  #{r.record_id:<6} {short(r.output)}" for r in shown(recs)]
            if len(shown(recs)) < len(recs):
                out.append(f"  … and {len(recs) - len(shown(recs))} more")
    if d.status_changes:
        out += ["", "status changes:"]
        out += [f"  #{c.record_id:<6} {c.before} -> {c.after}" for c in shown(d.status_changes)]
    for e in shown(d.edited):
        out += ["", *e.unified]
    return out


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("version", help="freeze the funnel's kept set as a tagged, immutable dataset version")
    s.add_argument("notebook")
    s.add_argument("--tag", required=True, help="the version's name, e.g. v1 (a tag that exists is refused)")
    s.add_argument("--message", "-m", help="what changed, in a line")
    s.set_defaults(func=cmd_version)

    s = sub.add_parser("versions", help="list dataset versions with their lineage")
    s.add_argument("notebook")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_versions)

    s = sub.add_parser("diff", help="what changed between two dataset versions (or a version and the kept set now)")
    s.add_argument("notebook")
    s.add_argument("before", help="a version tag")
    s.add_argument("after", nargs="?", default="current",
                   help="a version tag, or current: the kept set now (default)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--limit", type=int, default=None, metavar="N",
                   help="list at most N records of each kind of change (default: all)")
    s.set_defaults(func=cmd_diff)
