"""Token sampling in NumPy, seeded per request.

Sampling here (rather than in llama.cpp's sampler chain) gives each request its
own reproducible random stream and lets us read the sampled token's
log-probability from the same logits row, without ``logits_all``.
"""

from __future__ import annotations

import numpy as np

from backends.protocols import SamplerSettings


def log_softmax_at(logits: np.ndarray, token: int) -> float:
    """log P(token) under the model's own distribution (temperature 1, no truncation)."""
    m = float(logits.max())
    return float(logits[token]) - (m + float(np.log(np.exp(logits - m).sum())))


def sample_token(logits: np.ndarray, settings: SamplerSettings, rng: np.random.Generator) -> int:
    if settings.temperature <= 0:
        return int(np.argmax(logits))
    k = settings.top_k if 0 < settings.top_k < logits.size else logits.size
    if k < logits.size:
        idx = np.argpartition(-logits, k - 1)[:k]
    else:
        idx = np.arange(logits.size)
    scaled = logits[idx].astype(np.float64) / settings.temperature
    order = np.argsort(-scaled, kind="stable")
    idx, scaled = idx[order], scaled[order]
    probs = np.exp(scaled - scaled[0])
    probs /= probs.sum()
    if settings.top_p < 1.0:
        cut = int(np.searchsorted(np.cumsum(probs), settings.top_p)) + 1
        idx, probs = idx[:cut], probs[:cut] / probs[:cut].sum()
    return int(idx[rng.choice(idx.size, p=probs)] if idx.size > 1 else idx[0])
