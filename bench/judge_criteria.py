"""Judging three criteria of the same records in one pass, against one criterion (issue: <= 1.5x).

    python -m bench.judge_criteria [--rounds 5] [--texts 64]

The records are the bundled model's own answers to the bench's prompts (64 tokens each, greedy),
as in ``make bench``. One criterion and three criteria in one pass alternate for ``--rounds``
rounds, each on a fresh backend, and the ratio is taken between their medians: this machine's
speed drifts by tens of percent within minutes, which a single timing of each would read as a
difference between them. The three criteria judged one after the other (how the studio judged
before the one-pass path) run once, for scale.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from typing import Any

ONE = "1 criterion"
THREE = "3 criteria, one pass"
APART = "3 criteria, one after the other"


def criteria() -> list[Any]:
    from app.quality.judge import Criterion

    return [Criterion("rude", "Is this reply rude?"), Criterion("answers", "Does the reply do what was asked?"),
            Criterion("english", "Is the reply written in English?")]


def judge_rounds(model: str, items: Sequence[tuple[int, str]], *, rounds: int, n_ctx: int = 512,
                 parallel: int | None = None, apart: bool = True) -> dict[str, list[float]]:
    """Seconds per run of each way of judging, ``rounds`` alternating runs of ONE and THREE."""
    from app.quality.judge import score_criteria
    from backends.llama_cpp_backend import LlamaCppGenerator

    three = criteria()
    ways = {ONE: [three[:1]], THREE: [three], APART: [[c] for c in three]}
    order = [ONE, THREE] * max(1, rounds) + ([APART] if apart else [])
    secs: dict[str, list[float]] = {}
    for label in order:
        g = LlamaCppGenerator(model, n_ctx=n_ctx, parallel=parallel)
        try:
            t0 = time.perf_counter()
            for chosen in ways[label]:
                score_criteria(g, chosen, items)
            secs.setdefault(label, []).append(time.perf_counter() - t0)
        finally:
            g.close()
        print(f"  {label:<34} {secs[label][-1]:6.2f} s", flush=True)
    return secs


def ratio(secs: dict[str, list[float]]) -> float:
    """THREE over ONE, between their medians."""
    return statistics.median(secs[THREE]) / statistics.median(secs[ONE])


def answers(model: str, n: int, max_tokens: int = 64) -> list[tuple[int, str]]:
    """The bundled model's greedy answers to the bench's first ``n`` prompts."""
    from backends.llama_cpp_backend import LlamaCppGenerator
    from backends.protocols import GenerationRequest, SamplerSettings
    from bench.__main__ import prompts

    reqs = [GenerationRequest(key=i, messages=({"role": "user", "content": t},), seed=1,
                              settings=SamplerSettings(temperature=0, max_tokens=max_tokens))
            for i, t in enumerate(prompts(n))]
    gen = LlamaCppGenerator(model, n_ctx=512)
    try:
        return [(r.key, r.text) for r in gen.generate(reqs)]
    finally:
        gen.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.judge_criteria", description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--texts", type=int, default=64)
    args = ap.parse_args(argv)
    from backends.bundled import default_generator_model

    model = str(default_generator_model())
    items = answers(model, args.texts)
    print(f"{len(items)} answers x {len(criteria())} criteria, {args.rounds} alternating rounds")
    secs = judge_rounds(model, items, rounds=args.rounds)
    for label, s in secs.items():
        print(f"{label:<34} median {statistics.median(s):6.2f} s  (runs {', '.join(f'{x:.1f}' for x in s)})")
    print(f"judge 3 criteria in one pass / 1 criterion (medians)  {ratio(secs):5.2f}x  [<= 1.5x]")
    print(f"judge 3 criteria one after the other / 1 (medians)    "
          f"{statistics.median(secs[APART]) / statistics.median(secs[ONE]):5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
