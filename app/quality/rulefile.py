"""Reading the small TOML/YAML files that declare rules and criteria.

Errors name the file and the line: a malformed file is the user's to fix, so
say exactly where.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

from app.core.errors import StudioError


class RuleFileError(StudioError):
    def __init__(self, path: Path, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


def load_rule_file(path: str | Path) -> tuple[dict[str, Any], str]:
    """Parse a .toml/.yaml/.yml file; returns (data, text) for line look-ups."""
    path = Path(path)
    if not path.exists():
        raise StudioError(f"file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RuleFileError(path, "is not valid UTF-8 text") from None
    return parse_rule_text(text, path), text


def parse_rule_text(text: str, path: str | Path) -> dict[str, Any]:
    """Parse TOML/YAML text (the format named by ``path``'s suffix); errors name ``path`` and the line.

    Text typed in the window is parsed with a made-up name such as ``polite.toml``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            msg = str(exc)
            line = None
            if "(at line " in msg:
                try:
                    line = int(msg.split("(at line ")[1].split(",")[0])
                except ValueError:
                    line = None
                msg = msg.split(" (at line ")[0]
            raise RuleFileError(path, f"invalid TOML: {msg}", line) from None
    elif suffix in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise RuleFileError(path, f"invalid YAML: {getattr(exc, 'problem', exc)}",
                                mark.line + 1 if mark else None) from None
    else:
        raise RuleFileError(path, "use a .toml or .yaml file")
    if not isinstance(data, dict):
        raise RuleFileError(path, "must be a mapping at the top level")
    return data


def line_of(text: str, needle: str, nth: int = 0) -> int | None:
    """The line where ``needle`` occurs for the nth time (1-based), for error messages."""
    count = 0
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            if count == nth:
                return i
            count += 1
    return None
