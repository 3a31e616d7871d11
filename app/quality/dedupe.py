"""Duplicate detection: exact (normalised hash), near (MinHash + LSH) and semantic (cosine).

Near has two methods: ``near_duplicate_groups`` (the default, "minhash": character shingles,
each candidate checked by a word-level diff, so word edits are found) and ``minhash_groups``
("minhash-words": word 3-shingle Jaccard, the method it replaced).

Duplicates are marked with their group and representative, never deleted: the
funnel drops non-representatives, and the user can always see what was grouped.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import zlib
from collections.abc import Sequence

import numpy as np


def normalise(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


class _UnionFind:
    def __init__(self, items: Sequence[int]) -> None:
        self.parent = {i: i for i in items}

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # the lowest id represents the group

    def groups(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for x in self.parent:
            out.setdefault(self.find(x), []).append(x)
        return {rep: sorted(m) for rep, m in out.items() if len(m) > 1}


def exact_groups(items: Sequence[tuple[int, str]]) -> dict[int, list[int]]:
    """Groups of records whose text is identical after lower-casing and dropping punctuation."""
    by_hash: dict[str, list[int]] = {}
    for rid, text in items:
        by_hash.setdefault(hashlib.sha1(normalise(text).encode()).hexdigest(), []).append(rid)
    return {min(ids): sorted(ids) for ids in by_hash.values() if len(ids) > 1}


def shingles(text: str, k: int = 3) -> set[int]:
    words = normalise(text).split()
    if len(words) < k:
        return {zlib.crc32(" ".join(words).encode())} if words else set()
    return {zlib.crc32(" ".join(words[i : i + k]).encode()) for i in range(len(words) - k + 1)}


def _lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """Bands x rows minimising false positives + false negatives around ``threshold``."""
    best, best_err = (1, num_perm), float("inf")
    xs = np.linspace(0, 1, 201)
    for b in range(1, num_perm + 1):
        r = num_perm // b
        if r == 0:
            break
        p = 1 - (1 - xs**r) ** b
        err = float(np.trapezoid(p[xs < threshold], xs[xs < threshold]) + np.trapezoid(
            1 - p[xs >= threshold], xs[xs >= threshold]))
        if err < best_err:
            best, best_err = (b, r), err
    return best


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A strong 64-bit mixer; uint64 arithmetic wraps, which is what the mixer wants."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        out: np.ndarray = x ^ (x >> np.uint64(31))
        return out


def minhash_signatures(sets: Sequence[set[int]], num_perm: int = 128, seed: int = 1) -> np.ndarray:
    """One row per set: the minimum of ``num_perm`` independent hashes of its members."""
    seeds = _splitmix64(np.arange(num_perm, dtype=np.uint64) + np.uint64(seed * 1_000_003))
    sig = np.full((len(sets), num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
    for i, s in enumerate(sets):
        if s:
            x = np.fromiter(s, dtype=np.uint64, count=len(s))[:, None]
            sig[i] = _splitmix64(x ^ seeds).min(axis=0)
    return sig


def _jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def minhash_groups(items: Sequence[tuple[int, str]], threshold: float = 0.6, num_perm: int = 128,
                   shingle: int = 3) -> dict[int, list[int]]:
    """Near-duplicate groups: word-shingle Jaccard >= ``threshold``.

    MinHash + LSH (bands tuned to the threshold) finds candidate pairs without
    comparing all pairs; each candidate is then checked exactly.
    """
    if not 0 < threshold <= 1:
        raise ValueError("threshold must be in (0, 1]")
    ids = [rid for rid, _ in items]
    sets = [shingles(t, shingle) for _, t in items]
    sig = minhash_signatures(sets, num_perm)
    bands, rows = _lsh_params(threshold, num_perm)
    uf = _UnionFind(ids)
    for band in range(bands):
        buckets: dict[bytes, list[int]] = {}
        chunk = sig[:, band * rows : (band + 1) * rows]
        for i in range(len(ids)):
            if sets[i]:
                buckets.setdefault(chunk[i].tobytes(), []).append(i)
        for members in buckets.values():
            if len(members) < 2:
                continue
            # LSH only proposes candidates; the exact Jaccard of the shingle sets decides.
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    i, j = members[x], members[y]
                    if uf.find(ids[i]) != uf.find(ids[j]) and _jaccard(sets[i], sets[j]) >= threshold:
                        uf.union(ids[i], ids[j])
    return uf.groups()


def semantic_groups(ids: Sequence[int], vectors: np.ndarray, threshold: float = 0.95,
                    block: int = 2048) -> dict[int, list[int]]:
    """Groups whose embeddings have cosine similarity >= ``threshold`` (vectors from any embedder)."""
    if len(ids) != len(vectors):
        raise ValueError("one vector per record")
    v = np.asarray(vectors, dtype=np.float32)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    uf = _UnionFind(list(ids))
    for start in range(0, len(v), block):
        sims = v[start : start + block] @ v.T
        rows, cols = np.nonzero(sims >= threshold)
        for r, c in zip(rows + start, cols):
            if r < c:
                uf.union(ids[int(r)], ids[int(c)])
    return uf.groups()


# The default near-duplicate method ("minhash"): MinHash + LSH over character shingles, each
# candidate verified by a word-level diff. Word 3-shingles ("minhash-words", above) lose three
# shingles to every word edit: a 24-word passage with two edits keeps about half of them, under
# the 0.6 cut, so that method misses a quarter of real passages edited once per 12 words (two
# thirds when every edit changes a word; bench/dedupe.py). A word edit changes about
# k + len(word) character k-grams out of ~6 per word of text, so the same passage keeps ~0.75 of
# them; and the check counts words in order, which is what a person means by "the same text, edited".
CHAR_SHINGLE = 5  # bytes of the normalised text (lower-case words joined by single spaces)
# Measured on the planted set (app/quality/planted.py, 1 edit per 2 to 20 words): a pair whose
# words agree at ratio t keeps a character 5-gram Jaccard of at least t - 0.35.
_JACCARD_KEPT = 0.35
_NO_SHINGLE = np.uint64(1 << 32)  # above every 32-bit hash: the signature of an empty text


def char_shingles(texts: Sequence[str], k: int = CHAR_SHINGLE) -> tuple[np.ndarray, np.ndarray]:
    """Every ``k``-byte window of each text, packed exactly into a uint64, and offsets into them.

    Text ``i``'s windows are ``values[offsets[i]:offsets[i + 1]]``; a non-empty text shorter than
    ``k`` bytes is one window, an empty text none. Vectorised: no Python loop per window.
    """
    if not 1 <= k <= 8:
        raise ValueError("a shingle is 1 to 8 bytes (it is packed into 64 bits)")
    encoded = [t.encode() for t in texts]
    lengths = np.array([len(b) for b in encoded], dtype=np.int64)
    counts = np.where(lengths == 0, 0, np.maximum(lengths - k + 1, 1))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    pad = b"\0" * (k - 1)  # so a window never reaches into the next text
    buf = np.frombuffer(b"".join(b + pad for b in encoded) + pad + b"\0", dtype=np.uint8)
    n = len(buf) - k + 1
    packed = np.zeros(n, dtype=np.uint64)
    for j in range(k):
        packed |= buf[j : j + n].astype(np.uint64) << np.uint64(8 * j)
    starts = np.concatenate([[0], np.cumsum(lengths + k - 1)[:-1]]) if len(texts) else np.zeros(0, np.int64)
    where = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])
    return packed[where], offsets


def char_minhash_signatures(values: np.ndarray, offsets: np.ndarray, num_perm: int = 128, seed: int = 1,
                            block: int = 1024) -> np.ndarray:
    """One row per text: the minimum over its shingles of each of ``num_perm`` hash functions.

    The functions are multiply-add-shift on a 32-bit key, ``(a * x + b) >> 32`` (a strongly
    universal family); ``block`` shingles at a time keep the working array in the CPU cache,
    which is five times faster than one big array on a laptop.
    """
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 1 << 63, num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 1 << 63, num_perm, dtype=np.uint64)
    keys = _splitmix64(values ^ np.uint64(seed)) >> np.uint64(32)
    n = len(offsets) - 1
    sig = np.full((n, num_perm), _NO_SHINGLE, dtype=np.uint64)
    nonempty = np.flatnonzero(np.diff(offsets))
    ends = offsets[nonempty + 1]
    work = np.empty((block, num_perm), dtype=np.uint64)
    with np.errstate(over="ignore"):
        i = 0
        while i < len(nonempty):
            lo = offsets[nonempty[i]]
            j = max(i + 1, int(np.searchsorted(ends, lo + block, side="right")))
            docs = nonempty[i:j]
            hi = offsets[docs[-1] + 1]
            if hi - lo > len(work):  # one text longer than a block
                work = np.empty((hi - lo, num_perm), dtype=np.uint64)
            h = work[: hi - lo]
            np.multiply(keys[lo:hi, None], a, out=h)
            np.add(h, b, out=h)
            np.right_shift(h, np.uint64(32), out=h)
            sig[docs] = np.minimum.reduceat(h, offsets[docs] - lo, axis=0)
            i = j
    return sig


def lsh_candidates(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(i, j) row pairs, i < j, that agree on all ``rows`` rows of at least one band.

    A bucket of m texts yields each member paired with the bucket's first and with the one
    before it (2m pairs, not m²/2): enough to join the group, and a thousand copies of one
    text stay linear.
    """
    ids = np.flatnonzero(sig[:, 0] != _NO_SHINGLE)
    found = []
    with np.errstate(over="ignore"):
        for band in range(bands):
            key = np.zeros(len(ids), dtype=np.uint64)
            for col in range(band * rows, (band + 1) * rows):
                key = (key * np.uint64(0x9E3779B97F4A7C15)) ^ sig[ids, col]
                key ^= key >> np.uint64(29)
            order = np.argsort(key, kind="stable")
            ks = key[order]
            later = np.flatnonzero(ks[1:] == ks[:-1]) + 1  # positions whose bucket began earlier
            if not len(later):
                continue
            first = np.maximum.accumulate(np.where(np.r_[True, ks[1:] != ks[:-1]], np.arange(len(ks)), 0))
            found.append(np.stack([ids[order[first[later]]], ids[order[later]]], axis=1))
            chained = later[first[later] != later - 1]
            found.append(np.stack([ids[order[chained - 1]], ids[order[chained]]], axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.sort(np.concatenate(found).astype(np.int64), axis=1)
    code = pairs[:, 0] * len(sig) + pairs[:, 1]
    code.sort()  # then drop repeats: np.unique's hash path took 15 s on 11M pairs, this 0.3 s
    code = code[np.r_[True, code[1:] != code[:-1]]]
    return np.stack([code // len(sig), code % len(sig)], axis=1)


def word_similarity(a: Sequence[str], b: Sequence[str], at_least: float = 0.0) -> float:
    """Share of the words of ``a`` and ``b`` that match in order (difflib's ratio, 1 = same words).

    Returns 0.0 early when a cheap upper bound is already below ``at_least``.
    """
    m = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if m.real_quick_ratio() < at_least or m.quick_ratio() < at_least:
        return 0.0
    return m.ratio()


def near_duplicate_groups(items: Sequence[tuple[int, str]], threshold: float = 0.8, num_perm: int = 128,
                          shingle: int = CHAR_SHINGLE, seed: int = 1) -> dict[int, list[int]]:
    """Near-duplicate groups: texts whose normalised words agree in order on ``threshold`` of them.

    Catches word edits (deletions, swaps, substitutions; case and spacing are normalised away)
    without comparing all pairs: MinHash over character shingles, LSH bands centred below the
    Jaccard such pairs keep, a cut on the signatures' estimate of it, then ``word_similarity``
    decides each surviving candidate.
    """
    if not 0 < threshold <= 1:
        raise ValueError("threshold must be in (0, 1]")
    ids = [rid for rid, _ in items]
    texts = [normalise(t) for _, t in items]
    values, offsets = char_shingles(texts, shingle)
    sig = char_minhash_signatures(values, offsets, num_perm, seed)
    least = max(0.05, threshold - _JACCARD_KEPT)  # the lowest shingle Jaccard of a true pair
    bands, rows = _lsh_params(max(0.05, least - 0.15), num_perm)
    pairs = lsh_candidates(sig, bands, rows)
    if len(pairs):  # the estimate's error is ~0.04 at 128 permutations: 0.12 is three of them
        # a non-empty text's hashes are below 2**32, and only those are paired: 32 bits compare the same
        sig32 = sig.astype(np.uint32)
        agree = np.concatenate([(sig32[p[:, 0]] == sig32[p[:, 1]]).sum(axis=1)
                                for p in np.array_split(pairs, max(1, len(pairs) // 65536))])
        estimate = agree / sig.shape[1]
        keep = estimate >= least - 0.12
        # the likeliest pairs first: they join the groups early, and a later pair inside one group
        # needs no word comparison (200k templated texts: 226k comparisons instead of 1.6M)
        pairs = pairs[keep][np.argsort(-agree[keep], kind="stable")]
    return _verified_groups(ids, [t.split() for t in texts], pairs, threshold)


def _verified_groups(ids: Sequence[int], words: Sequence[list[str]], pairs: np.ndarray, threshold: float,
                     chunk: int = 1 << 17) -> dict[int, list[int]]:
    """The groups the candidate ``pairs`` (row indices) make when joined where ``word_similarity``
    reaches ``threshold``, keyed by their lowest id. A pair whose rows are already in one group is
    not compared; each ``chunk`` of pairs is first cut to those whose groups differ, in numpy."""
    parent = list(range(len(ids)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for lo in range(0, len(pairs), chunk):
        root = np.asarray(parent)
        while not np.array_equal(jumped := root[root], root):  # every row's group, by pointer jumping
            root = jumped
        part = pairs[lo:lo + chunk]
        for i, j in part[root[part[:, 0]] != root[part[:, 1]]].tolist():
            ri, rj = find(i), find(j)
            if ri != rj and word_similarity(words[i], words[j], threshold) >= threshold:
                parent[max(ri, rj)] = min(ri, rj)
    members: dict[int, list[int]] = {}
    for x in range(len(ids)):
        members.setdefault(find(x), []).append(ids[x])
    return {min(m): sorted(m) for m in members.values() if len(m) > 1}
