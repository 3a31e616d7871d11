"""``records_with_scores``: one row per sample with every score as a column and the funnel's verdict.

A view for people who browse a notebook with Datasette or sqlite-utils (the studio itself reads
the tables). SQLite views cannot pivot: the score columns are spelled out in the view's SQL, so
the view is rebuilt (DROP VIEW, CREATE VIEW) whenever a score name appears that it lacks.
:func:`app.store.scores.save_scores` checks that in the transaction that saves the scores, and
opening a notebook creates the view if it is missing. A score name that no longer has any score
keeps its (empty) column until the next rebuild.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

VIEW = "records_with_scores"
# The distinct score names, sorted, by hopping through the (name, kind) index: one seek per name,
# where DISTINCT visits every score (0.6 s at 7M scores; the funnel asks several times per count).
SCORE_NAMES = ("WITH RECURSIVE n(name) AS (SELECT MIN(name) FROM scores UNION ALL "
               "SELECT (SELECT MIN(name) FROM scores WHERE name > n.name) FROM n WHERE n.name IS NOT NULL) "
               "SELECT name FROM n WHERE name IS NOT NULL")
FIXED_COLUMNS = ("id", "status", "origin", "prompt_name", "prompt_version", "output", "kept", "stage", "reason")


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _score_expression(name: str) -> str:
    # the scores primary key (record_id, name) makes each of these one index lookup
    return f"(SELECT s.value FROM scores s WHERE s.record_id = r.id AND s.name = {quote_literal(name)})"


def score_columns(names: Iterable[str]) -> list[tuple[str, str]]:
    """(score name, column name) per name, sorted; a name that would clash with another column
    (SQLite compares column names without case) becomes ``score:NAME``, then ``score:NAME (2)``..."""
    taken = {c.casefold() for c in FIXED_COLUMNS}
    out = []
    for name in sorted(set(names)):
        column = name if name.casefold() not in taken else f"score:{name}"
        n = 2
        while column.casefold() in taken:
            column = f"score:{name} ({n})"
            n += 1
        taken.add(column.casefold())
        out.append((name, column))
    return out


def view_sql(score_names: Iterable[str]) -> str:
    scores = "".join(f",\n    {_score_expression(name)} AS {quote_identifier(column)}"
                     for name, column in score_columns(score_names))
    return (
        f"CREATE VIEW {VIEW} AS SELECT\n"
        "    r.id, r.status, r.origin, p.name AS prompt_name, p.version AS prompt_version, r.output"
        f"{scores},\n"
        "    v.kept, v.stage, v.reason\n"
        "FROM records r\n"
        "LEFT JOIN prompt_versions p ON p.id = r.prompt_version_id\n"
        "LEFT JOIN verdicts v ON v.record_id = r.id\n"
        "WHERE r.role = 'sample'"
    )


def _current_sql(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'view' AND name = ?", (VIEW,)).fetchone()
    return None if row is None else str(row[0])


def rebuild_scores_view(conn: sqlite3.Connection) -> None:
    """Drop and create the view with a column for every score name stored now.

    Runs in the caller's transaction; the statements are DDL only, so it is cheap (no data moves).
    """
    names = [r[0] for r in conn.execute(SCORE_NAMES)]
    conn.execute(f"DROP VIEW IF EXISTS {VIEW}")
    conn.execute(view_sql(names))


def covers(conn: sqlite3.Connection, names: Iterable[str]) -> bool:
    """Whether the view exists and has a column for each of ``names``.

    Reads the view's own SQL (one row of sqlite_master) rather than the score names, which would
    scan the scores index on every save.
    """
    sql = _current_sql(conn)
    return sql is not None and all(_score_expression(name) in sql for name in set(names))


def ensure_scores_view(conn: sqlite3.Connection, names: Iterable[str] = ()) -> bool:
    """Rebuild the view if it is missing or lacks a column for one of ``names``; returns whether it did.

    Runs in the caller's transaction.
    """
    if covers(conn, names):
        return False
    rebuild_scores_view(conn)
    return True
