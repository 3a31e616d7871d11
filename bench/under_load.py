"""``python -m bench.under_load``: speed with one busy process beside the studio.

A person's machine is never idle. llama.cpp's threads spin-wait for each other, so one thread on
a core another process is using holds back every step. This runs generation, judging and
embedding on the bundled models alone, then with one ``while True`` process running, with the
thread count fixed (every core) and adaptive (the cores other processes leave free,
``app.core.scheduler.FreeCores``), and prints each one's speed relative to its speed alone.
Target: >= 0.5x alone with the busy process beside it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable

TARGET = 0.5


def busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.under_load")
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--texts", type=int, default=256, help="texts embedded")
    args = p.parse_args()

    from app.quality.judge import Criterion, score_criteria
    from backends.embedder import LlamaEmbedder
    from backends.llama_cpp_backend import LlamaCppGenerator, default_threads
    from backends.protocols import GenerationRequest, SamplerSettings
    from bench.__main__ import prompts

    texts = prompts(args.prompts)
    reqs = [GenerationRequest(key=i, messages=({"role": "user", "content": t},), seed=1,
                              settings=SamplerSettings(temperature=0, max_tokens=args.max_tokens))
            for i, t in enumerate(texts)]
    answers: list[tuple[int, str]] = []

    def generate(adaptive: bool) -> float:
        gen = LlamaCppGenerator(n_ctx=512, adaptive_threads=adaptive)
        try:
            t0 = time.perf_counter()
            out = list(gen.generate(reqs))
            secs = time.perf_counter() - t0
        finally:
            gen.close()
        if not answers:
            answers.extend((r.key, r.text) for r in out)
        return sum(r.completion_tokens for r in out) / secs

    def judge(adaptive: bool) -> float:
        gen = LlamaCppGenerator(n_ctx=512, adaptive_threads=adaptive)
        try:
            items = answers * 2
            t0 = time.perf_counter()
            score_criteria(gen, [Criterion("rude", "Is this reply rude?")], items)
            return len(items) / (time.perf_counter() - t0)
        finally:
            gen.close()

    def embed(adaptive: bool) -> float:
        many = [f"{t} {a}" for (_, a), t in zip(answers * 8, texts * 8)][: args.texts]  # after generate()
        emb = LlamaEmbedder(n_threads=None if adaptive else default_threads())
        try:
            t0 = time.perf_counter()
            emb.embed(many)
            return len(many) / (time.perf_counter() - t0)
        finally:
            emb.close()

    jobs: list[tuple[str, str, Callable[[bool], float]]] = [
        ("generation", "tok/s", generate), ("judging", "q/s", judge), ("embedding", "texts/s", embed)]
    print(f"{default_threads()} cores; {args.prompts} prompts x {args.max_tokens} tokens, greedy; "
          f"{args.texts} texts embedded\n")
    rows = []
    for name, unit, fn in jobs:
        if name != "generation" and not answers:
            generate(True)
        alone = fn(True)
        spinner = busy()
        try:
            time.sleep(1.0)
            fixed = fn(False)
            adaptive = fn(True)
        finally:
            spinner.kill()
            spinner.wait()
        rows.append((name, fixed / alone, adaptive / alone))
        print(f"{name:<11} alone {alone:8.1f} {unit:<8} beside a busy process: all threads {fixed:8.1f} "
              f"({fixed / alone:4.2f}x), adaptive {adaptive:8.1f} ({adaptive / alone:4.2f}x)", flush=True)
    print(f"\nbeside one busy process, relative to alone (target >= {TARGET}x with adaptive threads)")
    for name, fixed, adaptive in rows:
        print(f"  {name:<11} all threads {fixed:4.2f}x   adaptive {adaptive:4.2f}x   "
              f"{'met' if adaptive >= TARGET else 'missed'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
