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


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique n-grams / all n-grams across the texts (1 = no n-gram ever repeats)."""
    total, seen = 0, set()
    for t in texts:
        w = normalise(t).split()
        grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def pairwise_overlap(texts: Sequence[str], n: int = 2, max_pairs: int = 2000, seed: int = 0) -> float:
    """Mean Jaccard overlap of word n-gram sets over (sampled) pairs of texts."""
    sets = []
    for t in texts:
        w = normalise(t).split()
        sets.append({tuple(w[i : i + n]) for i in range(len(w) - n + 1)})
    pairs = [(i, j) for i in range(len(sets)) for j in range(i + 1, len(sets))] if len(sets) <= 64 else None
    if pairs is None:
        rng = random.Random(seed)
        pairs = [(i, j) for i, j in (rng.sample(range(len(sets)), 2) for _ in range(max_pairs))]
    elif len(pairs) > max_pairs:
        pairs = random.Random(seed).sample(pairs, max_pairs)
    vals = [len(sets[i] & sets[j]) / len(sets[i] | sets[j]) for i, j in pairs if sets[i] | sets[j]]
    return sum(vals) / len(vals) if vals else 0.0


def compression_ratio(texts: Sequence[str]) -> float:
    """Raw bytes / zlib-compressed bytes of all texts together: higher = more repetitive."""
    raw = "\n".join(texts).encode()
    return len(raw) / len(zlib.compress(raw, 9)) if raw else 0.0


def unique_per_input(groups: dict[Any, list[str]]) -> float | None:
    """Mean share of distinct outputs among the samples of each input row (1 = no collapse)."""
    shares = [len({normalise(t) for t in outs}) / len(outs) for outs in groups.values() if len(outs) > 1]
    return sum(shares) / len(shares) if shares else None


def text_metrics(texts: Sequence[str], per_input: dict[Any, list[str]] | None = None) -> dict[str, Any]:
    words = [len(normalise(t).split()) for t in texts]
    return {
        "records": len(texts),
        "unique": len({normalise(t) for t in texts}),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "distinct_3": distinct_n(texts, 3),
        "pairwise_overlap_2": pairwise_overlap(texts, 2),
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
