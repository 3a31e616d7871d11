"""Training files the importer reads as records rather than as input rows.

- SFT chat files (a ``messages`` list of {role, content} turns; ShareGPT's ``conversations`` of
  {from, value} too): the last assistant turn is the record's text, the user turns its prompt.
- DPO preference files (``prompt``/``chosen``/``rejected``, as strings or as message lists, as
  TRL reads them): each pair becomes an accepted and a rejected record of one shared input row, so
  the review's pairs (``app.export.dpo``) give the same pairs back on export.
- The studio's own plain export (``id``/``output``/``prompt``/``status``/``origin`` columns): the
  output is the record's text; prompt, status and variables (nested, a JSON string, or flattened
  into ``var.*`` columns) come back; lineage, scores and verdicts describe the other notebook and
  are left out.

Everything else is a plain table (``app.data.importer``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from app.core.errors import ImportDataError
from app.store.imports import ImportedRecord
from app.store.notebook import RECORD_STATUSES

VAR_PREFIX = "var."  # the flattened variables of a CSV/Parquet export (app.export.layout)
_STUDIO_COLUMNS = {"id", "output", "prompt", "status", "origin"}
_DPO_BOOKKEEPING = {"id", "chosen_id", "rejected_id", "source"}  # the studio's own pair columns
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "system": "system", "model": "assistant"}

Row = dict[str, Any]


@dataclass(frozen=True)
class Recognised:
    kind: str  # sft | sharegpt | dpo | studio
    title: str  # what the import message calls the file
    how: str  # what becomes what, in one line


KINDS = {
    "sft": Recognised("sft", "an SFT chat file", "the last assistant turn is the text, the user turns the prompt"),
    "sharegpt": Recognised("sharegpt", "a ShareGPT conversation file",
                           "the last gpt turn is the text, the human turns the prompt"),
    "dpo": Recognised("dpo", "DPO preference pairs",
                      "each pair is an accepted (chosen) and a rejected record of one input row"),
    "studio": Recognised("studio", "the studio's own export",
                         "output is the text; prompt, variables and status restored"),
}


def recognise(columns: Iterable[Any]) -> Recognised | None:
    """Which training file a table with these columns is, or None for a plain table."""
    cols = {str(c) for c in columns}
    if {"chosen", "rejected"} <= cols:
        return KINDS["dpo"]
    if "messages" in cols:
        return KINDS["sft"]
    if "conversations" in cols:
        return KINDS["sharegpt"]
    if _STUDIO_COLUMNS <= cols:
        return KINDS["studio"]
    return None


def to_records(kind: str, rows: list[Row]) -> tuple[list[ImportedRecord], str]:
    """The records of a recognised file's rows (as JSON values), and a note for the import message."""
    if kind in ("sft", "sharegpt"):
        return [_chat_record(row, n, kind) for n, row in enumerate(rows, 1)], ""
    if kind == "dpo":
        return _dpo_records(rows)
    if kind == "studio":
        return [_studio_record(row) for row in rows], ""
    raise ValueError(f"unknown training file kind {kind!r}")


# -- chat turns ----------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    """A list or object written as JSON text (as a CSV export holds it), decoded; else the value."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _content(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content parts: keep the text ones
        return "".join(p.get("text", "") for p in value if isinstance(p, dict) and p.get("type", "text") == "text")
    return str(value)


def _turns(value: Any, where: str, sharegpt: bool = False) -> list[dict[str, str]] | None:
    """A message list as [{role, content}], or None when ``value`` is not one."""
    if isinstance(value, str):  # a CSV export holds message lists as JSON text; other text is text
        value = _json_value(value)
        if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
            return None
    if not isinstance(value, list):
        return None
    turns = []
    for m in value:
        if not isinstance(m, dict):
            raise ImportDataError(f"{where}: each turn must be an object with a role and content, not {m!r}"[:200])
        if sharegpt:
            role, text = _SHAREGPT_ROLES.get(str(m.get("from", "")).lower()), m.get("value")
        else:
            role, text = m.get("role"), m.get("content")
        if not isinstance(role, str):
            key = "from" if sharegpt else "role"
            raise ImportDataError(f"{where}: a turn has no {key} ({json.dumps(m, ensure_ascii=False)[:80]})")
        turns.append({"role": role, "content": _content(text)})
    return turns


def _joined(turns: list[dict[str, str]], role: str) -> str:
    return "\n\n".join(t["content"] for t in turns if t["role"] == role and t["content"])


def _extras(row: Row, skip: set[str]) -> dict[str, Any]:
    """A row's other columns, kept as the record's variables."""
    return {k: v for k, v in row.items() if k not in skip and v is not None and v != ""}


def _chat_record(row: Row, n: int, kind: str) -> ImportedRecord:
    column = "conversations" if kind == "sharegpt" else "messages"
    turns = _turns(row.get(column), f"row {n}", sharegpt=kind == "sharegpt")
    if turns is None:
        raise ImportDataError(f"row {n}: {column!r} must be a list of turns, not {str(row.get(column))[:60]!r}")
    last = max((i for i, t in enumerate(turns) if t["role"] == "assistant"), default=None)
    before = turns if last is None else turns[:last]
    variables = _extras(row, {column, "id"})
    prompt = _joined(before, "user") or None
    if prompt is not None:
        variables["prompt"] = prompt
    system = _joined(before, "system")
    if system:
        variables["system"] = system
    if any(t["role"] == "assistant" for t in before):  # a longer conversation: keep the turns the prompt lost
        variables["messages"] = before
    if last is None:  # no answer yet: a row to generate from
        return ImportedRecord(variables=variables)
    return ImportedRecord(variables=variables, output=turns[last]["content"] or None, prompt=prompt)


# -- preference pairs ------------------------------------------------------------------------------


def _answer(value: Any, where: str) -> str:
    turns = _turns(value, where)
    if turns is None:
        return _content(value)
    answers = [t["content"] for t in turns if t["role"] == "assistant"]
    return answers[-1] if answers else "\n\n".join(t["content"] for t in turns)


def _dpo_records(rows: list[Row]) -> tuple[list[ImportedRecord], str]:
    # (group key) -> the pairs of one prompt, in file order
    groups: dict[str, dict[tuple[str, str], None]] = {}  # ordered sets of (chosen, rejected)
    group_vars: dict[str, tuple[dict[str, Any], str]] = {}
    layouts: set[str] = set()
    skipped = 0
    for n, row in enumerate(rows, 1):
        where = f"row {n}"
        prompt_turns = _turns(row.get("prompt"), where)
        chosen_turns = _turns(row.get("chosen"), where)
        layouts.add("conversational" if prompt_turns is not None or chosen_turns is not None else "string")
        if prompt_turns is None and "prompt" not in row and chosen_turns is not None:
            # TRL's implicit prompt: the conversation before the last answer
            last = max((i for i, t in enumerate(chosen_turns) if t["role"] == "assistant"), default=0)
            prompt_turns = chosen_turns[:last]
        if prompt_turns is not None:
            prompt, system = _joined(prompt_turns, "user"), _joined(prompt_turns, "system")
        else:
            prompt, system = _content(row.get("prompt")), ""
        chosen, rejected = _answer(row.get("chosen"), where), _answer(row.get("rejected"), where)
        if not prompt or not chosen or not rejected or chosen == rejected:
            skipped += 1
            continue
        variables = {"prompt": prompt, **({"system": system} if system else {}),
                     **_extras(row, _DPO_BOOKKEEPING | {"prompt", "chosen", "rejected"})}
        key = json.dumps(variables, sort_keys=True, ensure_ascii=False, default=str)
        groups.setdefault(key, {})[(chosen, rejected)] = None
        group_vars.setdefault(key, (variables, prompt))
    records: list[ImportedRecord] = []
    for key, pair_set in groups.items():
        variables, prompt = group_vars[key]
        pairs = list(pair_set)
        chosen_texts = list(dict.fromkeys(c for c, _ in pairs))
        rejected_texts = list(dict.fromkeys(r for _, r in pairs))
        if len(pairs) == len(chosen_texts) * len(rejected_texts) and not set(chosen_texts) & set(rejected_texts):
            # every chosen beats every rejected (one review of several samples): one input row
            sides = [(c, "accepted", 0) for c in chosen_texts] + [(r, "rejected", 0) for r in rejected_texts]
        else:  # pairs that are not a full cross: an input row each, so export gives exactly these pairs
            sides = [s for i, (c, r) in enumerate(pairs) for s in ((c, "accepted", i), (r, "rejected", i))]
        records += [ImportedRecord(variables, text, prompt, status, (key, i)) for text, status, i in sides]
    pair_count = sum(len(p) for p in groups.values())
    note = f"{pair_count} pair{'' if pair_count == 1 else 's'}, {' and '.join(sorted(layouts))} layout"
    if skipped:
        note += f"; {skipped} rows without a prompt or with chosen equal to rejected skipped"
    return records, note


# -- the studio's own export -----------------------------------------------------------------------


def _studio_variables(row: Row) -> dict[str, Any]:
    nested = _json_value(row.get("variables"))
    if isinstance(nested, dict):
        return nested
    out: dict[str, Any] = {}
    for k, v in row.items():
        if k.startswith(VAR_PREFIX) and v is not None and v != "":
            decoded = _json_value(v)
            out[k[len(VAR_PREFIX):]] = decoded if isinstance(decoded, (dict, list)) else v
    return out


def _studio_record(row: Row) -> ImportedRecord:
    output = row.get("output")
    text = output if isinstance(output, str) else (None if output is None else json.dumps(output))
    status = row.get("status")
    prompt = row.get("prompt")
    return ImportedRecord(variables=_studio_variables(row), output=text or None,
                          prompt=prompt if isinstance(prompt, str) and prompt else None,
                          status=status if status in RECORD_STATUSES else "new")
