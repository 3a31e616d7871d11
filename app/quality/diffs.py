"""A duplicate group side by side: each member against its representative, word by word.

What a person checks before trusting a near-duplicate method: which words differ. The diff is
over the words as written (split on whitespace), so a case or punctuation change shows even
though the dedupe methods normalise it away; spacing changes do not show.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.quality.dedupe import normalise, word_similarity
from app.store.notebook import Notebook
from app.store.scores import sample_texts


@dataclass(frozen=True)
class Span:
    """A run of words: ``op`` is equal, insert, delete or replace, from representative to member."""

    op: str
    before: tuple[str, ...]  # the representative's words
    after: tuple[str, ...]  # the member's words


@dataclass(frozen=True)
class MemberDiff:
    record_id: int
    text: str
    similarity: float  # share of normalised words in common, in order (what "minhash" compares)
    spans: tuple[Span, ...]

    @property
    def changed_words(self) -> int:
        return sum(max(len(s.before), len(s.after)) for s in self.spans if s.op != "equal")


@dataclass(frozen=True)
class GroupDiff:
    representative: int
    text: str
    members: tuple[MemberDiff, ...]  # every member but the representative, by id


def word_diff(before: str, after: str) -> tuple[Span, ...]:
    """The word-level diff from ``before`` to ``after`` (difflib over whitespace-split words)."""
    a, b = before.split(), after.split()
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return tuple(Span(op, tuple(a[i1:i2]), tuple(b[j1:j2])) for op, i1, i2, j1, j2 in matcher.get_opcodes())


def group_diff(texts: Mapping[int, str], representative: int, members: Sequence[int]) -> GroupDiff:
    """The representative's text and every other member's diff against it."""
    rep = texts[representative]
    rep_words = normalise(rep).split()
    return GroupDiff(representative, rep, tuple(
        MemberDiff(m, texts[m], word_similarity(rep_words, normalise(texts[m]).split()), word_diff(rep, texts[m]))
        for m in sorted(members) if m != representative))


def stored_group_diff(nb: Notebook, representative: int, members: Sequence[int],
                      limit: int | None = None) -> GroupDiff:
    """``group_diff`` of a stored group, read from the notebook; the first ``limit`` other members only."""
    others = [m for m in sorted(members) if m != representative][:limit]
    texts = {rid: text for rid, text, _ in sample_texts(nb, [representative, *others])}
    texts.setdefault(representative, "")
    return group_diff(texts, representative, [m for m in others if m in texts])
