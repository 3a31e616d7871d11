"""Reads and writes of records that the stages need beyond :class:`Notebook`'s own methods:
samples by status or origin, their texts and measures, what a run is planned from, and
what an export writes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from app.store.notebook import Notebook

_SAMPLES = "FROM records r WHERE r.role = 'sample' AND r.output IS NOT NULL"
# What a record was made as: its origin before any edit. A person's edit (a redaction, a planted
# canary) turns a real record's origin into 'human-edited'; it is still real data. For queries on
# ``records`` without an alias.
MADE_AS = ("COALESCE((SELECT e.old FROM edits e WHERE e.record_id = records.id AND e.field = 'origin' "
           "ORDER BY e.id LIMIT 1), records.origin)")
# real records held out for evaluation are never shown to the model as examples
NOT_HELD_OUT = "COALESCE(split, 'train') NOT IN ('eval', 'holdout')"
# where few-shot examples may come from -> which samples that means
FEW_SHOT_SOURCES = {
    "accepted": f"status = 'accepted' AND {NOT_HELD_OUT}",
    "real": f"{MADE_AS} = 'real' AND {NOT_HELD_OUT}",
    "any": f"status != 'rejected' AND {NOT_HELD_OUT}",
}


def first_sample_id(nb: Notebook) -> int | None:
    """The lowest id of a sample that has text (one seek in the partial index), or None."""
    row = nb.conn.execute("SELECT MIN(id) FROM records INDEXED BY records_samples "
                          "WHERE role = 'sample' AND output IS NOT NULL").fetchone()
    return None if row[0] is None else int(row[0])


def sample_ids(nb: Notebook) -> list[int]:
    """Ids of the samples that have text."""
    # the partial index of migration 009 holds exactly these ids (the planner would pick records_role)
    return [r[0] for r in nb.conn.execute(
        "SELECT id FROM records INDEXED BY records_samples WHERE role = 'sample' AND output IS NOT NULL")]


def comparison_samples(nb: Notebook) -> dict[int, int]:
    """Sample id -> run id of every sample with text made by a comparison run (settings purpose
    ``compare``): a prompt-version comparison, outside the dataset until a person adds its run."""
    return dict(nb.conn.execute(
        "SELECT r.id, r.run_id FROM records r JOIN runs u ON u.id = r.run_id WHERE r.role = 'sample' "
        "AND r.output IS NOT NULL AND json_extract(u.settings, '$.purpose') = 'compare' ORDER BY r.id").fetchall())


def set_run_purpose(nb: Notebook, run_id: int, purpose: str) -> None:
    """Set the ``purpose`` in a run's stored settings (e.g. a comparison run added to the dataset)."""
    with nb.transaction() as c:
        c.execute("UPDATE runs SET settings = json_set(settings, '$.purpose', ?) WHERE id = ?", (purpose, run_id))


def rejected_sample_ids(nb: Notebook) -> list[int]:
    """Ids of the samples a reviewer (or best-of) rejected."""
    return [r[0] for r in nb.conn.execute("SELECT id FROM records WHERE role = 'sample' AND status = 'rejected'")]


def outputs_by_id(nb: Notebook, record_ids: Iterable[int]) -> dict[int, str | None]:
    """The text of each of ``record_ids`` that exists."""
    # json_each rather than one "?" per id: a map can hold more ids than SQLite allows variables
    return dict(nb.conn.execute("SELECT id, output FROM records WHERE id IN (SELECT value FROM json_each(?))",
                                (json.dumps(list(record_ids)),)).fetchall())


def sample_lengths(nb: Notebook) -> list[tuple[int, int]]:
    """(id, characters) of every sample that has text."""
    return [(r[0], r[1]) for r in nb.conn.execute(f"SELECT r.id, LENGTH(r.output) {_SAMPLES}")]


def sample_completion_tokens(nb: Notebook) -> list[tuple[int, int]]:
    """(id, completion tokens) of every sample with text whose token count is known."""
    return [(r[0], r[1]) for r in nb.conn.execute(
        f"SELECT r.id, r.completion_tokens {_SAMPLES} AND r.completion_tokens IS NOT NULL")]


def sample_mean_logprobs(nb: Notebook) -> list[tuple[int, float]]:
    """(id, mean token log-probability) of every sample with text that has one."""
    return [(r[0], r[1]) for r in nb.conn.execute(
        f"SELECT r.id, r.mean_logprob {_SAMPLES} AND r.mean_logprob IS NOT NULL")]


def mean_logprobs(nb: Notebook, record_ids: Sequence[int]) -> dict[int, float]:
    """Mean token log-probability of each of ``record_ids`` that has one."""
    ids = list(record_ids)
    return {r[0]: r[1] for r in nb.conn.execute(
        f"SELECT id, mean_logprob FROM records WHERE id IN ({','.join('?' * len(ids))})", ids) if r[1] is not None}


def few_shot_samples(nb: Notebook, source: str, limit: int) -> list[tuple[int, str, dict[str, Any]]]:
    """(id, output, variables) of up to ``limit`` samples usable as examples; ``source`` is a FEW_SHOT_SOURCES key."""
    where = FEW_SHOT_SOURCES[source]
    rows = nb.conn.execute(
        f"SELECT id, output, variables FROM records WHERE role = 'sample' AND output IS NOT NULL "
        f"AND {where} ORDER BY id LIMIT ?",
        (limit,),
    ).fetchall()
    return [(r["id"], r["output"], json.loads(r["variables"])) for r in rows]


def plan_records(nb: Notebook, record_ids: Sequence[int]) -> list[tuple[int, str, dict[str, Any], str | None]]:
    """(id, role, variables, output) of each of ``record_ids`` that exists: what a run is planned from."""
    out = []
    for start in range(0, len(record_ids), 500):  # SQLite caps the variables of one statement
        chunk = list(record_ids[start : start + 500])
        for r in nb.conn.execute(
            f"SELECT id, role, variables, output FROM records WHERE id IN ({','.join('?' * len(chunk))})", chunk
        ):
            out.append((r["id"], r["role"], json.loads(r["variables"]), r["output"]))
    return out


def untransformed_samples(nb: Notebook, derivation: str) -> list[int]:
    """Ids of the samples with text that are not rejected and were not made by ``derivation``."""
    return [r[0] for r in nb.conn.execute(
        "SELECT id FROM records WHERE role = 'sample' AND output IS NOT NULL AND status != 'rejected' "
        "AND (derivation IS NULL OR derivation != ?) ORDER BY id", (derivation,))]


def samples_with_status(nb: Notebook, status: str, limit: int) -> list[tuple[int, str]]:
    """(id, output) of the first ``limit`` samples with text and this status."""
    rows = nb.conn.execute(
        "SELECT id, output FROM records WHERE role = 'sample' AND status = ? AND output IS NOT NULL "
        "ORDER BY id LIMIT ?", (status, limit)).fetchall()
    return [(r[0], r[1]) for r in rows]


def samples_with_prompt_version(nb: Notebook) -> list[tuple[str, int | None, str | None, int | None]]:
    """(output, input record id, prompt name, prompt version) of every sample with text, by prompt version."""
    rows = nb.conn.execute(
        "SELECT r.output, r.input_record_id, p.name, p.version FROM records r "
        "LEFT JOIN prompt_versions p ON p.id = r.prompt_version_id "
        "WHERE r.role = 'sample' AND r.output IS NOT NULL ORDER BY p.name, p.version, r.id"
    ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def samples_with_model(nb: Notebook) -> list[tuple[str, int | None, str | None, str | None]]:
    """(output, input record id, model path, backend) of every sample with text (imported ones: None, None)."""
    rows = nb.conn.execute(
        "SELECT r.output, r.input_record_id, u.model_path, u.backend FROM records r "
        "LEFT JOIN runs u ON u.id = r.run_id "
        "WHERE r.role = 'sample' AND r.output IS NOT NULL ORDER BY u.backend, u.model_path, r.id"
    ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def sample_prompt_versions(nb: Notebook) -> dict[int, int]:
    """The prompt version that made each sample with text (samples no prompt made are left out)."""
    return dict(nb.conn.execute("SELECT id, prompt_version_id FROM records WHERE role = 'sample' "
                                "AND output IS NOT NULL AND prompt_version_id IS NOT NULL").fetchall())


def export_rows(nb: Notebook, statuses: Iterable[str], *, after: int = 0,
                limit: int | None = None) -> list[dict[str, Any]]:
    """Samples with text and one of ``statuses``, with their prompt version and model, in id order
    (those with an id above ``after``, at most ``limit`` of them: an export streams a page at a time)."""
    statuses = list(statuses)
    q = (
        "SELECT r.id, r.output, r.prompt, r.variables, r.status, r.origin, r.run_id, r.seed, "
        "r.mean_logprob, r.completion_tokens, r.split, p.name AS prompt_name, p.version AS prompt_version, "
        "u.model_sha256 FROM records r LEFT JOIN prompt_versions p ON p.id = r.prompt_version_id "
        f"LEFT JOIN runs u ON u.id = r.run_id WHERE {_exported(statuses)} "
        "AND r.id > ? ORDER BY r.id" + ("" if limit is None else f" LIMIT {int(limit)}")
    )
    rows = []
    for r in nb.conn.execute(q, [*statuses, after]):
        d = dict(r)
        d["variables"] = json.loads(d["variables"] or "{}")
        rows.append(d)
    return rows


def export_ids(nb: Notebook, statuses: Iterable[str]) -> list[int]:
    """The ids :func:`export_rows` would return, without reading the records themselves."""
    statuses = list(statuses)
    return [r[0] for r in nb.conn.execute(f"SELECT r.id FROM records r WHERE {_exported(statuses)} ORDER BY r.id",
                                          statuses)]


def _exported(statuses: Sequence[str]) -> str:
    return f"r.role = 'sample' AND r.output IS NOT NULL AND r.status IN ({','.join('?' * len(statuses))})"


def score_names_of(nb: Notebook, record_ids: Sequence[int]) -> list[str]:
    """The score names any of ``record_ids`` has, sorted (one index lookup per record)."""
    return [r[0] for r in nb.conn.execute(
        "SELECT DISTINCT s.name FROM json_each(?) j JOIN scores s ON s.record_id = j.value ORDER BY s.name",
        (json.dumps(list(record_ids)),))]


def set_derivation(nb: Notebook, record_id: int, derivation: str, parent_record_id: int | None) -> None:
    """Record how a record was derived and from which parent."""
    with nb.transaction() as c:
        c.execute("UPDATE records SET derivation = ?, parent_record_id = ? WHERE id = ?",
                  (derivation, parent_record_id, record_id))


def edited_outputs(nb: Notebook) -> list[dict[str, Any]]:
    """Samples whose text a person changed: id, prompt, the text as made (``original``) and as it is now."""
    rows = nb.conn.execute(
        "SELECT r.id, r.prompt, r.variables, r.output, (SELECT e.old FROM edits e WHERE e.record_id = r.id "
        "AND e.field = 'output' ORDER BY e.id LIMIT 1) AS original FROM records r "
        "WHERE r.role = 'sample' AND r.output IS NOT NULL AND EXISTS (SELECT 1 FROM edits e "
        "WHERE e.record_id = r.id AND e.field = 'output' AND e.author NOT IN ('best-of', 'transform')) ORDER BY r.id"
    ).fetchall()
    return [{**dict(r), "variables": json.loads(r["variables"] or "{}")} for r in rows
            if r["original"] is not None and r["original"] != r["output"]]


def reviewed_siblings(nb: Notebook) -> list[dict[str, Any]]:
    """Accepted and rejected samples that share an input row and prompt version (for preference pairs)."""
    rows = nb.conn.execute(
        "SELECT id, prompt, variables, output, status, input_record_id, prompt_version_id FROM records "
        "WHERE role = 'sample' AND output IS NOT NULL AND status IN ('accepted', 'rejected') "
        "AND input_record_id IS NOT NULL AND (status = 'accepted' OR COALESCE(derivation, '') != 'best-of:rejected') "
        "ORDER BY input_record_id, prompt_version_id, id"
    ).fetchall()
    return [{**dict(r), "variables": json.loads(r["variables"] or "{}")} for r in rows]


def chain_sources(nb: Notebook, *, run_id: int | None = None, prompt_version_ids: Sequence[int] = ()) -> list[int]:
    """Ids of the samples a chained prompt runs over: those with text, not rejected, made by
    run ``run_id`` or by any of ``prompt_version_ids``, in the order they were made."""
    params: list[Any]
    if run_id is not None:
        where, params = "run_id = ?", [run_id]
    else:
        where, params = "prompt_version_id IN (SELECT value FROM json_each(?))", [json.dumps(list(prompt_version_ids))]
    return [r[0] for r in nb.conn.execute(
        f"SELECT id FROM records WHERE role = 'sample' AND output IS NOT NULL AND status != 'rejected' AND {where} "
        "ORDER BY id", params)]


def category_counts(nb: Notebook, prompt_name: str, column: str, record_ids: Iterable[int] | None = None,
                    ) -> dict[str, int]:
    """How many samples of prompt ``prompt_name`` (any version) have each value of variable ``column``;
    only among ``record_ids`` when given (e.g. the kept set)."""
    sql = ("SELECT json_extract(r.variables, '$.' || json_quote(?)) AS v, COUNT(*) FROM records r "
           "JOIN prompt_versions p ON p.id = r.prompt_version_id "
           "WHERE r.role = 'sample' AND r.output IS NOT NULL AND p.name = ?")
    params: list[Any] = [column, prompt_name]
    if record_ids is not None:
        sql += " AND r.id IN (SELECT value FROM json_each(?))"
        params.append(json.dumps(list(record_ids)))
    return {str(v): n for v, n in nb.conn.execute(sql + " GROUP BY v", params) if v is not None}
