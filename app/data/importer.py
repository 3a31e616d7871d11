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
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from app.core.errors import ImportDataError
from app.data import FORMATS  # the importer's files, by suffix
from app.data.dialect import Dialect, check_one_column, short_rows, sniff
from app.data.training_files import Recognised, recognise, to_records
from app.store.imports import add_imported_records, find_import
from app.store.notebook import Notebook

PREVIEW_BYTES = 1 << 20  # a preview reads the start of a text file, not all of it
PREVIEW_CELL_CHARS = 10_000  # what a preview shows of one long text


def _head(path: Path) -> bytes:
    """The start of a file in whole lines: ``PREVIEW_BYTES``, or more when the first two lines (a header
    and a row) are longer, so a preview of a file with a huge first field is not empty."""
    chunks: list[bytes] = []
    newlines = 0
    with path.open("rb") as fh:
        while newlines < 2:
            chunk = fh.read(PREVIEW_BYTES)
            if not chunk:
                return b"".join(chunks)  # the whole file
            chunks.append(chunk)
            newlines += chunk.count(b"\n")
        data = b"".join(chunks)
        return data[: data.rindex(b"\n") + 1] if fh.read(1) else data


def _decode(path: Path, head: bool = False) -> str:
    data = _head(path) if head else path.read_bytes()
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


def _read_delimited(text: str, fmt: str, name: str, nrows: int | None = None) -> tuple[pd.DataFrame, Dialect, str]:
    """The table, its separator and a note on rows that had too few fields (filled with empty values)."""
    dialect = sniff(text, default="\t" if fmt == "tsv" else ",")
    try:
        df = pd.read_csv(io.StringIO(text), sep=dialect.delimiter, dtype=str, keep_default_na=False, nrows=nrows)
    except pd.errors.ParserError as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if m is None:
            raise
        raise ImportDataError(
            f"{name} line {m[2]} has {m[3]} fields where the header has {m[1]}; quote the values that contain a "
            f"{dialect.name} ({dialect.delimiter!r}), or remove the extra fields, and import again") from None
    if len(df.columns) == 1:
        check_one_column(text, dialect, name)
    note = ""
    if nrows is None and len(df.columns) > 1:
        short, line = short_rows(text, dialect, len(df.columns))
        if short:
            note = (f"{short} row{'s' if short > 1 else ''} had fewer fields than the header, the first on line "
                    f"{line}; the missing values are empty")
    return df, dialect, note


def _lone_surrogate(value: Any) -> str | None:
    """The first half-character (a lone surrogate, written as an escape such as \\ud800) in a JSON value."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"\\u{ord(value[exc.start]):04x}"
        return None
    items = [*value, *value.values()] if isinstance(value, dict) else value if isinstance(value, list) else []
    return next((found for v in items if (found := _lone_surrogate(v))), None)


def _check_text(obj: Any, raw: str, where: str) -> None:
    """Refuse a JSON value holding text that no UTF-8 file or database can store."""
    if ("\\ud" in raw or "\\uD" in raw) and (esc := _lone_surrogate(obj)):
        raise ImportDataError(f"{where} holds {esc}, half of a character (a lone surrogate) that cannot be stored "
                              "as text; fix or remove that escape and import again")


def _json_lines(text: str, path: Path, limit: int | None = None) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    # lines end at \n only: U+2028, U+2029 and U+0085 (str.splitlines() breaks there too) may stand in a string
    for n, line in enumerate(text.split("\n"), 1):
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
        _check_text(obj, line, f"{path} line {n}")
        rows.append(obj)
    return pd.DataFrame(rows)


def _read(path: Path, nrows: int | None = None) -> tuple[pd.DataFrame, str, str]:
    """The table (its first ``nrows`` rows when given), how it was read, in words, and a note on
    what the user should know about it (e.g. rows filled out with empty values), or ""."""
    fmt = _check_path(path)
    note = ""
    try:
        if fmt in ("csv", "tsv"):
            text = _decode(path, head=nrows is not None)
            df, dialect, note = _read_delimited(text, fmt, path.name, nrows)
            how = f"{fmt.upper()}, {dialect.describe()}"
            with path.open("rb") as fh:
                if fh.read(3) == b"\xef\xbb\xbf":
                    how += ", UTF-8 with a byte-order mark"
        elif fmt == "jsonl":
            df, how = _json_lines(_decode(path, head=nrows is not None), path, nrows), "JSON lines"
        elif fmt == "json":
            text = _decode(path)
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ImportDataError(f"{path} is not valid JSON (line {exc.lineno}): {exc.msg}") from None
            if not isinstance(obj, list) or not all(isinstance(o, dict) for o in obj):
                raise ImportDataError(f"{path} must hold a JSON list of objects")
            _check_text(obj, text, str(path))
            df, how = pd.DataFrame(obj[:nrows] if nrows is not None else obj), "a JSON list of objects"
        else:
            df, how = _read_parquet(path, nrows), "Parquet"
    except ImportDataError:
        raise
    except pd.errors.EmptyDataError:
        raise ImportDataError(f"{path} is empty") from None
    except PermissionError:
        raise ImportDataError(f"cannot read {path}: permission denied (check that your user may read it)") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        raise ImportDataError(f"cannot read {path} as {fmt}: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # pyarrow raises its own error types for broken Parquet
        raise ImportDataError(f"cannot read {path} as {fmt}: {type(exc).__name__}: {exc}") from None
    if df.empty:
        raise ImportDataError(f"{path} has no rows")
    return df, how, note


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
    df, how, _note = _read(Path(path), nrows=n)
    kind = recognise(df.columns)
    if kind is not None:
        how += f"; recognised as {kind.title}: {kind.how}"
    columns = [str(c) for c in df.columns]
    return columns, [[_clip(row.get(c)) for c in columns] for row in _json_rows(df)], how


def _clip(value: Any) -> Any:
    """A preview cell: a text past ``PREVIEW_CELL_CHARS`` is cut (a table cell cannot show 50 MB)."""
    if isinstance(value, str) and len(value) > PREVIEW_CELL_CHARS:
        return f"{value[:PREVIEW_CELL_CHARS]}… ({len(value):,} characters)"
    return value


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
    nb: Notebook, path: str | Path, *, origin: str = "real", output_column: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Import a table. Without an ``output_column``, a training file it is recognised as (SFT,
    DPO, the studio's own export) comes in as records; with one, the file is a plain table.
    The file's content hash is remembered (see :func:`already_imported`). ``progress`` hears
    (rows in, rows) between chunks and may raise to stop: then nothing is imported."""
    df, _how, read_note = _read(Path(path))
    staged = None
    if progress is not None:
        tell = progress

        def staged(done: int) -> None:
            tell(done, len(df))
    source = Path(path).name
    # the file is remembered in the rows' own transaction (killed in between, both or neither are in)
    imported = ({"sha256": content_sha256(path), "source": source, "rows": len(df)}
                if Path(path).is_file() else None)
    kind = recognise(df.columns) if output_column is None else None
    if kind is None:
        inputs, samples = nb.add_imported_rows(dataframe_rows(df, output_column), origin=origin, source=source,
                                               imported=imported, progress=staged)
        result = ImportResult(len(df), inputs, samples, note=read_note)
    else:
        records, note = to_records(kind.kind, _json_rows(df))
        if not records:
            raise ImportDataError(f"{source} looks like {kind.title}, but no row holds one ({note})")
        inputs, samples = add_imported_records(nb, records, origin=origin, source=source, imported=imported,
                                               progress=staged)
        result = ImportResult(len(df), inputs, samples, kind, "; ".join(n for n in (note, read_note) if n))
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
