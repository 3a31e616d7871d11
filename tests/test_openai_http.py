"""The OpenAI-compatible HTTP backend against real servers started on 127.0.0.1.

The main one is llama-cpp-python's own ``llama_cpp.server`` with the bundled model;
a tiny standard-library server plays one that answers without logprobs.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.core.errors import ModelError
from app.core.tasks import TaskState
from app.data.importer import import_file
from app.generate.runs import create_run, execute_run, prepare_run
from app.quality.judge import NO, YES, choice_request
from backends.protocols import GenerationRequest, SamplerSettings
from bench.llama_server import free_port, serving, stop

pytestmark = pytest.mark.integration


def _server(model_path, port):
    """llama-cpp-python's own server on ``port`` for the block (bench.llama_server.serving)."""
    return serving([sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--host", "127.0.0.1",
                    "--port", str(port), "--n_ctx", "1024", "--n_threads", "2"],
                   f"http://127.0.0.1:{port}/v1/models", name="llama_cpp.server")


@pytest.fixture(scope="module")
def server(smollm_path):
    port = free_port()
    with _server(smollm_path, port):
        yield f"http://127.0.0.1:{port}/v1"


def _gen(url, **kw):
    from backends import load_generator

    return load_generator("openai", url, **kw)


def _req(key, text, seed=0, **kw):
    return GenerationRequest(key=key, messages=({"role": "user", "content": text},), seed=seed,
                             settings=SamplerSettings(**kw))


def test_generates_with_logprobs_concurrently(server):
    gen = _gen(server, concurrency=3)
    assert gen.info.backend == "openai" and "SmolLM2" in gen.info.path
    assert gen.info.sha256.startswith("server:") and _gen(server).info.sha256 == gen.info.sha256  # stable per model
    reqs = [_req(i, f"Name {n} colours.", max_tokens=12, temperature=0) for i, n in enumerate(["two", "three", "four", "five"])]
    results = {r.key: r for r in gen.generate(reqs)}
    assert sorted(results) == [0, 1, 2, 3]
    for r in results.values():
        assert r.text and r.finish_reason in ("stop", "length")
        assert 0 < r.completion_tokens <= 12 and len(r.token_logprobs) == r.completion_tokens
        assert all(lp <= 0 for lp in r.token_logprobs)


def test_an_output_schema_reaches_the_server_and_its_replies_match_it(server):
    """llama-cpp-python's server refuses OpenAI's json_schema shape; the backend asks again in
    the server's own (json_object + schema) once and keeps to it; the replies follow the schema."""
    import json

    from app.prompts.structured import schema_json, validate_output

    schema = {"type": "object", "properties": {"colour": {"type": "string", "enum": ["red", "green", "blue"]},
                                               "count": {"type": "integer"}},
              "required": ["colour", "count"]}
    gen = _gen(server, concurrency=2)
    reqs = [GenerationRequest(key=i, messages=({"role": "user", "content": f"Pick a colour for a {t}. Answer in JSON."},),
                              seed=i, settings=SamplerSettings(max_tokens=40, temperature=0),
                              json_schema=schema_json(schema)) for i, t in enumerate(["car", "house", "shirt"])]
    results = list(gen.generate(reqs))
    assert len(results) == 3
    for r in results:
        assert validate_output(r.text, schema) is None, r.text
        assert json.loads(r.text)["colour"] in ("red", "green", "blue")
    assert gen._schema_style == "json_object"


def test_judge_probabilities_match_the_local_backend(server, smollm):
    gen = _gen(server)
    yn = (("yes", YES), ("no", NO))
    texts = ["Shut up, you useless idiot.", "Thank you so much for your patience!"]
    reqs = [choice_request(i, "Is this text rude?", t, "completion", yn, "Yes or No") for i, t in enumerate(texts)]
    remote = list(gen.choice_probs(reqs))
    local = list(smollm.choice_probs(reqs))
    assert [r.key for r in remote] == [0, 1]  # in request order
    for r, l_ in zip(remote, local):
        assert 0 < r.probs["yes"] < 1 and r.mass > 0.05
        # the server sends the top 20 tokens only, so spellings outside them are missing
        assert r.probs["yes"] == pytest.approx(l_.probs["yes"], abs=0.05)


def test_cancel_stops_submitting(server):
    gen = _gen(server, concurrency=1)
    task = TaskState()
    seen = []
    reqs = [_req(i, "Write one sentence about the sea.", max_tokens=8) for i in range(6)]
    for r in gen.generate(reqs, cancel=task):
        seen.append(r)
        task.request_interruption()
    assert seen[-1].finish_reason == "cancelled"
    assert len([r for r in seen if r.finish_reason != "cancelled"]) <= 2


def test_a_server_that_dies_mid_run_gives_a_clear_error_and_keeps_committed_records(nb, topics_csv, smollm_path):
    port = free_port()
    with _server(smollm_path, port) as proc:
        gen = _gen(f"http://127.0.0.1:{port}/v1", concurrency=1, retries=1, backoff=0.1)
        import_file(nb, topics_csv)
        nb.add_prompt_version("ticket", "Write one sentence a customer might say about: {{ topic }}")
        plan = prepare_run(nb, "ticket", samples=2, limit_rows=4, seed=1,
                           settings=SamplerSettings(temperature=0.7, max_tokens=8))
        run = create_run(nb, plan, gen.info)
        kept = []

        def on_record(rid):
            kept.append(rid)
            if len(kept) == 2:
                stop(proc)

        with pytest.raises(ModelError, match="did not answer"):
            execute_run(nb, run, gen, on_record=on_record)
    assert nb.run(run.id).status == "failed"
    assert [r["id"] for r in nb.records()] == kept and len(kept) >= 2  # samples committed before it died


class _NoLogprobs(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _send(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._send({"data": [{"id": "plain-model"}]})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._send({"choices": [{"message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1}})


def test_a_server_without_logprobs_is_named():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _NoLogprobs)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        gen = _gen(f"http://127.0.0.1:{srv.server_address[1]}/v1")
        assert gen.info.description.startswith("plain-model")
        with pytest.raises(ModelError, match="no logprobs"):
            list(gen.generate([_req(0, "Hi", max_tokens=4)]))
    finally:
        srv.shutdown()


def test_unreachable_server_and_bad_urls_are_clear():
    with pytest.raises(ModelError, match="did not answer"):
        _gen(f"http://127.0.0.1:{free_port()}/v1", retries=1, backoff=0.05)
    with pytest.raises(ModelError, match="needs a server URL"):
        _gen("/models/some.gguf")


def test_a_server_url_as_the_model_runs_the_cli_and_jobs_against_the_server(server, tmp_path, topics_csv, capsys):
    from app.cli import main
    from app.generate.model_choice import ModelChoice, job_model_args, set_notebook_model
    from app.store.notebook import Notebook
    from backends import load_generator

    assert load_generator("llama-cpp", server).info.backend == "openai"  # a URL picks the server backend
    path = tmp_path / "srv.db"
    assert main(["new", str(path)]) == 0
    assert main(["import", str(path), str(topics_csv)]) == 0
    with Notebook.open(path) as nb:
        nb.add_prompt_version("ticket", "One sentence about {{ topic }}.")
        set_notebook_model(nb, ModelChoice(path=server))  # what the model manager's "Use this server" stores
        assert job_model_args(nb)["model_path"] == server
    capsys.readouterr()
    assert main(["generate", str(path), "--prompt", "ticket", "--samples", "1", "--limit-rows", "2",
                 "--max-tokens", "8", "--model", server, "--quiet"]) == 0
    assert "complete: 2 samples" in capsys.readouterr().out
    with Notebook.open(path) as nb:
        run = nb.runs()[-1]
        assert run.model_path.startswith(server) and len(nb.records()) == 2
