"""How exported items become table columns (CSV and Parquet; JSONL writes the items as they are).

- ``variables`` is flattened into one column per variable (``var.topic``, ``var.persona``), in
  the place the object had, so a spreadsheet or ``datasets`` sees ordinary columns; a nested
  value (list, object) is JSON text there. The importer (``app.data.training_files``) reads them back.
- A column whose values are all integers stays integers when some are missing (pandas ``Int64``,
  Parquet ``int64`` with nulls: ``3``, never ``3.0``); floats stay floats; yes/no stays boolean.
- A structured output's fields, flattened (``app.export.formats``), are ``output.<field>``
  columns beside ``output``; like a variable, a nested field value is JSON text there.
- Other lists and objects (chat messages) stay nested in Parquet and are JSON text in CSV.
- A column that mixes kinds (a variable that is a number in one record and text in another)
  is written as text, so the file keeps one type per column.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from app.prompts.structured import FIELD_PREFIX

VAR_PREFIX = "var."


def _flat(item: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(item.get("variables"), dict):
        return item
    out: dict[str, Any] = {}
    for k, v in item.items():
        if k == "variables":
            out.update({f"{VAR_PREFIX}{name}": value for name, value in v.items()})
        else:
            out[k] = v
    return out


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def _column(name: str, values: list[Any], text_nested: bool) -> pd.Series:
    present = [v for v in values if not _missing(v)]
    if not present:
        return pd.Series([None] * len(values), dtype=object)
    if all(isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="boolean" if len(present) < len(values) else bool)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        try:
            return pd.Series([None if _missing(v) else v for v in values], dtype="Int64")
        except (OverflowError, TypeError):  # beyond int64: keep the digits as text
            return pd.Series([None if _missing(v) else str(v) for v in values], dtype=object)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.Series([math.nan if _missing(v) else float(v) for v in values], dtype="float64")
    if all(isinstance(v, str) for v in present):
        return pd.Series(values, dtype=object)
    nested = all(isinstance(v, (list, dict)) for v in present)
    if nested and not text_nested and not name.startswith((VAR_PREFIX, FIELD_PREFIX)):
        return pd.Series(values, dtype=object)  # Parquet keeps lists and structs
    return pd.Series([None if _missing(v) else _text(v) for v in values], dtype=object)


def table(items: Sequence[dict[str, Any]], *, csv: bool) -> pd.DataFrame:
    """The items as a DataFrame for a CSV (``csv=True``) or Parquet file."""
    rows = [_flat(item) for item in items]
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return pd.DataFrame({n: _column(n, [row.get(n) for row in rows], csv) for n in names}, index=range(len(rows)))
