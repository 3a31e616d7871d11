"""``synth-studio``: the headless mirror of the studio.

These command names and flags are an interface other tools script against; keep
them stable. Every user-facing problem is one line on stderr and exit code 2 (a
full disk, a read-only or busy notebook included); a cancelled command (Ctrl-C)
exits 130 and keeps everything it made. Each stage's commands live in the module
named after the stage.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from app import __version__
from app.cli.common import EXIT_CANCELLED, EXIT_USER_ERROR, environment_problem
from app.core.credentials import scrub
from app.core.errors import Cancelled, StudioError
from app.core.logs import FILE_ONLY, setup_logging

log = logging.getLogger("app.cli")

CANCELLED = "cancelled: everything finished before the stop is kept"


def stages() -> tuple[ModuleType, ...]:
    """The stage modules, in the order ``--help`` lists their commands. Imported here rather than
    at the top, so that loading them (pandas, numpy) happens inside :func:`main`, where a Ctrl-C
    is a clean exit rather than a traceback."""
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

    return (data, prompts, generate, tabular, quality, coverage, criteria, privacy, map, review, report, export,
            versions)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="synth-studio",
        description="Synth Studio: turn a prompt into a synthetic dataset you have looked at. "
        "Run with no arguments to open the window.",
    )
    p.add_argument("--version", action="version", version=f"synth-studio {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for stage in stages():
        stage.add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.Namespace(command=None)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USER_ERROR
        setup_logging()  # warnings and errors also go to the log file (app.core.logs)
        from app.store.notebook import waiting_for_writers

        with waiting_for_writers(WRITE_WAIT_S, _say_waiting):  # another program's long write is waited out
            return int(args.func(args))
    except StudioError as exc:
        return _user_error(args, str(exc), exc)
    except (Cancelled, KeyboardInterrupt):  # KeyboardInterrupt: a Ctrl-C outside a cancellable run (loading)
        print(CANCELLED, file=sys.stderr)
        return EXIT_CANCELLED
    except (sqlite3.Error, OSError) as exc:
        problem = environment_problem(exc, args)
        if problem is None:  # an SQL mistake is a bug
            _to_log_file(log.exception, "synth-studio %s failed", args.command)
            raise
        return _user_error(args, problem, exc)
    except Exception:  # a bug: Python prints the traceback as it leaves; the log file keeps it too
        _to_log_file(log.exception, "synth-studio %s failed", args.command)
        raise


WRITE_WAIT_S = 300.0  # how long a command waits for another program's write before it gives up


def _say_waiting(path: object, seconds: float) -> None:
    print(f"waiting for another program's write to {getattr(path, 'name', path)} to finish "
          f"({seconds:.0f} s so far; Ctrl-C stops)", file=sys.stderr)


def _user_error(args: argparse.Namespace, message: str, exc: BaseException) -> int:
    line = scrub(message, getattr(args, "api_key", None))
    # the terminal gets the line below; the file also keeps where a disk or SQLite problem came from
    details = not isinstance(exc, StudioError) or exc.__cause__ is not None
    _to_log_file(log.error, "synth-studio %s: %s", args.command, line, exc_info=exc if details else None)
    print(f"error: {line}", file=sys.stderr)
    return EXIT_USER_ERROR


def _to_log_file(write: Callable[..., None], *args: object, **kwargs: object) -> None:
    """Log for the file only. A log file that cannot be written (the disk that just filled up) must
    not print logging's own traceback under the one-line error; before :func:`setup_logging` (which
    failed, or never ran) there is no file, and Python's fallback would print the line twice."""
    if not logging.getLogger().handlers:
        return
    quiet, logging.raiseExceptions = logging.raiseExceptions, False
    try:
        write(*args, extra=FILE_ONLY, **kwargs)
    finally:
        logging.raiseExceptions = quiet


if __name__ == "__main__":
    sys.exit(main())
