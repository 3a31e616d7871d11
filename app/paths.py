"""Where Synth Studio keeps the user's settings, caches and data.

``SYNTH_STUDIO_HOME`` overrides everything (tests point it at a temporary folder so
nothing touches the user's real data). Otherwise the XDG folders are used.
"""

from __future__ import annotations

import os
from pathlib import Path


def _base(env: str, default: Path) -> Path:
    home = os.environ.get("SYNTH_STUDIO_HOME")
    if home:
        return Path(home) / env
    return default / "synth-studio"


def data_dir() -> Path:
    xdg = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    path = _base("data", xdg)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    xdg = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    path = _base("cache", xdg)
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    xdg = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    path = _base("config", xdg)
    path.mkdir(parents=True, exist_ok=True)
    return path


def resources_dir() -> Path:
    """The repository's (or installed package's) ``resources`` folder."""
    return Path(__file__).resolve().parent.parent / "resources"
