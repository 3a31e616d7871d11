"""A run's records in slot order (input row, then sample), as best-of, comparison and DPO export read them."""

from __future__ import annotations

from typing import Any

from app.store.notebook import Notebook, Run


def run_slot_record_ids(nb: Notebook, run_id: int) -> list[int]:
    """Ids of a run's records by (row, sample)."""
    return [r[0] for r in nb.conn.execute(
        "SELECT id FROM records WHERE run_id = ? ORDER BY row_index, sample_index", (run_id,))]


def run_candidates(nb: Notebook, run_id: int) -> list[dict[str, Any]]:
    """A run's records by (row, sample): id, row_index, output, mean_logprob, prompt."""
    return [dict(r) for r in nb.conn.execute(
        "SELECT id, row_index, output, mean_logprob, prompt FROM records WHERE run_id = ? ORDER BY row_index, "
        "sample_index", (run_id,)
    )]


def run_samples(nb: Notebook, run_id: int) -> list[dict[str, Any]]:
    """A run's records by (row, sample) with what a comparison shows: seed, variables, output and measures."""
    return [dict(r) for r in nb.conn.execute(
        "SELECT id, input_record_id, sample_index, seed, variables, output, completion_tokens, mean_logprob "
        "FROM records WHERE run_id = ? ORDER BY row_index, sample_index", (run_id,))]


def ranked_candidates(nb: Notebook) -> list[dict[str, Any]]:
    """Every candidate with a best-of rank and text: id, run_id, row_index, prompt, output, rank;
    by run, row and rank."""
    return [dict(r) for r in nb.conn.execute(
        "SELECT r.id, r.run_id, r.row_index, r.prompt, r.output, s.value AS rank FROM records r "
        "JOIN scores s ON s.record_id = r.id AND s.name = 'best-of:rank' "
        "WHERE r.output IS NOT NULL ORDER BY r.run_id, r.row_index, s.value"
    ).fetchall()]


def spread_runs(nb: Notebook, group: str) -> list[Run]:
    """The runs (one per model) that one generation spread over several models, by part."""
    return [nb.run(r[0]) for r in nb.conn.execute(
        "SELECT id FROM runs WHERE json_extract(settings, '$.spread.group') = ? "
        "ORDER BY json_extract(settings, '$.spread.part'), id", (group,))]
