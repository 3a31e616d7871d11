"""The ``synth-studio`` entry point: the window with no arguments, the CLI otherwise.

This module must not import Qt at module level, so the headless CLI keeps
working on a machine without PySide6.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

# What Qt's xcb platform plugin loads on Linux (library name for ctypes -> Debian/Ubuntu package):
# PySide6's wheels bring Qt, not these, and without them the window aborts with a terse message.
QT_XCB_LIBRARIES = {
    "xcb-cursor": "libxcb-cursor0", "xkbcommon-x11": "libxkbcommon-x11-0", "xcb-icccm": "libxcb-icccm4",
    "xcb-image": "libxcb-image0", "xcb-keysyms": "libxcb-keysyms1", "xcb-randr": "libxcb-randr0",
    "xcb-render-util": "libxcb-render-util0", "xcb-shape": "libxcb-shape0", "xcb-xkb": "libxcb-xkb1",
    "EGL": "libegl1", "fontconfig": "libfontconfig1",
}


def missing_qt_libraries() -> list[str]:
    """The system packages Qt's window needs that this Linux machine lacks (none elsewhere, or when
    Qt is told to draw offscreen or on Wayland)."""
    if not sys.platform.startswith("linux"):
        return []
    platform = os.environ.get("QT_QPA_PLATFORM", "xcb")
    if not platform.startswith("xcb"):
        return []
    from ctypes.util import find_library

    return [pkg for lib, pkg in QT_XCB_LIBRARIES.items() if find_library(lib) is None]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C before the CLI's own handling is loaded: one line, exit 130
        print("cancelled", file=sys.stderr)
        return 130


def _main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] == "gui":
        import argparse

        p = argparse.ArgumentParser(prog="synth-studio gui", description="Open the Synth Studio window.")
        p.add_argument("notebook", nargs="?", help="a notebook file to open")
        p.add_argument("--sample", action="store_true", help="open (creating if needed) the sample notebook")
        ns = p.parse_args(args[1:])
        missing = missing_qt_libraries()
        if missing:
            print(f"error: the window needs system libraries this machine lacks: {' '.join(missing)}\n"
                  f"  install them (Debian/Ubuntu): sudo apt install {' '.join(missing)}\n"
                  "  the CLI works without them: synth-studio --help", file=sys.stderr)
            return 2
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
