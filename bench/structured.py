"""Structured generation throughput next to free text, same model, same prompts, same run.

Each round generates the same prompts twice with the batched backend: once free, once
constrained to a JSON Schema by llama.cpp's grammar sampler (per-sequence grammar state,
sampled first and masked only when the grammar refuses the model's choice). Prints tokens
per second of each, rounds interleaved, and the median ratio (target: constrained >= 0.7x).

    python -m bench.structured [--prompts 64] [--max-tokens 96] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from app.prompts.structured import schema_json, validate_output
from backends.bundled import default_generator_model
from backends.llama_cpp_backend import LlamaCppGenerator
from backends.protocols import GenerationRequest, SamplerSettings

SCHEMA = {
    "type": "object",
    "properties": {
        "question": {"type": "string", "maxLength": 160},
        "answer": {"type": "string", "maxLength": 200},
        "difficulty": {"type": "string", "enum": ["easy", "medium", "hard"]},
        "points": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["question", "answer", "difficulty", "points"],
}
TOPICS = ["photosynthesis", "tax returns", "python lists", "the moon", "volcanoes", "french verbs", "chess openings",
          "bread baking", "password resets", "invoices", "rainbows", "trains", "the roman empire", "fractions",
          "tea", "magnets"]


def requests(n: int, max_tokens: int, schema: str | None) -> list[GenerationRequest[int]]:
    return [GenerationRequest(
        key=i,
        messages=({"role": "user", "content": f"Write a quiz question about {TOPICS[i % len(TOPICS)]} with its answer, "
                                              "a difficulty and points, as JSON."},),
        seed=1000 + i, settings=SamplerSettings(temperature=0.8, max_tokens=max_tokens), json_schema=schema)
        for i in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    model = default_generator_model()
    gen = LlamaCppGenerator(model)
    print(f"\nstructured generation: {model.name}, {args.prompts} prompts x <= {args.max_tokens} tokens, "
          f"temperature 0.8, {gen.parallel} sequences at a time")
    schema = schema_json(SCHEMA)
    ratios = []
    try:
        list(gen.generate(requests(4, 8, schema)))  # warm up (and build the grammar once)
        for rnd in range(1, args.rounds + 1):
            rates = {}
            for label, js in (("free text", None), ("JSON schema", schema)):
                masks = gen.grammar_masks
                t0 = time.perf_counter()
                results = list(gen.generate(requests(args.prompts, args.max_tokens, js)))
                secs = time.perf_counter() - t0
                toks = sum(r.completion_tokens for r in results)
                rates[label] = toks / secs
                extra = ""
                if js is not None:
                    valid = sum(validate_output(r.text, SCHEMA) is None for r in results)
                    cut = sum(r.finish_reason == "length" for r in results)
                    extra = (f"  valid {valid}/{len(results)} ({cut} cut at max_tokens), "
                             f"grammar refused the model's token {gen.grammar_masks - masks}x")
                print(f"  round {rnd}  {label:<12} {toks:6d} tok {secs:7.2f} s {rates[label]:7.1f} tok/s{extra}",
                      flush=True)
            ratios.append(rates["JSON schema"] / rates["free text"])
    finally:
        gen.close()
    print(f"  constrained / free text (median of {len(ratios)})   {statistics.median(ratios):5.2f}x  [>= 0.7x]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
