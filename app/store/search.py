"""Searching records by the words a person types: the FTS5 index ``records_fts`` (migration 007)
over each record's output and variables, kept current by triggers on ``records``.

The user's text never reaches FTS5 as query syntax: each word becomes a quoted prefix term
(``"refund"*``), so quotes, colons, asterisks, ``NEAR``, ``AND`` or brackets are searched as
text, never parsed, and cannot raise. Two kinds of input cannot be answered by a word index and
are matched as exact text with ``LIKE``, as the search always did: a word carrying a symbol at
its end or start (``100%``, ``C++``, ``#tag``; symbols inside a word, as in ``e-mail`` or
``don't``, are fine for the index), and a query of punctuation only.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from app.store.notebook import VISIBLE_ROLES, Notebook, record_dict

# quotes, brackets, sentence punctuation and FTS's own prefix star, as people put them around words
_AROUND_WORDS = "\"'`‘’“”«»()[]{}<>.,;:!?*"


def _is_token_char(ch: str) -> bool:
    """What FTS5's unicode61 tokenizer keeps in a token: letters, numbers (and their combining marks)."""
    return ch.isalnum() or unicodedata.category(ch)[0] == "M"


@dataclass(frozen=True)
class TextQuery:
    """A person's search text, split into what the index answers and what LIKE does."""

    words: tuple[str, ...] = ()  # each matched as a prefix of the words it tokenizes to, via FTS5
    literals: tuple[str, ...] = ()  # each matched as exact text (output or variables), via LIKE
    fallback: str = ""  # punctuation only: matched as exact text of the output, via LIKE

    @property
    def match(self) -> str:
        """The FTS5 query: every word as a quoted prefix term (a double quote inside is doubled)."""
        return " ".join('"' + w.replace('"', '""') + '"*' for w in self.words)


def parse(text: str) -> TextQuery:
    text = text.replace("\x00", " ")  # FTS5 reads its query as a C string: a NUL would cut it short
    words: list[str] = []
    literals: list[str] = []
    for chunk in text.split():
        core = chunk.strip(_AROUND_WORDS)
        if not any(_is_token_char(ch) for ch in core):
            continue  # punctuation only: nothing a word index could find
        if _is_token_char(core[0]) and _is_token_char(core[-1]):
            words.append(core)
        else:
            literals.append(core)
    if not words and not literals:
        return TextQuery(fallback=text.strip())
    return TextQuery(tuple(words), tuple(literals))


def substring_clause(text: str, alias: str = "r", columns: tuple[str, ...] = ("output",)) -> tuple[str, list[Any]]:
    """SQL for records with ``text`` as exact (ASCII case-insensitive) text in any of ``columns``:
    the search as it was before the index, a full scan. ``%`` and ``_`` are text, not wildcards."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    sql = " OR ".join(f"{alias}.{c} LIKE ? ESCAPE '\\'" for c in columns)
    return f"({sql})", [f"%{escaped}%"] * len(columns)


FTS = "f"  # the alias of records_fts in the FROM clause of :func:`source`


def source(text: str, alias: str = "r") -> str:
    """The FROM clause for ``records AS alias`` searched for ``text``, to go with :func:`text_clause`.

    With words to look up, the index is the outer loop (CROSS JOIN fixes the order): matches
    stream out of it in id order and each costs one lookup of its record by id; ordered by
    :func:`id_order`, the first page stops after a page of matches. With the index inner,
    SQLite would run the full-text query once per record; as ``id IN (subquery)``, it would
    first copy every match into a temporary table.
    """
    if parse(text).words:
        return f"records_fts {FTS} CROSS JOIN records {alias} ON {alias}.id = {FTS}.rowid"
    return f"records {alias}"


def id_order(text: str, alias: str = "r") -> str:
    """What to ORDER BY for record id order over :func:`source` (the index's rowid, which it serves in order)."""
    return f"{FTS}.rowid" if parse(text).words else f"{alias}.id"


def text_clause(text: str, alias: str = "r") -> tuple[str, list[Any]]:
    """WHERE SQL over :func:`source` and its parameters for records that match ``text``; ("", []) for no text."""
    q = parse(text)
    clauses: list[str] = []
    params: list[Any] = []
    if q.words:
        clauses.append(f"{FTS}.records_fts MATCH ?")
        params.append(q.match)
    exact: list[tuple[str, tuple[str, ...]]] = [(lit, ("output", "variables")) for lit in q.literals]
    if q.fallback:  # the output only: the variables are JSON, with quotes, colons and braces in every row
        exact.append((q.fallback, ("output",)))
    for lit, columns in exact:
        sql, p = substring_clause(lit, alias, columns)
        clauses.append(sql)
        params += p
    return " AND ".join(clauses), params


def search_records(nb: Notebook, text: str, *, role: str | None = "sample",
                   limit: int | None = None) -> list[dict[str, Any]]:
    """Records (of ``role``; None: inputs and samples) whose output or variables match ``text``, by id."""
    clause, params = text_clause(text, "r")
    where = [c for c in (clause, "r.role = ?" if role is not None else f"r.role IN {VISIBLE_ROLES}") if c]
    params += [role] if role is not None else []
    sql = f"SELECT r.* FROM {source(text)}" + (" WHERE " + " AND ".join(where) if where else "")
    sql += f" ORDER BY {id_order(text)}"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [record_dict(r) for r in nb.conn.execute(sql, params)]
