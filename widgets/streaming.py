"""Streaming text you can read: the model writes many sequences at once, interleaved token by
token; showing the latest token's sequence jumps between them and reads as word salad. A
:class:`StreamFollower` follows one sequence until it ends (then the newest one), and counts
the others. Plain Python (no Qt): the generate bar and the Generate cell both use it."""

from __future__ import annotations

from collections.abc import Hashable


class StreamFollower:
    def __init__(self) -> None:
        self.texts: dict[Hashable, str] = {}  # running sequences, oldest first
        self.followed: Hashable | None = None

    def clear(self) -> None:
        self.texts.clear()
        self.followed = None

    def token(self, key: Hashable, piece: str) -> None:
        self.texts[key] = self.texts.get(key, "") + piece
        if self.followed not in self.texts:
            self.followed = key

    def finished(self, key: Hashable) -> None:
        """A sequence ended (its record was saved): follow the newest one still writing."""
        self.texts.pop(key, None)
        if key == self.followed:
            self.followed = next(reversed(self.texts), None)

    def follow(self, key: Hashable) -> None:
        """Follow the sequence the person picked (when it is writing)."""
        if key in self.texts:
            self.followed = key

    @property
    def running(self) -> int:
        return len(self.texts)

    def line(self, width: int = 160) -> str:
        """The followed sequence's latest text on one line, and how many others are writing."""
        if self.followed is None:
            return ""
        text = " ".join(self.texts[self.followed].split())
        text = text if len(text) <= width else "…" + text[-width:]
        others = len(self.texts) - 1
        return text + (f"   (+{others} more writing)" if others else "")
