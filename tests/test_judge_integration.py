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
