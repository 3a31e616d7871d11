"""What coverage counts per input row: a prompt's samples by the input row they were made from."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from app.store.notebook import Notebook


def input_row_counts(nb: Notebook, prompt_name: str, record_ids: Iterable[int] | None = None) -> dict[int, int]:
    """input record id -> how many samples with text prompt ``prompt_name`` (any version) made
    from it; only among ``record_ids`` when given (e.g. the kept set)."""
    sql = ("SELECT r.input_record_id, COUNT(*) FROM records r JOIN prompt_versions p ON p.id = r.prompt_version_id "
           "WHERE r.role = 'sample' AND r.output IS NOT NULL AND r.input_record_id IS NOT NULL AND p.name = ?")
    params: list[Any] = [prompt_name]
    if record_ids is not None:
        sql += " AND r.id IN (SELECT value FROM json_each(?))"
        params.append(json.dumps(list(record_ids)))
    return {int(rid): n for rid, n in nb.conn.execute(sql + " GROUP BY r.input_record_id", params)}
