"""Where Synth Studio keeps the user's settings, caches and data, and where its own files are.

``SYNTH_STUDIO_HOME`` overrides every user folder (tests point it at a temporary folder so
nothing touches the user's real data). Otherwise the platform's folders are used, as
platformdirs names them (on Linux the XDG folders, e.g. ``~/.config/synth-studio``).
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

import platformdirs

APP = "synth-studio"


def _user_dir(kind: str, default: Path) -> Path:
    home = os.environ.get("SYNTH_STUDIO_HOME")
    path = Path(home) / kind if home else default
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    return _user_dir("data", platformdirs.user_data_path(APP, appauthor=False))


def cache_dir() -> Path:
    return _user_dir("cache", platformdirs.user_cache_path(APP, appauthor=False))


def config_dir() -> Path:
    return _user_dir("config", platformdirs.user_config_path(APP, appauthor=False))


def log_dir() -> Path:
    """Where the rotating log file goes (``app.core.logs``): on Linux ``~/.local/state/synth-studio/log``."""
    return _user_dir("logs", platformdirs.user_log_path(APP, appauthor=False))


def resources_dir() -> Path:
    """The bundled ``resources`` folder (templates, quality rules, sample data, icons).

    The repository's top-level ``resources/`` is installed as the package ``resources``
    (see pyproject.toml), so this finds it the same way in a checkout, an editable install
    and a wheel.
    """
    root = files("resources")
    if not isinstance(root, Path):  # only a zipped install does this, and pip never makes one
        raise TypeError(f"Synth Studio's resources must be installed as plain files, not in {root}")
    return root


def model_label(path: str | None, backend: str) -> str:
    """A model's short name in tables and legends: its file name, a server model's name, or the backend."""
    if not path:
        return backend
    if "://" in path:
        return path.rpartition("#")[2] or path
    return path.replace("\\", "/").rstrip("/").rpartition("/")[2] or path
