"""``synth-studio``: the headless mirror of the studio.

These command names and flags are an interface other tools script against; keep
them stable. Every user-facing problem is one line on stderr and exit code 2;
a cancelled generation exits 130 and keeps everything it made.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from app.cli_common import EXIT_CANCELLED, EXIT_USER_ERROR, _print_json, _settings, _short
from app.cli_quality import (
    cmd_best_of,
    cmd_compare,
    cmd_dedupe,
    cmd_funnel,
    cmd_judge,
    cmd_metrics,
    cmd_sanity,
    cmd_transform,
    cmd_validate,
)
from app.errors import StudioError
from app.models import is_server_url
from app.store.notebook import Notebook

# -- commands ----------------------------------------------------------------------------


def cmd_new(args: argparse.Namespace) -> int:
    nb = Notebook.create(args.notebook)
    nb.close()
    print(f"created notebook {args.notebook}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from app.importer import import_file

    with Notebook.open(args.notebook) as nb:
        inputs, samples = import_file(nb, args.file, origin=args.origin, output_column=args.output_column)
    print(f"imported {inputs + samples} rows from {Path(args.file).name}: "
          f"{inputs} input rows to generate from, {samples} records with text")
    return 0


def cmd_prompt_add(args: argparse.Namespace) -> int:
    from app.templates import parse_template

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
        counts = dict(nb.conn.execute(
            "SELECT prompt_version_id, COUNT(*) FROM records WHERE role = 'sample' GROUP BY prompt_version_id"
        ).fetchall())
    rows = [
        {"name": v.name, "version": v.version, "id": v.id, "hash": v.hash[:12], "parent_id": v.parent_id,
         "created": v.created, "records": counts.get(v.id, 0)}
        for v in versions
    ]
    if args.json:
        _print_json(rows)
    elif not rows:
        print("no prompts yet (add one with: synth-studio prompt add NB.db NAME --template FILE)")
    else:
        for r in rows:
            print(f"{r['name']:<24} v{r['version']:<4} {r['hash']}  {r['records']:>6} records  {r['created']}")
    return 0


def cmd_prompt_preview(args: argparse.Namespace) -> int:
    from app.pipeline.generate import preview

    with Notebook.open(args.notebook) as nb:
        text, variables = preview(nb, args.name, row=args.row, seed=args.seed, version=args.version)
    if args.json:
        _print_json({"prompt": text, "variables": variables})
    else:
        print(text)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import backends
    from app.pipeline.generate import create_run, execute_run, prepare_run, resumable_run
    from app.tasks import TaskState

    with Notebook.open(args.notebook) as nb:
        # Cheap checks first (model file, template, rows) so bad input changes nothing
        # and costs no model load.
        if args.backend == "llama-cpp" and not is_server_url(args.model):
            from backends.llama_cpp_backend import describe_model

            model_info = describe_model(args.model)
        else:
            model_info = backends.load_generator(args.backend, args.model).info
        if args.resume:
            run = resumable_run(nb, args.prompt, model_info)
            plan = None
        else:
            plan = prepare_run(
                nb, args.prompt, samples=args.samples, limit_rows=args.limit_rows, seed=args.seed,
                settings=_settings(args),
            )
        generator = backends.load_generator(
            args.backend, model_info.path, n_ctx=args.n_ctx, n_threads=args.threads, n_gpu_layers=args.n_gpu_layers
        )
        try:
            if plan is not None:
                run = create_run(nb, plan, generator.info)
            bar = tqdm(total=len(run.plan) * run.samples_per_row, unit="sample", desc=f"run {run.id}",
                       disable=args.quiet)

            def progress(done: int, total: int, _msg: str) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

            task = TaskState(progress)
            previous = signal.signal(signal.SIGINT, lambda *_: task.request_interruption())
            try:
                run = execute_run(nb, run, generator, task)
            finally:
                signal.signal(signal.SIGINT, previous)
                bar.close()
        finally:
            generator.close()
        made = nb.conn.execute("SELECT COUNT(*) FROM records WHERE run_id = ?", (run.id,)).fetchone()[0]
    total = len(run.plan) * run.samples_per_row
    if run.status == "cancelled":
        print(f"run {run.id} cancelled: {made} of {total} samples kept; finish it with --resume", file=sys.stderr)
        return EXIT_CANCELLED
    print(f"run {run.id} complete: {made} samples from {generator.info.description or generator.info.backend}")
    return 0


def cmd_records(args: argparse.Namespace) -> int:
    with Notebook.open(args.notebook) as nb:
        role = None if args.all else ("input" if args.inputs else "sample")
        rows = nb.records(role=role, limit=args.limit)
        if args.json:
            for r in rows:
                r.pop("token_logprobs", None) if not args.logprobs else None
            _print_json(rows)
            return 0
        if not rows:
            print("no records yet")
            return 0
        for r in rows:
            lp = f"{r['mean_logprob']:.2f}" if r["mean_logprob"] is not None else "   - "
            print(f"{r['id']:>6}  {r['role']:<6} {r['status']:<8} {r['origin']:<12} lp {lp}  {_short(r['output'] or json.dumps(r['variables'], ensure_ascii=False))}")
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    if args.output is None and args.status is None:
        raise StudioError("nothing to change: give --output TEXT and/or --status STATUS")
    with Notebook.open(args.notebook) as nb:
        nb.record(args.record_id)  # a clear error for an unknown id before anything changes
        changed = []
        if args.output is not None:
            if nb.edit_record(args.record_id, "output", args.output, author=args.author):
                changed.append("output")
        if args.status is not None:
            if nb.edit_record(args.record_id, "status", args.status, author=args.author):
                changed.append("status")
    print(f"record {args.record_id}: " + (f"changed {', '.join(changed)}" if changed else "no change"))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    with Notebook.open(args.notebook) as nb:
        edits = nb.history(args.record_id) if nb.record(args.record_id) else []
    if args.json:
        _print_json([e.__dict__ for e in edits])
        return 0
    for e in edits:
        print(f"#{e.id} {e.created} {e.author}: {e.field}: {_short(e.old, 30)!r} -> {_short(e.new, 30)!r}")
    if not edits:
        print("no edits")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    with Notebook.open(args.notebook) as nb:
        runs = nb.runs()
        rows = []
        for r in runs:
            made = nb.conn.execute("SELECT COUNT(*) FROM records WHERE run_id = ?", (r.id,)).fetchone()[0]
            pv = nb.prompt_version_by_id(r.prompt_version_id)
            rows.append({**r.__dict__, "prompt": pv.label, "made": made,
                         "planned": len(r.plan) * r.samples_per_row})
    if args.json:
        _print_json(rows)
        return 0
    for r in rows:
        print(f"run {r['id']:<4} {r['prompt']:<20} {r['status']:<10} {r['made']}/{r['planned']} samples  "
              f"seed {r['seed']}  model {str(r['model_sha256'])[:12]}  {r['created']}")
    if not rows:
        print("no runs yet")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from app.export import DEFAULT_STATUSES, export

    statuses = args.status.split(",") if args.status else DEFAULT_STATUSES
    with Notebook.open(args.notebook) as nb:
        written, skipped = export(nb, args.out, fmt=args.format, statuses=statuses)
    note = f" ({skipped} skipped: no prompt to pair with)" if skipped else ""
    print(f"wrote {written} records to {args.out}{note}")
    return 0


# -- parser -----------------------------------------------------------------------------------


def _add_model_args(s: argparse.ArgumentParser, what: str = "model") -> None:
    s.add_argument("--model", metavar="PATH", help=f"{what} GGUF file (default: the bundled SmolLM2-135M-Instruct)")
    s.add_argument("--backend", default="llama-cpp", help="llama-cpp (default), openai (any OpenAI-compatible server with logprobs: --model http://HOST:PORT/v1[#name]) or fake (deterministic, for tests)")
    s.add_argument("--n-ctx", type=int, default=2048)
    s.add_argument("--threads", type=int, default=None, help="compute threads (default: every core)")


def _add_sampler_args(s: argparse.ArgumentParser, temperature: float) -> None:
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--temperature", type=float, default=temperature)
    s.add_argument("--top-p", type=float, default=0.95)
    s.add_argument("--top-k", type=int, default=40)
    s.add_argument("--max-tokens", type=int, default=256)
    s.add_argument("--stop", action="append", metavar="TEXT")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="synth-studio",
        description="Synth Studio: turn a prompt into a synthetic dataset you have looked at. "
        "Run with no arguments to open the window.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("new", help="create an empty notebook file")
    s.add_argument("notebook")
    s.set_defaults(func=cmd_new)

    s = sub.add_parser("import", help="import a CSV/TSV/JSONL/JSON/Parquet table as records")
    s.add_argument("notebook")
    s.add_argument("file")
    s.add_argument("--origin", choices=["real", "synthetic"], default="real")
    s.add_argument("--output-column", metavar="NAME", help="the column holding each record's text (default: output)")
    s.set_defaults(func=cmd_import)

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

    s = sub.add_parser("generate", help="generate samples from a prompt over the input rows")
    s.add_argument("notebook")
    s.add_argument("--prompt", required=True, metavar="NAME")
    s.add_argument("--samples", type=int, default=1, metavar="K", help="samples per input row")
    s.add_argument("--limit-rows", type=int, metavar="N")
    _add_sampler_args(s, temperature=0.8)
    _add_model_args(s)
    s.add_argument("--n-gpu-layers", type=int, default=0)
    s.add_argument("--resume", action="store_true", help="finish the prompt's last unfinished run")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_generate)

    s = sub.add_parser("records", help="list records")
    s.add_argument("notebook")
    s.add_argument("--json", action="store_true")
    s.add_argument("--limit", type=int, default=None)
    g = s.add_mutually_exclusive_group()
    g.add_argument("--inputs", action="store_true", help="list the input rows instead of samples")
    g.add_argument("--all", action="store_true", help="list inputs and samples")
    s.add_argument("--logprobs", action="store_true", help="include per-token logprobs in --json")
    s.set_defaults(func=cmd_records)

    s = sub.add_parser("edit", help="edit a record (recorded in its history)")
    s.add_argument("notebook")
    s.add_argument("record_id", type=int)
    s.add_argument("--output", metavar="TEXT")
    s.add_argument("--status", choices=["new", "accepted", "rejected", "flagged"])
    s.add_argument("--author", default="user")
    s.set_defaults(func=cmd_edit)

    s = sub.add_parser("history", help="show a record's edit history")
    s.add_argument("notebook")
    s.add_argument("record_id", type=int)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_history)

    s = sub.add_parser("runs", help="list generation runs with their lineage")
    s.add_argument("notebook")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_runs)

    s = sub.add_parser("validate", help="run code validators (and heuristic scorers) over the samples")
    s.add_argument("notebook")
    s.add_argument("--rules", metavar="FILE", help="a TOML/YAML rules file (default: resources/quality/default_rules.toml)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_validate)

    for name, func, text in (("judge", cmd_judge, "score samples with one-question LLM judges (P(yes) from logprobs)"),
                             ("sanity", cmd_sanity, "check each judge against known-good/bad examples and your labels")):
        s = sub.add_parser(name, help=text)
        s.add_argument("notebook")
        s.add_argument("--criteria", metavar="FILE",
                       help="a TOML/YAML criteria file (default: resources/quality/default_constitution.toml)")
        _add_model_args(s, "judge")
        s.add_argument("--json", action="store_true")
        s.set_defaults(func=func)

    s = sub.add_parser("best-of", help="generate N candidates per row and keep the best K by a score")
    s.add_argument("notebook")
    s.add_argument("--prompt", required=True, metavar="NAME")
    s.add_argument("--n", type=int, default=4)
    s.add_argument("--keep", type=int, default=1)
    s.add_argument("--by", default="likelihood", metavar="SCORE",
                   help="likelihood | judge:NAME | constitution | pairwise | score:NAME | validator:NAME | gated:<any of these>")
    s.add_argument("--criteria", metavar="FILE", help="criteria for judge:/constitution ranking")
    s.add_argument("--rules", metavar="FILE", help="validators to run first (needed for gated:)")
    s.add_argument("--limit-rows", type=int, metavar="N")
    _add_sampler_args(s, temperature=0.9)
    _add_model_args(s)
    s.set_defaults(func=cmd_best_of)

    s = sub.add_parser("transform", help="rewrite records (succinct, tone, steps) or bucket them by difficulty")
    s.add_argument("notebook")
    s.add_argument("--op", required=True, choices=["succinct", "tone", "steps", "difficulty"])
    s.add_argument("--tone", default="friendly, professional", help="for --op tone")
    s.add_argument("--limit", type=int, default=None, help="at most N source records")
    s.add_argument("--seed", type=int, default=0)
    _add_model_args(s)
    s.set_defaults(func=cmd_transform)

    s = sub.add_parser("compare", help="run two prompt versions on the same rows and seeds; diff and metric deltas")
    s.add_argument("notebook")
    s.add_argument("name", help="the prompt name")
    s.add_argument("--a", type=int, help="version A")
    s.add_argument("--b", type=int, help="version B")
    s.add_argument("--runs", type=int, nargs=2, metavar=("RUN_A", "RUN_B"), help="compare two existing runs instead")
    s.add_argument("--samples", type=int, default=1)
    s.add_argument("--limit-rows", type=int, default=5)
    s.add_argument("--show", type=int, default=3, help="output pairs to print")
    s.add_argument("--json", action="store_true")
    _add_sampler_args(s, temperature=0.8)
    _add_model_args(s)
    s.set_defaults(func=cmd_compare)

    from app.cli_map import add_parsers as add_map_parsers

    add_map_parsers(sub)

    s = sub.add_parser("dedupe", help="mark duplicate groups (exact, near via MinHash, or semantic)")
    s.add_argument("notebook")
    s.add_argument("--method", choices=["exact", "minhash", "semantic"], default="exact")
    s.add_argument("--threshold", type=float, default=None,
                   help="minhash: word-shingle Jaccard (default 0.6); semantic: cosine (default 0.95)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_dedupe)

    s = sub.add_parser("metrics", help="diversity and collapse metrics per prompt version")
    s.add_argument("notebook")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_metrics)

    s = sub.add_parser("funnel", help="records kept and dropped at each quality stage, and why")
    s.add_argument("notebook")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_funnel)

    s = sub.add_parser("export", help="export records to JSONL/CSV/Parquet")
    s.add_argument("notebook")
    s.add_argument("out")
    s.add_argument("--format", choices=["plain", "sft", "dpo"], default="plain",
                   help="plain records, chat-format SFT (messages), or DPO pairs (prompt, chosen, rejected)")
    s.add_argument("--status", metavar="LIST", help="comma-separated statuses to include (default: all but rejected)")
    s.set_defaults(func=cmd_export)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return args.func(args)
    except StudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
