"""``make bench``: generation and judging throughput on the bundled model, side by side.

(a) llama-cpp-python's own ``create_completion`` loop, one prompt after another;
(b) the studio's llama.cpp backend on the same prompts, seeds and max_tokens;
(c) judge questions per second (one forward pass each).
Each is run in the same process, one after the other (never concurrently: both
use every core). Ratios are what to compare across machines, not seconds.
"""

from __future__ import annotations

import argparse
import time

PROMPTS = [
    "Write a short customer support ticket about a failed bank sync.",
    "Explain in two sentences how to reset a password.",
    "Write a polite reply to a customer who was charged twice.",
    "List three things to check when an invoice PDF looks wrong.",
    "Describe a mobile app crash report in one paragraph.",
    "Write a one-line summary of a refund request.",
    "Give a short apology for a delayed payroll export.",
    "Write a question a customer might ask about VAT reports.",
]


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--prompts", type=int, default=len(PROMPTS))
    args = p.parse_args()

    import llama_cpp

    from app.quality.judge import NO, YES, choice_request
    from backends.bundled import default_generator_model
    from backends.llama_cpp_backend import LlamaCppGenerator, default_threads
    from backends.protocols import GenerationRequest, SamplerSettings

    model = str(default_generator_model())
    prompts = PROMPTS[: args.prompts]
    threads = default_threads()
    print(f"model {model}\nthreads {threads}, {len(prompts)} prompts, max_tokens {args.max_tokens}, greedy\n")

    # (a) baseline: llama-cpp-python's high-level loop
    llm = llama_cpp.Llama(model_path=model, n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False)
    t0, base_tokens = time.perf_counter(), 0
    for text in prompts:
        out = llm.create_chat_completion(messages=[{"role": "user", "content": text}],
                                         max_tokens=args.max_tokens, temperature=0, seed=1)
        base_tokens += out["usage"]["completion_tokens"]
    base_s = time.perf_counter() - t0
    llm.close()

    # (b) the studio's backend
    gen = LlamaCppGenerator(model, n_ctx=1024)
    reqs = [GenerationRequest(key=i, messages=({"role": "user", "content": t},), seed=1,
                              settings=SamplerSettings(temperature=0, max_tokens=args.max_tokens))
            for i, t in enumerate(prompts)]
    t0 = time.perf_counter()
    ours_tokens = sum(r.completion_tokens for r in gen.generate(reqs))
    ours_s = time.perf_counter() - t0

    # (c) judging: one yes/no question per text
    texts = [t * 3 for t in prompts] * 2
    jreqs = [choice_request(i, "Is this text rude?", t, "completion", (("yes", YES), ("no", NO)), "Yes or No")
             for i, t in enumerate(texts)]
    t0 = time.perf_counter()
    n_judged = sum(1 for _ in gen.choice_probs(jreqs))
    judge_s = time.perf_counter() - t0
    gen.close()

    base_tps, ours_tps = base_tokens / base_s, ours_tokens / ours_s
    print(f"{'(a) llama-cpp-python create_chat_completion loop':<52} {base_tokens:>5} tok {base_s:6.2f} s "
          f"{base_tps:7.1f} tok/s")
    print(f"{'(b) studio backend (sequential decode loop)':<52} {ours_tokens:>5} tok {ours_s:6.2f} s "
          f"{ours_tps:7.1f} tok/s")
    print(f"{'(c) judge questions (one forward pass each)':<52} {n_judged:>5} q   {judge_s:6.2f} s "
          f"{n_judged / judge_s:7.1f} q/s")
    print(f"\nratio (b)/(a) tokens per second: {ours_tps / base_tps:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
