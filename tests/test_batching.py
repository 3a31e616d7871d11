"""Batched (multi-sequence) decoding and prefix reuse give the sequential loop's answers."""

import pytest

from app.core.errors import ModelError
from app.quality.judge import Criterion, score_texts
from backends.protocols import GenerationRequest, SamplerSettings

pytestmark = pytest.mark.integration

PROMPTS = [
    "Write a short customer support ticket about a failed bank sync.",
    "Explain in two sentences how to reset a password.",
    "Write a polite reply to a customer who was charged twice.",
    "List three things to check when an invoice PDF looks wrong.",
    "Name three colours.",
    "What is 2+2?",
    "Tell me a fact about the sea.",
    "Write a haiku about tea.",
    "Describe a mobile app crash report in one paragraph.",
    "Give a short apology for a delayed payroll export.",
]
NEAR_TIE = 1e-3


def _reqs(temperature, max_tokens=40):
    return [GenerationRequest(key=i, messages=({"role": "user", "content": p},), seed=100 + i,
                              settings=SamplerSettings(temperature=temperature, max_tokens=max_tokens))
            for i, p in enumerate(PROMPTS)]


def _run(path, parallel, temperature):
    from backends.llama_cpp_backend import LlamaCppGenerator

    gen = LlamaCppGenerator(path, n_ctx=512, parallel=parallel)
    gen.trace = {}
    try:
        results = {r.key: r for r in gen.generate(_reqs(temperature))}
        return results, gen.trace
    finally:
        gen.close()


@pytest.fixture(scope="module")
def greedy_runs(smollm_path):
    # 4 slots for 10 prompts: slots are refilled as sequences finish (continuous batching)
    return _run(smollm_path, 1, 0.0), _run(smollm_path, 4, 0.0)


def test_greedy_batched_matches_sequential_token_for_token(greedy_runs):
    (seq, seq_trace), (bat, bat_trace) = greedy_runs
    assert sorted(seq) == sorted(bat) == list(range(len(PROMPTS)))
    ties = []
    for k in seq:
        a_toks, a_gap = seq_trace[k]
        b_toks, b_gap = bat_trace[k]
        if a_toks == b_toks:
            assert seq[k].text == bat[k].text
            # the same kernels ran on the same rows: equal to float precision, not just close
            assert bat[k].token_logprobs == pytest.approx(seq[k].token_logprobs, abs=1e-6)
            continue
        i = next(i for i, (x, y) in enumerate(zip(a_toks, b_toks)) if x != y)
        ties.append((k, i, a_gap[i], b_gap[i]))
        # outputs may only part where the two best tokens were (nearly) tied
        assert min(a_gap[i], b_gap[i]) < NEAR_TIE, f"prompt {k} differs at token {i} without a near-tie"
    print(f"{len(PROMPTS) - len(ties)}/{len(PROMPTS)} identical; parted after near-ties: {ties}")


def _assert_same(seq, bat):
    assert sorted(seq) == sorted(bat)
    for k in seq:
        assert bat[k].text == seq[k].text, f"request {k} differs"
        assert bat[k].token_logprobs == pytest.approx(seq[k].token_logprobs, abs=1e-6), f"request {k} logprobs"


@pytest.mark.parametrize("flash_attn", [True, False])
def test_long_prompts_with_gaps_and_a_lone_tail_match_sequential(smollm_path, flash_attn):
    """Prompts of 300-600 tokens (past the 512 cached cells where llama.cpp switches a lone
    sequence to split-KV attention), different lengths so slots free up at different times:
    gaps between live slots, refills mid-run and one sequence decoding alone at the end."""
    from backends.llama_cpp_backend import LlamaCppGenerator

    words = "ledger invoice refund payroll receipt account export balance supplier customer".split()
    reqs = []
    for i, (n_words, max_tokens) in enumerate([(300, 12), (420, 40), (540, 6), (330, 30), (480, 9), (390, 24), (200, 3)]):
        text = " ".join(words[(i * 7 + j * 3) % len(words)] for j in range(n_words))
        reqs.append(GenerationRequest(key=i, messages=({"role": "user", "content": f"Summarise: {text}"},), seed=i,
                                      settings=SamplerSettings(temperature=0.0, max_tokens=max_tokens, stop=())))
    out, fillers = {}, {}
    for parallel in (1, 4):
        gen = LlamaCppGenerator(smollm_path, n_ctx=1024, parallel=parallel, flash_attn=flash_attn)
        try:
            out[parallel] = {r.key: r for r in gen.generate(reqs)}
            fillers[parallel] = gen.filler_rows
        finally:
            gen.close()
    assert max(r.prompt_tokens for r in out[1].values()) > 512
    print(f"filler rows: {fillers}")
    if flash_attn:  # the lone long sequences took filler neighbours (without them this test fails)
        assert fillers[1] > 0
    assert fillers[4] > 0  # and a one-slot gap between live slots got one
    _assert_same(out[1], out[4])


def test_seeded_sampling_does_not_depend_on_batching(smollm_path):
    seq, _ = _run(smollm_path, 1, 0.9)
    bat, _ = _run(smollm_path, 8, 0.9)
    same = sum(seq[k].text == bat[k].text for k in seq)
    print(f"sampled outputs identical: {same}/{len(PROMPTS)}")
    assert same == len(PROMPTS)
    assert len({r.text for r in bat.values()}) > 5  # and they are real, different samples


GUIDELINES = (
    "You are reviewing replies written by a customer support team. A reply is rude when it insults, "
    "blames or belittles the customer, uses name-calling, sarcasm or threats, or dismisses the problem. "
    "A reply is not rude when it is polite, even if it is short, declines a request, or says that the "
    "customer made a mistake, as long as it does so respectfully. Judge only the tone of the reply, not "
    "whether it is correct or helpful. Ignore spelling and grammar. Ignore the length of the reply. "
    "Read the whole reply before answering, and answer with a single word."
)
TEXTS = ["Shut up, you useless idiot.", "Thank you so much for your patience!", "Fix it yourself, moron.",
         "I am sorry for the trouble; here is how to fix it.", "Whatever. Not my problem.",
         "Could you send us a screenshot, please?", "You clowns are pathetic.", "Happy to help any time."]


def test_prefix_cached_judging_equals_uncached(smollm_path):
    from backends.llama_cpp_backend import LlamaCppGenerator

    c = Criterion("rude", "Is this reply rude?", guidelines=GUIDELINES)
    items = list(enumerate(TEXTS))
    out = {}
    for cached in (True, False):
        gen = LlamaCppGenerator(smollm_path, n_ctx=512, parallel=4, prefix_cache=cached)
        try:
            out[cached] = (score_texts(gen, c, items), gen.tokens_decoded)
        finally:
            gen.close()
    (with_cache, n_cached), (without, n_plain) = out[True], out[False]
    for k in with_cache:
        # the issue asks for 1e-2; with flash attention off they agree to float precision
        assert with_cache[k] == pytest.approx(without[k], abs=1e-4)
    print(f"tokens decoded: {n_cached} with the prefix cache, {n_plain} without")
    assert n_cached < n_plain / 3  # the ~100-token guidelines were evaluated once, not 8 times


def test_a_prompt_longer_than_one_sequences_context_is_refused(smollm_path):
    from backends.llama_cpp_backend import LlamaCppGenerator

    gen = LlamaCppGenerator(smollm_path, n_ctx=256, parallel=2)
    try:
        long = GenerationRequest(key=0, messages=({"role": "user", "content": "word " * 400},), seed=1)
        with pytest.raises(ModelError, match="does not fit"):
            list(gen.generate([long]))
        # the model is still usable afterwards
        ok = next(gen.generate([GenerationRequest(key=1, messages=({"role": "user", "content": "Hi"},), seed=1,
                                                  settings=SamplerSettings(max_tokens=4))]))
        assert ok.completion_tokens > 0
    finally:
        gen.close()


@pytest.mark.parametrize("parallel, n_batch", [(16, None), (8, 64)])
def test_judge_prompts_prefilled_together_equal_one_at_a_time_bit_for_bit(smollm_path, monkeypatch, parallel,
                                                                          n_batch):
    """Judge prompts prefill several sequences' chunks in one llama_decode (_prefill_together): each
    sequence keeps its own chunks, so every score equals one sequence at a time exactly, with far
    fewer decode calls. Texts of many lengths, two that share a long start (the later one must start
    from the earlier one's cache, as one at a time does), three criteria (one with guidelines), and
    a batch too small for a group (``n_batch``: the group is decoded in several calls)."""
    import backends.llama_cpp_backend as lb
    from app.quality.judge import score_criteria

    if n_batch is not None:
        monkeypatch.setattr(lb, "N_BATCH", n_batch)
    shared = "Your order 4411 was shipped on Monday from our warehouse in Leeds, and "
    texts = [*TEXTS, *PROMPTS, shared + "it arrives Friday.", shared + "it is lost, sorry.",
             " ".join(TEXTS), "No."]
    items = list(enumerate(texts))
    criteria = [Criterion("rude", "Is this reply rude?"), Criterion("question", "Does the writer ask a question?"),
                Criterion("polite", "Is it polite?", guidelines=GUIDELINES)]
    out = {}
    for together in (False, True):
        gen = lb.LlamaCppGenerator(smollm_path, n_ctx=512, parallel=parallel, group_prefill=together)
        calls = []
        decode = gen._llama_decode
        gen._llama_decode = lambda n, decode=decode, calls=calls: (calls.append(n), decode(n))[1]
        try:
            got = score_criteria(gen, criteria, items)
            out[together] = ([(c.values, c.masses) for c in got], len(calls), gen.tokens_decoded)
        finally:
            gen.close()
    (alone, calls_alone, tokens_alone), (together, calls_together, tokens_together) = out[False], out[True]
    assert together == alone  # every value and mass, bit for bit
    assert tokens_together == tokens_alone  # the same prefix reuse
    print(f"llama_decode calls: {calls_alone} one at a time, {calls_together} together")
    assert calls_together < 0.85 * calls_alone
