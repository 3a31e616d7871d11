"""The window's big maps, computed in a child process.

UMAP (numba, pynndescent) and HDBSCAN hold Python's interpreter lock for up to most of a second at
a time: run on a worker thread of the window, they froze the window that long, again and again,
for the minutes a 20k-point map takes. From ``APART_AT`` embedded samples the window's map job
runs :func:`~app.map.projection.compute_map` in a child process instead (same code, same
notebook, same cache and lineage; the map is saved by the child in one transaction, as in
process). The child reports its progress as JSON lines; stopping the job kills it, which leaves
no map behind. Smaller maps take a second or two and stay in process.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.errors import Cancelled, StudioError
from app.core.tasks import TaskState
from app.store.embeddings import embedded_sample_ids, embedders_in
from app.store.notebook import Notebook

APART_AT = 5000  # embedded samples from which the window's map is computed in a child process
CHILD = "from app.map.apart import _child; _child()"


@dataclass(frozen=True)
class MapMade:
    """What the map job says of the map it made (or found in the cache)."""

    samples: int
    method: str
    clusters: int
    cached: bool


def made(m: Any) -> MapMade:
    return MapMade(len(m.record_ids), m.method, sum(1 for c in m.sizes() if c >= 0), bool(m.cached))


def worth_a_process(nb: Notebook) -> bool:
    """Whether the map of ``nb`` is big enough to compute in a child process."""
    shas = embedders_in(nb)
    return bool(shas) and len(embedded_sample_ids(nb, shas[0])) >= APART_AT


def compute_map_apart(notebook_path: str | Path, *, method: str, task: TaskState) -> MapMade:
    """:func:`~app.map.projection.compute_map` on ``notebook_path`` in a child process; its progress
    goes to ``task``, a stop request kills it (raising Cancelled), its StudioError is raised here
    as the same one line, anything else as the child's traceback."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(notebook_path), method],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    lines: queue.Queue[str | None] = queue.Queue()
    err: list[str] = []

    def pump_out() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def pump_err() -> None:
        assert proc.stderr is not None
        err.append(proc.stderr.read())

    readers = [threading.Thread(target=pump_out, daemon=True), threading.Thread(target=pump_err, daemon=True)]
    for r in readers:
        r.start()
    result: MapMade | None = None
    failure: str | None = None
    try:
        while True:
            if task.is_interruption_requested():
                raise Cancelled("map stopped")
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue  # a library's own print
            if "progress" in msg:
                task.set_progress(*msg["progress"])
            elif "made" in msg:
                result = MapMade(**msg["made"])
            elif "error" in msg:
                failure = msg["error"]
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    code = proc.wait()
    for r in readers:
        r.join(timeout=5)
    if failure is not None:
        raise StudioError(failure)
    if result is None or code != 0:
        tail = "".join(err)[-3000:]
        raise RuntimeError(f"the map's process ended with code {code}:\n{tail}")
    return result


def _child() -> None:
    """In the child: compute the map, printing progress, then what was made (or the error), as JSON lines."""
    from app.map.projection import compute_map

    path, method = sys.argv[1], sys.argv[2]

    def say(**msg: Any) -> None:
        print(json.dumps(msg), flush=True)

    task = TaskState(lambda done, total, message: say(progress=[done, total, message]))
    try:
        with Notebook.open(path) as nb:
            m = compute_map(nb, method=method, task=task)
    except StudioError as exc:
        say(error=str(exc))
        raise SystemExit(2) from None
    say(made=made(m).__dict__)
