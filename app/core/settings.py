"""The studio's own preferences, in one versioned file: ``settings.json`` in the config folder.

What belongs to a notebook (its model choice, its cells' settings) stays in the notebook
file; this holds what belongs to the person: recent notebooks, the window's geometry,
model folders, compute threads and the defaults a new generation starts from.

The file carries ``schema_version``. A file from an older version is upgraded one step at
a time by the functions registered with :func:`migration` (napari's settings do the same),
and the old file is kept beside it (``settings.v1.json``). A file that cannot be read, or
comes from a newer version, is kept as ``settings.broken-<time>.json`` and the defaults
are used; a single value of the wrong type falls back to its default alone. Loading never
raises for any of this: it returns the problems as warnings (and logs them).

    settings, warnings = load_settings()
    with edit_settings() as s:           # load, change, save
        s.remember_notebook(path)
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeGuard

from app.core.paths import config_dir, data_dir

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAX_RECENT = 8
THEMES = ("system", "light", "dark")

Migration = Callable[[dict[str, Any]], dict[str, Any]]
MIGRATIONS: dict[int, Migration] = {}
"""``MIGRATIONS[n]`` turns a version-``n`` dict into a version ``n + 1`` one. Version 1 is the first."""


def migration(from_version: int) -> Callable[[Migration], Migration]:
    """Register the step that upgrades a settings dict from ``from_version`` to the next version.

    When a field is renamed or its meaning changes, bump ``SCHEMA_VERSION`` and add::

        @migration(1)
        def _v1_to_v2(d): ...   # returns the dict in version 2's shape
    """

    def register(fn: Migration) -> Migration:
        MIGRATIONS[from_version] = fn
        return fn

    return register


@dataclass
class GenerateDefaults:
    """What the generate bar starts with (a notebook's generate cell keeps its own)."""

    samples: int = 2  # samples per row
    rows: int = 5  # rows per run; 0: every row
    temperature: float = 0.8
    max_tokens: int = 120


@dataclass
class Settings:
    recent_notebooks: list[str] = field(default_factory=list)  # newest first, at most MAX_RECENT
    last_notebook: str | None = None
    window_geometry: str | None = None  # base64 of QMainWindow.saveGeometry()
    model_folders: list[str] = field(default_factory=list)  # GGUF files and folders added in Models, besides the usual places
    default_model: str | None = None  # a GGUF path; None: the bundled model
    compute_threads: int | None = None  # None: every core
    data_folder: str | None = None  # where new notebooks and the sample go; None: the platform's data folder
    theme: str = "system"  # one of THEMES
    generate: GenerateDefaults = field(default_factory=GenerateDefaults)

    def notebooks_folder(self) -> Path:
        """Where new notebooks and the sample notebook go (made if missing)."""
        if not self.data_folder:
            return data_dir()
        folder = Path(self.data_folder).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def remember_notebook(self, path: str | Path) -> None:
        """Make ``path`` the last notebook and the first of the recent ones."""
        p = str(Path(path).resolve())
        self.last_notebook = p
        self.recent_notebooks = ([p] + [x for x in self.recent_notebooks if x != p])[:MAX_RECENT]

    def existing_recent(self) -> list[str]:
        """The recent notebooks that still exist, newest first."""
        return [p for p in self.recent_notebooks if Path(p).exists()]

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}


def settings_path() -> Path:
    return config_dir() / "settings.json"


def load_settings(path: Path | None = None) -> tuple[Settings, list[str]]:
    """The settings in ``path`` (default :func:`settings_path`) and what was wrong with the file.

    A missing file gives the defaults and no warnings. A file that had to be repaired
    (migrated, unreadable, or with bad values) is backed up and written again, so the
    same warning does not come back on every start.
    """
    path = path or settings_path()
    if not path.exists():
        return Settings(), []
    warnings: list[str] = []
    kept: str | None = None
    # Any failure here means defaults and a warning: a preferences file must never stop
    # the studio from starting (a migration with a bug included).
    try:
        raw = _read(path)
        version = raw["schema_version"]
        if version < SCHEMA_VERSION:
            raw = _migrate(raw, version)
            kept = _backup(path, f"v{version}")
            warnings.append(f"settings upgraded from version {version} to {SCHEMA_VERSION}; the old file {kept}")
    except Exception as exc:  # noqa: BLE001 (see above)
        kept = _backup(path, _broken_tag())
        warnings.append(f"could not read the settings file {path} ({exc}); using the defaults (the file {kept})")
        settings = Settings()
    else:
        settings, problems = _from_dict(raw)
        if problems:
            warnings += problems
            if kept is None:  # (a migrated file has its copy already)
                warnings.append(f"the settings file as it was {_backup(path, _broken_tag())}")
    for w in warnings:
        log.warning(w)
    if warnings:
        try:
            save_settings(settings, path)
        except OSError as exc:
            warnings.append(f"could not write the repaired settings to {path}: {exc}")
            log.warning(warnings[-1])
    return settings, warnings


def save_settings(settings: Settings, path: Path | None = None) -> None:
    """Write atomically: a crash mid-write leaves the old file, never half a file."""
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(settings.to_dict(), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def edit_settings(path: Path | None = None) -> Iterator[Settings]:
    """Load, let the caller change, save. Load and save are close together, so two windows
    changing different preferences rarely undo each other (the last one to save wins).
    A preference that cannot be saved (a read-only config folder) is logged, not raised:
    it must not stop the window that remembers it from closing."""
    settings, _ = load_settings(path)
    yield settings
    try:
        save_settings(settings, path)
    except OSError as exc:
        log.warning("could not save the settings to %s: %s", path or settings_path(), exc)


# -- reading a file ---------------------------------------------------------------------


def _read(path: Path) -> dict[str, Any]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise TypeError("it does not hold a JSON object")
    version = raw.get("schema_version")
    if not _is_int(version) or version < 1:
        raise ValueError(f"schema_version {version!r} is not a version number")
    if version > SCHEMA_VERSION:
        raise ValueError(f"it was written by a newer Synth Studio (settings version {version}; "
                         f"this one reads up to {SCHEMA_VERSION})")
    return raw


def _migrate(raw: dict[str, Any], version: int) -> dict[str, Any]:
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise ValueError(f"no migration from settings version {version}")
        raw = step(dict(raw))
        version += 1
        raw["schema_version"] = version
    return raw


def _backup(path: Path, tag: str) -> str:
    """Copy ``path`` beside itself as ``<stem>.<tag><suffix>``; say where, for a warning."""
    backup = path.with_name(f"{path.stem}.{tag}{path.suffix}")
    try:
        backup.write_bytes(path.read_bytes())
    except OSError as exc:
        return f"could not be copied: {exc}"
    return f"is kept as {backup.name}"


def _broken_tag() -> str:
    return "broken-" + time.strftime("%Y%m%d-%H%M%S")


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_base64(v: Any) -> bool:
    try:
        base64.b64decode(v, validate=True)
    except (binascii.Error, TypeError, ValueError):
        return False
    return True


_CHECKS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "recent_notebooks": ("a list of paths", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
    "last_notebook": ("a path or null", lambda v: v is None or isinstance(v, str)),
    "window_geometry": ("base64 text or null", lambda v: v is None or (isinstance(v, str) and _is_base64(v))),
    "model_folders": ("a list of folders", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
    "default_model": ("a path or null", lambda v: v is None or isinstance(v, str)),
    "compute_threads": ("a whole number >= 1 or null", lambda v: v is None or (_is_int(v) and v >= 1)),
    "data_folder": ("a folder or null", lambda v: v is None or isinstance(v, str)),
    "theme": (" or ".join(THEMES), lambda v: v in THEMES),
    "generate.samples": ("a whole number >= 1", lambda v: _is_int(v) and v >= 1),
    "generate.rows": ("a whole number >= 0", lambda v: _is_int(v) and v >= 0),
    "generate.temperature": ("a number >= 0", lambda v: isinstance(v, int | float) and not isinstance(v, bool)
                             and v >= 0),
    "generate.max_tokens": ("a whole number >= 1", lambda v: _is_int(v) and v >= 1),
}


def _from_dict(raw: dict[str, Any]) -> tuple[Settings, list[str]]:
    """A Settings from a current-version dict: each bad value falls back to its default
    alone; keys this version does not know are dropped."""
    problems: list[str] = []

    def take(defaults: Any, values: Any, prefix: str) -> dict[str, Any]:
        if not isinstance(values, dict):
            problems.append(f"settings: {prefix.rstrip('.')} should be a table; using the defaults")
            return {}
        kept = {}
        for f in fields(defaults):
            if f.name not in values or f.name == "generate":
                continue
            what, ok = _CHECKS[prefix + f.name]
            if ok(values[f.name]):
                kept[f.name] = values[f.name]
            else:
                problems.append(f"settings: {prefix}{f.name} should be {what}, not {values[f.name]!r}; "
                                f"using {getattr(defaults, f.name)!r}")
        return kept

    top = take(Settings(), raw, "")
    generate = take(GenerateDefaults(), raw.get("generate", {}), "generate.")
    if "temperature" in generate:
        generate["temperature"] = float(generate["temperature"])
    settings = Settings(**top, generate=GenerateDefaults(**generate))
    settings.recent_notebooks = settings.recent_notebooks[:MAX_RECENT]
    return settings, problems
