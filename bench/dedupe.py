"""``python -m bench.dedupe``: near-duplicates found, the old default against the new.

The planted set (``app.quality.planted``): real passages of Python's own documentation, 20-120
words, each of ``--base`` with a copy edited once per ~12 words (deletion, adjacent swap,
substitution, case, spacing), plus ``--distractors`` other passages from the same modules.
Prints pair recall, pair precision and seconds for each method, one line each, then the
ratios; again with word edits only (case and spacing changes are normalised away by both
methods, so they flatter the old one); then the time of each on ``--scale`` passages (the real
ones and edited copies).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence

from app.quality.dedupe import minhash_groups, near_duplicate_groups
from app.quality.planted import EDIT_KINDS, edit_passage, planted_set, precision_recall, real_passages

WORD_EDITS = ("delete", "swap", "substitute")
Method = Callable[[Sequence[tuple[int, str]]], dict[int, list[int]]]
METHODS: dict[str, tuple[str, Method]] = {
    "old": ("minhash-words (word 3-shingles, Jaccard >= 0.6)", minhash_groups),
    "new": ("minhash (char 5-shingles, word diff >= 0.8)", near_duplicate_groups),
}


def scale_texts(n: int, seed: int = 0) -> list[str]:
    """Every real passage, then edited copies of random ones until there are ``n``."""
    passages = [p.text for p in real_passages()]
    rng = random.Random(seed)
    vocabulary = [w for p in passages for w in p.split()]
    texts = passages[:n]
    while len(texts) < n:
        texts.append(edit_passage(rng.choice(passages), rng, vocabulary)[0])
    return texts


def compare(args: argparse.Namespace, kinds: Sequence[str], what: str) -> None:
    """One planted set; recall, precision and seconds of each method, and new over old."""
    planted = planted_set(args.base, args.distractors, seed=args.seed, every=args.every, kinds=kinds)
    items = list(enumerate(planted.texts))
    print(f"planted set, {what}: {len(items)} real passages ({args.base} with a copy edited once per "
          f"~{args.every} words, {args.distractors} distractors), {len(planted.pairs)} duplicate pairs")
    results = {}
    for key, (label, groups_of) in METHODS.items():
        t0 = time.perf_counter()
        groups = groups_of(items)
        secs = time.perf_counter() - t0
        precision, recall = precision_recall(groups, planted.pairs)
        results[key] = (recall, precision, secs)
        print(f"  {key}: {label:<50} recall {recall:.3f}  precision {precision:.3f}  {secs:6.2f} s")
    (r0, p0, s0), (r1, p1, s1) = results["old"], results["new"]
    print(f"  new/old: recall x{r1 / max(r0, 1e-9):.2f}, precision x{p1 / max(p0, 1e-9):.2f}, "
          f"time x{s1 / max(s0, 1e-9):.2f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=int, default=1000, help="passages that get an edited copy")
    ap.add_argument("--distractors", type=int, default=1000, help="other passages, not copied")
    ap.add_argument("--every", type=int, default=12, help="one word edit per this many words")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=int, default=20_000, help="passages for the timing line (0: skip)")
    args = ap.parse_args(argv)

    for kinds, what in ((EDIT_KINDS, "all five edit kinds"), (WORD_EDITS, "word edits only (no case/spacing)")):
        compare(args, kinds, what)
    if args.scale:
        texts = list(enumerate(scale_texts(args.scale, args.seed)))
        for key, (_label, groups_of) in METHODS.items():
            t0 = time.perf_counter()
            groups = groups_of(texts)
            print(f"{key} at scale: {len(texts)} passages in {time.perf_counter() - t0:.2f} s "
                  f"({len(groups)} groups)")


if __name__ == "__main__":
    main()
