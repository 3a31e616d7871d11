"""``python -m bench.cold_start``: seconds from launching a process to a window a person can use.

Each round starts a fresh interpreter that imports the window, opens a notebook (the sample
notebook, or ``--notebook``), shows the window and lets its event loop run once; the parent
times it from ``Popen`` to the child's "ready" line (the interpreter's own start included).
Prints each round and the median. Target: < 3 s. Heavy libraries (pandas, scipy, sklearn, umap,
llama.cpp) are imported only when a job needs them; ``--imports`` lists the slowest imports.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 3.0
CHILD = """
import sys, time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from app.store.notebook import Notebook
from widgets.main_window import MainWindow
app = QApplication(sys.argv)
win = MainWindow(Notebook.open(sys.argv[1]))
win.show()
def ready():
    print("ready", flush=True)
    app.quit()
QTimer.singleShot(0, ready)
app.exec()
"""


def compile_sources() -> None:
    """Byte-compile the studio's own modules first, as installing the wheel does: a checkout run with
    PYTHONDONTWRITEBYTECODE (or after an edit) would otherwise time compiling them at every start."""
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in ("app", "widgets", "backends"):
        compileall.compile_dir(root / package, quiet=1)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cold_start")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--notebook", help="a notebook to open (default: a fresh sample notebook)")
    p.add_argument("--imports", action="store_true", help="also list the slowest imports of the window")
    args = p.parse_args()
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
           "SYNTH_STUDIO_HOME": tempfile.mkdtemp(prefix="synth-cold-")}
    book = args.notebook
    if book is None:
        from app.data.demo import create_sample_notebook

        book = str(Path(tempfile.mkdtemp(prefix="synth-cold-nb-")) / "sample.db")
        create_sample_notebook(Path(book)).close()
    compile_sources()
    times = []
    for i in range(args.rounds):
        t0 = time.perf_counter()
        # timed to the child's "ready" line (the window shown, its event loop turning), not to its
        # exit: background counts on a big notebook may still be running then
        child = subprocess.Popen([sys.executable, "-c", CHILD, book], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        assert child.stdout is not None
        line = child.stdout.readline()
        secs = time.perf_counter() - t0
        child.kill()
        _, err = child.communicate()
        if "ready" not in line:
            print(f"round {i + 1}: the window did not open:\n{err[-2000:]}")
            return 1
        times.append(secs)
        print(f"round {i + 1}: window usable {secs:.2f} s after launch", flush=True)
    med = statistics.median(times)
    print(f"cold start, median of {len(times)}: {med:.2f} s (target < {TARGET_S:g} s): "
          f"{'met' if med < TARGET_S else 'missed'}")
    if args.imports:
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import widgets.main_window"], env=env,
                             capture_output=True, text=True, timeout=120)
        cells = [line.split("|") for line in out.stderr.splitlines() if line.startswith("import time:")]
        slowest = [(int(c[1]), c[2].rstrip()) for c in cells if c[1].strip().isdigit()]
        for us, name in sorted(slowest, reverse=True)[:15]:
            print(f"  {us / 1e6:6.2f} s  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
