"""``python -m bench.ui_stall``: does the window stay responsive while jobs run on a big notebook?

Opens the main window (offscreen Qt) on a notebook of ``--records`` records with text and, while a
generate, a judge and a map job run one after the other from the window's own controls, samples the
event loop: a zero-interval timer fires whenever the loop is free, so the gap between two of its
ticks is how long the loop was held (a click or a keypress waits that long). Prints, for the idle
window and for each job, the worst and 99th-percentile gap. Target: worst < 50 ms.

Generation and judging use the deterministic fake backend (slowed a little per sample), so what is
measured is the window's own work (records streaming into the table, the funnel, metrics and
charts redrawn when a job ends), not the model's; the map job is the real one (UMAP and HDBSCAN
over stored embeddings: random vectors, stored first, so it does not spend minutes embedding).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

TARGET_MS = 50.0
DUMP_S = 0.12


def make_notebook(path: Path, n: int):
    """The sample notebook (its prompts and input rows) plus ``n`` records with text."""
    import random

    from app.data.demo import create_sample_notebook
    from app.data.importer import import_table

    rng = random.Random(0)
    words = ("invoice payroll refund login export receipt account bank VAT report customer thanks please "
             "sorry wrong again today soon check update email password sync payment card late issue").split()
    csv = path.with_suffix(".csv")
    with csv.open("w", encoding="utf-8") as fh:
        fh.write("topic,output\n")
        for i in range(n):
            fh.write(f"topic {i % 97},{' '.join(rng.choice(words) for _ in range(rng.randint(8, 30)))}\n")
    nb = create_sample_notebook(path)
    import_table(nb, csv, origin="synthetic", output_column="output")
    return nb


def store_random_embeddings(nb) -> None:
    import numpy as np

    from app.store.embeddings import save_embeddings
    from backends.embedder import LlamaEmbedder

    emb = LlamaEmbedder()
    sha, dim = emb.info.sha256, emb.info.dim
    emb.close()
    items = [(r["id"], r["output"]) for r in nb.records() if r["output"]]
    centres = np.random.default_rng(0).normal(size=(12, dim))
    vectors = centres[np.arange(len(items)) % 12] + 0.3 * np.random.default_rng(1).normal(size=(len(items), dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    save_embeddings(nb, sha, items, vectors.astype(np.float32))


class Sampler:
    """Gaps between the ticks of a zero-interval timer, per phase."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.phase = "idle"
        self.armed = 0.0
        self.gaps: dict[str, list[float]] = {}
        self.last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(0)
        self.timer.timeout.connect(self.tick)
        self.timer.start()

    dump = None  # with --dump: a file every stall over DUMP_S writes all threads' stacks to

    def tick(self) -> None:
        now = time.perf_counter()
        if self.dump is not None and now - self.armed > 0.02:
            import faulthandler

            # a C thread, which needs no Python lock: it names the thread that holds it in a stall
            faulthandler.dump_traceback_later(DUMP_S, file=self.dump)
            self.armed = now
        self.gaps.setdefault(self.phase, []).append((now - self.last) * 1000)
        self.last = now

    def start(self, phase: str) -> None:
        self.phase = phase
        self.last = time.perf_counter()


class StallTracer:
    """With ``--trace``: a thread that looks at the UI thread's stack every few milliseconds while a
    tick is overdue, so each stall is named by the code that held the loop. Prints, per phase, the
    longest stalls, each with the places it was seen in (our own deepest frames, and the library
    function at the top of the stack), counted in samples of ``every_ms``."""

    def __init__(self, sampler: Sampler, over_ms: float = TARGET_MS, every_ms: float = 4.0) -> None:
        import threading

        self.sampler, self.over, self.every = sampler, over_ms / 1000, every_ms / 1000
        self.main = threading.main_thread().ident
        self.stalls: dict[str, list[tuple[float, Counter[str]]]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def _where(self) -> str:
        import threading
        import traceback

        frame = sys._current_frames().get(self.main)
        if frame is None:
            return "?"
        stack = traceback.extract_stack(frame)
        ours = [f for f in stack if any(f"/{d}/" in f.filename for d in ("app", "widgets", "bench"))]
        where = " < ".join(f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.lineno} {f.name}"
                           for f in reversed(ours[-3:]))
        leaf = stack[-1]
        key = f"{where}  [in {Path(leaf.filename).name}:{leaf.lineno} {leaf.name}]"
        if leaf.filename.endswith("ui_stall.py"):  # in Qt's own code, or waiting for Python's lock: who runs
            others = []
            for ident, f in sys._current_frames().items():
                if ident not in (self.main, threading.get_ident()):
                    top = traceback.extract_stack(f)[-1]
                    if "threading.py" not in top.filename and "queue.py" not in top.filename:
                        others.append(f"{Path(top.filename).name}:{top.lineno} {top.name}")
            key += "  others: " + ", ".join(sorted(others))
        return key

    def run(self) -> None:
        seen: Counter[str] = Counter()
        since = None  # the tick the current stall follows
        while not self.stop.wait(self.every):
            last, phase = self.sampler.last, self.sampler.phase
            if since is not None and last != since:  # the stall ended: keep it
                self.stalls.setdefault(phase, []).append((last - since, seen))
                seen, since = Counter(), None
            if time.perf_counter() - last >= self.over:
                since = last
                seen[self._where()] += 1

    def report(self) -> None:
        self.stop.set()
        for phase, stalls in self.stalls.items():
            print(f"\n  the longest stalls during {phase} (samples of {self.every * 1000:.0f} ms):")
            for length, seen in sorted(stalls, key=lambda s: -s[0])[:6]:
                print(f"    {length * 1000:6.0f} ms")
                for key, n in seen.most_common(3):
                    print(f"        {n:3d}  {key[:300]}")


def wait(app, seconds: float, until=None) -> bool:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        if until is not None and until():
            return True
        time.sleep(0.001)
    return until is None


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ui_stall")
    p.add_argument("--records", type=int, default=20000)
    p.add_argument("--samples", type=int, default=40, help="samples the generate job makes")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds each job may take")
    p.add_argument("--trace", action="store_true", help="name the code that held the loop in each stall")
    p.add_argument("--dump", help="a file to write every thread's stack to in each stall over 120 ms")
    p.add_argument("--jobs", default="generate,judge,map", help="which jobs to run, comma-separated")
    args = p.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("SYNTH_STUDIO_HOME", tempfile.mkdtemp(prefix="synth-bench-"))
    os.environ.setdefault("SYNTH_STUDIO_FAKE_DELAY", "0.02")

    from PySide6.QtWidgets import QApplication

    from widgets.main_window import MainWindow

    root = Path(tempfile.mkdtemp(prefix="synth-ui-stall-"))
    t0 = time.perf_counter()
    nb = make_notebook(root / "big.db", args.records)
    store_random_embeddings(nb)
    print(f"notebook: {args.records} records with text, made in {time.perf_counter() - t0:.1f} s", flush=True)

    app = QApplication.instance() or QApplication(sys.argv)
    t0 = time.perf_counter()
    win = MainWindow(nb)
    win.resize(1500, 900)
    win.show()
    app.processEvents()
    print(f"window built and shown in {(time.perf_counter() - t0) * 1000:.0f} ms", flush=True)
    from widgets.main_window import freeze_start_up

    freeze_start_up()  # as run_gui does
    sampler = Sampler()
    tracer = StallTracer(sampler) if args.trace else None
    if args.dump:
        sampler.dump = open(args.dump, "w")  # noqa: SIM115 (open while the loop runs)
    wait(app, 2.0)

    def run(phase: str, start, runner) -> None:
        sampler.start(phase)
        t = time.perf_counter()
        start()
        finished = wait(app, args.timeout, lambda: not runner.running)
        wait(app, 1.0)  # what the window does once the job has ended (refreshes, redraws)
        print(f"  {phase}: {'ended' if finished else 'still running, stopped waiting'} after "
              f"{time.perf_counter() - t:.1f} s", flush=True)

    jobs = args.jobs.split(",")
    if "generate" in jobs:
        bar = win.generate_bar
        bar.backend = "fake"
        bar.samples.setValue(args.samples // max(1, bar.rows.value() or 20) or 1)
        run("generate", bar.start_generation, bar.runner)
    if "judge" in jobs:
        q = win.quality
        q.backend = "fake"
        win.tabs.setCurrentWidget(q)
        run("judge", lambda: q.run_step("judge"), q.runner)
    if "map" in jobs:
        mv = win.map_view
        win.tabs.setCurrentWidget(mv)
        run("map", mv.compute, mv.runner)
    sampler.start("idle after")
    wait(app, 2.0)
    sampler.timer.stop()

    print(f"\nevent-loop stalls, {args.records} records (target: worst < {TARGET_MS:.0f} ms)")
    worst_all = 0.0
    for phase, gaps in sampler.gaps.items():
        gaps = sorted(gaps)
        p99 = gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))]
        worst_all = max(worst_all, gaps[-1])
        print(f"  {phase:<12} worst {gaps[-1]:8.1f} ms   p99 {p99:7.1f} ms   median {statistics.median(gaps):6.2f} ms"
              f"   ({len(gaps)} ticks)  {'ok' if gaps[-1] < TARGET_MS else 'OVER'}")
    print(f"  worst over all jobs {worst_all:.1f} ms: {'met' if worst_all < TARGET_MS else 'missed'}")
    if tracer is not None:
        tracer.report()
    win.close()
    nb.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
