"""``make bench``: generation and judging throughput on the bundled model, side by side.

All in one process, one after the other (never concurrently: each uses every core),
same prompts, same max_tokens, greedy:

(a) llama-cpp-python's own ``create_chat_completion``, one prompt after another;
(b) the studio's llama.cpp backend, batched (continuous batching, P sequences);
(b1) the same backend with parallel=1 (its sequential loop);
(b-prep) the same on the model prepared for batched CPU decoding (q4_0, q8_0), with its quality cost;
(b-nofa) the batched backend with flash attention off;
(m) a minimal static batch loop written directly on libllama (the floor to beat);
(pp) prompt processing speed: the backend's own chunks, and llama.cpp's best (one
     512-token micro-batch, flash attention on); the faster is the compute ceiling;
(dc) decode only: P sequences, one token each per llama_decode, no prompts, no sampling:
     what no batched loop can beat on this machine;
(s) llama.cpp's own ``llama-server`` (-np 16 and -np 64, every prompt at once), found or built by
    ``bench.llama_server``, alternating with the studio on the original and the prepared file;
(x) llama.cpp's ``llama-batched-bench``, when that tool is on PATH;
(d) judge questions per second with and without the prefix cache;
(d3) judging three criteria of the same records in one pass, against one criterion (alternating
     rounds, medians; also `python -m bench.judge_criteria` alone).
Ratios are what to compare across machines, not seconds.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import time

TOPICS = [
    "a failed bank sync", "resetting a password", "being charged twice", "a wrong invoice PDF",
    "a mobile app crash", "a refund request", "a delayed payroll export", "VAT reports",
    "a locked account", "a missing receipt", "two-factor login codes", "exporting data to CSV",
    "a slow dashboard", "changing the billing email", "an expired card", "a duplicate supplier",
]
KINDS = ["Write a short customer support ticket about {}.", "Explain in two sentences what to do about {}.",
         "Write a polite reply to a customer who wrote about {}.", "List three things to check about {}."]
GUIDELINES = (
    "You are reviewing replies written by a customer support team for an accounting product. A reply is "
    "rude when it insults, blames or belittles the customer, uses name-calling, sarcasm or threats, or "
    "dismisses the problem as not worth the team's time. A reply is not rude when it is polite, even if "
    "it is short, declines a request, or says that the customer made a mistake, as long as it does so "
    "respectfully. Judge only the tone of the reply, not whether it is correct, complete or helpful. "
    "Ignore spelling, grammar and formatting. Ignore the length of the reply. Replies may mention "
    "invoices, payroll, bank feeds, VAT returns, receipts, exports and user accounts; none of these "
    "words is rude in itself. Read the whole reply before answering, and answer with a single word."
)


def prompts(n: int) -> list[str]:
    return [KINDS[i % len(KINDS)].format(TOPICS[(i // len(KINDS)) % len(TOPICS)]) for i in range(n)]


class RawContext:
    """A model and a context straight from libllama, for the reference loops below."""

    def __init__(self, model_path: str, threads: int, *, n_ctx: int, n_batch: int, n_ubatch: int = 512,
                 n_seq: int = 1, flash_attn: bool = True) -> None:
        import llama_cpp as lc

        self.lc = lc
        self.model = lc.llama_model_load_from_file(model_path.encode(), lc.llama_model_default_params())
        cp = lc.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = n_ctx, n_batch, n_ubatch, n_seq
        cp.n_threads = cp.n_threads_batch = threads
        cp.kv_unified, cp.flash_attn_type = False, int(flash_attn)
        self.ctx = lc.llama_init_from_model(self.model, cp)
        self.batch = lc.llama_batch_init(n_batch, 0, 1)

    def put(self, n: int, token: int, pos: int, seq: int, logits: bool) -> None:
        b = self.batch
        b.token[n], b.pos[n], b.n_seq_id[n], b.logits[n] = token, pos, 1, int(logits)
        b.seq_id[n][0] = seq

    def decode(self, n: int) -> None:
        self.batch.n_tokens = n
        self.lc.llama_decode(self.ctx, self.batch)

    def close(self) -> None:
        self.lc.llama_batch_free(self.batch)
        self.lc.llama_free(self.ctx)
        self.lc.llama_model_free(self.model)


def minimal_batch_loop(model_path: str, token_lists: list[list[int]], max_tokens: int, parallel: int,
                       n_ctx: int, threads: int, flash_attn: bool = True) -> tuple[int, float]:
    """The plainest batched loop on libllama: P prompts at a time, prefill, then one
    token per live sequence per step (argmax), until all P are done; no refill."""
    import llama_cpp as lc
    import numpy as np

    size = max(2048, max(sum(len(t) for t in token_lists[i : i + parallel]) for i in range(0, len(token_lists), parallel)))
    raw = RawContext(model_path, threads, n_ctx=n_ctx * parallel, n_batch=size, n_seq=parallel, flash_attn=flash_attn)
    ctx, mem = raw.ctx, lc.llama_get_memory(raw.ctx)
    vocab = lc.llama_model_get_vocab(raw.model)
    n_vocab = lc.llama_vocab_n_tokens(vocab)
    generated = 0
    t0 = time.perf_counter()
    for start in range(0, len(token_lists), parallel):
        group = token_lists[start : start + parallel]
        lc.llama_memory_clear(mem, True)
        n = 0
        outs = []
        for s, toks in enumerate(group):
            for i, t in enumerate(toks):
                raw.put(n, t, i, s, i == len(toks) - 1)
                n += 1
            outs.append(n - 1)
        raw.decode(n)
        pos = [len(t) for t in group]
        live = list(range(len(group)))
        count = [0] * len(group)
        while live:
            nxt = []
            for j, s in enumerate(live):
                row = np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, outs[j]), shape=(n_vocab,))
                tok = int(row.argmax())
                if lc.llama_vocab_is_eog(vocab, tok):
                    continue
                count[s] += 1
                generated += 1
                if count[s] < max_tokens:
                    nxt.append((s, tok))
            if not nxt:
                break
            for i, (s, tok) in enumerate(nxt):
                raw.put(i, tok, pos[s], s, True)
                pos[s] += 1
            raw.decode(len(nxt))
            live = [s for s, _ in nxt]
            outs = list(range(len(nxt)))
    dt = time.perf_counter() - t0
    raw.close()
    return generated, dt


def prompt_processing(model_path: str, tokens: list[int], n_ctx: int, threads: int) -> tuple[int, float]:
    """Seconds to decode ``tokens`` as one prompt in one llama_decode, llama.cpp's defaults
    for prompts (512-token micro-batches, flash attention on)."""
    raw = RawContext(model_path, threads, n_ctx=n_ctx, n_batch=max(512, len(tokens)))
    for i, t in enumerate(tokens):
        raw.put(i, t, i, 0, i == len(tokens) - 1)
    t0 = time.perf_counter()
    raw.decode(len(tokens))
    secs = time.perf_counter() - t0
    raw.close()
    return len(tokens), secs


def decode_only(model_path: str, parallel: int, steps: int, context: int, threads: int) -> tuple[int, float]:
    """Tokens/s of bare decode steps: ``parallel`` sequences holding ``context`` tokens each,
    then ``steps`` steps of one token per sequence (flash attention on, as in the backend)."""
    raw = RawContext(model_path, threads, n_ctx=(context + steps + 8) * parallel,
                     n_batch=max(parallel, context), n_seq=parallel)
    for s in range(parallel):  # the context, one sequence per call
        for i in range(context):
            raw.put(i, 100 + (7 * i + s) % 1000, i, s, True)
        raw.decode(context)
    t0 = time.perf_counter()
    for step in range(steps):
        for s in range(parallel):
            raw.put(s, 200 + s, context + step, s, True)
        raw.decode(parallel)
    secs = time.perf_counter() - t0
    raw.close()
    return parallel * steps, secs


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--parallel", type=int, default=0, help="sequences per batch (0: the backend's default)")
    p.add_argument("--judge-texts", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of the studio against llama-server (medians compared; 0: leave the server out)")
    args = p.parse_args()

    import llama_cpp

    from app.quality.judge import Criterion, score_texts
    from backends.bundled import default_generator_model
    from backends.llama_cpp_backend import LlamaCppGenerator, default_threads
    from backends.protocols import GenerationRequest, SamplerSettings

    model = str(default_generator_model())
    texts = prompts(args.prompts)
    threads = default_threads()
    n_ctx = 512
    rows: list[tuple[str, int, float, str]] = []

    def show(label: str, n: int, secs: float, unit: str = "tok") -> float:
        rate = n / secs
        rows.append((label, n, secs, unit))
        print(f"{label:<58} {n:>6} {unit:<4} {secs:7.2f} s {rate:8.1f} {unit}/s", flush=True)
        return rate

    print(f"model {model}\nthreads {threads}, {len(texts)} prompts, max_tokens {args.max_tokens}, greedy\n")

    # (a) baseline: llama-cpp-python's high-level loop, one sequence at a time
    llm = llama_cpp.Llama(model_path=model, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False)
    t0, n = time.perf_counter(), 0
    for text in texts:
        out = llm.create_chat_completion(messages=[{"role": "user", "content": text}],
                                         max_tokens=args.max_tokens, temperature=0, seed=1)
        n += out["usage"]["completion_tokens"]
    base = show("(a) llama-cpp-python create_chat_completion loop", n, time.perf_counter() - t0)
    llm.close()

    reqs = [GenerationRequest(key=i, messages=({"role": "user", "content": t},), seed=1,
                              settings=SamplerSettings(temperature=0, max_tokens=args.max_tokens))
            for i, t in enumerate(texts)]

    # (b) the studio's backend, batched
    gen = LlamaCppGenerator(model, n_ctx=n_ctx, parallel=args.parallel or None)
    P = gen.parallel
    t0 = time.perf_counter()
    answers = list(gen.generate(reqs))
    n = sum(r.completion_tokens for r in answers)
    wall = time.perf_counter() - t0
    ours = show(f"(b) studio backend, batched (P={P})", n, wall)
    overhead = 1 - gen.decode_seconds / wall

    # (b-prep) the same on the model prepared for batched CPU decoding (requantized to q4_0 and q8_0,
    # which have repacked x86 kernels; `synth-studio prepare-model`), with what each changes
    prepared_rates: dict[str, float] = {}
    for qtype in ("q4_0", "q8_0"):
        try:
            from backends.prepare import prepare_model, quality_cost

            t0 = time.perf_counter()
            prep = prepare_model(None, qtype)
            made = time.perf_counter() - t0
            pg = LlamaCppGenerator(prep.path, n_ctx=n_ctx, parallel=args.parallel or None)
            t0 = time.perf_counter()
            n_prep = sum(r.completion_tokens for r in pg.generate(reqs))
            prepared_rates[qtype] = show(f"(b-prep) studio backend, batched, prepared {qtype}", n_prep,
                                         time.perf_counter() - t0)
            pg.close()
            print(f"    prepared in {made:.1f} s (cached after the first time); quality cost: "
                  f"{quality_cost(None, prep.path).line()}", flush=True)
        except Exception as exc:  # the bench goes on without it
            print(f"(b-prep) {qtype} skipped: {exc}", flush=True)
    token_lists = [gen.tokenize(gen.format_prompt(r.messages)) for r in reqs]

    # (s) llama.cpp's own llama-server on the same model file, prompts, max_tokens and threads, every
    # prompt sent at once as its own chat request (greedy), at -np 16 and -np 64; the studio's batched
    # backend on the original and on the prepared q4_0 file alternate with it, round by round
    from statistics import median

    from bench.llama_server import find_binary, serve_rate, where_looked

    server = find_binary() if args.rounds > 0 else None
    med: dict[str, float] = {}
    if server is None:
        print(f"(s) llama-server: skipped, none found (looked in {where_looked()}); "
              "`python -m bench.llama_server --build` builds it from llama-cpp-python's source (~20 min, once)"
              if args.rounds > 0 else "(s) llama-server: skipped (--rounds 0)", flush=True)
    else:
        print(f"(s) llama-server {server}: {args.rounds} rounds, each the studio, the studio on q4_0, "
              "-np 16, -np 64", flush=True)
        per: dict[str, list[float]] = {"studio": [], "studio, prepared q4_0": [], "llama-server -np 16": [],
                                       "llama-server -np 64": []}
        try:
            from backends.prepare import prepare_model

            q4 = LlamaCppGenerator(prepare_model(None, "q4_0").path, n_ctx=n_ctx, parallel=args.parallel or None)
        except Exception as exc:  # the comparison goes on without the prepared file
            print(f"    prepared q4_0 skipped: {exc}", flush=True)
            q4 = None
        for rnd in range(args.rounds):
            for label, g in (("studio", gen), ("studio, prepared q4_0", q4)):
                if g is not None:
                    t0 = time.perf_counter()
                    n_s = sum(r.completion_tokens for r in g.generate(reqs))
                    per[label].append(n_s / (time.perf_counter() - t0))
            for np_ in (16, 64):
                try:
                    n_s, secs = serve_rate(server, model, texts, parallel=np_, max_tokens=args.max_tokens,
                                           n_ctx=n_ctx, threads=threads)
                    per[f"llama-server -np {np_}"].append(n_s / secs)
                except (OSError, RuntimeError) as exc:
                    print(f"    llama-server -np {np_} failed: {exc}", flush=True)
            print("    round " + str(rnd + 1) + ": " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in per.items() if v)
                  + " tok/s", flush=True)
        if q4 is not None:
            q4.close()
        med = {k: median(v) for k, v in per.items() if v}
        for label, rate in med.items():
            print(f"{'(s) ' + label + ', median':<58} {'':>6} {'':<4} {'':>9} {rate:8.1f} tok/s", flush=True)

    # (b-nofa) the same with flash attention off (exact too, slower on CPU)
    nofa = LlamaCppGenerator(model, n_ctx=n_ctx, parallel=args.parallel or None, flash_attn=False)
    t0 = time.perf_counter()
    n_nofa = sum(r.completion_tokens for r in nofa.generate(reqs))
    ours_nofa = show("(b-nofa) studio backend, batched, flash attention off", n_nofa, time.perf_counter() - t0)
    nofa.close()

    # (pp) prompt processing, one 400-token prompt: in the backend's own chunks ...
    from backends.llama_cpp_backend import _Seq

    pp_tokens = [t for toks in token_lists for t in toks][: min(400, n_ctx - 1)]
    gen._place(0, [])
    t0 = time.perf_counter()
    gen._prefill(_Seq(key=0, slot=0, pending=list(pp_tokens), pos=0, n_prompt=len(pp_tokens)))
    pp_own = show("(pp) prompt processing, the backend's chunks", len(pp_tokens), time.perf_counter() - t0)
    gen.close()
    # ... and the way llama.cpp processes prompts fastest: one big micro-batch
    pp_best = show("(pp) prompt processing, llama.cpp's 512-token micro-batches",
                   *prompt_processing(model, pp_tokens, n_ctx, threads))
    pp = max(pp_own, pp_best)

    # (b1) the same backend, one sequence at a time
    seq = LlamaCppGenerator(model, n_ctx=n_ctx, parallel=1)
    t0 = time.perf_counter()
    n = sum(r.completion_tokens for r in seq.generate(reqs))
    show("(b1) studio backend, parallel=1", n, time.perf_counter() - t0)
    seq.close()

    # (m) a minimal static batch loop on libllama
    n, secs = minimal_batch_loop(model, token_lists, args.max_tokens, P, n_ctx, threads)
    minimal = show(f"(m) minimal libllama batch loop (P={P}, no refill)", n, secs)

    # (dc) bare decode steps at the same P and a typical context (the bench prompts' length)
    avg = sum(len(t) for t in token_lists) // len(token_lists)
    ceiling = show(f"(dc) decode only, P={P}, {avg}-token contexts, no sampling",
                   *decode_only(model, P, args.max_tokens, avg, threads))

    # (x) llama.cpp's own tool, if installed
    tool = shutil.which("llama-batched-bench")
    if tool:
        cmd = [tool, "-m", model, "-c", str(n_ctx * P), "-b", "2048", "-ub", "512", "-npp", "48", "-ntg",
               str(args.max_tokens), "-npl", f"1,{P}", "-t", str(threads)]
        print("(x) " + " ".join(cmd))
        try:
            print(subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout[-2000:])
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"(x) llama-batched-bench failed: {exc}")
    else:
        print("(x) llama-batched-bench not on PATH: skipped")

    # (d) judging: one yes/no question per text, a shared ~170-token guideline prefix
    c = Criterion("rude", "Is this reply rude?", guidelines=GUIDELINES)
    items = list(enumerate((texts * ((args.judge_texts // len(texts)) + 1))[: args.judge_texts]))
    rates = {}
    for cached in (True, False):
        g = LlamaCppGenerator(model, n_ctx=n_ctx, parallel=args.parallel or None, prefix_cache=cached)
        t0 = time.perf_counter()
        score_texts(g, c, items)
        rates[cached] = show(f"(d) judge questions, prefix cache {'on' if cached else 'off'}",
                             len(items), time.perf_counter() - t0, "q")
        g.close()

    # (d3) several criteria of the same records (the answers of (b)): one pass, each record's tokens
    # decoded once and every question branched from its KV cache, against one criterion (rounds
    # alternating, medians compared), and against the criteria judged one after the other
    from bench.judge_criteria import APART, ONE, THREE, judge_rounds
    from bench.judge_criteria import ratio as judge_ratio

    answer_items = [(r.key, r.text) for r in answers]
    judge_secs = judge_rounds(model, answer_items, rounds=max(1, args.rounds), n_ctx=n_ctx,
                              parallel=args.parallel or None)
    for label, per in ((ONE, 1), (THREE, 3), (APART, 3)):
        show(f"(d3) judge {label} (median)", len(answer_items) * per, statistics.median(judge_secs[label]), "q")

    print("\nratios (targets from issue 6 in brackets)")
    print(f"  batched / sequential llama-cpp-python loop   {ours / base:5.2f}x  [>= 2.5x]")
    print(f"  same, flash attention off                    {ours_nofa / base:5.2f}x")
    print(f"  bare decode steps / sequential loop          {ceiling / base:5.2f}x  (no batched loop can reach this)")
    print(f"  batched / minimal libllama batch loop        {ours / minimal:5.2f}x  [>= 0.9x]")
    print(f"  batched / prompt processing (compute bound)  {ours / pp:5.2f}x  [>= 0.6x]")
    print(f"  judging, prefix cache on / off               {rates[True] / rates[False]:5.2f}x  [>= 6x]")
    print(f"  batched / bare decode steps                  {ours / ceiling:5.2f}x  [>= 0.9x]")
    for np_ in (16, 64):
        srv = med.get(f"llama-server -np {np_}")
        if srv:
            print(f"  studio / llama-server -np {np_:<2} (median of {args.rounds})  {med['studio'] / srv:5.2f}x"
                  + ("  [>= 1.3x]" if np_ == 16 else ""))
            if "studio, prepared q4_0" in med:
                print(f"  studio on prepared q4_0 / llama-server -np {np_:<2} "
                      f"{med['studio, prepared q4_0'] / srv:5.2f}x" + ("  [>= 2x]" if np_ == 16 else ""))
    for qtype, rate in prepared_rates.items():
        print(f"  prepared {qtype} / the original file          {rate / ours:5.2f}x")
    print(f"  Python overhead (wall outside llama_decode)  {overhead:6.1%}  [<= 10%]")
    print(f"  judge 3 criteria in one pass / 1 criterion   {judge_ratio(judge_secs):5.2f}x  [<= 1.5x]"
          f"  (medians of {len(judge_secs[ONE])})")
    print(f"  judge 3 criteria one after the other / 1     "
          f"{statistics.median(judge_secs[APART]) / statistics.median(judge_secs[ONE]):5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
