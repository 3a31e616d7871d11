"""Which character separates a delimited text file's columns: comma, semicolon (what a
spreadsheet saves in much of Europe), tab or pipe.

``csv.Sniffer`` gives the first opinion over a sample; a choice is only taken when it splits
the header into several columns and most rows into as many, since the sniffer can be talked into a
character that merely occurs often. A file that still reads as one column but looks delimited is
refused with the line that does not fit, rather than imported as one long column.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from app.core.errors import ImportDataError

DELIMITERS = (",", ";", "\t", "|")
NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
SAMPLE_CHARS = 64 * 1024
_CONSISTENT = 0.9  # the share of sample rows that must have the header's number of fields


@dataclass(frozen=True)
class Dialect:
    delimiter: str
    detected: bool  # False: nothing fitted, the extension's default was used

    @property
    def name(self) -> str:
        return NAMES.get(self.delimiter, repr(self.delimiter))

    def describe(self) -> str:
        return f"{self.name}-separated" + (" (detected)" if self.detected else "")


def _sample_rows(sample: str, delimiter: str, truncated: bool) -> list[list[str]]:
    try:
        rows = [r for r in csv.reader(io.StringIO(sample), delimiter=delimiter) if r]
    except csv.Error:
        return []
    return rows[:-1] if truncated and len(rows) > 1 else rows  # the last line may be cut short


def _fit(rows: list[list[str]]) -> float:
    """How well a delimiter fits: the share of rows with the header's field count (0 if one column)."""
    if not rows or len(rows[0]) < 2:
        return 0.0
    if len(rows) == 1:
        return 1.0
    width = len(rows[0])
    return sum(len(r) == width for r in rows[1:]) / (len(rows) - 1)


def sniff(text: str, default: str = ",") -> Dialect:
    """The delimiter of ``text`` (a whole file or its start); ``default`` when none fits."""
    truncated = len(text) > SAMPLE_CHARS
    sample = text[:SAMPLE_CHARS]
    if truncated and "\n" in sample:
        sample = sample[: sample.rindex("\n") + 1]
    fits = {d: _fit(_sample_rows(sample, d, truncated)) for d in DELIMITERS}
    if fits.get(default, 0.0) == 1.0 and default != ",":
        return Dialect(default, detected=False)  # a .tsv that is one: nothing to guess
    try:
        guess: str | None = csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        guess = None
    if guess is not None and fits.get(guess, 0.0) >= _CONSISTENT:
        return Dialect(guess, detected=guess != default)
    best = max(DELIMITERS, key=lambda d: (fits[d], d == default))
    if fits[best] >= _CONSISTENT:
        return Dialect(best, detected=best != default)
    return Dialect(default, detected=False)


def check_one_column(text: str, dialect: Dialect, name: str) -> None:
    """Refuse a file that parsed as one column although its header looks delimited."""
    lines = text[:SAMPLE_CHARS].splitlines()
    header = lines[0] if lines else ""
    counts = {d: header.count(d) for d in DELIMITERS if d != dialect.delimiter}
    likely = max(counts, key=lambda d: counts[d], default=None)
    if likely is None or counts[likely] == 0:
        return
    rows = _sample_rows("\n".join(lines[:200]), likely, truncated=False)
    width = len(rows[0]) if rows else 0
    odd = next(((n, len(r)) for n, r in enumerate(rows[1:], 2) if len(r) != width), None)
    where = (f"; line {odd[0]} has {odd[1]} fields where the header has {width}, so the separator could not "
             "be confirmed" if odd else "")
    raise ImportDataError(
        f"{name} reads as a single column, but its header {header[:80]!r} looks {NAMES[likely]}-separated{where}. "
        f"Re-save it with one separator ({', '.join(NAMES[d] for d in DELIMITERS)}) and the same number of "
        "fields on every line, or quote the values that contain it"
    )


def short_rows(text: str, dialect: Dialect, width: int) -> tuple[int, int]:
    """How many rows of ``text`` have fewer fields than the header's ``width`` (a table reader fills
    them with empty values), and the line of the first; (0, 0) when none, or when a field is too
    long for the csv module to count (the count is only a note to the user)."""
    count = first = 0
    reader = csv.reader(io.StringIO(text), delimiter=dialect.delimiter)
    try:
        next(reader, None)  # the header
        for row in reader:
            if row and len(row) < width:
                count += 1
                first = first or reader.line_num
    except csv.Error:
        return 0, 0
    return count, first
