"""Exporting what the user trusts: the funnel's kept set as plain tables (scores as columns),
chat-format SFT data or DPO preference pairs; or a frozen version's records, with its manifest
and a dataset card beside them (``app.export.card``).

Structured outputs (a prompt's ``output_schema:``, a record whose output is a JSON object)
in plain exports, the user's choice (``structured``; ``--structured`` on the command line):

- ``nest`` (the default for JSONL): ``output`` is the JSON object itself, not its text; in a
  CSV or Parquet file it stays the JSON text;
- ``flatten`` (the default for CSV and Parquet): ``output`` stays the text and each field gets
  a column of its own beside it, ``output.<field>`` (a nested value is JSON text there).

Records whose output is not a JSON object are written unchanged either way, and chat SFT and
DPO files keep the JSON text as the assistant's content.

Files are written to a temporary name and renamed into place, so a failed export
never leaves half a file where the user expects a whole one; and the manifest and card of an
earlier export go before its data file is replaced, so none is left describing another file.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from app.core.errors import StudioError
from app.export.card import check_card_target, remove_release_files, write_release_files
from app.export.dpo import as_layout, dpo_pairs, user_text
from app.export.layout import table
from app.export.versions import Snapshot, kept_snapshot, load
from app.prompts.structured import FIELD_PREFIX, parse_output
from app.quality.funnel import compute_funnel
from app.store.notebook import RECORD_STATUSES, Notebook
from app.store.records import export_ids, export_rows, score_names_of
from app.store.trust import score_table

EXPORT_TYPES = (".jsonl", ".csv", ".parquet")
STRUCTURED = ("nest", "flatten")  # how a JSON-object output is written (see the module docstring)
FORMATS = ("plain", "sft", "dpo", "dpo-chat")
SELECTIONS = ("kept", "all")
DEFAULT_STATUSES = ("new", "accepted", "flagged")  # everything but rejected (for --status)
VERSION_FORMATS = ("plain", "sft")
_LINEAGE_KEYS = ("id", "output", "prompt", "variables", "status", "origin", "run_id", "seed", "mean_logprob",
                 "completion_tokens", "prompt_name", "prompt_version", "model_sha256", "split")


def export(
    nb: Notebook,
    out: str | Path,
    *,
    fmt: str = "plain",
    statuses: Iterable[str] | None = None,
    select: str = "kept",
    version: str | None = None,
    card: bool = False,
    by_split: bool = False,
    structured: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Write records to ``out``; returns (written, skipped). The file type follows the extension.

    By default the funnel's kept set is what ships; ``select="all"`` writes every sample with
    text (with its verdict as columns), ``statuses`` every sample of those statuses.
    ``version`` (a tag, or ``current``) writes exactly that version's records as frozen (text,
    status, scores, cluster) and, beside the file, its manifest and a dataset card; ``card``
    writes those two for the kept set now. ``by_split`` writes one file per split of the real
    records (OUT.train/.eval/.holdout; synthetic records go to train). ``structured`` is ``nest``
    or ``flatten`` (default: nest for JSONL, flatten for CSV and Parquet; plain records only).
    ``progress(done, total)`` hears how many records are written (a page at a time where the
    export streams); it may raise to stop, and then no file is left under ``out``.
    """
    report = progress or (lambda done, total: None)
    out = Path(out)
    ext = out.suffix.lower()
    if ext not in EXPORT_TYPES:
        raise StudioError(f"cannot export to {out.name}: use a {', '.join(EXPORT_TYPES)} file name")
    if fmt not in FORMATS:
        raise StudioError(f"unknown export format {fmt!r} (use {', '.join(FORMATS)})")
    if structured is not None and structured not in STRUCTURED:
        raise StudioError(f"unknown structured layout {structured!r} (use {' or '.join(STRUCTURED)})")
    if select not in SELECTIONS:
        raise StudioError(f"unknown selection {select!r} (use {', '.join(SELECTIONS)})")
    status_list = list(statuses) if statuses is not None else list(RECORD_STATUSES)
    bad = [s for s in status_list if s not in RECORD_STATUSES]
    if bad:
        raise StudioError(f"unknown status {bad[0]!r} (use {', '.join(RECORD_STATUSES)})")
    if not out.parent.exists():
        raise StudioError(f"folder {out.parent} does not exist")
    if (version is not None or card) and (statuses is not None or select != "kept"):
        raise StudioError("a version (or a card) describes one set of records: use it without --all or --status")
    if by_split and fmt in ("dpo", "dpo-chat"):
        raise StudioError("preference pairs have no split: export them without --by-split")
    if by_split and (version is not None or card):  # they describe one file (its hash, rows and features)
        raise StudioError("a manifest and dataset card describe one file: export a version (or --card) "
                          "without --by-split")
    if version is not None or card:
        check_card_target(out)
    snap: Snapshot | None = None
    how = structured or ("nest" if ext == ".jsonl" else "flatten")
    if (version is None and not card and not by_split and ext == ".jsonl" and fmt in ("plain", "sft")
            and (fmt != "plain" or how == "nest")):
        # JSON lines of records, nothing else beside them: streamed a page at a time
        records = _Records(nb, fmt, statuses, status_list, select)
        total = records.count()
        report(0, total)
        pages = (structured_items(p, how, jsonl=True) if fmt == "plain" else p for p in records.pages(report, total))
        return _write_lines(pages, out), records.skipped
    if version is not None:
        if fmt not in VERSION_FORMATS:
            raise StudioError(f"a version holds records, not preference pairs: export it as {' or '.join(VERSION_FORMATS)}")
        snap = load(nb, version)
        items, skipped = _version_items(nb, snap, fmt)
    else:
        items, skipped = _items(nb, fmt, statuses, status_list, select)
    if fmt == "plain":
        items = structured_items(items, how, jsonl=ext == ".jsonl")
    report(0, len(items))  # read: the last chance to stop before the file is written
    if version is not None or card:  # checked above: a card here is one of ours
        remove_release_files(out)
    if by_split:
        from app.export.splits import write_by_split

        split_by_id = {r["id"]: r.get("split") for r in export_rows(nb, RECORD_STATUSES)}
        write_by_split(items, out, lambda part, path: _write(part, path, ext),
                       split_of=lambda item: split_by_id.get(item["id"]))
    else:
        _write(items, out, ext)
    if card and snap is None:
        snap = kept_snapshot(nb)
    if snap is not None:
        write_release_files(nb, out, snap, fmt, items)
    report(len(items), len(items))
    return len(items), skipped


PAGE = 5000  # records read, scored and written at a time: a million-record export never holds them all


class _Records:
    """The samples an export writes (the kept set, every sample, or those of some statuses), read a
    page at a time with their scores and verdicts."""

    def __init__(self, nb: Notebook, fmt: str, statuses: Iterable[str] | None, status_list: list[str],
                 select: str) -> None:
        self.nb, self.fmt, self.status_list = nb, fmt, status_list
        self.result = compute_funnel(nb)
        self.kept = set(self.result.kept_ids) if select == "kept" and statuses is None else None
        self.skipped = 0
        self.names: list[str] = []
        if fmt == "plain":  # every line has every score name any chosen record has
            self.names = score_names_of(nb, sorted(self.ids()))

    def _rows(self) -> Iterator[dict[str, Any]]:
        after = 0
        while True:
            page = export_rows(self.nb, self.status_list, after=after, limit=PAGE)
            if not page:
                return
            after = page[-1]["id"]
            yield from (r for r in page if self.kept is None or r["id"] in self.kept)

    def ids(self) -> set[int]:
        """The chosen records' ids (read from the ids alone, not the records)."""
        return {i for i in export_ids(self.nb, self.status_list) if self.kept is None or i in self.kept}

    def count(self) -> int:
        """How many records the export reads (before those without a prompt are skipped)."""
        return len(self.kept) if self.kept is not None else len(self.ids())

    def pages(self, report: Callable[[int, int], None] | None = None, total: int = 0) -> Iterator[list[dict[str, Any]]]:
        rows = self._rows()
        done = 0
        while page := list(itertools.islice(rows, PAGE)):
            yield self._items(page)
            done += len(page)
            if report is not None:
                report(done, total)

    def _items(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        if self.fmt == "sft":
            for r in rows:
                user = user_text(r["prompt"], r["variables"])
                if user is None:
                    self.skipped += 1
                    continue
                items.append({
                    "messages": [
                        {"role": "user", "content": user},
                        {"role": "assistant", "content": r["output"]},
                    ],
                    "id": r["id"],
                })
            return items
        scores = score_table(self.nb, [r["id"] for r in rows])
        for r in rows:
            v = self.result.verdicts.get(r["id"])
            item = {**r, "kept": bool(v and v.kept), "dropped_at": None if v is None or v.kept else v.stage,
                    "reason": v.reason if v else None}
            item.update({n: _score(scores.get(r["id"], {}).get(n)) for n in self.names})
            items.append(item)
        return items


def _items(nb: Notebook, fmt: str, statuses: Iterable[str] | None, status_list: list[str],
           select: str) -> tuple[list[dict[str, Any]], int]:
    if fmt in ("dpo", "dpo-chat"):
        pairs = dpo_pairs(nb, keep=_Records(nb, fmt, statuses, status_list, select).ids())
        if not pairs:
            raise StudioError("no preference pairs among these records: run best-of, edit records, or accept and "
                              "reject samples of the same input row in review")
        return [as_layout(p, "conversational" if fmt == "dpo-chat" else "string") for p in pairs], 0
    records = _Records(nb, fmt, statuses, status_list, select)
    items = [it for page in records.pages() for it in page]
    return items, records.skipped


def _version_items(nb: Notebook, snap: Snapshot, fmt: str) -> tuple[list[dict[str, Any]], int]:
    """A version's records as frozen, with their lineage (prompt, variables, run, model) from the notebook."""
    ids = {r.record_id for r in snap.records}
    lineage = {r["id"]: r for r in export_rows(nb, RECORD_STATUSES) if r["id"] in ids}
    names = sorted({n for r in snap.records for n in r.scores})
    items: list[dict[str, Any]] = []
    skipped = 0
    for rec in snap.records:
        row = dict(lineage.get(rec.record_id) or {k: None for k in _LINEAGE_KEYS} | {"variables": {}})
        if row.get("output") != rec.output:  # edited since: these describe the text as it is now
            row["mean_logprob"] = row["completion_tokens"] = None
        row.update(id=rec.record_id, output=rec.output, status=rec.status)
        if fmt == "sft":
            user = user_text(row["prompt"], row["variables"])
            if user is None:
                skipped += 1
                continue
            items.append({"messages": [{"role": "user", "content": user},
                                       {"role": "assistant", "content": rec.output}], "id": rec.record_id})
            continue
        item = {**row, "version": snap.tag, "text_hash": rec.text_hash, "cluster": rec.cluster}
        item.update({n: _score(rec.scores.get(n)) for n in names})
        items.append(item)
    return items, skipped


def structured_items(items: list[dict[str, Any]], how: str, *, jsonl: bool) -> list[dict[str, Any]]:
    """Plain items with their JSON-object outputs nested or flattened (``how``; module docstring)."""
    parsed = [parse_output(it.get("output")) for it in items]
    if not any(f is not None for f in parsed):
        return items
    if how == "nest":
        if not jsonl:  # a table cell holds the JSON text
            return items
        return [it if f is None else {**it, "output": f} for it, f in zip(items, parsed)]
    names: dict[str, None] = {}  # every field, in the order first seen
    for f in parsed:
        names.update(dict.fromkeys(f or ()))
    out = []
    for it, f in zip(items, parsed):
        row: dict[str, Any] = {}
        for k, v in it.items():
            row[k] = v
            if k == "output":  # the field columns sit beside the text
                row.update({f"{FIELD_PREFIX}{n}": None if f is None else f.get(n) for n in names})
        out.append(row)
    return out


def _score(value: Any) -> float | None:
    """Scores are floats in every file, even where a score happens to be whole (not Int64 columns)."""
    return None if value is None else float(value)


def _write_lines(pages: Iterable[list[dict[str, Any]]], out: Path) -> int:
    """JSON lines, a page at a time, to a temporary name renamed into place once whole; returns the lines."""
    tmp = out.with_name(out.name + ".partial")
    n = 0
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            for page in pages:
                fh.writelines(json.dumps(item, ensure_ascii=False) + "\n" for item in page)
                n += len(page)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return n


def _write(items: list[dict[str, Any]], out: Path, ext: str) -> None:
    tmp = out.with_name(out.name + ".partial")
    try:
        if ext == ".jsonl":
            with tmp.open("w", encoding="utf-8") as fh:
                for item in items:
                    fh.write(json.dumps(item, ensure_ascii=False) + "\n")
        else:  # the columns' layout (var.* columns, nullable integers) is app.export.layout's
            df = table(items, csv=ext == ".csv")
            if ext == ".csv":
                df.to_csv(tmp, index=False)
            else:
                df.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
