"""Diversity and collapse metrics: are a thousand generations really fifteen?"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from typing import Any

from app.core.errors import StudioError
from app.core.paths import model_label
from app.quality.dedupe import normalise
from app.store.notebook import Notebook
from app.store.records import samples_with_model, samples_with_prompt_version


def _distinct(normalised: Sequence[str], n: int) -> float:
    # n-grams kept as 64-bit hashes in one array, not as tuples of strings in a set: a million texts
    # of 15 words took gigabytes the other way (two n-grams sharing a hash: ~1e-5 at 15M n-grams)
    import numpy as np

    total = 0
    chunks = []
    for t in normalised:
        w = t.split()
        grams = [hash(tuple(w[i : i + n])) for i in range(len(w) - n + 1)]
        total += len(grams)
        if grams:
            chunks.append(np.fromiter(grams, dtype=np.int64, count=len(grams)))
    if not total:
        return 0.0
    return len(np.unique(np.concatenate(chunks))) / total


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique n-grams / all n-grams across the texts (1 = no n-gram ever repeats)."""
    return _distinct([normalise(t) for t in texts], n)


def _overlap(normalised: Sequence[str], n: int, max_pairs: int, seed: int) -> float:
    count = len(normalised)
    pairs = [(i, j) for i in range(count) for j in range(i + 1, count)] if count <= 64 else None
    if pairs is None:
        rng = random.Random(seed)
        pairs = [(i, j) for i, j in (rng.sample(range(count), 2) for _ in range(max_pairs))]
    elif len(pairs) > max_pairs:
        pairs = random.Random(seed).sample(pairs, max_pairs)
    sets: dict[int, set[tuple[str, ...]]] = {}  # only the texts the sampled pairs use

    def grams(i: int) -> set[tuple[str, ...]]:
        if i not in sets:
            w = normalised[i].split()
            sets[i] = {tuple(w[k : k + n]) for k in range(len(w) - n + 1)}
        return sets[i]

    vals = [len(grams(i) & grams(j)) / len(grams(i) | grams(j)) for i, j in pairs if grams(i) | grams(j)]
    return sum(vals) / len(vals) if vals else 0.0


def pairwise_overlap(texts: Sequence[str], n: int = 2, max_pairs: int = 2000, seed: int = 0) -> float:
    """Mean Jaccard overlap of word n-gram sets over (sampled) pairs of texts."""
    return _overlap([normalise(t) for t in texts], n, max_pairs, seed)


def compression_ratio(texts: Sequence[str]) -> float:
    """Raw bytes / zlib-compressed bytes of all texts together: higher = more repetitive."""
    raw = "\n".join(texts).encode()
    return len(raw) / len(zlib.compress(raw, 9)) if raw else 0.0


def unique_per_input(groups: dict[Any, list[str]]) -> float | None:
    """Mean share of distinct outputs among the samples of each input row (1 = no collapse)."""
    shares = [len({normalise(t) for t in outs}) / len(outs) for outs in groups.values() if len(outs) > 1]
    return sum(shares) / len(shares) if shares else None


def text_metrics(texts: Sequence[str], per_input: dict[Any, list[str]] | None = None) -> dict[str, Any]:
    normalised = [normalise(t) for t in texts]  # once, not once per measure
    words = [len(t.split()) for t in normalised]
    return {
        "records": len(texts),
        "unique": len(set(normalised)),
        "distinct_1": _distinct(normalised, 1),
        "distinct_2": _distinct(normalised, 2),
        "distinct_3": _distinct(normalised, 3),
        "pairwise_overlap_2": _overlap(normalised, 2, 2000, 0),
        "compression_ratio": compression_ratio(texts),
        "unique_per_input": unique_per_input(per_input or {}),
        "mean_words": sum(words) / len(words) if words else 0.0,
    }


def notebook_metrics(nb: Notebook, by: str = "prompt") -> list[dict[str, Any]]:
    """Metrics per prompt version, or with ``by="model"`` per model that made the records
    (imported records with text form their own group). The group's name is under "prompt_version"
    either way (and under "group")."""
    groups: dict[str, list[tuple[str, Any]]] = {}
    if by == "model":
        for out, input_id, path, backend in samples_with_model(nb):
            label = model_label(path, backend) if backend else "imported"
            groups.setdefault(label, []).append((out, input_id))
    elif by == "prompt":
        for out, input_id, name, version in samples_with_prompt_version(nb):
            label = f"{name} v{version}" if name else "imported"
            groups.setdefault(label, []).append((out, input_id))
    else:
        raise StudioError(f"metrics --by {by!r}: use prompt or model")
    result = []
    for label, items in groups.items():
        per_input: dict[Any, list[str]] = {}
        for out, input_id in items:
            if input_id is not None:
                per_input.setdefault(input_id, []).append(out)
        result.append({"prompt_version": label, "group": label, **text_metrics([o for o, _ in items], per_input)})
    return result
