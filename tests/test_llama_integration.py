"""Real generation with the bundled SmolLM2-135M GGUF through llama.cpp."""

import math
import threading

import pytest

from app.core.tasks import TaskState
from app.data.importer import import_file
from app.generate.runs import create_run, execute_run, prepare_run
from backends.gguf_info import read_gguf_info
from backends.protocols import GenerationRequest, SamplerSettings

pytestmark = pytest.mark.integration


def _req(key, text, seed=0, **kw):
    return GenerationRequest(key=key, messages=({"role": "user", "content": text},), seed=seed,
                             settings=SamplerSettings(**kw))


def test_bundled_model_metadata(smollm_path):
    info = read_gguf_info(smollm_path)
    assert info.architecture == "llama"
    assert info.has_chat_template and "<|im_start|>" in info.chat_template
    assert 100e6 < info.parameter_count < 200e6
    assert info.file_type == "Q4_1"


def test_generation_stores_lineage_and_logprobs(nb, topics_csv, smollm):
    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Write one sentence a customer might say about: {{ topic }}")
    plan = prepare_run(nb, "ticket", samples=2, limit_rows=2, seed=3,
                       settings=SamplerSettings(temperature=0.7, max_tokens=24))
    run = execute_run(nb, create_run(nb, plan, smollm.info), smollm)
    assert run.status == "completed"
    assert len(run.model_sha256) == 64 and run.model_path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    recs = nb.records()
    assert len(recs) == 4
    for r in recs:
        assert r["output"].strip()
        assert 0 < r["completion_tokens"] <= 24
        assert len(r["token_logprobs"]) == r["completion_tokens"]
        assert all(lp <= 0 for lp in r["token_logprobs"])
        assert -10 < r["mean_logprob"] < 0
        assert r["prompt_tokens"] > 10  # chat template + the rendered prompt
        assert r["finish_reason"] in ("stop", "length")


def test_greedy_is_deterministic_and_logprobs_are_the_models(smollm):
    a = next(smollm.generate([_req(1, "Name three colours.", temperature=0, max_tokens=16)]))
    b = next(smollm.generate([_req(2, "Name three colours.", seed=99, temperature=0, max_tokens=16)]))
    assert a.text == b.text and a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-4)
    # greedy picks the most likely token, so its probability is high on average
    assert math.exp(sum(a.token_logprobs) / len(a.token_logprobs)) > 0.3


def test_seeded_sampling_reproduces_and_differs_across_seeds(smollm):
    kw = dict(temperature=1.0, max_tokens=20)
    a = next(smollm.generate([_req(1, "Tell me a fact about the sea.", seed=1, **kw)]))
    b = next(smollm.generate([_req(1, "Tell me a fact about the sea.", seed=1, **kw)]))
    outs = {next(smollm.generate([_req(1, "Tell me a fact about the sea.", seed=s, **kw)])).text for s in range(2, 6)}
    assert a.text == b.text
    assert len(outs | {a.text}) > 1


def test_stop_strings_and_max_tokens(smollm):
    r = next(smollm.generate([_req(1, "Count from 1 to 20, separated by commas.", temperature=0, max_tokens=40,
                                    stop=("5",))]))
    assert "5" not in r.text and r.finish_reason == "stop"
    r = next(smollm.generate([_req(1, "Write a long story about a dragon.", temperature=0, max_tokens=5)]))
    assert r.completion_tokens == 5 and r.finish_reason == "length"


def test_cancel_during_a_real_generation(smollm):
    task = TaskState()
    tokens = []

    def on_token(_k, t):
        tokens.append(t)
        if len(tokens) == 3:
            task.request_interruption()

    reqs = [_req(i, "Write a long story about a dragon.", temperature=0.8, max_tokens=200) for i in range(3)]
    results = list(smollm.generate(reqs, cancel=task, on_token=on_token))
    # the three decode together: each in flight ends "cancelled" (callers store none), nothing more runs
    assert results and all(r.finish_reason == "cancelled" for r in results)
    assert len(results) <= 3 and len(tokens) == 3


def test_generation_from_another_thread(smollm):
    out = []
    t = threading.Thread(target=lambda: out.extend(smollm.generate([_req(1, "Say hello.", max_tokens=8)])))
    t.start()
    t.join(60)
    assert out and out[0].completion_tokens > 0


@pytest.mark.parametrize("cut", ["header", "data"])
def test_truncated_gguf_is_named_as_such(tmp_path, smollm_path, cut):
    from app.core.errors import ModelError

    size = smollm_path.stat().st_size
    keep = 600_000 if cut == "header" else size - 4096
    bad = tmp_path / f"cut-{cut}.gguf"
    with open(smollm_path, "rb") as src:
        bad.write_bytes(src.read(keep))
    with pytest.raises(ModelError, match="truncated"):
        read_gguf_info(bad)


def test_cancel_while_prompts_are_read_stops_within_one_call(smollm):
    """New prompts are read together (their chunks in llama_decode calls of at most GROUP_ROWS rows);
    a stop is heard before each prompt is started and between those calls."""
    from backends.llama_cpp_backend import GROUP_ROWS

    class TripsOnCall:
        """Asks to stop from its n-th question on."""

        def __init__(self, n):
            self.n, self.calls = n, 0

        def is_interruption_requested(self):
            self.calls += 1
            return self.calls >= self.n

    history = "refund invoice payroll receipt " * 60
    reqs = [_req(i, f"Case {i}. Summarise this account history: {history}", max_tokens=50) for i in range(6)]
    prompt_tokens = sum(len(smollm.tokenize(smollm.format_prompt(r.messages))) for r in reqs)
    # the loop asks once, then once before each of the 6 prompts is started: the 3rd question comes
    # before the 2nd prompt, when none was read (only the start they share, read once for all)
    # the 8th comes after the first call that reads them
    for trip, least, most in ((3, 0, 100), (8, 100, GROUP_ROWS + 100)):
        before = smollm.tokens_decoded
        results = list(smollm.generate(reqs, cancel=TripsOnCall(trip)))
        assert results and all(r.finish_reason == "cancelled" for r in results)
        assert all(r.completion_tokens == 0 for r in results)
        assert least < smollm.tokens_decoded - before <= most < prompt_tokens / 3
