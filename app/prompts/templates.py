"""Prompt templates: sandboxed Jinja2 with strict variables and diversity helpers.

A template file is an optional YAML front matter block followed by the Jinja2
body that becomes the user message::

    ---
    personas: [a nurse on night shift, a retired teacher]   # `persona`: one per sample
    lists:
      features: [login, billing, exports, search]           # any named list
    context: |                                              # `context`: domain text
      Acme sells accounting software to small businesses.
    glossary: {SLA: service level agreement}                # `glossary_block()`
    few_shot: {k: 2, from: accepted}                        # `few_shot()` / `examples`
    columns:                                                # sampled per sample (app/prompts/columns.py)
      tier: {categories: {free: 3, pro: 1}}
    output_schema:                                          # JSON records (app/prompts/structured.py)
      type: object
      properties: {title: {type: string}, body: {type: string}}
      required: [title, body]
    ---
    You are {{ persona }}. Write a support ticket about {{ topic }},
    mentioning {{ sample(features, 2) | join(" and ") }}.

Helpers: ``sample(list, k)`` (a seeded, shuffled subsample), ``pick(list)`` (one
item), ``few_shot(k)`` (a block of example records), ``glossary_block()``. All
randomness comes from the per-sample seed, so a record can be re-rendered exactly.

Templates are untrusted text (shared notebooks, pasted prompts): they render in jinja2's
immutable sandbox (no ``__dunder__`` attributes, no ``.append`` on a list or dict), front matter
is read with YAML's safe loader (no ``!!python/...`` tags), and a render that runs past
``RENDER_SECONDS`` or makes more than ``MAX_RENDER_CHARS`` characters is stopped with a message.
"""

from __future__ import annotations

import contextvars
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jinja2
import yaml
from jinja2 import meta
from jinja2.runtime import Context
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment, SecurityError, safe_range
from jinja2.utils import generate_lorem_ipsum

from app.core.errors import TemplateError
from app.prompts.columns import Column, draw_all, parse_columns
from app.prompts.structured import as_output, check_output_schema, schema_fields

TEMPLATE_FILENAME = "<template>"
FEW_SHOT_SOURCES = ("accepted", "real", "any")
FRONT_MATTER = ("personas", "lists", "context", "glossary", "few_shot", "columns", "output_schema")
_HELPERS = ("sample", "pick", "few_shot", "glossary_block")
_PROVIDED = ("persona", "context", "glossary", "examples", *_HELPERS)

MAX_RENDER_CHARS = 10_000_000  # longer than any model's context: a runaway loop or repeat, not a prompt
RENDER_SECONDS = 5.0  # a template renders in milliseconds; one still running after this is stopped
_MAX_POWER_BITS = 1_000_000  # 2 ** 1_000_000 is a number of 300,000 digits: plenty
_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("template_deadline", default=float("inf"))


def _check_time() -> None:
    if time.monotonic() > _deadline.get():
        raise TemplateError(f"the template was still rendering after {RENDER_SECONDS:g} s and was stopped; "
                            "loop over fewer items")


def _too_long(size: int) -> TemplateError:
    return TemplateError(f"the template makes a text of {size:,} characters, more than the {MAX_RENDER_CHARS:,} "
                         "allowed; loop or repeat less")


class _Sandbox(ImmutableSandboxedEnvironment):
    """jinja2's sandbox (no ``__dunder__`` attributes, no changing a list or dict with ``.append``) that
    also refuses a repeat or power too big to compute, and checks the time limit on every call."""

    intercepted_binops = frozenset({"*", "**"})  # (also keeps them from being computed at compile time)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) and len(seq) * n > MAX_RENDER_CHARS:
                    raise _too_long(len(seq) * n)
        elif (operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1
              and right * abs(left).bit_length() > _MAX_POWER_BITS):
            raise TemplateError(f"{left} ** {right} is too big a number to compute")
        return super().call_binop(context, operator, left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _check_time()
        return super().call(context, obj, *args, **kwargs)


def _timed(items: Iterator[int]) -> Iterator[int]:
    for n, x in enumerate(items):
        if not n % 1024:
            _check_time()
        yield x


class _TimedRange:
    """The sandbox's ``range`` (at most ``MAX_RANGE`` items), whose loops stop at the time limit:
    a loop in a loop in a loop can run for hours without writing anything."""

    def __init__(self, r: range) -> None:
        self._r = r

    def __len__(self) -> int:
        return len(self._r)

    def __getitem__(self, i: Any) -> Any:
        return self._r[i]

    def __contains__(self, x: Any) -> bool:
        return x in self._r

    def __iter__(self) -> Iterator[int]:
        return _timed(iter(self._r))

    def __reversed__(self) -> Iterator[int]:
        return _timed(reversed(self._r))

    def __repr__(self) -> str:
        return repr(self._r)


def _range(*args: int) -> _TimedRange:
    try:
        return _TimedRange(safe_range(*args))
    except OverflowError:
        raise TemplateError(f"range({', '.join(map(str, args))}) is too long: a template may loop at most {MAX_RANGE:,} times over "
                            "one range") from None


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # jinja2's argument names
    if int(n) * int(max) > 100_000:
        raise TemplateError("lipsum() may make at most 100,000 words")
    return str(generate_lorem_ipsum(n, html, min, max))


def _render_bounded(template: jinja2.Template, ctx: dict[str, Any]) -> str:
    """Render within :data:`RENDER_SECONDS` and :data:`MAX_RENDER_CHARS` (TemplateError past either)."""
    token = _deadline.set(time.monotonic() + RENDER_SECONDS)
    try:
        parts: list[str] = []
        size = 0
        for chunk in template.generate(ctx):
            size += len(chunk)
            if size > MAX_RENDER_CHARS:
                raise _too_long(size)
            parts.append(chunk)
            _check_time()
        return "".join(parts)
    finally:
        _deadline.reset(token)


_env = _Sandbox(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.globals.update(range=_range, lipsum=_lipsum)


@dataclass(frozen=True)
class PromptTemplate:
    source: str
    body: str
    line_offset: int  # lines of front matter before the body
    lists: dict[str, list[Any]] = field(default_factory=dict)
    personas: list[str] = field(default_factory=list)
    context: str = ""
    glossary: dict[str, str] = field(default_factory=dict)
    few_shot_k: int = 0
    few_shot_from: str = "accepted"
    columns: dict[str, Column] = field(default_factory=dict)
    output_schema: dict[str, Any] | None = None

    @property
    def required_variables(self) -> set[str]:
        """Variables the body uses that must come from each input row."""
        ast = _env.parse(self.body)
        return set(meta.find_undeclared_variables(ast)) - set(_PROVIDED) - set(self.lists) - set(self.columns)

    @property
    def fields(self) -> list[str]:
        """The output's fields when the prompt declares an output schema."""
        return schema_fields(self.output_schema)


def _split_front_matter(text: str) -> tuple[str | None, str, int]:
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return None, text, 0
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "".join(lines[1:i]), "".join(lines[i + 1 :]), i + 1
    raise TemplateError("front matter starts with '---' on line 1 but is never closed by another '---'", 1)


def _as_str_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise TemplateError(f"front matter: {what} must be a non-empty list")
    return value


def parse_template(text: str) -> PromptTemplate:
    """Parse front matter and compile the body; raise :class:`TemplateError` naming the line."""
    fm_text, body, offset = _split_front_matter(text)
    fm: dict[str, Any] = {}
    if fm_text is not None:
        try:
            loaded = yaml.safe_load(fm_text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 2 if mark is not None else 1
            problem = str(getattr(exc, "problem", exc))
            if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
                tag = problem.rsplit("tag:yaml.org,2002:", 1)[-1].rstrip("'")
                raise TemplateError(f"front matter uses the YAML tag !!{tag}, which is not allowed: front matter "
                                    "holds plain text, numbers, lists and mappings; remove the tag", line) from None
            raise TemplateError(f"front matter is not valid YAML: {problem}", line) from None
        if not isinstance(loaded, dict):
            raise TemplateError("front matter must be a mapping of settings (personas, lists, ...)", 2)
        fm = loaded
    unknown = set(fm) - set(FRONT_MATTER)
    if unknown:
        raise TemplateError(
            f"front matter: unknown setting(s) {', '.join(sorted(unknown))} (known: {', '.join(FRONT_MATTER)})"
        )
    lists = fm.get("lists") or {}
    if not isinstance(lists, dict):
        raise TemplateError("front matter: lists must map names to lists")
    lists = {str(k): _as_str_list(v, f"lists.{k}") for k, v in lists.items()}
    personas = [str(p) for p in _as_str_list(fm["personas"], "personas")] if "personas" in fm else []
    glossary = fm.get("glossary") or {}
    if not isinstance(glossary, dict):
        raise TemplateError("front matter: glossary must map terms to definitions")
    few = fm.get("few_shot") or {}
    if isinstance(few, int):
        few = {"k": few}
    if not isinstance(few, dict):
        raise TemplateError("front matter: few_shot must be a number or {k: N, from: accepted|real|any}")
    few_from = str(few.get("from", "accepted"))
    if few_from not in FEW_SHOT_SOURCES:
        raise TemplateError(f"front matter: few_shot.from must be one of {', '.join(FEW_SHOT_SOURCES)}")
    try:
        _env.parse(body)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}", (exc.lineno or 0) + offset) from None
    return PromptTemplate(
        source=text,
        body=body,
        line_offset=offset,
        lists=lists,
        personas=personas,
        context=str(fm.get("context") or ""),
        glossary={str(k): str(v) for k, v in glossary.items()},
        few_shot_k=int(few.get("k", 0)),
        few_shot_from=few_from,
        columns=parse_columns(fm.get("columns")),
        output_schema=check_output_schema(fm["output_schema"]) if "output_schema" in fm else None,
    )


def slot_variables(
    pt: PromptTemplate, variables: dict[str, Any], seed: int, pins: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The variables one sample renders with and is stored with: the sampled columns (drawn
    from ``seed``), then the input row's own values (a row's column wins), then ``pins``
    (values a top-up run fixes, e.g. the category it fills)."""
    return {**draw_all(pt.columns, seed), **variables, **(pins or {})}


def _template_line(tb: Any) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == TEMPLATE_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _as_list(value: Any, helper: str) -> list[Any]:
    if isinstance(value, str):
        sep = ";" if ";" in value else ","
        return [v.strip() for v in value.split(sep) if v.strip()]
    try:
        return list(value)
    except TypeError:
        raise TemplateError(f"{helper}() needs a list, got {type(value).__name__}") from None


def render(
    pt: PromptTemplate,
    variables: dict[str, Any],
    seed: int = 0,
    examples: list[dict[str, Any]] | None = None,
) -> str:
    """Render the body for one sample. ``examples`` are few-shot candidates: dicts with ``output``."""
    rng = random.Random(seed)
    examples = list(examples or [])

    def sample(items: Any, k: int = 1) -> list[Any]:
        pool = _as_list(items, "sample")
        return rng.sample(pool, min(int(k), len(pool)))

    def pick(items: Any) -> Any:
        pool = _as_list(items, "pick")
        if not pool:
            raise TemplateError("pick() was given an empty list")
        return rng.choice(pool)

    def few_shot(k: int | None = None) -> str:
        n = pt.few_shot_k if k is None else int(k)
        chosen = rng.sample(examples, min(n, len(examples)))
        return "\n\n".join(f"Example {i}:\n{ex['output']}" for i, ex in enumerate(chosen, 1))

    def glossary_block() -> str:
        return "\n".join(f"- {term}: {definition}" for term, definition in pt.glossary.items())

    ctx: dict[str, Any] = {
        "context": pt.context,
        "glossary": pt.glossary,
        "examples": examples,
        "sample": sample,
        "pick": pick,
        "few_shot": few_shot,
        "glossary_block": glossary_block,
        **pt.lists,
    }
    if pt.personas:
        ctx["persona"] = rng.choice(pt.personas)
    ctx.update(draw_all(pt.columns, seed))  # the same values slot_variables() stores with the record
    ctx.update(variables)  # a row's own column wins over a declared list of the same name
    if isinstance(ctx.get("output"), str):  # a chained prompt reads its parent's fields: {{ output.answer }}
        ctx["output"] = as_output(ctx["output"])
    try:
        template = _env.from_string(pt.body)
        template.filename = TEMPLATE_FILENAME
        return _render_bounded(template, ctx).strip()
    except TemplateError:
        raise
    except jinja2.UndefinedError as exc:
        line = _template_line(sys.exc_info()[2])
        have = ", ".join(sorted(variables)) or "none"
        msg = str(exc.message or exc).replace(" is undefined", " is not defined")
        raise TemplateError(f"{msg} (this row's variables: {have})", line and line + pt.line_offset) from None
    except SecurityError as exc:
        raise TemplateError(f"the template tried an unsafe operation: {exc}") from None
    except jinja2.TemplateError as exc:
        line = _template_line(sys.exc_info()[2])
        raise TemplateError(f"template error: {exc}", line and line + pt.line_offset) from None
    except Exception as exc:  # e.g. a filter given the wrong type
        line = _template_line(sys.exc_info()[2])
        raise TemplateError(f"template error: {type(exc).__name__}: {exc}", line and line + pt.line_offset) from None


def check_rows(pt: PromptTemplate, rows: list[dict[str, Any]]) -> None:
    """Fail before a run starts if any row lacks a variable the template needs."""
    needed = pt.required_variables
    for i, row in enumerate(rows):
        missing = needed - set(row)
        if missing:
            have = ", ".join(sorted(row)) or "none"
            where = f"input row {i + 1}" if rows else "the notebook"
            raise TemplateError(
                f"the template uses {', '.join(sorted(missing))} but {where} has no such column "
                f"(its columns: {have})"
            )


# -- small templates elsewhere in the studio (a judge's question, a validator's setting) ------------


def template_variables(source: str) -> set[str]:
    """The top-level names a small template reads (e.g. ``{"input", "output"}``); raises on bad syntax."""
    try:
        return set(meta.find_undeclared_variables(_env.parse(source)))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}", exc.lineno) from None


def render_string(source: str, context: dict[str, Any]) -> str:
    """Render a small template in the same sandbox as prompts (strict: a missing name is an error)."""
    try:
        return _render_bounded(_env.from_string(source), context).strip()
    except TemplateError:
        raise
    except jinja2.UndefinedError as exc:
        msg = str(exc.message or exc).replace(" is undefined", " is not defined")
        raise TemplateError(msg) from None
    except SecurityError as exc:
        raise TemplateError(f"the template tried an unsafe operation: {exc}") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template error: {exc}") from None
    except Exception as exc:  # e.g. a filter given the wrong type
        raise TemplateError(f"template error: {type(exc).__name__}: {exc}") from None
