"""The server backend against the answers llama-server, vLLM and OpenAI really send.

Recorded answers (``tests/fixtures/server_logprobs/``) are served by a tiny standard-library
server on 127.0.0.1; ``tests/test_openai_http.py`` runs the real ``llama_cpp.server``, and the
last test here a real ``llama-server`` binary when one is installed (``bench.llama_server`` finds
it, or builds it once from llama-cpp-python's own source).
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.core import credentials
from app.core.errors import ModelError
from app.quality.judge import NO, YES, Constitution, Criterion, choice_request, judge_notebook
from backends.http_client import retry_after_seconds
from backends.openai_http import OpenAICompatibleGenerator
from backends.server_logprobs import first_token_alternatives
from bench.llama_server import find_binary, free_port, running, where_looked

FIXTURES = Path(__file__).parent / "fixtures" / "server_logprobs"
KEY = "sk-test-9f2c41d7e8b3a6"
YN = (("yes", YES), ("no", NO))


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


Reply = tuple[int, dict[str, str], Any]  # status, headers, JSON body


class FakeServer:
    """Answers each path with a recorded fixture (or a function of the request); keeps the
    connection alive like llama-server and vLLM do, and records every request."""

    def __init__(self, routes: dict[str, Any]) -> None:
        self.routes = routes
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _answer(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                req = {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body,
                       "port": self.client_address[1]}
                outer.requests.append(req)
                route = outer.routes.get(self.path)
                reply: Reply = (404, {}, {"error": "not found"}) if route is None else (
                    route(req) if callable(route) else (200, {}, route))
                status, headers, obj = reply
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                # a client that hangs up mid-answer (a retry, a closed client) is normal for a server;
                # socketserver would print it on the test process's stderr, which the CLI tests read
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def posts(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST"]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers: list[FakeServer] = []

    def start(routes: dict[str, Any]) -> FakeServer:
        servers.append(FakeServer(routes))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def llama_server_routes(**extra: Any) -> dict[str, Any]:
    """llama-server's answers: OpenAI paths under /v1, its own /props at the root."""
    return {"/v1/models": fixture("llama_server_models.json"), "/props": fixture("llama_server_props.json"),
            "/v1/completions": fixture("llama_server_v1_completions.json"),
            "/v1/chat/completions": fixture("llama_server_v1_chat.json"), **extra}


def vllm_routes(**extra: Any) -> dict[str, Any]:
    return {"/v1/models": fixture("vllm_models.json"), "/v1/completions": fixture("openai_completions.json"),
            "/v1/chat/completions": fixture("openai_chat.json"), **extra}


def ask(fmt: str, key: int = 0) -> Any:
    return choice_request(key, "Is this text polite?", "Thank you so much!", fmt, YN, "Yes or No")


# -- every shape, parsed -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["openai_completions.json", "openai_chat.json", "llama_server_v1_completions.json",
                                  "llama_server_v1_chat.json", "llama_server_completion.json",
                                  "llama_server_completion_post_sampling.json", "llama_server_completion_legacy.json"])
def test_every_documented_shape_gives_the_same_alternatives(name):
    pairs = dict(first_token_alternatives(fixture(name)))
    assert math.exp(pairs[" Yes"]) == pytest.approx(0.60, abs=1e-4)
    assert math.exp(pairs[" No"]) == pytest.approx(0.30, abs=1e-4)
    assert len(pairs) == 5


def test_an_answer_without_top_logprobs_reads_as_none():
    assert first_token_alternatives({"choices": [{"text": "Yes", "logprobs": None}]}) is None
    assert first_token_alternatives({"choices": [{"message": {"content": "Yes"}}]}) is None
    assert first_token_alternatives({"content": "Yes"}) is None


# -- judging against llama-server's and vLLM's answers ----------------------------------------------


@pytest.mark.parametrize("routes", [llama_server_routes, vllm_routes], ids=["llama-server", "vllm"])
@pytest.mark.parametrize("fmt", ["completion", "chat"])
def test_judges_read_llama_server_and_vllm_answers(serve, routes, fmt):
    srv = serve(routes())
    gen = OpenAICompatibleGenerator(srv.url)
    (res,) = gen.choice_probs([ask(fmt)])
    yes, no = 0.60 + 0.02 + 0.01, 0.30  # " Yes", "Yes", " yes" are all spellings of yes
    assert res.probs["yes"] == pytest.approx(yes / (yes + no), abs=1e-4)
    assert res.mass == pytest.approx(yes + no, abs=1e-4)
    post = srv.posts()[-1]
    assert post["path"] == ("/v1/completions" if fmt == "completion" else "/v1/chat/completions")
    assert post["body"]["max_tokens"] == 1 and post["body"]["temperature"] == 0
    gen.close()


def test_a_server_without_top_logprobs_is_named(serve):
    srv = serve(llama_server_routes(**{"/v1/completions": {"choices": [{"text": " Yes", "logprobs": None}]}}))
    gen = OpenAICompatibleGenerator(srv.url)
    with pytest.raises(ModelError, match="no top logprobs for a completion"):
        list(gen.choice_probs([ask("completion")]))


def test_generation_reads_llama_server_token_logprobs(serve):
    srv = serve(llama_server_routes(**{"/v1/chat/completions": fixture("llama_server_v1_chat_generation.json")}))
    from backends.protocols import GenerationRequest, SamplerSettings

    gen = OpenAICompatibleGenerator(srv.url)
    (r,) = gen.generate([GenerationRequest(0, ({"role": "user", "content": "Hi"},), seed=1,
                                           settings=SamplerSettings(max_tokens=8))])
    assert r.text == "Hello there!" and r.completion_tokens == 3
    assert [math.exp(x) for x in r.token_logprobs] == pytest.approx([0.8, 0.5, 0.9], abs=1e-4)


# -- low answer mass: unreliable, with the reason ------------------------------------------------


def _notebook_with_samples(nb, topics_csv, n=3):
    from app.data.importer import import_file
    from app.generate.runs import create_run, execute_run, prepare_run
    from backends.fake import FakeGenerator
    from backends.protocols import SamplerSettings

    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "One sentence about {{ topic }}.")
    fake = FakeGenerator()
    plan = prepare_run(nb, "ticket", samples=1, limit_rows=n, seed=1, settings=SamplerSettings(max_tokens=8))
    execute_run(nb, create_run(nb, plan, fake.info), fake)
    return [r["id"] for r in nb.records()]


def test_a_reasoning_models_answer_is_marked_unreliable_not_passed_or_failed_silently(serve, nb, topics_csv):
    from app.store.scores import scores_for

    srv = serve(llama_server_routes(**{"/v1/chat/completions": fixture("reasoning_chat.json")}))
    ids = _notebook_with_samples(nb, topics_csv)
    judge = OpenAICompatibleGenerator(srv.url)
    (res,) = judge.choice_probs([ask("chat")])
    assert res.mass == pytest.approx(0.02, abs=1e-4)  # <think> holds 97%
    c = Criterion(name="polite", question="Is this text polite?", format="chat")
    counts = judge_notebook(nb, judge, Constitution("t", (c,)))
    assert counts["polite"] == (0, len(ids))
    for rid in ids:
        (score,) = [s for s in scores_for(nb, rid) if s.name == "judge:polite"]
        assert score.value is None and score.passed is False
        assert score.reason.startswith("unreliable: answer tokens hold only 2% of the probability")
        assert score.model_sha256 == judge.info.sha256


def test_a_confident_answer_is_scored_as_before(serve, nb, topics_csv):
    from app.store.scores import scores_for

    srv = serve(llama_server_routes())
    ids = _notebook_with_samples(nb, topics_csv)
    judge = OpenAICompatibleGenerator(srv.url)
    counts = judge_notebook(nb, judge, Constitution("t", (Criterion(name="polite", question="Polite?"),)))
    assert counts["polite"] == (len(ids), 0)
    (score,) = [s for s in scores_for(nb, ids[0]) if s.name == "judge:polite"]
    assert score.passed and score.value == pytest.approx(0.63 / 0.93, abs=1e-3) and "threshold" in score.reason


# -- API keys -------------------------------------------------------------------------------------


def _needs_key(routes: dict[str, Any], key: str = KEY) -> dict[str, Any]:
    """Every route answers 401 (echoing what it was sent, as some proxies do) unless the key is right."""
    def guard(answer: Any) -> Callable[[dict[str, Any]], Reply]:
        def reply(req: dict[str, Any]) -> Reply:
            sent = req["headers"].get("Authorization", "")
            if sent != f"Bearer {key}":
                return 401, {}, {"error": {"message": f"invalid api key: {sent}", "type": "authentication_error"}}
            return 200, {}, answer
        return reply
    return {path: guard(answer) for path, answer in routes.items()}


def test_the_api_key_is_sent_as_bearer_from_the_argument_the_store_or_the_environment(serve, monkeypatch):
    srv = serve(_needs_key(llama_server_routes()))
    for var in credentials.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ModelError, match="HTTP 401"):
        OpenAICompatibleGenerator(srv.url)
    OpenAICompatibleGenerator(srv.url, api_key=KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    OpenAICompatibleGenerator(srv.url)
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("SYNTH_STUDIO_API_KEY", KEY)
    gen = OpenAICompatibleGenerator(srv.url)
    monkeypatch.delenv("SYNTH_STUDIO_API_KEY")
    assert credentials.store_api_key(srv.url + "#any-model", KEY) == "session"  # no keyring installed here
    gen = OpenAICompatibleGenerator(srv.url)
    list(gen.choice_probs([ask("completion")]))
    assert {r["headers"]["Authorization"] for r in srv.requests[-3:]} == {f"Bearer {KEY}"}
    credentials.store_api_key(srv.url, "")  # forgotten
    with pytest.raises(ModelError, match="HTTP 401"):
        OpenAICompatibleGenerator(srv.url)


def test_a_stored_key_goes_to_the_os_keyring_when_keyring_is_importable(monkeypatch):
    import types

    vault: dict[tuple[str, str], str] = {}
    fake = types.ModuleType("keyring")
    fake.set_password = lambda service, user, pw: vault.__setitem__((service, user), pw)
    fake.get_password = lambda service, user: vault.get((service, user))
    fake.delete_password = lambda service, user: vault.pop((service, user))
    monkeypatch.setitem(sys.modules, "keyring", fake)
    assert credentials.store_api_key("http://GPU-box:8080/v1#m", KEY) == "keyring"
    assert vault == {("synth-studio", "http://gpu-box:8080"): KEY}
    assert credentials.api_key_for("http://gpu-box:8080/v1") == KEY
    credentials.store_api_key("http://gpu-box:8080/v1", "")
    assert vault == {} and credentials.stored_api_key("http://gpu-box:8080/v1") is None

    def broken(*a):
        raise RuntimeError("No recommended backend was available")
    fake.set_password = fake.get_password = broken
    assert credentials.store_api_key("http://gpu-box:8080/v1", KEY) == "session"  # a keyring without a backend
    assert credentials.stored_api_key("http://gpu-box:8080/v1") == KEY
    credentials.store_api_key("http://gpu-box:8080/v1", "")


def test_the_key_never_reaches_the_notebook_the_settings_or_an_error(serve, tmp_path, topics_csv, studio_home,
                                                                      capsys):
    from app.cli import main
    from app.store.notebook import Notebook

    # /v1/models and /props answer anyone, so a wrong key fails inside the run and its error is stored
    srv = serve({**llama_server_routes(),
                 **_needs_key({"/v1/chat/completions": fixture("llama_server_v1_chat_generation.json")})})
    path = tmp_path / "key.db"
    assert main(["new", str(path)]) == 0
    assert main(["import", str(path), str(topics_csv)]) == 0
    with Notebook.open(path) as nb:
        nb.add_prompt_version("ticket", "One sentence about {{ topic }}.")
    capsys.readouterr()
    args = ["generate", str(path), "--prompt", "ticket", "--samples", "1", "--limit-rows", "2", "--max-tokens", "8",
            "--model", srv.url, "--quiet"]
    assert main(args + ["--api-key", KEY]) == 0
    wrong = KEY[::-1]
    assert main(args + ["--api-key", wrong]) != 0  # the server echoes the wrong key in its 401
    out = capsys.readouterr()
    assert "HTTP 401" in out.err and wrong not in out.err + out.out and KEY not in out.err + out.out
    with pytest.raises(ModelError) as caught:  # a password in the URL, on an unreachable server
        OpenAICompatibleGenerator(f"http://alice:{KEY}@127.0.0.1:{free_port()}/v1", retries=0)
    assert KEY not in str(caught.value) and "alice:" not in str(caught.value)
    with Notebook.open(path) as nb:
        assert len(nb.records()) == 2 and nb.runs()[-1].model_sha256.startswith("server:")
        failed = nb.runs()[-1]
        assert failed.status == "failed" and "HTTP 401" in failed.error and "***" in failed.error
    files = [p for p in [*tmp_path.rglob("*"), *Path(studio_home).rglob("*")] if p.is_file()]
    assert any(p.name == "key.db" for p in files)
    for p in files:
        assert KEY.encode() not in p.read_bytes() and wrong.encode() not in p.read_bytes(), p


def test_scrub_removes_keys_url_passwords_and_tokens():
    credentials.remember_secret(KEY)
    text = (f"GET http://bob:hunter22@host:8080/v1 failed; Authorization: Bearer abcdefgh12345678; key={KEY}; "
            "Basic settings are fine")
    clean = credentials.scrub(text)
    assert "hunter22" not in clean and "abcdefgh12345678" not in clean and KEY not in clean
    assert "http://***@host:8080/v1" in clean and "Basic settings are fine" in clean


def test_a_password_in_the_url_is_sent_as_basic_auth_and_never_shown(serve):
    srv = serve(llama_server_routes())
    url = srv.url.replace("http://", "http://alice:s3cret-pw@")
    gen = OpenAICompatibleGenerator(url)
    assert srv.requests[0]["headers"]["Authorization"].startswith("Basic ")
    assert "s3cret-pw" not in gen.info.path + gen.info.description and gen.info.path.startswith(srv.url)


def test_the_notebook_refuses_a_server_url_with_a_password(nb):
    from app.core.errors import StudioError
    from app.generate.model_choice import ModelChoice, set_notebook_model

    with pytest.raises(StudioError, match="API key field"):
        set_notebook_model(nb, ModelChoice(path="http://alice:pw@gpu-box:8080/v1"))


def test_the_model_manager_keeps_the_key_out_of_the_notebook(qtbot, nb, tmp_path):
    from widgets.model_manager import ModelManager

    dlg = ModelManager(nb)
    qtbot.addWidget(dlg)
    dlg.server.setText("http://gpu-box:8080/v1#qwen")
    dlg.api_key.setText(KEY)
    dlg.use_server()
    assert credentials.stored_api_key("http://gpu-box:8080/v1") == KEY
    assert dlg.api_key.text() == ""
    nb.close()
    assert KEY.encode() not in (tmp_path / "nb.db").read_bytes()
    credentials.store_api_key("http://gpu-box:8080/v1", "")


# -- Retry-After, keep-alive -----------------------------------------------------------------------


def test_retry_after_on_429_is_honoured(serve):
    answers = [(429, {"Retry-After": "1"}, {"error": "slow down"})]

    def completions(req):
        return answers.pop() if answers else (200, {}, fixture("openai_completions.json"))

    srv = serve(vllm_routes(**{"/v1/completions": completions}))
    gen = OpenAICompatibleGenerator(srv.url, backoff=0.01)
    t0 = time.monotonic()
    (res,) = gen.choice_probs([ask("completion")])
    waited = time.monotonic() - t0
    assert len(srv.posts()) == 2 and 1.0 <= waited < 3.0  # the server's 1 s, not the 0.01 s backoff
    assert res.probs["yes"] > 0.5


def test_a_retry_after_longer_than_the_studio_waits_ends_with_a_message(serve):
    srv = serve(vllm_routes(**{"/v1/completions": lambda req: (503, {"Retry-After": "3600"}, {"error": "loading"})}))
    gen = OpenAICompatibleGenerator(srv.url)
    t0 = time.monotonic()
    with pytest.raises(ModelError, match="asks to retry /completions in 3600 s"):
        list(gen.choice_probs([ask("completion")]))
    assert time.monotonic() - t0 < 2 and len(srv.posts()) == 1


def test_retries_are_bounded(serve):
    srv = serve(vllm_routes(**{"/v1/completions": lambda req: (500, {}, {"error": "boom"})}))
    gen = OpenAICompatibleGenerator(srv.url, retries=2, backoff=0.01)
    with pytest.raises(ModelError, match="did not answer /completions after 3 tries: HTTP 500"):
        list(gen.choice_probs([ask("completion")]))
    assert len(srv.posts()) == 3


def test_retry_after_reads_seconds_and_dates():
    assert retry_after_seconds("7") == 7 and retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Thu, 01 Jan 2026 00:00:30 GMT", now=1767225600.0) == pytest.approx(30)


def test_one_connection_is_kept_alive_for_many_requests(serve):
    srv = serve(vllm_routes())
    gen = OpenAICompatibleGenerator(srv.url, concurrency=1)
    list(gen.choice_probs([ask("completion", k) for k in range(6)]))
    assert len(srv.requests) == 8  # /v1/models, /props, 6 judge calls
    assert len({r["port"] for r in srv.requests}) == 1 and gen.client.connections_opened == 1
    gen.close()


# -- which server model made a run ------------------------------------------------------------------


def test_a_server_model_has_a_stable_id_from_what_the_server_reports(serve):
    created = iter(range(1767225600, 1767229999))

    def models(req):  # llama-server stamps "created" with the current time on every call
        listing = fixture("llama_server_models.json")
        listing["data"][0]["created"] = next(created)
        listing["data"][0]["meta"]["n_ctx"] = 1024 * (1 + len(srv.requests) % 2)  # restarted with another -c
        return 200, {}, listing

    loading = [(503, {}, {"error": {"message": "Loading model", "type": "unavailable_error", "code": 503}})]
    props = fixture("llama_server_props.json")
    srv = serve(llama_server_routes(**{"/v1/models": models,
                                       "/props": lambda req: loading.pop() if loading else (200, {}, props)}))
    a = OpenAICompatibleGenerator(srv.url, backoff=0.01)  # /props answers 503 once: still loading
    b = OpenAICompatibleGenerator(srv.url)
    assert a.info.sha256 == b.info.sha256 and a.info.sha256.startswith("server:")
    assert a.server_model["model_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "135M parameters" in a.info.description and a.info.sha256[7:19] in a.info.description
    vllm = serve(vllm_routes())
    v = OpenAICompatibleGenerator(vllm.url)
    assert v.info.sha256 != a.info.sha256 and "context 32768" in v.info.description
    assert "permission" not in v.server_model and v.server_model["root"] == "Qwen/Qwen2.5-0.5B-Instruct"


def test_resume_refuses_a_different_server_model(serve, nb, topics_csv, tmp_path):
    from app.core.tasks import TaskState
    from app.data.importer import import_file
    from app.generate.runs import create_run, prepare_run
    from app.jobs import generate_job
    from backends.protocols import SamplerSettings

    gen_answer = fixture("llama_server_v1_chat_generation.json")
    first = serve(llama_server_routes(**{"/v1/chat/completions": gen_answer}))
    other_models = fixture("llama_server_models.json")
    other_models["data"][0]["meta"]["n_params"] = 360_000_000  # a different model behind the same name
    other = serve(llama_server_routes(**{"/v1/models": other_models, "/v1/chat/completions": gen_answer}))
    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "One sentence about {{ topic }}.")
    plan = prepare_run(nb, "ticket", samples=1, limit_rows=2, seed=1, settings=SamplerSettings(max_tokens=8))
    run = create_run(nb, plan, OpenAICompatibleGenerator(first.url).info)  # made, then interrupted
    with pytest.raises(ModelError, match="different model"):
        generate_job(nb.path, "ticket", model_path=other.url, resume=True, task=TaskState())
    done = generate_job(nb.path, "ticket", model_path=first.url, resume=True, task=TaskState())
    assert done.id == run.id and done.status == "completed"
    reported = nb.run(run.id).settings["server_model"]  # what the server said, kept with the run
    assert reported["id"] == "SmolLM2-135M-Instruct.Q4_1.gguf" and reported["meta"]["n_params"] == 134515008
    assert reported["model_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf" and "created" not in reported


# -- a real llama-server, when one is installed ----------------------------------------------------


LLAMA_SERVER = find_binary()


@pytest.mark.integration
@pytest.mark.skipif(LLAMA_SERVER is None, reason=f"no llama-server binary found (looked in {where_looked()}); "
                    "`python -m bench.llama_server --build` builds one from llama-cpp-python's source")
def test_a_real_llama_server_judges_like_the_local_backend(smollm_path, smollm):
    with running(str(LLAMA_SERVER), str(smollm_path), parallel=1, n_ctx=1024, threads=2) as url:
        gen = OpenAICompatibleGenerator(f"{url}/v1")
        assert gen.info.sha256.startswith("server:") and gen.server_model.get("model_file") == smollm_path.name
        texts = ["Shut up, you useless idiot.", "Thank you so much for your patience!"]
        for fmt in ("completion", "chat"):
            reqs = [choice_request(i, "Is this text rude?", t, fmt, YN, "Yes or No") for i, t in enumerate(texts)]
            for r, l_ in zip(gen.choice_probs(reqs), smollm.choice_probs(reqs)):
                assert 0 < r.probs["yes"] < 1 and r.mass > 0.05
                assert r.probs["yes"] == pytest.approx(l_.probs["yes"], abs=0.05), fmt
        gen.close()
