"""Judging with the bundled SmolLM2: P(yes) is read from log-probabilities."""


import numpy as np
import pytest

from app.quality.judge import NO, YES, Criterion, choice_request, score_texts
from app.quality.sanity import sanity_check

pytestmark = pytest.mark.integration

RUDE = ["Shut up, you useless idiot, your product is garbage.",
        "You are stupid and I hate you, fix it now, moron.",
        "This is the worst company ever, you clowns are pathetic."]
POLITE = ["Thank you so much for your kind help yesterday.",
          "Could you please take a look when you have a moment?",
          "I appreciate your patience with my questions."]


@pytest.mark.parametrize("flash_attn", [True, False])
def test_p_yes_matches_llama_cpp_pythons_own_logprobs(smollm, smollm_path, flash_attn):
    import llama_cpp

    from backends.llama_cpp_backend import LlamaCppGenerator

    req = choice_request("k", "Is this text rude?", RUDE[0], "completion", (("yes", YES), ("no", NO)), "Yes or No")
    ours_gen = smollm if flash_attn else LlamaCppGenerator(smollm_path, n_ctx=1024, flash_attn=False)
    assert ours_gen.flash_attn == flash_attn
    try:
        ours = next(ours_gen.choice_probs([req]))
    finally:
        if ours_gen is not smollm:
            ours_gen.close()
    # An independent path: the high-level API with logits_all, its own context and tokenizer
    # call, flash attention set the same way (on or off, llama.cpp's CPU kernels round
    # differently: P(yes) here moves by ~0.03 between the two)
    ref = llama_cpp.Llama(model_path=str(smollm_path), n_ctx=512, logits_all=True, verbose=False, n_threads=2,
                          flash_attn=flash_attn)
    try:
        tokens = ref.tokenize(req.raw_prompt.encode(), add_bos=False, special=True)
        ref.eval(tokens)
        logits = np.array(ref.scores[len(tokens) - 1], dtype=np.float64)
        first = lambda sps: {ref.tokenize(sp.encode(), add_bos=False, special=False)[0] for sp in sps}  # noqa: E731
        yes_ids, no_ids = first(YES), first(NO)
    finally:
        ref.close()
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    p_yes, p_no = probs[list(yes_ids)].sum(), probs[list(no_ids)].sum()
    assert p_yes > 0 and p_no > 0
    assert ours.probs["yes"] == pytest.approx(p_yes / (p_yes + p_no), abs=2e-3)
    assert ours.mass == pytest.approx(p_yes + p_no, abs=5e-3)
    assert 0.0 < ours.probs["yes"] < 1.0  # a probability, not a parsed 0/1 answer


def test_plain_criterion_scores_good_above_bad(smollm):
    c = Criterion("rude", "Is this text rude?")
    scores = score_texts(smollm, c, [(i, t) for i, t in enumerate(RUDE + POLITE)])
    rude, polite = [scores[i] for i in range(3)], [scores[i] for i in range(3, 6)]
    print("P(yes) rude:", [round(x, 3) for x in rude], "polite:", [round(x, 3) for x in polite])
    assert min(rude) > max(polite)


def test_a_nonsensical_criterion_is_flagged(smollm):
    texts = ["The invoice was sent twice to the same client.", "My bank feed stopped syncing three days ago.",
             "The app logs me out every time I close it.", "Where do I change my billing address?",
             "Payroll export is missing the overtime column.", "Two-factor codes arrive too late to use.",
             "The VAT report rounds differently from the tax office.", "Receipt upload fails on Android."]
    c = Criterion("purple", "Does this text smell purple?", good=tuple(texts[::2]), bad=tuple(texts[1::2]))
    r = sanity_check(smollm, c)
    print(r.verdict)
    assert r.flagged and "no better than chance" in r.verdict
    sensible = sanity_check(smollm, Criterion("not-rude", "Is this text rude?", invert=True,
                                              good=tuple(POLITE), bad=tuple(RUDE)))
    assert not sensible.flagged and sensible.auc == 1.0


LONGER = [
    "I have asked three times now why my invoice shows the wrong VAT rate, and every answer I got was a copy "
    "of the help page. Please read what I wrote before you reply.",
    "Thanks for fixing the bank sync so quickly last week. The export to CSV still drops the last column, "
    "though; could you check whether that is a known problem?",
    "Your payroll export was late again and my staff got paid two days after they should have. This is not "
    "acceptable and I want to know what you will do about it.",
]


def test_many_criteria_in_one_pass_equal_each_judged_alone_and_share_the_records_tokens(smollm_path):
    """Judging three criteria together shares each record's tokens (one prefill, three questions
    branched from its KV cache) and gives each criterion the scores it gets when judged alone."""
    from app.quality.judge import score_criteria
    from backends.llama_cpp_backend import LlamaCppGenerator

    texts = [(i, t) for i, t in enumerate(RUDE + POLITE + LONGER)]
    criteria = [Criterion("rude", "Is this text rude?"), Criterion("question", "Does the writer ask a question?"),
                Criterion("money", "Is this text about money?")]

    def run(chosen):
        gen = LlamaCppGenerator(smollm_path, n_ctx=2048)
        try:
            got = score_criteria(gen, chosen, texts)
            return got, gen.tokens_decoded
        finally:
            gen.close()

    together, tokens_three = run(criteria)
    alone = [run([c]) for c in criteria]
    for c, both, (one, _) in zip(criteria, together, alone):
        assert set(both.values) == set(one[0].values) == {k for k, _ in texts}
        for k in both.values:
            assert both.values[k] == pytest.approx(one[0].values[k], abs=1e-3), (c.name, k)
            assert both.masses[k] == pytest.approx(one[0].masses[k], abs=1e-3), (c.name, k)
    # each record's text decoded once, not once per criterion: the two extra criteria decode their
    # questions, and at most a tenth of the records' tokens again
    tokens_one = alone[0][1]
    gen = LlamaCppGenerator(smollm_path, n_ctx=256)
    try:
        text_tokens = sum(len(gen.tokenize(t)) for _, t in texts)
    finally:
        gen.close()
    print("tokens decoded: one criterion", tokens_one, "three together", tokens_three, "texts", text_tokens)
    assert tokens_three - tokens_one <= 2 * (tokens_one - 0.9 * text_tokens)
