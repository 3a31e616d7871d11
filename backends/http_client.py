"""A small JSON-over-HTTP client for model servers: kept-alive connections, bounded retries.

Each request borrows one of a few persistent ``http.client`` connections (one per request in
flight, handed back after the answer), so a run of thousands of judge calls opens a handful of
TCP connections instead of thousands. Network errors, 408/425/5xx and 429 are retried a bounded
number of times with jittered exponential backoff; a 429 or 503 that says ``Retry-After`` is
waited for as asked (a wait longer than ``max_wait`` ends the call with a message instead).
Every error text is scrubbed of keys and URL passwords (``app.core.credentials.scrub``).

Only the standard library is used. Proxy variables (``HTTP_PROXY``) are not read: the servers
the studio talks to are local or on the user's own network.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import json
import random
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from app.core.credentials import remember_secret, scrub, split_credentials
from app.core.errors import ModelError

RETRYABLE = {408, 425, 429, 500, 502, 503, 504}
RETRY_AFTER = {429, 503}  # the statuses whose Retry-After header is honoured
STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.BadStatusLine)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) as seconds from now; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class JsonClient:
    """JSON requests to one server. ``base_url`` may hold ``user:password@`` (sent as Basic auth
    unless an ``api_key`` is given, which is sent as ``Authorization: Bearer``)."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 120.0, retries: int = 3,
                 backoff: float = 0.5, max_wait: float = 60.0, pool_size: int = 4) -> None:
        url, user, password = split_credentials(base_url.rstrip("/"))
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ModelError(f"not a server URL: {scrub(base_url)}")
        self.url = url  # safe to show: no credentials
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")  # e.g. /v1
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.max_wait = max_wait
        self.pool_size = max(1, int(pool_size))
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            remember_secret(api_key)
            self.headers["Authorization"] = f"Bearer {api_key}"
        elif user is not None:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            remember_secret(token)
            self.headers["Authorization"] = f"Basic {token}"
        self._idle: list[http.client.HTTPConnection] = []
        self._busy: set[http.client.HTTPConnection] = set()  # waiting for an answer: close() cuts them off
        self._lock = threading.Lock()
        self._closed = False
        self.connections_opened = 0  # how many TCP connections were made (keep-alive keeps this small)

    # -- connections ----------------------------------------------------------------------------

    def _take(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._closed:
                raise ModelError(f"the connection to {self.url} was closed (the job stopped)")
            if self._idle:
                conn = self._idle.pop()
                self._busy.add(conn)
                return conn
            self.connections_opened += 1
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=self.timeout)
        with self._lock:
            self._busy.add(conn)
        return conn

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._busy.discard(conn)
            if not self._closed and len(self._idle) < self.pool_size:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close every connection, those still waiting for an answer too: a hung server cannot keep a
        stopped job (or the process, at exit) waiting; no new request or retry starts after this."""
        with self._lock:
            idle, self._idle = self._idle, []
            busy, self._busy = list(self._busy), set()
            self._closed = True
        for conn in idle:
            conn.close()
        for conn in busy:
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading it
                except OSError:
                    pass

    # -- requests -------------------------------------------------------------------------------

    def _once(self, method: str, path: str, data: bytes | None) -> tuple[int, dict[str, str], bytes]:
        """One exchange on a pooled connection; a kept-alive connection the server has meanwhile
        closed is replaced by a fresh one once, without counting as a retry."""
        for fresh_try in (False, True):
            conn = self._take()
            reused = conn.sock is not None
            try:
                conn.request(method, path, body=data, headers=self.headers)
                resp = conn.getresponse()
                body = resp.read()
            except STALE:
                self._forget(conn)
                if reused and not fresh_try and not self._closed:
                    continue
                raise
            except BaseException:
                self._forget(conn)
                raise
            headers = {k.lower(): v for k, v in resp.getheaders()}
            if resp.will_close:
                self._forget(conn)
            else:
                self._give_back(conn)
            return resp.status, headers, body
        raise AssertionError("unreachable")

    def _forget(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._busy.discard(conn)
        conn.close()

    def _wait(self, attempt: int, retry_after: float | None, path: str) -> None:
        if retry_after is not None:
            if retry_after > self.max_wait:
                raise ModelError(f"the server at {self.url} is busy and asks to retry {path} in {retry_after:.0f} s "
                                 f"(more than the {self.max_wait:.0f} s the studio waits); try again later")
            delay = retry_after + random.uniform(0, min(1.0, 0.1 * retry_after + 0.05))
        else:
            delay = self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)  # "equal jitter"
        time.sleep(delay)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                root: bool = False, optional: bool = False) -> dict[str, Any] | None:
        """The server's JSON answer to ``method path`` (under the base URL's path, or the server's
        root with ``root``). With ``optional`` an endpoint that is missing, unreachable or still failing
        after the retries answers None instead of raising (a busy or loading server is still waited for)."""
        full = (self._root_prefix() if root else self.prefix) + path
        data = json.dumps(body).encode() if body is not None else None
        last = ""
        retry_after: float | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                if self._closed:  # stopped: no retry
                    break
                self._wait(attempt, retry_after, path)
            retry_after = None
            try:
                status, headers, raw = self._once(method, full, data)
            except (OSError, http.client.HTTPException) as exc:
                if optional:
                    return None
                last = str(exc) or type(exc).__name__
                continue
            if 200 <= status < 300:
                try:
                    answer = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    if optional:
                        return None
                    raise ModelError(f"the server at {self.url} answered {path} with something that is not JSON") from None
                if not isinstance(answer, dict):
                    if optional:
                        return None
                    raise ModelError(f"the server at {self.url} answered {path} with JSON that is not an object")
                return answer
            detail = scrub(raw.decode("utf-8", errors="replace")[:300])
            if status in RETRYABLE:  # llama-server answers 503 while it loads its model
                last = f"HTTP {status}: {detail}"
                if status in RETRY_AFTER:
                    retry_after = retry_after_seconds(headers.get("retry-after"))
                continue
            if optional:
                return None
            raise ModelError(scrub(f"the server at {self.url} refused {path} (HTTP {status}): {detail}"))
        if optional:
            return None
        raise ModelError(scrub(f"the server at {self.url} did not answer {path} after {self.retries + 1} tries: {last}"))

    def _root_prefix(self) -> str:
        """The server's root: the base path without a trailing ``/v1`` (llama-server's /props lives there)."""
        return self.prefix[:-3] if self.prefix.endswith("/v1") else self.prefix
