"""Duplicate detection: exact (normalised hash), near (MinHash + LSH) and semantic (cosine).

Duplicates are marked with their group and representative, never deleted: the
funnel drops non-representatives, and the user can always see what was grouped.
"""

from __future__ import annotations

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
