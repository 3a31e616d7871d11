"""The studio opens no network connection of its own: offline commands open no socket at all,
and a server model is the only address a server run contacts. Its API key never lands in the
notebook, the log file or an error message; Ctrl-C stops a run against a server that never answers.

Sockets are recorded in this process (``socket.socket``, ``connect``, ``create_connection``,
``getaddrinfo``); a library that opened one from C code, or in a child process, would not show here.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from app.core.logs import log_path
from tests.conftest import REPO, SAMPLE
from tests.test_server_shapes import FakeServer, fixture, llama_server_routes

KEY = "sk-nosock-5e1d93b7c2a84f06"


@dataclass
class Sockets:
    """What the code under test did with sockets; ``allowed`` says which addresses it may reach."""

    allowed: Callable[[Any], bool]
    created: list[tuple[int, int]] = field(default_factory=list)
    connected: list[Any] = field(default_factory=list)  # socket.connect / connect_ex
    dialed: list[Any] = field(default_factory=list)  # socket.create_connection (which then connects a socket)
    looked_up: list[str] = field(default_factory=list)
    refused: list[Any] = field(default_factory=list)

    def check(self, address: Any, seen: list[Any]) -> None:
        seen.append(address)
        if not self.allowed(address):
            self.refused.append(address)
            raise OSError(f"this test allows no connection to {address!r}")


@pytest.fixture
def sockets(monkeypatch) -> Iterator[Callable[[Callable[[Any], bool]], Sockets]]:
    """Start recording (and refusing what ``allowed`` refuses) from the moment it is called."""

    def start(allowed: Callable[[Any], bool]) -> Sockets:
        log = Sockets(allowed)
        init, connect, connect_ex = socket.socket.__init__, socket.socket.connect, socket.socket.connect_ex
        create_connection, getaddrinfo = socket.create_connection, socket.getaddrinfo

        def socket_init(self, family=-1, type=-1, proto=0, fileno=None):  # noqa: A002 - socket's own names
            if fileno is None:  # not one accept() or socketpair() wraps
                log.created.append((family, type))
                if allowed is NOTHING:
                    raise OSError("this test allows no socket")
            init(self, family, type, proto, fileno)

        def socket_connect(self, address):
            log.check(address, log.connected)
            return connect(self, address)

        def socket_connect_ex(self, address):
            log.check(address, log.connected)
            return connect_ex(self, address)

        def create(address, *a, **k):
            log.check(address, log.dialed)
            return create_connection(address, *a, **k)

        def lookup(host, *a, **k):
            log.looked_up.append(host)
            return getaddrinfo(host, *a, **k)

        monkeypatch.setattr(socket.socket, "__init__", socket_init)
        monkeypatch.setattr(socket.socket, "connect", socket_connect)
        monkeypatch.setattr(socket.socket, "connect_ex", socket_connect_ex)
        monkeypatch.setattr(socket, "create_connection", create)
        monkeypatch.setattr(socket, "getaddrinfo", lookup)
        return log

    yield start


def NOTHING(address: Any) -> bool:  # noqa: N802 - reads as a constant
    return False


def run(capsys, *args: Any) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def notebook_with_prompt(tmp_path: Path, topics_csv: Path, capsys) -> Path:
    book = tmp_path / "nb.db"
    assert run(capsys, "new", book)[0] == 0
    assert run(capsys, "import", book, topics_csv)[0] == 0
    assert run(capsys, "prompt", "add", book, "ticket", "--template", SAMPLE / "support_ticket.j2")[0] == 0
    return book


def assert_no_sockets(log: Sockets) -> None:
    assert log.created == [] and log.connected == [] and log.dialed == [] and log.looked_up == [], log


# -- offline --------------------------------------------------------------------------------------


def test_the_offline_commands_open_no_socket(tmp_path, topics_csv, capsys, sockets):
    log = sockets(NOTHING)
    book = notebook_with_prompt(tmp_path, topics_csv, capsys)
    for args in (["generate", book, "--prompt", "ticket", "--samples", 2, "--limit-rows", 4, "--backend", "fake",
                  "--quiet"],
                 ["validate", book],
                 ["judge", book, "--backend", "fake"],
                 ["dedupe", book],
                 ["export", book, tmp_path / "out.jsonl", "--all"]):
        code, _, err = run(capsys, *args)
        assert code == 0, (args, err)
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 8
    assert_no_sockets(log)


@pytest.mark.integration
def test_embedding_and_the_map_open_no_socket(tmp_path, topics_csv, capsys, sockets):
    book = notebook_with_prompt(tmp_path, topics_csv, capsys)
    # 12 samples: fewer than UMAP needs, so the map is PCA + HDBSCAN (UMAP's first numba compile takes minutes)
    assert run(capsys, "generate", book, "--prompt", "ticket", "--limit-rows", 12, "--backend", "fake",
               "--quiet")[0] == 0
    log = sockets(NOTHING)
    code, out, err = run(capsys, "embed", book, "--quiet")  # the bundled MiniLM, loaded once
    assert code == 0 and "embedded 12 samples" in out, err
    code, out, err = run(capsys, "map", book, "--quiet", "--png", tmp_path / "map.png")
    assert code == 0 and (tmp_path / "map.png").stat().st_size > 0, err
    assert_no_sockets(log)


# -- a server model -------------------------------------------------------------------------------


@pytest.fixture
def server():
    """llama-server's recorded answers, on 127.0.0.1; ``srv.routes`` can be changed while it runs."""
    srv = FakeServer({**llama_server_routes(), "/v1/chat/completions": fixture("llama_server_v1_chat_generation.json")})
    yield srv
    srv.stop()


def _files_under(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize("key_from", ["argument", "environment"])
def test_a_server_run_contacts_only_the_server_and_keeps_its_key_out_of_every_file(
        tmp_path, topics_csv, capsys, sockets, server, studio_home, monkeypatch, key_from):
    from backends.http_client import JsonClient

    book = notebook_with_prompt(tmp_path, topics_csv, capsys)
    port = server.httpd.server_address[1]
    model = f"http://127.0.0.1:{port}/v1#m"
    log = sockets(lambda address: tuple(address[:2]) == ("127.0.0.1", port))
    monkeypatch.setattr(JsonClient, "_wait", lambda self, attempt, retry_after, path: None)  # no backoff sleeps
    key_args: list[str] = ["--api-key", KEY] if key_from == "argument" else []
    if key_from == "environment":
        monkeypatch.setenv("SYNTH_STUDIO_API_KEY", KEY)
    generate = ["generate", book, "--prompt", "ticket", "--limit-rows", 2, "--max-tokens", 8, "--backend", "openai",
                "--model", model, "--quiet", *key_args]

    code, out, err = run(capsys, *generate)
    assert code == 0, err
    posts = server.posts()
    assert posts and {r["headers"].get("Authorization") for r in posts} == {f"Bearer {KEY}"}

    # the server fails, echoing the request's key back as some proxies do
    server.routes["/v1/chat/completions"] = lambda req: (
        500, {}, {"error": f"upstream failed for Authorization: {req['headers'].get('Authorization')}"})
    code, out, err = run(capsys, *generate, "--seed", 1)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "HTTP 500" in lines[0], err
    assert "Bearer ***" in lines[0]  # the echo reached the message, scrubbed
    assert "Traceback" not in err and KEY not in out + err

    assert {tuple(a[:2]) for a in log.connected + log.dialed} == {("127.0.0.1", port)} and not log.refused
    assert set(log.looked_up) <= {"127.0.0.1"}
    assert len(log.created) == len(log.connected)  # every socket made was one to the server
    for h in logging.getLogger().handlers:
        h.flush()
    assert "HTTP 500" in log_path().read_text(encoding="utf-8")  # the error was logged, without the key
    files = _files_under(tmp_path, Path(studio_home))
    assert book in files and log_path() in files
    for p in files:
        assert KEY.encode() not in p.read_bytes(), p


# -- Ctrl-C against a server that never answers ---------------------------------------------------


class HungServer:
    """Answers the model listing (when ``lists_models``), then takes requests and never answers them."""

    def __init__(self, *, lists_models: bool) -> None:
        self.waiting = threading.Event()  # a request is being held
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _hang(self) -> None:
                outer.waiting.set()
                outer.release.wait(60)

            def do_GET(self) -> None:
                if not lists_models:
                    return self._hang()
                data = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = _hang

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1#m"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _synth_studio() -> list[str]:
    script = Path(sys.executable).parent / "synth-studio"
    return [str(script)] if script.exists() else [sys.executable, "-m", "widgets.launcher"]


def _ctrl_c_against(hung: HungServer, book: Path) -> tuple[int | None, float, str]:
    """Start a generation against ``hung``, press Ctrl-C once it waits (and ~1 s in); (exit code, seconds
    it took to stop, stderr). An exit code of None: still running 2 s after the Ctrl-C."""
    env = {**os.environ, "SYNTH_STUDIO_API_KEY": KEY}
    started = time.monotonic()
    proc = subprocess.Popen([*_synth_studio(), "generate", str(book), "--prompt", "ticket", "--limit-rows", "1",
                             "--backend", "openai", "--model", hung.url, "--quiet"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while not hung.waiting.wait(0.05) or time.monotonic() - started < 1.0:
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() - started < 60, "the command never reached the server"
        proc.send_signal(signal.SIGINT)
        stopped = time.monotonic()
        try:
            _, err = proc.communicate(timeout=2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            return None, time.monotonic() - stopped, err.decode()
        return proc.returncode, time.monotonic() - stopped, err.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_while_a_server_never_answers_the_model_listing(tmp_path, topics_csv, capsys):
    book = notebook_with_prompt(tmp_path, topics_csv, capsys)
    hung = HungServer(lists_models=False)
    try:
        code, took, err = _ctrl_c_against(hung, book)
    finally:
        hung.stop()
    assert code == 130, f"still running 2 s after Ctrl-C: {err}" if code is None else err
    assert took < 2.0 and "Traceback" not in err and KEY not in err
    assert err.strip().splitlines()[-1].startswith("cancelled: ")


def test_ctrl_c_while_a_server_never_answers_a_generation(tmp_path, topics_csv, capsys):
    book = notebook_with_prompt(tmp_path, topics_csv, capsys)
    hung = HungServer(lists_models=True)
    try:
        code, took, err = _ctrl_c_against(hung, book)
    finally:
        hung.stop()
    assert code == 130, f"still running 2 s after Ctrl-C: {err}" if code is None else err
    assert took < 2.0 and "Traceback" not in err and KEY not in err
