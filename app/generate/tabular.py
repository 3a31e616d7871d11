"""Tabular mode: generate new rows of an imported table, conditioned on some of its columns.

As Gretel's "generate the rest of this record": the person names the *given* columns; each
new row takes their values from a real row drawn (seeded, with replacement) from the table,
and the model writes the other columns as one JSON object, held to a schema derived from the
real table (:func:`derive_schema`): observed categories become an ``enum``, numbers keep to
the observed range, free text to about the observed length. The local backend constrains its
decoding to that schema; the fake backend returns an instance of it.

The prompt (:func:`tabular_prompt`) is an ordinary prompt version: the schema is its
``output_schema``, a few real rows are its examples, and the given columns are its
variables. The run is an ordinary run (:func:`plan_tabular`): its plan is the drawn input
rows, ``pins`` fix each row's given values (and key its seeds by the row's place, so the
plan may repeat a row), and ``purpose`` is ``tabular``. A new row is then the record's
variables for the given columns and its output's fields for the rest, which is how
``synth-studio metrics`` compares it with the real table.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import jinja2
import yaml
from jinja2 import meta

from app.core.errors import StudioError
from app.generate.runs import RunPlan, prepare_run
from app.prompts.templates import check_rows, parse_template
from app.store.notebook import Notebook, PromptVersion
from backends.protocols import SamplerSettings

PROMPT_NAME = "tabular"
PURPOSE = "tabular"
MAX_CATEGORIES = 20  # a column of at most this many distinct values ...
CATEGORY_SHARE = 0.5  # ... each seen on average at least twice, is categorical
TEXT_LENGTH_FACTOR = 1.5  # free text may be this much longer than the longest real value ...
TEXT_LENGTH_CAP = 500  # ... up to this many characters (a longer bound only grows the grammar)
EXAMPLE_ROWS = 5  # real rows shown in the prompt


def table_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The table's columns in its own order (first seen, across every row)."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return list(names)


def check_given(columns: Sequence[str], given: Sequence[str]) -> list[str]:
    """``given`` checked against the table: each names a column, once, and some column is left
    to generate; raises a StudioError naming the table's columns."""
    have = ", ".join(columns) or "none"
    unknown = [g for g in given if g not in columns]
    if unknown:
        raise StudioError(f"no column named {', '.join(map(repr, unknown))} in the table (its columns: {have})")
    if len(set(given)) != len(given):
        raise StudioError(f"a given column is named twice: {', '.join(given)}")
    if len(given) == len(columns):
        raise StudioError(f"every column is given ({have}): leave at least one for the model to write")
    for g in given:
        if not _is_variable_name(g):
            raise StudioError(f"the given column {g!r} cannot be read as a template variable; give columns whose "
                              "names are single words (letters, digits, _), or rename it in the file and import again")
    return list(given)


def _is_variable_name(name: str) -> bool:
    """Whether ``{{ name }}`` reads the variable ``name`` (not a keyword, literal or expression)."""
    if not name.isidentifier():
        return False
    try:
        return set(meta.find_undeclared_variables(jinja2.Environment().parse("{{ " + name + " }}"))) == {name}
    except jinja2.TemplateSyntaxError:
        return False


# -- the schema ------------------------------------------------------------------------------------


def _number(value: Any) -> int | float | None:
    """A cell as a number (an int when it is whole in the table: 3, "3"), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        s = value.strip()
        try:
            return int(s)
        except ValueError:
            pass
        try:
            f = float(s)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _is_categorical(distinct: int, n: int) -> bool:
    return distinct <= MAX_CATEGORIES and distinct <= CATEGORY_SHARE * n


def column_schema(values: Sequence[Any]) -> dict[str, Any]:
    """The JSON Schema of one column from its real values (a blank cell is ``""``):

    - booleans: ``boolean``;
    - numbers (every non-blank cell parses as one): ``integer`` when all are whole, else
      ``number``, bounded by the observed minimum and maximum; a whole-number column with few
      distinct values (a rating, a count) is an ``integer`` enum of those values;
    - few distinct values (at most 20, each seen twice on average): a ``string`` enum of the
      observed values, blank included;
    - any other text: a ``string`` up to 1.5x the longest observed (capped).
    """
    present = [v for v in values if v is not None and v != ""]
    if present and all(isinstance(v, bool) for v in present):
        return {"type": "boolean"}
    numbers = [_number(v) for v in present]
    if present and all(x is not None for x in numbers):
        nums = [x for x in numbers if x is not None]
        if all(isinstance(x, int) or float(x).is_integer() for x in nums):
            ints = [int(x) for x in nums]
            distinct = sorted(set(ints))
            if _is_categorical(len(distinct), len(ints)):
                return {"type": "integer", "enum": distinct}
            return {"type": "integer", "minimum": min(ints), "maximum": max(ints)}
        return {"type": "number", "minimum": float(min(nums)), "maximum": float(max(nums))}
    texts = [_text(v) for v in values]
    counts = Counter(texts)
    if _is_categorical(len(counts), len(texts)):
        return {"type": "string", "enum": list(counts)}  # first seen first: the table's own order
    longest = max((len(t) for t in texts), default=0)
    return {"type": "string", "maxLength": max(1, min(TEXT_LENGTH_CAP, math.ceil(TEXT_LENGTH_FACTOR * longest)))}


def derive_schema(rows: Sequence[dict[str, Any]], given: Sequence[str]) -> dict[str, Any]:
    """The output schema of the columns the model writes: every column of ``rows`` (the real
    table) but the ``given`` ones, in the table's order, each typed by :func:`column_schema`,
    all required and no other."""
    columns = table_columns(rows)
    check_given(columns, given)
    written = [c for c in columns if c not in given]
    return {
        "type": "object",
        "properties": {c: column_schema([row.get(c, "") for row in rows]) for c in written},
        "required": written,
        "additionalProperties": False,
    }


# -- the prompt ------------------------------------------------------------------------------------


def _raw(text: str) -> str:
    """Static text in a template body: real values may hold ``{{``, never read as Jinja."""
    return "{% raw %}" + text + "{% endraw %}" if text else ""


def example_rows(rows: Sequence[dict[str, Any]], k: int = EXAMPLE_ROWS) -> list[dict[str, Any]]:
    """``k`` real rows spread evenly over the table (the same for every seed, so re-running with
    another seed reuses the prompt version)."""
    usable = [r for r in rows if "endraw" not in json.dumps(r, ensure_ascii=False)]
    k = min(max(k, 0), len(usable))
    return [usable[i * len(usable) // k] for i in range(k)]


def typed_row(row: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``row`` with each numeric column's cell as the number the schema asks for (a CSV cell
    ``"12"`` as ``12``), so the examples look like the answer the model must write."""
    props = schema.get("properties") or {}
    out = dict(row)
    for col, value in row.items():
        kind = (props.get(col) or {}).get("type")
        x = _number(value) if kind in ("integer", "number") else None
        if x is not None:
            out[col] = int(x) if kind == "integer" else x
    return out


def tabular_prompt(columns: Sequence[str], given: Sequence[str], schema: dict[str, Any],
                   examples: Sequence[dict[str, Any]]) -> str:
    """A template that asks for one new row of the table: the schema in its front matter,
    ``examples`` (real rows) shown as JSON, and each given column read as ``{{ column }}``."""
    written = [c for c in columns if c not in given]
    front = yaml.safe_dump({"output_schema": schema}, sort_keys=False, allow_unicode=True)
    intro = f"Here are rows of a table with the columns {', '.join(columns)}"
    intro += (":\n" + "\n".join(json.dumps(r, ensure_ascii=False) for r in examples) + "\n\n") if examples else ".\n\n"
    ask = "Write one new, realistic row of this table"
    if given:
        body = _raw(intro) + ask + " whose " + " and whose ".join(f"{g} is {{{{ {g} }}}}" for g in given)
        body += _raw(f". Answer with the other columns ({', '.join(written)}) as one JSON object, and nothing else.")
    else:
        body = _raw(intro + ask + f". Answer with its columns ({', '.join(written)}) as one JSON object, "
                    "and nothing else.")
    return f"---\n{front}---\n{body}\n"


def save_tabular_prompt(nb: Notebook, given: Sequence[str], *, name: str = PROMPT_NAME,
                        examples: int = EXAMPLE_ROWS) -> PromptVersion:
    """Derive the schema from the notebook's input rows and save the tabular prompt as a version
    of ``name`` (an unchanged one is reused). Everything is checked before anything is written."""
    rows = [v for _, v in nb.input_rows()]
    if not rows:
        raise StudioError("the notebook has no table to extend: import one first (synth-studio import NB.db FILE)")
    columns = table_columns(rows)
    schema = derive_schema(rows, given)
    text = tabular_prompt(columns, given, schema, [typed_row(r, schema) for r in example_rows(rows, examples)])
    pt = parse_template(text)  # the derived schema and the body must make a valid prompt
    if pt.required_variables - set(given):
        raise StudioError(f"the tabular prompt reads {', '.join(sorted(pt.required_variables - set(given)))}, "
                          "which no given column fills")
    pv, _created = nb.add_prompt_version(name, text)
    return pv


# -- the run ---------------------------------------------------------------------------------------


def plan_tabular(nb: Notebook, prompt_name: str, given: Sequence[str], *, rows: int, seed: int = 0,
                 settings: SamplerSettings | None = None) -> RunPlan:
    """A run of ``rows`` new rows: each conditioned on a real row drawn with replacement (seeded),
    whose given values are pinned; one sample per row."""
    if rows < 1:
        raise StudioError("--rows must be at least 1")
    inputs = nb.input_rows()
    if not inputs:
        raise StudioError("the notebook has no table to extend: import one first (synth-studio import NB.db FILE)")
    check_given(table_columns([v for _, v in inputs]), given)
    base = prepare_run(nb, prompt_name, samples=1, limit_rows=1, seed=seed, settings=settings)
    drawn = random.Random(f"tabular:{seed}").choices(inputs, k=rows)
    pins = [{g: variables.get(g, "") for g in given} for _, variables in drawn]
    check_rows(parse_template(nb.prompt_version_by_id(base.prompt_version_id).template), pins)
    return replace(base, plan=[i for i, _ in drawn], extra={**base.extra, "pins": pins, "purpose": PURPOSE,
                                                             "given": list(given)})
