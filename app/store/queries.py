"""Read-side queries the window uses (the window never runs SQL itself)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.core.paths import model_label
from app.store.notebook import Notebook, record_dict
from app.store.review import review_card, review_ids, review_progress  # noqa: F401 (moved to app.store.review)
from app.store.search import id_order, text_clause
from app.store.search import source as search_source

RECORD_COLUMNS = ("id", "status", "origin", "prompt", "output", "tokens", "mean logprob", "run")

# A structured output's field as a column, sort key, filter or map colour is named ``output.<field>``
# (the same prefix as app.prompts.structured.FIELD_PREFIX; the store sits below app.prompts, so it is not imported).
FIELD_PREFIX = "output."


def _field_rows(alias: str = "r") -> str:
    """FROM clause over the top-level members of ``alias``'s output when it is a JSON object, one row per
    member (key, value, type); no rows for a plain text output. The field's name is matched as a bound
    parameter (``j.key = ?``), never spliced into a JSON path: any name works, quotes and dots included.
    json_valid first: json_each raises on malformed JSON, and most outputs of most notebooks are plain text."""
    return f"json_each(CASE WHEN json_valid({alias}.output) THEN {alias}.output END) j"


def field_sql(alias: str = "r") -> str:
    """SQL for the value of one output field (one ``?``: the field's name): a number, a text, 1/0 for
    true/false, the JSON text of an object or array; NULL when the field or the JSON object is absent."""
    return f"(SELECT j.value FROM {_field_rows(alias)} WHERE j.key = ?)"


@dataclass(frozen=True)
class RecordFilter:
    """What the records table shows; turned into SQL so 1M rows never load at once."""

    status: str | None = None
    origin: str | None = None
    prompt: str | None = None  # a prompt name (any version)
    text: str = ""  # words of the output or variables, each a prefix (app/store/search.py)
    prompt_version_id: int | None = None
    run_id: int | None = None
    score: str | None = None  # a score name, e.g. judge:not-rude; with score_min/score_max
    score_min: float | None = None
    score_max: float | None = None
    cluster: int | None = None  # a cluster of the latest map (-1 = noise)
    record_ids: tuple[int, ...] | None = None  # e.g. a lasso selection on the map
    verdict: str | None = None  # the funnel's: "kept", "dropped" or "dropped:<stage>"
    field: str | None = None  # a structured output's field (its name, without "output."); with field_value/min/max
    field_value: str | None = None  # the field's value as a cell shows it: "easy", "3", "true"
    field_min: float | None = None  # a numeric field's range
    field_max: float | None = None
    order_by: str = "id"  # a column of SORTABLE, or "output.<field>"
    descending: bool = False

    def where(self) -> tuple[str, list[Any]]:
        clauses = ["r.role = 'sample'"]
        params: list[Any] = []
        if self.status:
            clauses.append("r.status = ?")
            params.append(self.status)
        if self.origin:
            clauses.append("r.origin = ?")
            params.append(self.origin)
        if self.prompt:
            clauses.append("p.name = ?")
            params.append(self.prompt)
        if self.prompt_version_id is not None:
            clauses.append("r.prompt_version_id = ?")
            params.append(self.prompt_version_id)
        if self.run_id is not None:
            clauses.append("r.run_id = ?")
            params.append(self.run_id)
        if self.cluster is not None:
            clauses.append("EXISTS (SELECT 1 FROM map_points mp WHERE mp.record_id = r.id AND mp.cluster = ? "
                           "AND mp.map_id = (SELECT MAX(id) FROM maps))")
            params.append(self.cluster)
        if self.verdict:
            kept = self.verdict == "kept"
            cond = "v.record_id = r.id AND v.kept = ?"
            params.append(int(kept))
            if self.verdict.startswith("dropped:"):
                cond += " AND v.stage = ?"
                params.append(self.verdict.removeprefix("dropped:"))
            clauses.append(f"EXISTS (SELECT 1 FROM verdicts v WHERE {cond})")
        if self.record_ids is not None:
            clauses.append("r.id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(self.record_ids)))
        if self.score:
            score_cond = ["s.name = ?", "s.record_id = r.id"]
            sp: list[Any] = [self.score]
            if self.score_min is not None:
                score_cond.append("s.value >= ?")
                sp.append(self.score_min)
            if self.score_max is not None:
                score_cond.append("s.value <= ?")
                sp.append(self.score_max)
            clauses.append(f"EXISTS (SELECT 1 FROM scores s WHERE {' AND '.join(score_cond)})")
            params.extend(sp)
        if self.field and (self.field_value is not None or self.field_min is not None or self.field_max is not None):
            field_cond = ["j.key = ?"]
            fp: list[Any] = [self.field]
            if self.field_value is not None:  # compared as the table shows it: true/false spelled out, numbers as text
                field_cond.append("(CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
                                  "ELSE CAST(j.value AS TEXT) END) = ?")
                fp.append(self.field_value)
            if self.field_min is not None or self.field_max is not None:
                field_cond.append("j.type IN ('integer', 'real')")
            if self.field_min is not None:
                field_cond.append("j.value >= ?")
                fp.append(self.field_min)
            if self.field_max is not None:
                field_cond.append("j.value <= ?")
                fp.append(self.field_max)
            clauses.append(f"EXISTS (SELECT 1 FROM {_field_rows('r')} WHERE {' AND '.join(field_cond)})")
            params.extend(fp)
        if self.text:
            text_sql, text_params = text_clause(self.text, "r")
            if text_sql:
                clauses.append(text_sql)
                params.extend(text_params)
        return " AND ".join(clauses), params

    def source(self, *, prompts: bool = True) -> str:
        """The FROM clause :meth:`where` goes with: the full-text index first when there are words to
        look up (app/store/search.py); the prompt versions when the rows or the filter need them."""
        joins = f"FROM {search_source(self.text)}"
        if prompts or self.prompt:
            joins += " LEFT JOIN prompt_versions p ON p.id = r.prompt_version_id"
        return joins

    def order(self) -> tuple[str, list[Any]]:
        """ORDER BY and its parameters, ties broken by id (the index's own order when it drives the query).

        An ``output.<field>`` column sorts by the field's JSON value: numbers as numbers (before texts,
        SQLite's order of types), records without the field first ascending (NULLs), last descending."""
        direction = "DESC" if self.descending else "ASC"
        by_id = id_order(self.text)
        if self.order_by.startswith(FIELD_PREFIX) and len(self.order_by) > len(FIELD_PREFIX):
            return f"{field_sql('r')} {direction}, {by_id}", [self.order_by.removeprefix(FIELD_PREFIX)]
        if self.order_by not in SORTABLE or self.order_by == "id":
            return f"{by_id} {direction}", []  # one term: the index serves it in order, no sort of every match
        return ", ".join(f"{col} {direction}" for col in SORTABLE[self.order_by].split(", ")) + f", {by_id}", []

# table column -> SQL expression it sorts by (whitelisted: never interpolate user text)
SORTABLE = {
    "id": "r.id", "status": "r.status", "origin": "r.origin", "prompt": "p.name, p.version",
    "output": "r.output", "tokens": "r.completion_tokens", "mean logprob": "r.mean_logprob", "run": "r.run_id",
}


def count_records(nb: Notebook, flt: RecordFilter = RecordFilter()) -> int:
    where, params = flt.where()
    count: int = nb.conn.execute(f"SELECT COUNT(*) {flt.source(prompts=False)} WHERE {where}", params).fetchone()[0]
    return count


def record_page(nb: Notebook, offset: int, limit: int, flt: RecordFilter = RecordFilter()) -> list[dict[str, Any]]:
    where, params = flt.where()
    order, order_params = flt.order()
    rows = nb.conn.execute(
        f"SELECT r.*, p.name AS prompt_name, p.version AS prompt_version {flt.source()} WHERE {where} "
        f"ORDER BY {order} LIMIT ? OFFSET ?",
        (*params, *order_params, limit, offset),
    ).fetchall()
    out = []
    for row in rows:
        d = record_dict(row)
        d["prompt_label"] = f"{d['prompt_name']} v{d['prompt_version']}" if d.get("prompt_name") else ""
        out.append(d)
    return out


def record_row(nb: Notebook, record_id: int) -> dict[str, Any]:
    """One record as :func:`record_page` returns it."""
    row = nb.conn.execute(
        "SELECT r.*, p.name AS prompt_name, p.version AS prompt_version FROM records r "
        "LEFT JOIN prompt_versions p ON p.id = r.prompt_version_id WHERE r.id = ?", (record_id,)
    ).fetchone()
    d = record_dict(row)
    d["prompt_label"] = f"{d['prompt_name']} v{d['prompt_version']}" if d.get("prompt_name") else ""
    return d


def lineage(nb: Notebook, record_id: int, *, chain: bool = False) -> dict[str, Any]:
    """Everything that explains where one record came from; with ``chain``, also the records it was
    made from (``ancestors``, parent first) and the ones made from it (``children``)."""
    rec = nb.record(record_id)
    out: dict[str, Any] = {"record": rec}
    if rec["prompt_version_id"]:
        out["prompt_version"] = nb.prompt_version_by_id(rec["prompt_version_id"])
    if rec["run_id"]:
        out["run"] = nb.run(rec["run_id"])
    out["history"] = nb.history(record_id)
    if chain:
        out["ancestors"] = record_ancestors(nb, record_id)
        out["children"] = record_children(nb, record_id)
    return out


# what the chain lists show of each record (no token log-probabilities: a chain can be long)
_CHAIN_COLUMNS = ("r.id, r.status, r.origin, r.derivation, r.parent_record_id, r.output, "
                  "p.name AS prompt_name, p.version AS prompt_version")
MAX_CHAIN = 200  # more generations up, or children, than a side panel lists


def _chain_row(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["prompt_label"] = f"{d['prompt_name']} v{d['prompt_version']}" if d.get("prompt_name") else ""
    return d


def record_ancestors(nb: Notebook, record_id: int) -> list[dict[str, Any]]:
    """The records ``record_id`` was made from, by ``parent_record_id``: its parent first, then the
    grandparent, up to the first record of the chain. A cycle (hand-made data) stops at the first repeat."""
    rows = nb.conn.execute(
        "WITH RECURSIVE up(id, depth) AS ("
        " SELECT parent_record_id, 1 FROM records WHERE id = ? AND parent_record_id IS NOT NULL"
        " UNION ALL SELECT r.parent_record_id, up.depth + 1 FROM records r JOIN up ON r.id = up.id"
        " WHERE r.parent_record_id IS NOT NULL AND up.depth < ?)"
        f" SELECT {_CHAIN_COLUMNS} FROM up JOIN records r ON r.id = up.id"
        " LEFT JOIN prompt_versions p ON p.id = r.prompt_version_id ORDER BY up.depth",
        (record_id, MAX_CHAIN),
    ).fetchall()
    out: list[dict[str, Any]] = []
    seen = {record_id}
    for row in rows:
        if row["id"] in seen:
            break
        seen.add(row["id"])
        out.append(_chain_row(row))
    return out


def record_children(nb: Notebook, record_id: int, limit: int = MAX_CHAIN) -> list[dict[str, Any]]:
    """The records made from ``record_id`` (their ``parent_record_id`` is it), oldest first."""
    rows = nb.conn.execute(
        f"SELECT {_CHAIN_COLUMNS} FROM records r LEFT JOIN prompt_versions p ON p.id = r.prompt_version_id "
        "WHERE r.parent_record_id = ? ORDER BY r.id LIMIT ?",
        (record_id, limit),
    ).fetchall()
    return [_chain_row(row) for row in rows]


def summary(nb: Notebook) -> dict[str, Any]:
    c = nb.conn
    return {
        "inputs": nb.count_records("input"),
        "samples": nb.count_records("sample"),
        "prompts": len(nb.prompt_versions(latest_only=True)),
        "runs": c.execute("SELECT COUNT(*) FROM runs").fetchone()[0],
        "by_status": dict(c.execute("SELECT status, COUNT(*) FROM records WHERE role='sample' GROUP BY status").fetchall()),
    }


def prompt_names(nb: Notebook) -> list[str]:
    """The user's prompts (latest version of each), without the transforms' internal ones."""
    return [p.name for p in nb.prompt_versions(latest_only=True) if not p.name.startswith("transform:")]


def filter_choices(nb: Notebook) -> dict[str, list[tuple[str, Any]]]:
    """Labels and values for the filter menus: prompt versions, runs, score names."""
    from app.store.scores import score_names

    return {
        "prompt_versions": [(p.label, p.id) for p in nb.prompt_versions()],
        "runs": [(f"run {r.id} ({nb.prompt_version_by_id(r.prompt_version_id).label}, {r.status})", r.id)
                 for r in nb.runs()],
        "scores": [(n, n) for n in score_names(nb)],
        "clusters": _cluster_choices(nb),
    }


def verdict_choices(nb: Notebook) -> list[tuple[str, Any]]:
    """Kept, dropped, and dropped at each stage, with their counts (from the last funnel computed)."""
    c = nb.conn
    kept, dropped = (c.execute("SELECT COALESCE(SUM(kept), 0), COALESCE(SUM(1 - kept), 0) FROM verdicts")
                     .fetchone())
    out: list[tuple[str, Any]] = [(f"kept ({kept})", "kept"), (f"dropped ({dropped})", "dropped")]
    for stage, n in c.execute("SELECT stage, COUNT(*) FROM verdicts WHERE kept = 0 GROUP BY stage "
                              "ORDER BY COUNT(*) DESC, stage"):
        out.append((f"dropped at {stage} ({n})", f"dropped:{stage}"))
    return out


def _cluster_choices(nb: Notebook) -> list[tuple[str, Any]]:
    """Clusters of the latest map, biggest first, with their labels."""
    row = nb.conn.execute("SELECT id, labels FROM maps ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        return []
    labels = json.loads(row[1])
    sizes = nb.conn.execute("SELECT cluster, COUNT(*) FROM map_points WHERE map_id = ? GROUP BY cluster "
                            "ORDER BY COUNT(*) DESC, cluster", (row[0],)).fetchall()
    return [(f"noise ({n})" if c < 0 else f"cluster {c}: {labels.get(str(c), '')} ({n})", c) for c, n in sizes]


def run_record_count(nb: Notebook, run_id: int) -> int:
    """How many records a run has made so far."""
    return int(nb.conn.execute("SELECT COUNT(*) FROM records WHERE run_id = ?", (run_id,)).fetchone()[0])


def run_record_ids(nb: Notebook, run_id: int) -> list[int]:
    return [r[0] for r in nb.conn.execute("SELECT id FROM records WHERE run_id = ? ORDER BY id", (run_id,))]


def records_per_prompt_version(nb: Notebook) -> dict[int, int]:
    """Sample records per prompt version id."""
    return dict(nb.conn.execute(
        "SELECT prompt_version_id, COUNT(*) FROM records WHERE role = 'sample' GROUP BY prompt_version_id"
    ).fetchall())


# -- what the notebook and map views read (they run no SQL themselves) ------------------------


def record_text(nb: Notebook, record_id: int) -> str | None:
    """A record's output text; None if there is no such record or it has no text yet."""
    row = nb.conn.execute("SELECT output FROM records WHERE id = ?", (record_id,)).fetchone()
    return row[0] if row else None


def record_variables(nb: Notebook, record_id: int) -> dict[str, Any] | None:
    """A record's input variables; None if there is no such record."""
    row = nb.conn.execute("SELECT variables FROM records WHERE id = ?", (record_id,)).fetchone()
    return None if row is None else json.loads(row[0] or "{}")


def generated_record(nb: Notebook, record_id: int) -> tuple[str, tuple[int, int]] | None:
    """A generated record's text and its (row index, sample index): the key its tokens streamed under."""
    row = nb.conn.execute("SELECT output, row_index, sample_index FROM records WHERE id = ?", (record_id,)).fetchone()
    return None if row is None else (row[0] or "", (row[1], row[2]))


# what a map point can be coloured by -> the records column it reads (whitelisted: never interpolate user text)
MAP_RECORD_VALUES = {"funnel verdict": "(SELECT CASE WHEN v.kept THEN 'kept' ELSE 'dropped at ' || v.stage END "
                                       "FROM verdicts v WHERE v.record_id = records.id)",
                     "status": "status", "origin": "origin", "run": "run_id", "prompt version": "prompt_version_id",
                     "likelihood": "mean_logprob", "length": "LENGTH(output)"}
MAP_MODEL = "model"  # coloured by the model that made each record (see map_values)


def map_values(nb: Notebook, what: str, record_ids: list[int]) -> dict[int, Any]:
    """Per record id: the value of ``what`` (a key of MAP_RECORD_VALUES, ``score:NAME`` or ``output.FIELD``);
    missing ones left out. A field's value is a number, a text, ``"true"``/``"false"``, or the JSON text of
    an object or array.

    The ids go in as one JSON parameter: a map can hold more records than SQLite allows ``?`` placeholders.
    """
    packed = json.dumps(list(record_ids))
    if what.startswith("score:"):
        return dict(nb.conn.execute("SELECT record_id, value FROM scores WHERE name = ? AND record_id IN "
                                    "(SELECT value FROM json_each(?))", (what[6:], packed)).fetchall())
    if what.startswith(FIELD_PREFIX):
        return dict(nb.conn.execute(
            "SELECT r.id, CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE j.value END "
            f"FROM records r, {_field_rows('r')} WHERE r.id IN (SELECT value FROM json_each(?)) "
            "AND j.key = ? AND j.type != 'null'",
            (packed, what.removeprefix(FIELD_PREFIX)),
        ).fetchall())
    if what == "model":  # the model that made each generated record (imported ones have none)
        return {r[0]: model_label(r[1], r[2]) for r in nb.conn.execute(
            "SELECT r.id, u.model_path, u.backend FROM records r JOIN runs u ON u.id = r.run_id "
            "WHERE r.id IN (SELECT value FROM json_each(?))", (packed,))}
    col = MAP_RECORD_VALUES[what]
    return dict(nb.conn.execute(f"SELECT id, {col} FROM records WHERE id IN (SELECT value FROM json_each(?))",
                                (packed,)).fetchall())
