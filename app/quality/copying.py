"""Synthetic records that repeat what the model was shown: a long span of a real record or of
a few-shot example (the copy check), or much of a held-out eval item (decontamination).

Both hash word n-grams (lower-cased words, punctuation ignored): the real corpus becomes one
sorted array of hashes that every synthetic record is looked up in, so the cost grows with
the number of words, never with pairs of records. A hit is then traced back to its source in
a second pass over the corpus, for the reason to name it.

Each check stores a validator-kind score on every synthetic sample (``copy:real``,
``copy:few-shot``, ``contamination:eval``), so the funnel shows it as a stage and drops the
records that fail it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from app.core.errors import StudioError
from app.core.tasks import TaskState
from app.store.notebook import Notebook
from app.store.privacy import SyntheticSample, sample_outputs, synthetic_samples
from app.store.scores import Score, add_step, save_scores
from app.store.splits import RealRecord, held_out_records, real_records

COPY_WORDS = 12  # the shortest span that counts as copied
DECONTAM_N = 8
DECONTAM_THRESHOLD = 0.2
_WORD = re.compile(r"\w+(?:'\w+)?")
_QUOTE = 160  # characters of a copied span quoted in a reason


@dataclass(frozen=True)
class Words:
    """A text's words (lower case) and where each one is in the text."""

    text: str
    words: list[str]
    starts: list[int]
    ends: list[int]

    @classmethod
    def of(cls, text: str) -> Words:
        ms = list(_WORD.finditer(text))
        return cls(text, [m.group().lower() for m in ms], [m.start() for m in ms], [m.end() for m in ms])

    def hashes(self, n: int) -> np.ndarray:
        return gram_hashes(self.words, n)

    def quote(self, first: int, last: int) -> str:
        """Words ``first``..``last`` (inclusive) as the text writes them, on one line, shortened."""
        span = " ".join(self.text[self.starts[first]:self.ends[last]].split())
        return span if len(span) <= _QUOTE else span[: _QUOTE - 1] + "…"


def gram_hashes(words: Sequence[str], n: int) -> np.ndarray:
    """One 64-bit hash per word n-gram, in order (empty when there are fewer than ``n`` words).

    Python's string hash is salted per process: compare hashes made in the same process only.
    """
    count = max(len(words) - n + 1, 0)
    return np.fromiter((hash(tuple(words[i:i + n])) for i in range(count)), dtype=np.int64, count=count)


def record_texts(r: RealRecord) -> list[str]:
    """The texts of a real record: a sample's text, an input row's text columns (each on its own,
    so no n-gram runs from one column into the next)."""
    if r.output is not None:
        return [r.output]
    return [v for v in r.variables.values() if isinstance(v, str)]


class GramIndex:
    """The n-gram hashes of a corpus, sorted, for membership look-ups."""

    def __init__(self, texts: Iterable[str], n: int) -> None:
        parts = [Words.of(t).hashes(n) for t in texts]
        self.n = n
        self.hashes = np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.hashes.size)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """A boolean per hash: is it in the corpus?"""
        if not self.hashes.size or not hashes.size:
            return np.zeros(hashes.size, dtype=bool)
        at = np.minimum(np.searchsorted(self.hashes, hashes), self.hashes.size - 1)
        found: np.ndarray = self.hashes[at] == hashes
        return found


def longest_run(hit: np.ndarray) -> tuple[int, int] | None:
    """(first, last) index of the longest run of True in ``hit``; None if there is none."""
    best: tuple[int, int] | None = None
    start = -1
    for i, h in enumerate([*hit.tolist(), False]):
        if h and start < 0:
            start = i
        elif not h and start >= 0:
            if best is None or i - start > best[1] - best[0] + 1:
                best = (start, i - 1)
            start = -1
    return best


@dataclass(frozen=True)
class Copy:
    record_id: int
    source_id: int  # the real record or few-shot example it repeats
    words: int  # length of the longest repeated span, in words
    span: str  # that span as the record writes it (shortened)


@dataclass(frozen=True)
class CopyReport:
    n: int
    checked: int
    real: list[Copy]
    few_shot: list[Copy]


def _span(w: Words, run: tuple[int, int], n: int) -> tuple[int, str]:
    first, last = run[0], run[1] + n - 1  # grams first..run[1] cover words first..run[1]+n-1
    return last - first + 1, w.quote(first, last)


def _sources(texts: Iterable[tuple[int, str]], wanted: set[int], n: int) -> dict[int, list[int]]:
    """For each of the ``wanted`` hashes, the ids of the texts that contain it."""
    found: dict[int, list[int]] = {}
    if not wanted:
        return found
    for rid, text in texts:
        for h in set(Words.of(text).hashes(n).tolist()) & wanted:
            found.setdefault(h, []).append(rid)
    return found


def _real_copies(synth: list[tuple[SyntheticSample, Words]], corpus: list[tuple[int, str]], n: int,
                 task: TaskState) -> list[Copy]:
    index = GramIndex((t for _, t in corpus), n)
    runs: dict[int, tuple[Words, np.ndarray, tuple[int, int]]] = {}
    for i, (s, w) in enumerate(synth):
        if i % 200 == 0:
            task.check()
            task.set_progress(i, len(synth), "copies of real records")
        hashes = w.hashes(n)
        run = longest_run(index.contains(hashes))
        if run is not None:
            runs[s.id] = (w, hashes, run)
    sources = _sources(corpus, {int(h[run[0]]) for _, h, run in runs.values()}, n)
    out = []
    for rid, (w, hashes, run) in runs.items():
        words, span = _span(w, run, n)
        out.append(Copy(rid, sources.get(int(hashes[run[0]]), [0])[0], words, span))
    return out


_MOD = (1 << 61) - 1  # polynomial hashes of word sequences, so any span of a prompt hashes in O(1)
_BASE = 1_000_003


def _codes(words: Sequence[str]) -> list[int]:
    return [hash(w) % _MOD for w in words]


def _poly(codes: Sequence[int]) -> int:
    h = 0
    for c in codes:
        h = (h * _BASE + c) % _MOD
    return h


class _Prefix:
    """Prefix hashes of a word sequence: the hash of words[i:j] is ``span(i, j)``, equal to ``_poly`` of it."""

    def __init__(self, codes: Sequence[int]) -> None:
        self.pre, self.pow = [0], [1]
        for c in codes:
            self.pre.append((self.pre[-1] * _BASE + c) % _MOD)
            self.pow.append(self.pow[-1] * _BASE % _MOD)

    def span(self, i: int, j: int) -> int:
        return (self.pre[j] - self.pre[i] * self.pow[j - i]) % _MOD


def _example_index(texts: Iterable[tuple[int, str]], n: int) -> dict[int, dict[int, dict[int, list[int]]]]:
    """Every sample of at least ``n`` words, by its first n-gram, then its length, then its hash."""
    index: dict[int, dict[int, dict[int, list[int]]]] = {}
    for tid, text in texts:
        words = Words.of(text).words
        if len(words) >= n:
            first = hash(tuple(words[:n]))
            index.setdefault(first, {}).setdefault(len(words), {}).setdefault(_poly(_codes(words)), []).append(tid)
    return index


def _few_shot_copies(nb: Notebook, synth: list[tuple[SyntheticSample, Words]], n: int,
                     task: TaskState) -> list[Copy]:
    """Spans a record repeats from a few-shot example its own prompt showed it.

    An example is any sample whose whole text appears in the record's rendered prompt (what
    ``few_shot()`` and ``examples`` put there), other than the sample a transform was made from;
    repeating the prompt's instructions or its input row is not copying an example. Where each
    example sits in a prompt is found from its first n-gram and its length, by hash, so the cost
    does not grow with the number of samples.
    """
    index: dict[int, dict[int, dict[int, list[int]]]] | None = None
    out = []
    for i, (s, w) in enumerate(synth):
        if i % 200 == 0:
            task.check()
            task.set_progress(i, len(synth), "copies of few-shot examples")
        if not s.prompt:
            continue
        hashes = w.hashes(n)
        pw = Words.of(s.prompt)
        prompt_hashes = pw.hashes(n)
        if not np.isin(hashes, prompt_hashes).any():  # most records repeat nothing of their prompt
            continue
        if index is None:
            index = _example_index(sample_outputs(nb), n)
        prefix = _Prefix(_codes(pw.words))
        shown: dict[int, int] = {}  # n-gram hash of an example shown in the prompt -> that example
        for p, first in enumerate(prompt_hashes.tolist()):
            for length, by_hash in index.get(first, {}).items():
                if p + length > len(pw.words):
                    continue
                ids = [t for t in by_hash.get(prefix.span(p, p + length), []) if t not in (s.id, s.input_record_id)]
                if ids:
                    for q in range(p, p + length - n + 1):
                        shown.setdefault(int(prompt_hashes[q]), ids[0])
        run = longest_run(np.array([h in shown for h in hashes.tolist()], dtype=bool))
        if run is not None:
            words, span = _span(w, run, n)
            out.append(Copy(s.id, shown[int(hashes[run[0]])], words, span))
    return out


def copy_check(nb: Notebook, n: int = COPY_WORDS, task: TaskState | None = None) -> CopyReport:
    """Score every synthetic sample for repeating ``n`` or more words of a real record (``copy:real``)
    or of a few-shot example shown in its prompt (``copy:few-shot``)."""
    if n < 2:
        raise StudioError("--words must be at least 2 (a shorter span is a common phrase, not a copy)")
    task = task or TaskState()
    synth = [(s, Words.of(s.output)) for s in synthetic_samples(nb)]
    corpus = [(r.id, t) for r in real_records(nb) for t in record_texts(r)]
    real = _real_copies(synth, corpus, n, task)
    few = _few_shot_copies(nb, synth, n, task)
    step = add_step(nb, "copycheck", "copy", {"words": n, "real_texts": len(corpus), "hash": "word n-grams"})
    scores: list[Score] = []
    for name, found, what in (("copy:real", real, "real record"), ("copy:few-shot", few, "few-shot example")):
        hits = {c.record_id: c for c in found}
        for s, _ in synth:
            c = hits.get(s.id)
            scores.append(Score(s.id, name, "validator", 0.0, True, f"repeats no {n}-word span of a {what}")
                          if c is None else
                          Score(s.id, name, "validator", float(c.words), False,
                                f"repeats {c.words} words of {what} #{c.source_id}: \"{c.span}\""))
    save_scores(nb, scores, step)
    task.set_progress(len(synth), len(synth), "done")
    return CopyReport(n, len(synth), real, few)


# -- decontamination -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Contamination:
    record_id: int
    share: float  # share of the record's n-grams found in held-out items
    source_id: int | None  # the held-out record most of them come from
    passed: bool


def decontaminate(nb: Notebook, n: int = DECONTAM_N, threshold: float = DECONTAM_THRESHOLD,
                  task: TaskState | None = None) -> list[Contamination]:
    """Score every synthetic sample by the share of its word n-grams found in eval/holdout records
    (``contamination:eval``); more than ``threshold`` fails it."""
    if n < 1:
        raise StudioError("--n must be at least 1")
    if not 0 < threshold <= 1:
        raise StudioError("--threshold is a share of the record's n-grams, in (0, 1]")
    task = task or TaskState()
    held = held_out_records(nb)
    if not held:
        raise StudioError("no eval or holdout records to check against: run synth-studio split first")
    owner: dict[int, int] = {}
    for r in held:
        for text in record_texts(r):
            for h in Words.of(text).hashes(n).tolist():
                owner.setdefault(h, r.id)
    synth = synthetic_samples(nb)
    step = add_step(nb, "decontam", "eval", {"n": n, "threshold": threshold, "held_out": len(held)})
    out, scores = [], []
    for i, s in enumerate(synth):
        if i % 200 == 0:
            task.check()
            task.set_progress(i, len(synth), "n-grams in eval items")
        hashes = Words.of(s.output).hashes(n).tolist()
        hits = Counter(owner[h] for h in hashes if h in owner)
        share = sum(hits.values()) / len(hashes) if hashes else 0.0
        source = hits.most_common(1)[0][0] if hits else None
        passed = share <= threshold
        if passed:
            reason = f"{share:.0%} of its {n}-grams are in eval/holdout items"
        else:
            more = f" (and {len(hits) - 1} more)" if len(hits) > 1 else ""
            reason = f"{share:.0%} of its {n}-grams are in eval/holdout items: record #{source}{more}"
        out.append(Contamination(s.id, share, source, passed))
        scores.append(Score(s.id, "contamination:eval", "validator", share, passed, reason))
    save_scores(nb, scores, step)
    task.set_progress(len(synth), len(synth), "done")
    return out
