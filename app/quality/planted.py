"""A planted near-duplicate set made from real English that ships with Python, offline.

The passages are paragraphs of human-written documentation: the topics of the language
reference that ``pydoc`` shows (``pydoc_data.topics``) and the docstrings in the standard
library's source files. Each is 20-120 words, and no two are near-duplicates of each other
(checked with word 4-grams and a word-level diff, independent of any dedupe method here).

Some passages get an edited copy, one word edit per ~12 words: a deletion, a swap of two
adjacent words, a substitution with another word of the corpus, a case change, or extra
spacing. The rest are distractors: distinct passages, many from the same module or topic, so
they share vocabulary with the passages that were copied. Everything is seeded; the corpus is
whatever this Python's standard library holds (so it differs a little between versions).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import random
import re
import sysconfig
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.quality.dedupe import normalise

EDIT_KINDS = ("delete", "swap", "substitute", "case", "spacing")
_SKIP_DIRS = {"test", "tests", "site-packages", "dist-packages", "__pycache__"}
_WORD = re.compile(r"[A-Za-z][a-z]*[,.;:]?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


@dataclass(frozen=True)
class Passage:
    source: str  # the pydoc topic or the stdlib file it came from
    text: str


@dataclass(frozen=True)
class PlantedSet:
    """``texts[i]`` is item ``i``; ``pairs`` are the (original, edited copy) index pairs."""

    texts: list[str]
    sources: list[str]
    pairs: set[tuple[int, int]]
    edits: dict[int, list[str]]  # edited copy -> the kinds of edit made to it


def _prose_paragraphs(text: str) -> Iterable[str]:
    """Paragraphs that read as prose (no code, tables, lists or examples), whitespace collapsed."""
    for para in re.split(r"\n\s*\n", text):
        lines = para.splitlines()
        if not lines or any(line.startswith("   ") or line.lstrip().startswith((">>>", "...", "|", "+-", "*", "-"))
                            for line in lines):
            continue
        words = para.split()
        if words and sum(bool(_WORD.fullmatch(w)) for w in words) / len(words) >= 0.8:
            yield " ".join(words)


def _cut(paragraph: str, min_words: int, max_words: int) -> Iterable[str]:
    """The paragraph itself, or a long one cut at sentence ends into pieces of at most ``max_words``."""
    n = len(paragraph.split())
    if n < min_words:
        return
    if n <= max_words:
        yield paragraph
        return
    piece: list[str] = []
    for sentence in _SENTENCE_END.split(paragraph):
        words = sentence.split()
        if piece and len(piece) + len(words) > max_words:
            if len(piece) >= min_words:
                yield " ".join(piece)
            piece = []
        piece += words
    if min_words <= len(piece) <= max_words:
        yield " ".join(piece)


def _raw_passages(min_words: int, max_words: int) -> list[Passage]:
    from pydoc_data.topics import topics

    out = [Passage(f"pydoc:{name}", p) for name, text in sorted(topics.items())
           for para in _prose_paragraphs(text) for p in _cut(para, min_words, max_words)]
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if _SKIP_DIRS & set(rel.parts[:-1]):
            continue
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for m in re.finditer(r'"""(.*?)"""', source, re.S):
            out += [Passage(rel.as_posix(), p) for para in _prose_paragraphs(inspect.cleandoc(m.group(1)))
                    for p in _cut(para, min_words, max_words)]
    return out


def _distinct(passages: Sequence[Passage], gram: int = 4, max_ratio: float = 0.5,
              common: int = 50) -> list[Passage]:
    """Drop every passage that is a near-duplicate of an earlier one.

    Candidates share a word ``gram``-gram (through an inverted index; grams in more than
    ``common`` passages are boilerplate and ignored); a candidate is dropped when a word-level
    diff finds at least ``max_ratio`` of the words in common.
    """
    words = [normalise(p.text).split() for p in passages]
    index: dict[tuple[str, ...], list[int]] = {}
    for i, w in enumerate(words):
        for g in {tuple(w[k : k + gram]) for k in range(len(w) - gram + 1)}:
            index.setdefault(g, []).append(i)
    seen: set[str] = set()
    dropped: set[int] = set()
    for i, w in enumerate(words):
        key = " ".join(w)
        if key in seen:
            dropped.add(i)
            continue
        seen.add(key)
        earlier = {j for k in range(len(w) - gram + 1) for j in index.get(tuple(w[k : k + gram]), ())
                   if j < i and j not in dropped and len(index[tuple(w[k : k + gram])]) <= common}
        if any(difflib.SequenceMatcher(None, words[j], w, autojunk=False).ratio() >= max_ratio for j in earlier):
            dropped.add(i)
    return [p for i, p in enumerate(passages) if i not in dropped]


@functools.cache
def real_passages(min_words: int = 20, max_words: int = 120) -> tuple[Passage, ...]:
    """Distinct prose passages of ``min_words``-``max_words`` words from Python's own documentation."""
    return tuple(_distinct(_raw_passages(min_words, max_words)))


def edit_passage(text: str, rng: random.Random, vocabulary: Sequence[str], every: int = 12,
                 kinds: Sequence[str] = EDIT_KINDS) -> tuple[str, list[str]]:
    """``text`` with one random word edit per ~``every`` words; returns (edited text, kinds of edit made)."""
    tokens = text.split()
    seps = [" "] * len(tokens)  # seps[i] follows tokens[i]
    n_edits = max(1, round(len(tokens) / every))
    made = []
    for i in sorted(rng.sample(range(len(tokens)), min(n_edits, len(tokens))), reverse=True):
        kind = rng.choice(list(kinds))
        made.append(kind)
        if kind == "delete" and len(tokens) > 1:
            del tokens[i], seps[i]
        elif kind == "swap" and len(tokens) > 1:
            j = i + 1 if i + 1 < len(tokens) else i - 1
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif kind == "substitute":
            tries = (rng.choice(vocabulary) for _ in range(100))
            tokens[i] = next((w for w in tries if w.lower() != tokens[i].lower()), tokens[i] + "s")
        elif kind == "case":
            t = tokens[i]
            tokens[i] = t.lower() if t != t.lower() else (t.upper() if rng.random() < 0.3 else t.capitalize())
        elif kind == "spacing":
            seps[i] = rng.choice(["  ", "   ", "\n", " \n ", "\t"])
    return "".join(t + s for t, s in zip(tokens, seps)).strip(), made[::-1]


def planted_set(n_base: int = 1000, n_distractors: int = 1000, seed: int = 0, every: int = 12,
                kinds: Sequence[str] = EDIT_KINDS) -> PlantedSet:
    """``n_base`` real passages, an edited copy of each, and ``n_distractors`` other real passages, shuffled."""
    passages = list(real_passages())
    if n_base + n_distractors > len(passages):
        raise ValueError(f"only {len(passages)} distinct passages in this Python's documentation")
    rng = random.Random(seed)
    chosen = rng.sample(passages, n_base + n_distractors)
    vocabulary = [w for p in passages for w in p.text.split() if _WORD.fullmatch(w)]
    items: list[tuple[str, str, int, list[str]]] = []  # text, source, family (-1: none), edits
    for k, p in enumerate(chosen):
        items.append((p.text, p.source, k if k < n_base else -1, []))
        if k < n_base:
            edited, made = edit_passage(p.text, rng, vocabulary, every, kinds)
            items.append((edited, p.source, k, made))
    rng.shuffle(items)
    family: dict[int, list[int]] = {}
    for i, (_, _, fam, _) in enumerate(items):
        if fam >= 0:
            family.setdefault(fam, []).append(i)
    return PlantedSet(texts=[t for t, _, _, _ in items], sources=[s for _, s, _, _ in items],
                      pairs={(min(a), max(a)) for a in family.values()},
                      edits={i: e for i, (_, _, _, e) in enumerate(items) if e})


def precision_recall(groups: Mapping[int, Sequence[int]], pairs: set[tuple[int, int]]) -> tuple[float, float]:
    """Pair precision and recall of duplicate ``groups`` against the planted ``pairs``."""
    found = {(a, b) for members in groups.values() for a in members for b in members if a < b}
    hits = len(found & pairs)
    return (hits / len(found) if found else 1.0), (hits / len(pairs) if pairs else 1.0)
