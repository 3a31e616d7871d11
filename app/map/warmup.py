"""Warming up the map in the background without taking the cores from the person's work.

The first UMAP in a process pays numba's compilation (tens of CPU-seconds on two cores). A child
process importing umap and pynndescent fills numba's on-disk cache (``NUMBA_CACHE_DIR``), so the
window's own first import loads compiled code instead. The child runs at the lowest priority
through the core scheduler's :func:`~app.core.scheduler.run_yielding`: only while no job holds
the cores, stopped the moment one takes them.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from app.core.scheduler import run_yielding

CHILD = "from app.map.warmup import _child; _child()"


def warm_up_in_background(task: Any = None) -> str:
    """Fill numba's cache for the map in a child process that yields to any job (see the module doc)."""
    from app.map.projection import _numba_env

    _numba_env()
    return run_yielding([sys.executable, "-c", CHILD], task, env=dict(os.environ))


def _child() -> None:
    import importlib

    from app.map.projection import _import_umap

    _import_umap()
    importlib.import_module("pynndescent")  # its numba functions are the ones cached on disk
