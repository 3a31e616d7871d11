"""``synth-studio``: the headless mirror of the studio.

These command names and flags are an interface other tools script against; keep
them stable. Every user-facing problem is one line on stderr and exit code 2;
a cancelled command exits 130 and keeps everything it made. Each stage's
commands live in the module named after the stage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from app import __version__
from app.cli import (
    coverage,
    criteria,
    data,
    export,
    generate,
    map,
    privacy,
    prompts,
    quality,
    report,
    review,
    tabular,
    versions,
)
from app.cli.common import EXIT_CANCELLED, EXIT_USER_ERROR
from app.core.errors import Cancelled, StudioError
from app.core.logs import FILE_ONLY, setup_logging

log = logging.getLogger("app.cli")

STAGES = (data, prompts, generate, tabular, quality, coverage, criteria, privacy, map, review, report, export, versions)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="synth-studio",
        description="Synth Studio: turn a prompt into a synthetic dataset you have looked at. "
        "Run with no arguments to open the window.",
    )
    p.add_argument("--version", action="version", version=f"synth-studio {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for stage in STAGES:
        stage.add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    setup_logging()  # warnings and errors also go to the log file (app.core.logs)
    try:
        return int(args.func(args))
    except StudioError as exc:
        log.error("synth-studio %s: %s", args.command, exc, extra=FILE_ONLY)  # the terminal gets the line below
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Cancelled:
        print("cancelled: everything finished before the stop is kept", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception:  # a bug: Python prints the traceback as it leaves; the log file keeps it too
        log.exception("synth-studio %s failed", args.command, extra=FILE_ONLY)
        raise


if __name__ == "__main__":
    sys.exit(main())
