"""The ``synth-studio`` entry point: the window with no arguments, the CLI otherwise.

This module must not import Qt at module level, so the headless CLI keeps
working on a machine without PySide6.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] == "gui":
        import argparse

        p = argparse.ArgumentParser(prog="synth-studio gui", description="Open the Synth Studio window.")
        p.add_argument("notebook", nargs="?", help="a notebook file to open")
        p.add_argument("--sample", action="store_true", help="open (creating if needed) the sample notebook")
        ns = p.parse_args(args[1:])
        try:
            from widgets.main_window import run_gui
        except ImportError as exc:
            print(f"error: the window needs PySide6 ({exc}); the CLI works without it: synth-studio --help",
                  file=sys.stderr)
            return 2
        return run_gui(ns.notebook, sample=ns.sample)
    from app.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
