"""Named schema migrations, recorded in the notebook file itself.

Each migration runs once, in order, inside a transaction, and its name is written
to ``_migrations``. A notebook created by an older studio is brought up to date
when opened; one from a newer studio (unknown migration names) is refused rather
than silently mis-read.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

Migration = Callable[[sqlite3.Connection], None]


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Execute a multi-statement script inside the caller's transaction.

    ``executescript`` would COMMIT first, which breaks a migration's atomicity,
    so statements are split with SQLite's own completeness test.
    """
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            conn.execute(buf)
            buf = ""
    if buf.strip():
        conn.execute(buf)


def _m001_initial(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        CREATE TABLE notebook_meta (
            key TEXT PRIMARY KEY,
            value TEXT
        );
        CREATE TABLE prompt_versions (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            template TEXT NOT NULL,
            hash TEXT NOT NULL,
            parent_id INTEGER REFERENCES prompt_versions(id),
            created TEXT NOT NULL,
            UNIQUE (name, version)
        );
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            prompt_version_id INTEGER REFERENCES prompt_versions(id),
            backend TEXT NOT NULL,
            model_path TEXT,
            model_sha256 TEXT,
            settings TEXT NOT NULL,          -- JSON sampler + context settings
            seed INTEGER NOT NULL,
            samples_per_row INTEGER NOT NULL,
            plan TEXT NOT NULL,              -- JSON list of input record ids (null = no input row)
            status TEXT NOT NULL,            -- running | completed | cancelled | failed
            error TEXT,
            created TEXT NOT NULL,
            finished TEXT
        );
        CREATE TABLE records (
            id INTEGER PRIMARY KEY,
            role TEXT NOT NULL DEFAULT 'sample',   -- input (a row to generate from) | sample
            run_id INTEGER REFERENCES runs(id),
            prompt_version_id INTEGER REFERENCES prompt_versions(id),
            input_record_id INTEGER REFERENCES records(id),
            row_index INTEGER,
            sample_index INTEGER,
            seed INTEGER,
            variables TEXT NOT NULL DEFAULT '{}',  -- JSON
            prompt TEXT,
            output TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            mean_logprob REAL,
            token_logprobs BLOB,                   -- float32 array, one per output token
            finish_reason TEXT,
            origin TEXT NOT NULL DEFAULT 'synthetic'
                CHECK (origin IN ('synthetic', 'real', 'human-edited')),
            status TEXT NOT NULL DEFAULT 'new'
                CHECK (status IN ('new', 'accepted', 'rejected', 'flagged')),
            source TEXT,                           -- imported file name, for imported rows
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        );
        CREATE UNIQUE INDEX records_run_slot ON records(run_id, row_index, sample_index)
            WHERE run_id IS NOT NULL;
        CREATE INDEX records_role ON records(role);
        CREATE INDEX records_prompt_version ON records(prompt_version_id);
        CREATE TABLE edits (
            id INTEGER PRIMARY KEY,
            record_id INTEGER NOT NULL REFERENCES records(id),
            field TEXT NOT NULL,
            old TEXT,
            new TEXT,
            author TEXT NOT NULL,
            created TEXT NOT NULL,
            reverts INTEGER REFERENCES edits(id)
        );
        CREATE INDEX edits_record ON edits(record_id);
        """
    )


def _m002_quality(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        CREATE TABLE steps (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,              -- validate | score | judge | dedupe | best-of | ...
            name TEXT NOT NULL,
            settings TEXT NOT NULL,          -- JSON: everything needed to reproduce the step
            model_sha256 TEXT,
            created TEXT NOT NULL
        );
        CREATE TABLE scores (
            record_id INTEGER NOT NULL REFERENCES records(id),
            name TEXT NOT NULL,              -- e.g. validator:json, judge:english, score:steps
            kind TEXT NOT NULL,              -- validator | scorer | judge | rubric | additive
            value REAL,
            passed INTEGER,                  -- 1/0 for gates, NULL for plain scores
            reason TEXT,
            step_id INTEGER REFERENCES steps(id),
            model_sha256 TEXT,
            created TEXT NOT NULL,
            PRIMARY KEY (record_id, name)
        );
        CREATE INDEX scores_name ON scores(name);
        CREATE TABLE duplicates (
            record_id INTEGER NOT NULL REFERENCES records(id),
            method TEXT NOT NULL,            -- exact | minhash | semantic
            group_id INTEGER NOT NULL,
            representative_id INTEGER NOT NULL REFERENCES records(id),
            step_id INTEGER REFERENCES steps(id),
            PRIMARY KEY (record_id, method)
        );
        ALTER TABLE records ADD COLUMN parent_record_id INTEGER REFERENCES records(id);
        ALTER TABLE records ADD COLUMN derivation TEXT;   -- e.g. transform:succinct, best-of
        """,
    )


def _m003_map(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        -- one vector per record and embedder; text_hash notices edits (a stale vector is recomputed)
        CREATE TABLE embeddings (
            record_id INTEGER NOT NULL REFERENCES records(id) ON DELETE CASCADE,
            embedder_sha256 TEXT NOT NULL,
            text_hash TEXT NOT NULL,
            dim INTEGER NOT NULL,
            vector BLOB NOT NULL,            -- float32, L2-normalised
            created_at TEXT NOT NULL,
            PRIMARY KEY (record_id, embedder_sha256)
        );
        -- a computed map: 2-D positions and clusters for a set of records, cached by its key
        CREATE TABLE maps (
            id INTEGER PRIMARY KEY,
            cache_key TEXT NOT NULL UNIQUE,  -- embedder + record set + parameters
            embedder_sha256 TEXT NOT NULL,
            method TEXT NOT NULL,            -- umap | pca
            params TEXT NOT NULL,            -- JSON, seeds included
            labels TEXT NOT NULL,            -- JSON {cluster: label}
            created_at TEXT NOT NULL
        );
        CREATE TABLE map_points (
            map_id INTEGER NOT NULL REFERENCES maps(id) ON DELETE CASCADE,
            record_id INTEGER NOT NULL,
            x REAL NOT NULL, y REAL NOT NULL,
            cluster INTEGER NOT NULL,        -- -1 = noise
            outlier REAL,                    -- HDBSCAN outlier score (0..1)
            centroid_distance REAL,          -- cosine distance to its cluster's centroid
            PRIMARY KEY (map_id, record_id)
        );
        """,
    )


def _m004_cells(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        -- the notebook's cells, top to bottom
        CREATE TABLE cells (
            id INTEGER PRIMARY KEY,
            position INTEGER NOT NULL,
            kind TEXT NOT NULL,              -- data | prompt | generate | quality | map | review | export
            settings TEXT NOT NULL,          -- JSON
            collapsed INTEGER NOT NULL DEFAULT 0,
            last_output TEXT,                -- the last run's one-line summary
            last_run TEXT
        );
        """,
    )


def _m005_trust(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        -- criteria (LLM judges) and validator rules kept in the notebook, versioned like prompts
        CREATE TABLE criteria_versions (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('criterion', 'rule')),
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            spec TEXT NOT NULL,              -- JSON: the [[criterion]] / [[rule]] table's settings
            hash TEXT NOT NULL,
            parent_id INTEGER REFERENCES criteria_versions(id),
            active INTEGER NOT NULL DEFAULT 1,
            created TEXT NOT NULL,
            UNIQUE (kind, name, version)
        );
        -- a person's answer to one criterion's question about one record (never automatic)
        CREATE TABLE labels (
            record_id INTEGER NOT NULL REFERENCES records(id),
            criterion TEXT NOT NULL,
            value INTEGER NOT NULL CHECK (value IN (0, 1)),   -- 1 = yes, the record passes
            author TEXT NOT NULL,
            created TEXT NOT NULL,
            PRIMARY KEY (record_id, criterion)
        );
        -- a judge checked against known examples and the person's labels, per criterion version and model
        CREATE TABLE sanity_results (
            id INTEGER PRIMARY KEY,
            criterion TEXT NOT NULL,
            criterion_version_id INTEGER REFERENCES criteria_versions(id),
            model_sha256 TEXT,
            trusted INTEGER NOT NULL,        -- 1 = shown to beat chance
            result TEXT NOT NULL,            -- JSON: auc, p, confusion matrix, kappa, suggested threshold
            created TEXT NOT NULL
        );
        -- a person's decision to let an untrusted judge filter anyway (or to stop a trusted one)
        CREATE TABLE trust_overrides (
            criterion TEXT PRIMARY KEY,
            trusted INTEGER NOT NULL,
            author TEXT NOT NULL,
            reason TEXT,
            created TEXT NOT NULL
        );
        -- the funnel's verdict per sample, written each time the funnel is computed
        CREATE TABLE verdicts (
            record_id INTEGER PRIMARY KEY REFERENCES records(id),
            kept INTEGER NOT NULL,
            stage TEXT,                      -- where it was dropped (or the drop a person overrode)
            reason TEXT
        );
        ALTER TABLE scores ADD COLUMN stale INTEGER NOT NULL DEFAULT 0;   -- the text changed after scoring
        ALTER TABLE scores ADD COLUMN criterion_version_id INTEGER REFERENCES criteria_versions(id);
        ALTER TABLE records ADD COLUMN likelihood_stale INTEGER NOT NULL DEFAULT 0;  -- mean_logprob is of older text
        """,
    )


def _m006_versions(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        -- a frozen kept set: what was shipped, how it was made, and a hash of all of it
        CREATE TABLE dataset_versions (
            id INTEGER PRIMARY KEY,
            tag TEXT NOT NULL UNIQUE,
            message TEXT,
            parent_id INTEGER REFERENCES dataset_versions(id),
            content_hash TEXT NOT NULL,      -- sha256 over the records' ids and text hashes and the manifest
            manifest TEXT NOT NULL,          -- JSON: prompt/criteria/rule versions, model hashes, funnel, counts
            created TEXT NOT NULL
        );
        CREATE TABLE version_records (
            version_id INTEGER NOT NULL REFERENCES dataset_versions(id),
            record_id INTEGER NOT NULL REFERENCES records(id),
            text_hash TEXT NOT NULL,
            output TEXT NOT NULL,            -- the text as it was: later edits do not change a version
            status TEXT NOT NULL,
            scores TEXT NOT NULL,            -- JSON {score name: value} at the time
            cluster INTEGER,                 -- in the latest map at the time (NULL: no map)
            PRIMARY KEY (version_id, record_id)
        );
        CREATE TRIGGER dataset_versions_no_update BEFORE UPDATE ON dataset_versions
            BEGIN SELECT RAISE(ABORT, 'dataset versions are immutable'); END;
        CREATE TRIGGER dataset_versions_no_delete BEFORE DELETE ON dataset_versions
            BEGIN SELECT RAISE(ABORT, 'dataset versions are immutable'); END;
        CREATE TRIGGER version_records_no_update BEFORE UPDATE ON version_records
            BEGIN SELECT RAISE(ABORT, 'dataset versions are immutable'); END;
        CREATE TRIGGER version_records_no_delete BEFORE DELETE ON version_records
            BEGIN SELECT RAISE(ABORT, 'dataset versions are immutable'); END;
        -- real records split for training, evaluation and a held-out set (NULL: not split)
        ALTER TABLE records ADD COLUMN split TEXT CHECK (split IN ('train', 'eval', 'holdout'));
        -- strings planted in real seed rows; a synthetic record that contains one copied it
        CREATE TABLE canaries (
            id INTEGER PRIMARY KEY,
            text TEXT NOT NULL UNIQUE,
            record_id INTEGER REFERENCES records(id),
            created TEXT NOT NULL
        );
        """,
    )


def _m007_search_and_keys(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        -- full-text index of every record's output and variables (FTS5, external content: the
        -- text lives in records, the index holds only tokens). The layout is sqlite-utils' own
        -- (records_fts, content="records", triggers records_ai/_ad/_au), so `sqlite-utils search`,
        -- Table.search() and Datasette's search box find it. Written out here rather than made by
        -- Table.enable_fts() so the migration is the same SQL whatever sqlite-utils is installed.
        CREATE VIRTUAL TABLE records_fts USING fts5 (
            output, variables,
            tokenize='unicode61 remove_diacritics 2',
            content="records"
        );
        INSERT INTO records_fts (rowid, output, variables) SELECT id, output, variables FROM records;
        CREATE TRIGGER records_ai AFTER INSERT ON records BEGIN
            INSERT INTO records_fts (rowid, output, variables) VALUES (new.id, new.output, new.variables);
        END;
        CREATE TRIGGER records_ad AFTER DELETE ON records BEGIN
            INSERT INTO records_fts (records_fts, rowid, output, variables)
                VALUES ('delete', old.id, old.output, old.variables);
        END;
        -- only a change of the indexed text touches the index (status and score marks do not)
        CREATE TRIGGER records_au AFTER UPDATE OF output, variables ON records BEGIN
            INSERT INTO records_fts (records_fts, rowid, output, variables)
                VALUES ('delete', old.id, old.output, old.variables);
            INSERT INTO records_fts (rowid, output, variables) VALUES (new.id, new.output, new.variables);
        END;
        -- map_points.record_id had no foreign key; SQLite cannot add one with ALTER TABLE, so the
        -- table is rebuilt (new table, copy, drop, rename) inside this migration's transaction. A
        -- point of a record that no longer exists is a stale cache entry and is not copied.
        CREATE TABLE map_points_new (
            map_id INTEGER NOT NULL REFERENCES maps(id) ON DELETE CASCADE,
            record_id INTEGER NOT NULL REFERENCES records(id) ON DELETE CASCADE,
            x REAL NOT NULL, y REAL NOT NULL,
            cluster INTEGER NOT NULL,        -- -1 = noise
            outlier REAL,                    -- HDBSCAN outlier score (0..1)
            centroid_distance REAL,          -- cosine distance to its cluster's centroid
            PRIMARY KEY (map_id, record_id)
        );
        INSERT INTO map_points_new (map_id, record_id, x, y, cluster, outlier, centroid_distance)
            SELECT map_id, record_id, x, y, cluster, outlier, centroid_distance FROM map_points
            WHERE record_id IN (SELECT id FROM records) AND map_id IN (SELECT id FROM maps);
        DROP TABLE map_points;
        ALTER TABLE map_points_new RENAME TO map_points;
        """,
    )


def _m008_chain_index(conn: sqlite3.Connection) -> None:
    """Chains walk parent -> children (the Records side panel, lineage, chain sources): index the link."""
    run_script(conn, "CREATE INDEX records_parent ON records(parent_record_id) WHERE parent_record_id IS NOT NULL;")


def _m009_score_kinds(conn: sqlite3.Connection) -> None:
    """What the funnel asks on every count, answered from indexes instead of scans of millions of
    scores: which score names (of which kind) exist and the latest step of each ((name, kind,
    step_id): a few seeks), the records failing a score (only the failing ones are indexed), and
    the ids of the samples with text (only those are indexed)."""
    run_script(conn, """
        CREATE INDEX scores_name_kind ON scores(name, kind, step_id);
        CREATE INDEX scores_failing ON scores(name, record_id) WHERE passed = 0;
        CREATE INDEX records_samples ON records(id) WHERE role = 'sample' AND output IS NOT NULL;
        DROP INDEX scores_name;
    """)


def _m010_real_samples(conn: sqlite3.Connection) -> None:
    """Whether a notebook has real samples (the Report and the map ask when the window opens): the
    few real ones indexed on their own, instead of a scan of a million synthetic ones."""
    run_script(conn, "CREATE INDEX records_real ON records(id) "
                     "WHERE role = 'sample' AND output IS NOT NULL AND origin = 'real';")


MIGRATIONS: list[tuple[str, Migration]] = [
    ("001_initial", _m001_initial),
    ("002_quality", _m002_quality),
    ("003_map", _m003_map),
    ("004_cells", _m004_cells),
    ("005_trust", _m005_trust),
    ("006_versions", _m006_versions),
    ("007_search_and_keys", _m007_search_and_keys),
    ("008_chain_index", _m008_chain_index),
    ("009_score_kinds", _m009_score_kinds),
    ("010_real_samples", _m010_real_samples),
]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def applied(conn: sqlite3.Connection) -> list[str]:
    """The migrations recorded in the notebook. Reads only, unless ``_migrations`` is missing (a new file):
    opening a notebook that needs nothing must not write it."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'").fetchone() is None:
        conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL)")
    return [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]


def unknown_migrations(done: list[str]) -> list[str]:
    """Recorded migrations this studio does not have: the notebook was made by a newer one."""
    known = {name for name, _ in MIGRATIONS}
    return [n for n in done if n not in known]


def newer_studio_message(unknown: list[str]) -> str:
    return (f"made by a newer Synth Studio (migration{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}); "
            "update to open it")


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply every migration not yet recorded; return the names applied now."""
    from app.core.errors import NotebookError

    done = applied(conn)
    unknown = unknown_migrations(done)
    if unknown:
        raise NotebookError(f"this notebook was {newer_studio_message(unknown)}")
    ran = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            fn(conn)
            conn.execute("INSERT INTO _migrations (name, applied) VALUES (?, ?)", (name, now()))
            conn.execute("COMMIT")
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        ran.append(name)
    _ensure_views(conn)
    return ran


def _ensure_views(conn: sqlite3.Connection) -> None:
    """Create the derived views a notebook lacks (after an upgrade, or if someone dropped one).

    Views are not migrations: ``records_with_scores`` is rebuilt whenever a new score name
    appears (app/store/views.py), so it is made from the schema as it is now, never frozen.
    """
    from app.store.views import covers, ensure_scores_view

    if covers(conn, ()):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        ensure_scores_view(conn)
        conn.execute("COMMIT")
    except Exception:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


# -- what the studio itself puts in a notebook ----------------------------------------------------

# A score name inside records_with_scores' SQL: ``s.name = 'it''s'`` (app.store.views quotes it so).
_SCORE_NAME = re.compile(r"s\.name = '((?:[^']|'')*)'\)")
_studio_triggers_cache: dict[tuple[str, ...], dict[str, str]] = {}


def studio_triggers() -> dict[str, str]:
    """name -> SQL of every trigger the migrations make.

    Read from a scratch notebook in memory rather than listed by hand, so a new migration's
    trigger is known with no second list to keep in step. SQLite stores a trigger's SQL as
    written, so a notebook's copy matches this text exactly.
    """
    key = tuple(name for name, _ in MIGRATIONS)
    if key not in _studio_triggers_cache:
        scratch = sqlite3.connect(":memory:", isolation_level=None)
        try:
            migrate(scratch)
            _studio_triggers_cache[key] = {
                r[0]: r[1] for r in scratch.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
            }
        finally:
            scratch.close()
    return _studio_triggers_cache[key]


def is_studio_view(name: str, sql: str) -> bool:
    """Whether a view is ``records_with_scores`` exactly as app.store.views writes it for some score names.

    The score names are read back from the SQL and the view is written again from them: only a
    byte-for-byte match counts, so nothing added to the view's SQL gets through.
    """
    from app.store.views import VIEW, view_sql

    if name != VIEW:
        return False
    names = [m.replace("''", "'") for m in _SCORE_NAME.findall(sql)]
    return sql == view_sql(names)


def foreign_schema(conn: sqlite3.Connection) -> list[str]:
    """Triggers and views in the notebook that neither a migration nor app.store.views made ("trigger x").

    A trigger runs on the studio's own writes and a view on anyone's reads: a notebook that came
    from someone else must not bring SQL of its own along. Reads only.
    """
    ours = studio_triggers()
    found = []
    for kind, name, sql in conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE type IN ('trigger', 'view') ORDER BY type, name"
    ):
        if kind == "trigger" and ours.get(name) == sql:
            continue
        if kind == "view" and is_studio_view(name, sql or ""):
            continue
        found.append(f"{kind} {name}")
    return found
