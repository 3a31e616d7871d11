"""API keys for model servers: where they come from, where they are kept, and how they stay out of text.

A server's key is looked up in this order: the one given explicitly (``--api-key``), the one
the model manager stored for that server, then ``SYNTH_STUDIO_API_KEY`` and ``OPENAI_API_KEY``.
A stored key lives in the OS keyring when the optional ``keyring`` package is importable and has
a working backend, and otherwise only in this process's memory (it is gone when the studio
closes). Keys are stored per server (scheme, host and port), so every model of one server
shares its key.

A key is never written to a notebook, the settings file or a log: :func:`scrub` removes every
key this process has seen, ``Bearer`` tokens and the ``user:password@`` part of URLs from any
text that leaves a backend, error messages included.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

SERVICE = "synth-studio"  # the keyring's service name
ENV_VARS = ("SYNTH_STUDIO_API_KEY", "OPENAI_API_KEY")
MIN_SECRET_CHARS = 4  # shorter strings are not scrubbed from text (they would garble every message)

_lock = threading.Lock()
_session: dict[str, str] = {}  # server -> key, when there is no keyring
_seen: set[str] = set()  # every secret this process has handled: scrub() removes each from text

_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")
# a token (8+ characters with a digit or +/=), not a word of prose such as "Basic settings"
_BEARER = re.compile(r"(?P<word>\b(?:Bearer|Basic)\s+)(?=[A-Za-z._~-]*[0-9+/=])[A-Za-z0-9._~+/=-]{8,}")


def server_of(url: str) -> str:
    """``scheme://host:port`` of a server URL, without credentials, path or model name."""
    parts = urlsplit(url.partition("#")[0])
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme.lower()}://{host}:{port}"


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(the URL without ``user:password@``, user, password); the password is remembered for :func:`scrub`."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None, None
    netloc = parts.netloc.rpartition("@")[2]
    remember_secret(parts.password)
    return urlunsplit(parts._replace(netloc=netloc)), parts.username, parts.password


def has_credentials(url: str) -> bool:
    return split_credentials(url)[1] is not None


def remember_secret(secret: str | None) -> None:
    """Have :func:`scrub` remove ``secret`` from every text from now on."""
    if secret and len(secret) >= MIN_SECRET_CHARS:
        with _lock:
            _seen.add(secret)


def scrub(text: str, *secrets: str | None) -> str:
    """``text`` without URL passwords, Bearer/Basic tokens, or any key this process has seen."""
    for s in secrets:
        remember_secret(s)
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)
    text = _BEARER.sub(lambda m: f"{m.group('word')}***", text)
    with _lock:
        known = sorted(_seen, key=len, reverse=True)
    for s in known:
        text = text.replace(s, "***")
    return text


def _keyring() -> Any | None:
    """The ``keyring`` module when it is installed (it is optional), else None."""
    try:
        return importlib.import_module("keyring")
    except ImportError:
        return None


def store_api_key(url: str, key: str) -> str:
    """Keep ``key`` for the server of ``url`` (an empty key forgets it); returns where: "keyring" or "session"."""
    server = server_of(url)
    key = key.strip()
    remember_secret(key)
    kr = _keyring()
    with _lock:
        _session.pop(server, None)
    if kr is not None:
        try:
            if key:
                kr.set_password(SERVICE, server, key)
            else:
                try:
                    kr.delete_password(SERVICE, server)
                except Exception:  # nothing stored: keyring raises PasswordDeleteError
                    pass
            return "keyring"
        except Exception:  # no usable backend (keyring.errors.NoKeyringError and friends): memory only
            pass
    if key:
        with _lock:
            _session[server] = key
    return "session"


def stored_api_key(url: str) -> str | None:
    """The key the model manager stored for this server, if any (keyring first, then this session's memory)."""
    server = server_of(url)
    with _lock:
        key = _session.get(server)
    if key is None:
        kr = _keyring()
        if kr is not None:
            try:
                found = kr.get_password(SERVICE, server)
            except Exception:  # a keyring without a backend: as if nothing were stored
                found = None
            key = str(found) if found else None
    remember_secret(key)
    return key


def api_key_for(url: str, explicit: str | None = None) -> str | None:
    """The key to send to the server of ``url`` (see the module docstring for the order)."""
    key = explicit or stored_api_key(url)
    if not key:
        key = next((os.environ[v] for v in ENV_VARS if os.environ.get(v)), None)
    key = key.strip() if key else None
    remember_secret(key)
    return key or None
