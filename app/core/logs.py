"""The studio's log file: every warning and error, in the platform's log folder, with secrets scrubbed.

The window (``widgets.main_window.run_gui``) and the CLI (``app.cli.main``) call
:func:`setup_logging` once when they start. Warnings and errors from anywhere (a job that
failed, a settings file that had to be repaired) then go to ``synth-studio.log`` in
:func:`app.core.paths.log_dir`, rotated at 1 MB with three old files kept, so a person can
attach it to a bug report. A message can carry a server address or a request, so every
record passes :class:`SecretsFilter` first: passwords in URLs, ``key=...``/``token=...``
values and ``Bearer`` tokens are replaced with ``***`` before anything is written.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from pathlib import Path
from types import TracebackType
from typing import TextIO

from app.core.paths import log_dir

LOG_FILE = "synth-studio.log"
MAX_BYTES = 1_000_000
BACKUPS = 3
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FILE_ONLY = {"file_only": True}
"""``log.error(..., extra=FILE_ONLY)``: for the file, not the terminal (which shows the error its own way)."""

_HIDDEN = "***"
_SECRET_NAMES = r"(?:api[_-]?key|apikey|key|access[_-]?token|refresh[_-]?token|token|secret|client[_-]?secret|" \
                r"password|passwd|pwd|auth)"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host -> scheme://***:***@host
    (re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^\s/@:]+:[^\s/@]*@"), rf"\g<scheme>{_HIDDEN}:{_HIDDEN}@"),
    # Authorization: Bearer abc / Basic abc
    (re.compile(r"(?i)\b(?P<kind>bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), rf"\g<kind> {_HIDDEN}"),
    # ?api_key=abc&x=1, key=abc, "api_key": "abc", password: abc
    (re.compile(rf"""(?i)(?P<name>\b(?:[\w-]*[_-])?{_SECRET_NAMES}["']?\s*[=:]\s*["']?)[^\s"'&,;)}}\]]+"""), rf"\g<name>{_HIDDEN}"),
    # an OpenAI-style key on its own
    (re.compile(r"\bsk-[A-Za-z0-9_-]{12,}"), f"sk-{_HIDDEN}"),
)


def scrub(text: str) -> str:
    """``text`` with passwords in URLs, key/token values and bearer tokens replaced by ``***``."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class SecretsFilter(logging.Filter):
    """Scrubs a record's message and traceback in place (so every handler after it sees the clean text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


class _Stderr(logging.StreamHandler[TextIO]):
    """What Python prints warnings with when nothing is configured (``logging.lastResort``):
    kept, so adding the file does not silence the terminal. It writes to whatever
    ``sys.stderr`` is at the time (tests swap it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setLevel(logging.WARNING)
        self.addFilter(lambda record: not getattr(record, "file_only", False))

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def setup_logging(level: int = logging.WARNING) -> Path:
    """Send warnings and errors (``level`` and up) to the rotating log file; return its path.

    Calling it again replaces the studio's handlers (one file, the current log folder),
    so it is safe to call from each entry point.
    """
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "synth_studio", False)]
    for h in ours:
        root.removeHandler(h)
        h.close()
    path = log_dir() / LOG_FILE
    handlers: list[logging.Handler] = [
        logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8",
                                             delay=True)]
    handlers[0].setFormatter(logging.Formatter(FORMAT))
    if not [h for h in root.handlers if h not in ours]:  # nobody else configured logging: keep the terminal
        handlers.append(_Stderr())
    for h in handlers:
        h.setLevel(max(level, h.level))
        h.addFilter(SecretsFilter())
        h.synth_studio = True  # type: ignore[attr-defined]
        root.addHandler(h)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
    return path


def log_path() -> Path:
    """Where :func:`setup_logging` writes (the file may not exist until the first warning)."""
    return log_dir() / LOG_FILE


def log_uncaught() -> None:
    """Send an exception nothing caught (a bug in a Qt slot: Qt prints it and carries on) to the
    log file, traceback and all. The window installs it; the terminal still shows the traceback
    through :func:`setup_logging`'s terminal handler."""

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, value, tb)
            return
        logging.getLogger("synth_studio").critical("unexpected error: %s", value, exc_info=(kind, value, tb))

    sys.excepthook = hook
