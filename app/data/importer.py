"""Reading user tables (CSV, TSV, JSONL, JSON, Parquet) into notebook rows.

The whole file is read and checked before anything is written, and the rows go
in with one transaction, so a bad file changes nothing. A delimited file's separator is
sniffed (``app.data.dialect``); training files (SFT chats, DPO pairs, the studio's own export)
are recognised by their columns and come in as records (``app.data.training_files``).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from app.core.errors import ImportDataError
from app.data.dialect import Dialect, check_one_column, sniff
from app.data.training_files import Recognised, recognise, to_records
from app.store.imports import add_imported_records, find_import, record_import
from app.store.notebook import Notebook

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet"}


PREVIEW_BYTES = 1 << 20  # a preview reads the start of a text file, not all of it


def _decode(path: Path, head: bool = False) -> str:
    if head:
        with path.open("rb") as fh:
            data = fh.read(PREVIEW_BYTES)
            if fh.read(1) and b"\n" in data:
                data = data[: data.rindex(b"\n") + 1]  # whole lines only
    else:
        data = path.read_bytes()
    try:  # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportDataError(
            f"{path} is not valid UTF-8 (byte 0x{data[exc.start]:02x} on line {line}); "
            "re-save it as UTF-8 and import again"
        ) from None


def _check_path(path: Path) -> str:
    """The file's format, or a clear error."""
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
    return fmt


def _read_delimited(text: str, fmt: str, name: str, nrows: int | None = None) -> tuple[pd.DataFrame, Dialect]:
    dialect = sniff(text, default="\t" if fmt == "tsv" else ",")
    df = pd.read_csv(io.StringIO(text), sep=dialect.delimiter, dtype=str, keep_default_na=False, nrows=nrows)
    if len(df.columns) == 1:
        check_one_column(text, dialect, name)
    return df, dialect


def _json_lines(text: str, path: Path, limit: int | None = None) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if limit is not None and len(rows) >= limit:
            break
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ImportDataError(f"{path} line {n} is not valid JSON: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise ImportDataError(f"{path} line {n} is not a JSON object")
        rows.append(obj)
    return pd.DataFrame(rows)


def _read(path: Path, nrows: int | None = None) -> tuple[pd.DataFrame, str]:
    """The table (its first ``nrows`` rows when given) and how it was read, in words."""
    fmt = _check_path(path)
    try:
        if fmt in ("csv", "tsv"):
            text = _decode(path, head=nrows is not None)
            df, dialect = _read_delimited(text, fmt, path.name, nrows)
            how = f"{fmt.upper()}, {dialect.describe()}"
            with path.open("rb") as fh:
                if fh.read(3) == b"\xef\xbb\xbf":
                    how += ", UTF-8 with a byte-order mark"
        elif fmt == "jsonl":
            df, how = _json_lines(_decode(path, head=nrows is not None), path, nrows), "JSON lines"
        elif fmt == "json":
            try:
                obj = json.loads(_decode(path))
            except json.JSONDecodeError as exc:
                raise ImportDataError(f"{path} is not valid JSON (line {exc.lineno}): {exc.msg}") from None
            if not isinstance(obj, list) or not all(isinstance(o, dict) for o in obj):
                raise ImportDataError(f"{path} must hold a JSON list of objects")
            df, how = pd.DataFrame(obj[:nrows] if nrows is not None else obj), "a JSON list of objects"
        else:
            df, how = _read_parquet(path, nrows), "Parquet"
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
    return df, how


def _read_parquet(path: Path, nrows: int | None) -> pd.DataFrame:
    if nrows is None:
        return pd.read_parquet(path)
    import pyarrow.parquet as pq

    batches = pq.ParquetFile(path).iter_batches(batch_size=max(nrows, 1))
    first = next(batches, None)
    return first.to_pandas() if first is not None else pd.DataFrame()


def read_table(path: str | Path) -> pd.DataFrame:
    return _read(Path(path))[0]


def _json_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON values (numbers, text, lists, objects; missing values as None)."""
    rows: list[dict[str, Any]] = json.loads(
        df.to_json(orient="records", force_ascii=False, date_format="iso", double_precision=15))
    return rows


def preview_table(path: str | Path, n: int = 20) -> tuple[list[str], list[list[Any]], str]:
    """The columns, the first ``n`` rows (as JSON values) and how the file was read, in words,
    with what it was recognised as; reads no more of the file than it needs."""
    df, how = _read(Path(path), nrows=n)
    kind = recognise(df.columns)
    if kind is not None:
        how += f"; recognised as {kind.title}: {kind.how}"
    columns = [str(c) for c in df.columns]
    return columns, [[row.get(c) for c in columns] for row in _json_rows(df)], how


def dataframe_rows(df: pd.DataFrame, output_column: str | None) -> list[tuple[dict[str, Any], str | None]]:
    column = output_column or "output"
    if output_column and column not in df.columns:
        raise ImportDataError(
            f"no column named {column!r} (columns: {', '.join(map(str, df.columns))})"
        )
    rows = []
    for rec in _json_rows(df):
        text = rec.pop(column, None) if column in df.columns else None
        if text is not None and not isinstance(text, str):
            text = json.dumps(text, ensure_ascii=False)
        variables = {str(k): ("" if v is None else v) for k, v in rec.items()}
        rows.append((variables, text if text else None))
    return rows


@dataclass(frozen=True)
class ImportResult:
    rows: int  # rows in the file
    inputs: int  # input rows made (to generate from)
    samples: int  # records with text
    recognised: Recognised | None = None
    note: str = ""

    def message(self, name: str) -> str:
        what = "" if self.recognised is None else f", recognised as {self.recognised.title} ({self.recognised.how})"
        note = f" ({self.note})" if self.note else ""
        return (f"imported {self.rows} rows from {name}{what}: {self.inputs} input rows to generate from, "
                f"{self.samples} records with text{note}")


def content_sha256(path: str | Path) -> str:
    """The file's content hash: the same table under another name or folder is the same import."""
    h = hashlib.sha256()
    try:
        with Path(path).open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise ImportDataError(f"cannot read {path}: {exc.strerror or exc}") from None
    return h.hexdigest()


def already_imported(nb: Notebook, path: str | Path) -> dict[str, Any] | None:
    """When a file with this content went into the notebook before: its first import (source, rows, at)."""
    return find_import(nb, content_sha256(path))


def import_table(
    nb: Notebook, path: str | Path, *, origin: str = "real", output_column: str | None = None
) -> ImportResult:
    """Import a table. Without an ``output_column``, a training file it is recognised as (SFT,
    DPO, the studio's own export) comes in as records; with one, the file is a plain table.
    The file's content hash is remembered (see :func:`already_imported`)."""
    df = read_table(path)
    source = Path(path).name
    kind = recognise(df.columns) if output_column is None else None
    if kind is None:
        inputs, samples = nb.add_imported_rows(dataframe_rows(df, output_column), origin=origin, source=source)
        result = ImportResult(len(df), inputs, samples)
    else:
        records, note = to_records(kind.kind, _json_rows(df))
        if not records:
            raise ImportDataError(f"{source} looks like {kind.title}, but no row holds one ({note})")
        inputs, samples = add_imported_records(nb, records, origin=origin, source=source)
        result = ImportResult(len(df), inputs, samples, kind, note)
    if Path(path).is_file():
        record_import(nb, content_sha256(path), source, len(df))
    return result


def import_file(
    nb: Notebook, path: str | Path, *, origin: str = "real", output_column: str | None = None
) -> tuple[int, int]:
    """Import a table; returns (input rows, records with text)."""
    result = import_table(nb, path, origin=origin, output_column=output_column)
    return result.inputs, result.samples


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
