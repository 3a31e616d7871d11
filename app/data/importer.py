"""Reading user tables (CSV, TSV, JSONL, JSON, Parquet) into notebook rows.

The whole file is read and checked before anything is written, and the rows go
in with one transaction, so a bad file changes nothing.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from app.core.errors import ImportDataError
from app.store.notebook import Notebook

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet"}


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportDataError(
            f"{path} is not valid UTF-8 (byte 0x{data[exc.start]:02x} on line {line}); "
            "re-save it as UTF-8 and import again"
        ) from None


def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise ImportDataError(f"file not found: {path}")
    if path.is_dir():
        raise ImportDataError(f"{path} is a folder, not a data file")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImportDataError(
            f"cannot import {path.name}: unknown file type {path.suffix or '(none)'} "
            f"(use {', '.join(sorted(FORMATS))})"
        )
    try:
        if fmt in ("csv", "tsv"):
            text = _decode(path)
            df = pd.read_csv(io.StringIO(text), sep="\t" if fmt == "tsv" else ",", dtype=str,
                             keep_default_na=False)
        elif fmt == "jsonl":
            text = _decode(path)
            rows = []
            for n, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ImportDataError(f"{path} line {n} is not valid JSON: {exc.msg}") from None
                if not isinstance(obj, dict):
                    raise ImportDataError(f"{path} line {n} is not a JSON object")
                rows.append(obj)
            df = pd.DataFrame(rows)
        elif fmt == "json":
            try:
                obj = json.loads(_decode(path))
            except json.JSONDecodeError as exc:
                raise ImportDataError(f"{path} is not valid JSON (line {exc.lineno}): {exc.msg}") from None
            if not isinstance(obj, list) or not all(isinstance(o, dict) for o in obj):
                raise ImportDataError(f"{path} must hold a JSON list of objects")
            df = pd.DataFrame(obj)
        else:
            df = pd.read_parquet(path)
    except ImportDataError:
        raise
    except pd.errors.EmptyDataError:
        raise ImportDataError(f"{path} is empty") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        raise ImportDataError(f"cannot read {path} as {fmt}: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # pyarrow raises its own error types for broken Parquet
        raise ImportDataError(f"cannot read {path} as {fmt}: {type(exc).__name__}: {exc}") from None
    if df.empty:
        raise ImportDataError(f"{path} has no rows")
    return df


def dataframe_rows(df: pd.DataFrame, output_column: str | None) -> list[tuple[dict[str, Any], str | None]]:
    column = output_column or "output"
    if output_column and column not in df.columns:
        raise ImportDataError(
            f"no column named {column!r} (columns: {', '.join(map(str, df.columns))})"
        )
    records = json.loads(df.to_json(orient="records", force_ascii=False, date_format="iso"))
    rows = []
    for rec in records:
        text = rec.pop(column, None) if column in df.columns else None
        if text is not None and not isinstance(text, str):
            text = json.dumps(text, ensure_ascii=False)
        variables = {str(k): ("" if v is None else v) for k, v in rec.items()}
        rows.append((variables, text if text else None))
    return rows


def import_file(
    nb: Notebook, path: str | Path, *, origin: str = "real", output_column: str | None = None
) -> tuple[int, int]:
    """Import a table; returns (input rows, records with text)."""
    df = read_table(path)
    rows = dataframe_rows(df, output_column)
    return nb.add_imported_rows(rows, origin=origin, source=Path(path).name)


def import_text(nb: Notebook, text: str, *, origin: str = "real", output_column: str | None = None) -> tuple[int, int]:
    """Import pasted rows: JSON lines, tab-separated (copied from a spreadsheet) or CSV, with a header row."""
    import tempfile

    text = text.strip()
    if not text:
        raise ImportDataError("nothing to import: the clipboard has no text")
    first = text.splitlines()[0]
    suffix = ".jsonl" if first.lstrip().startswith("{") else (".tsv" if "\t" in first else ".csv")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"pasted{suffix}"
        path.write_text(text + "\n", encoding="utf-8")
        return import_file(nb, path, origin=origin, output_column=output_column)
