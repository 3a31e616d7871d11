"""Code validators (no model): each gives a record pass/fail with a reason.

Declared in a rules file (TOML or YAML), e.g.::

    [[rule]]
    type = "length"         # chars | words | tokens
    unit = "words"
    min = 20
    max = 300

    [[rule]]
    type = "banned_phrases"  # defaults to common model tics when no list is given

    [[rule]]
    type = "pii"             # e-mails, phones, card numbers, IBANs, IPs (app.quality.pii)
    kinds = ["email", "phone"]   # optional: only these kinds

A regex rule's search is stopped after ``REGEX_SECONDS`` on a record (that record fails, saying so)
when the ``regex`` package is installed; without it, a pattern with a repeat inside a repeat, the
shape that can backtrack for hours (``(a+)+$``), is refused when the rule is read.

A setting can be read from each record's input row by writing it as a template
(rendered in the prompts' sandbox with the row's variables, also as ``input.NAME``)::

    [[rule]]
    type = "length"
    unit = "words"
    max = "{{ max_words }}"          # a number setting: the rendered text is converted

    [[rule]]
    type = "contains"
    must_contain = "{{ answer }}"    # plain text, case-insensitive unless case_sensitive = true

A record whose row lacks the variable fails the rule with that reason (nothing crashes).
A setting's template also reads the record's own ``output``; when the output is a JSON object
(a prompt with ``output_schema:``) its fields too: ``must_contain = "{{ output.answer }}"``.
(A chained prompt's parent output, a variable of its row, is ``input.output``.)

Structured outputs (app.prompts.structured)::

    [[rule]]
    type = "schema"          # the output matches the output_schema of the prompt version that made it
    # schema = { type = "object", required = ["answer"] }   # or this schema instead

    [[rule]]
    type = "length"
    field = "answer"         # any rule can check one field of a JSON output instead of the whole text
    unit = "words"
    max = 50

``validate`` checks every record whose prompt declares ``output_schema`` under the rule name
``schema`` even when no schema rule is listed (app.quality.steps.validate), so an output that
breaks the schema (a server that ignored it, a person's edit) drops in the funnel with the reason.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.errors import TemplateError
from app.prompts.structured import StructuredText, as_output, cell_text, field_value, parse_output, validate_output
from app.prompts.templates import render_string, template_variables
from app.quality.pii import KINDS as PII_KINDS
from app.quality.pii import find_pii, kinds_found
from app.quality.rulefile import RuleFileError, line_of, load_rule_file

try:  # the third-party ``regex`` module can stop a search after a time limit; ``re`` cannot be stopped
    import regex as _timed_re  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError:  # without it a pattern that can backtrack for ever is refused instead (_nested_repeat)
    _timed_re = None

REGEX_SECONDS = 1.0  # how long one rule's search may take on one record (with ``regex`` installed)

DEFAULT_BANNED = (
    "as an ai language model", "as an ai", "i cannot fulfill", "i'm sorry, but", "delve", "tapestry",
    "it is important to note", "in conclusion,", "i hope this helps",
)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str
    value: float | None = None


@dataclass(frozen=True)
class Rule:
    name: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    templates: dict[str, str] = field(default_factory=dict)  # settings rendered per record from its input row
    version_id: int | None = None  # the notebook's criteria_versions row it came from (None: a file)

    def check(self, text: str, tokens: int | None = None, variables: dict[str, Any] | None = None,
              output_schema: dict[str, Any] | None = None) -> Verdict:
        """The verdict on one record's ``text``; ``output_schema`` is its prompt's (for a schema rule)."""
        params = self.params
        if self.templates:
            try:
                params = {**params, **_row_settings(self, variables or {}, text)}
            except ValueError as exc:  # this record's value is missing or unusable: its own failure
                return Verdict(False, str(exc))
        if self.type == "schema":
            params = {**params, "_prompt_schema": output_schema}
        name = params.get(FIELD_SETTING)
        if name is None:
            return CHECKS[self.type](text, tokens, params)
        fields = parse_output(text)
        if fields is None:
            return Verdict(False, f"the output is not a JSON object, so it has no field {name!r}")
        value = field_value(fields, str(name))
        if value is None:
            return Verdict(False, f"the output has no field {name!r}")
        v = CHECKS[self.type](cell_text(value), None, params)  # the model's token count is the whole output's
        return Verdict(v.passed, f"{name}: {v.reason}", v.value)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+(?:'\w+)?", text.lower())


def _length(text: str, tokens: int | None, p: dict[str, Any]) -> Verdict:
    unit = p.get("unit", "chars")
    if unit == "chars":
        n = len(text)
    elif unit == "words":
        n = len(_words(text))
    else:  # tokens: the model's own count when the record has one
        n = tokens if tokens is not None else round(len(_words(text)) * 1.3)
    lo, hi = p.get("min"), p.get("max")
    if lo is not None and n < lo:
        return Verdict(False, f"{n} {unit} < min {lo}", n)
    if hi is not None and n > hi:
        return Verdict(False, f"{n} {unit} > max {hi}", n)
    return Verdict(True, f"{n} {unit}", n)


def _nested_repeat(parsed: Any, inside: bool = False) -> bool:
    """Whether a parsed pattern repeats a group that itself repeats a variable number of times, as in
    ``(a+)+``: the shape that backtracks exponentially on a near-miss (``re`` cannot be stopped)."""
    c = importlib.import_module("re._constants")  # the parser's own tree: what a pattern really nests
    for op, av in parsed:
        if op in (c.POSSESSIVE_REPEAT, c.ATOMIC_GROUP):
            continue  # never backtracks into itself
        if op in (c.MAX_REPEAT, c.MIN_REPEAT):
            lo, hi, body = av
            if inside and hi > lo:
                return True
            if _nested_repeat(body, inside or hi > 1):
                return True
            continue
        stack = [av]
        while stack:  # groups, branches and lookarounds hold their parts in tuples and lists
            x = stack.pop()
            if isinstance(x, (tuple, list)):
                stack.extend(x)
            elif hasattr(x, "data") and _nested_repeat(x, inside):
                return True
    return False


def compile_pattern(pattern: str, flags: Any = "") -> Any:
    """A rule's pattern, compiled to be searched within :data:`REGEX_SECONDS` (with ``regex``) or
    refused when it could backtrack for ever (without it); ValueError says why it cannot be used."""
    if not isinstance(pattern, str):
        raise ValueError(f"must be a text (a regular expression), not {pattern!r}")
    i = re.I if "i" in str(flags) else 0
    try:
        compiled = re.compile(pattern, i | re.M)
    except re.error as exc:
        raise ValueError(f"is not a valid regular expression: {exc}") from None
    if _timed_re is not None:
        try:
            return _timed_re.compile(pattern, i | re.M)
        except _timed_re.error:
            pass  # a pattern only ``re`` reads: checked below like any other
    if _nested_repeat(importlib.import_module("re._parser").parse(pattern, i | re.M)):
        raise ValueError("repeats a group that itself repeats (as (a+)+ does), which can run for minutes on some "
                         "texts; rewrite it without the nested repeat (e.g. a+ for (a+)+)")
    return compiled


def _search(pattern: Any, text: str) -> Any:
    if _timed_re is not None and isinstance(pattern, _timed_re.Pattern):
        return pattern.search(text, timeout=REGEX_SECONDS)
    return pattern.search(text)


def _regex(text: str, _t: int | None, p: dict[str, Any]) -> Verdict:
    for slot, wanted in (("_must", True), ("_must_not", False)):
        pattern = p.get(slot)
        if pattern is None:
            continue
        try:
            m = _search(pattern, text)
        except TimeoutError:
            return Verdict(False, f"/{pattern.pattern}/ was stopped after {REGEX_SECONDS:g} s on this text (a repeat "
                                  "inside a repeat, as in (a+)+, can run for ever); simplify the pattern")
        if wanted and not m:
            return Verdict(False, f"does not match /{pattern.pattern}/")
        if not wanted and m:
            return Verdict(False, f"matches /{pattern.pattern}/ at {m.group(0)!r}")
    return Verdict(True, "regex ok")


def _extract_json(text: str) -> str:
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    return fenced.group(1) if fenced else text


def _json(text: str, _t: int | None, p: dict[str, Any]) -> Verdict:
    try:
        obj = json.loads(_extract_json(text))
    except json.JSONDecodeError as exc:
        return Verdict(False, f"invalid JSON: {exc.msg} (line {exc.lineno} col {exc.colno})")
    schema = p.get("schema")
    if schema:
        import jsonschema

        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(obj), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            where = "/".join(map(str, e.path)) or "(root)"
            return Verdict(False, f"schema: {where}: {e.message}")
    return Verdict(True, "valid JSON")


def _schema(text: str, _t: int | None, p: dict[str, Any]) -> Verdict:
    schema = p.get("schema") or p.get("_prompt_schema")
    if not schema:
        return Verdict(True, "no output schema to check (its prompt declares none)")
    reason = validate_output(text, schema)
    return Verdict(reason is None, reason or "matches the output schema")


def _markdown(text: str, _t: int | None, p: dict[str, Any]) -> Verdict:
    found = {
        "heading": bool(re.search(r"^#{1,6}\s+\S", text, re.M)),
        "list": bool(re.search(r"^\s*(?:[-*+]|\d+[.)])\s+\S", text, re.M)),
        "code": "```" in text,
        "table": bool(re.search(r"^\|.*\|\s*$", text, re.M)),
    }
    missing = [k for k in p.get("require", ["heading", "list"]) if not found.get(k)]
    if missing:
        return Verdict(False, f"no markdown {', '.join(missing)}")
    return Verdict(True, "markdown structure ok")


def _python(text: str, _t: int | None, _p: dict[str, Any]) -> Verdict:
    fenced = re.search(r"```(?:python|py)?\s*\n(.*?)```", text, re.S)
    source = fenced.group(1) if fenced else text
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            ast.parse(source)  # parse only: nothing the model wrote is executed
    except SyntaxError as exc:
        return Verdict(False, f"python does not compile: {exc.msg} (line {exc.lineno})")
    return Verdict(True, "python compiles")


def _banned(text: str, _t: int | None, p: dict[str, Any]) -> Verdict:
    low = text.lower()
    hits = [ph for ph in p.get("phrases", DEFAULT_BANNED) if ph.lower() in low]
    if hits:
        return Verdict(False, f"banned phrase: {hits[0]!r}" + (f" (+{len(hits) - 1} more)" if len(hits) > 1 else ""),
                       len(hits))
    return Verdict(True, "no banned phrases", 0)


def repeated_ngram_ratio(text: str, n: int = 3) -> float:
    """Share of word n-grams that are repeats of an earlier one (0 = none repeated)."""
    w = _words(text)
    grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
    if not grams:
        return 0.0
    return 1 - len(set(grams)) / len(grams)


def _repetition(text: str, _t: int | None, p: dict[str, Any]) -> Verdict:
    n, limit = int(p.get("n", 3)), float(p.get("max_ratio", 0.2))
    r = repeated_ngram_ratio(text, n)
    if r > limit:
        return Verdict(False, f"{r:.0%} of {n}-grams repeated > {limit:.0%}", r)
    return Verdict(True, f"{r:.0%} of {n}-grams repeated", r)


def _as_texts(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _contains(text: str, _t: int | None, p: dict[str, Any]) -> Verdict:
    sensitive = bool(p.get("case_sensitive", False))
    hay = text if sensitive else text.lower()

    def has(needle: str) -> bool:
        return (needle if sensitive else needle.lower()) in hay

    missing = [n for n in _as_texts(p.get("must_contain", [])) if not has(n)]
    if missing:
        return Verdict(False, f"does not contain {missing[0]!r}")
    found = [n for n in _as_texts(p.get("must_not_contain", [])) if has(n)]
    if found:
        return Verdict(False, f"contains {found[0]!r}")
    return Verdict(True, "contains what it must")


def _pii(text: str, _t: int | None, p: dict[str, Any]) -> Verdict:
    spans = find_pii(text, p.get("kinds", PII_KINDS))
    if spans:  # the reason names the kinds, never the values: it is shown and exported
        return Verdict(False, f"personal data: {', '.join(kinds_found(spans))}", len(spans))
    return Verdict(True, "no personal data found", 0)


CHECKS: dict[str, Callable[[str, int | None, dict[str, Any]], Verdict]] = {
    "length": _length,
    "regex": _regex,
    "json": _json,
    "markdown": _markdown,
    "python": _python,
    "banned_phrases": _banned,
    "repetition": _repetition,
    "contains": _contains,
    "pii": _pii,
    "schema": _schema,
}
_ALLOWED = {
    "length": {"unit", "min", "max"},
    "regex": {"must_match", "must_not_match", "flags"},
    "json": {"schema"},
    "markdown": {"require"},
    "python": set(),
    "banned_phrases": {"phrases"},
    "repetition": {"n", "max_ratio"},
    "contains": {"must_contain", "must_not_contain", "case_sensitive"},
    "pii": {"kinds"},
    "schema": {"schema"},
}
FIELD_SETTING = "field"  # any kind but schema: check one field of a JSON output (``field = "answer"``)
# settings that may be written as a template, and what their rendered text is converted to
ROW_SETTINGS: dict[str, dict[str, type]] = {
    "length": {"min": int, "max": int},
    "regex": {"must_match": str, "must_not_match": str},
    "contains": {"must_contain": str, "must_not_contain": str},
    "repetition": {"n": int, "max_ratio": float},
}


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def template_context(variables: dict[str, Any], output: str) -> dict[str, Any]:
    """What a rule setting's template reads about a record: its input row's variables (bare and as
    ``input.NAME``) and its ``output``, whose fields a template reads when it is a JSON object."""
    row = dict(variables)
    if isinstance(row.get("output"), str):  # a chained prompt's parent output: input.output.answer
        row["output"] = as_output(row["output"])
    return {**row, "input": row, "output": as_output(output)}


def output_field_error(msg: str, output: str, reads_output: bool) -> str | None:
    """Why a template could not read a field of the record's ``output`` (already ``as_output``),
    from the sandbox's message; None when the message is about something else."""
    m = re.search(r"'([\w.]+) object' has no attribute '([^']+)'", msg)
    if m is None:
        return None
    name = m.group(2)
    if isinstance(output, StructuredText) and m.group(1).endswith("StructuredText"):
        have = ", ".join(output.fields) or "none"
        return f"it reads output.{name}, which this record's output lacks (its fields: {have})"
    if reads_output and m.group(1) == "str" and not isinstance(output, StructuredText):
        return f"it reads output.{name}, but this record's output is not a JSON object"
    return None


def _row_settings(rule: Rule, variables: dict[str, Any], output: str = "") -> dict[str, Any]:
    """The rule's template settings rendered for one record; ValueError says why one cannot be."""
    out: dict[str, Any] = {}
    ctx = template_context(variables, output)
    for key, source in rule.templates.items():
        try:
            text = render_string(source, ctx)
        except TemplateError as exc:
            msg = str(exc)
            why = output_field_error(msg, ctx["output"], "output" in template_variables(source))
            if why:
                raise ValueError(f"{key}: {why}") from None
            missing = re.search(r"'([^']+)' is not defined|has no attribute '([^']+)'", msg)
            if missing:
                have = ", ".join(sorted(variables)) or "none"
                name = missing.group(1) or missing.group(2)
                raise ValueError(f"{key} reads {name}, which this record's input row lacks "
                                 f"(its variables: {have})") from None
            raise ValueError(f"{key}: {msg}") from None
        kind = ROW_SETTINGS[rule.type][key]
        if kind is str:
            if not text:
                raise ValueError(f"{key} is empty for this record")
            out[key] = text
            continue
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{key} is {text!r} for this record, not a number") from None
        if kind is int and not number.is_integer():
            raise ValueError(f"{key} is {text!r} for this record, not a whole number")
        out[key] = int(number) if kind is int else number
    if rule.type == "regex":
        for key, slot in (("must_match", "_must"), ("must_not_match", "_must_not")):
            if key in out:
                try:
                    out[slot] = compile_pattern(out[key], rule.params.get("flags", ""))
                except ValueError as exc:
                    raise ValueError(f"{key} {out[key]!r} (from this record's row) {exc}") from None
    return out


def _text_list(value: Any, key: str, example: str, where: Callable[[str], RuleFileError]) -> None:
    """Refuse a setting that must be a list of texts (one text would be read letter by letter)."""
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        raise where(f"{key} must be a list of texts, e.g. {example}, not {value!r}")


def make_rule(spec: dict[str, Any], where: Callable[[str], RuleFileError]) -> Rule:
    kind = spec.get("type")
    if kind not in CHECKS:
        raise where(f"unknown rule type {kind!r} (known: {', '.join(CHECKS)})")
    params = {k: v for k, v in spec.items() if k not in ("type", "name")}
    allowed = _ALLOWED[kind] | ({FIELD_SETTING} if kind != "schema" else set())
    extra = set(params) - allowed
    if extra:
        raise where(f"rule type {kind!r} has no setting {', '.join(sorted(extra))} "
                    f"(settings: {', '.join(sorted(allowed)) or 'none'})")
    if FIELD_SETTING in params:  # (a schema rule, which checks the whole output, has none: refused above)
        if not isinstance(params[FIELD_SETTING], str) or not params[FIELD_SETTING].strip():
            raise where("field must name a field of the JSON output, e.g. field = \"answer\"")
    templates: dict[str, str] = {}
    for key in [k for k, v in params.items() if _is_template(v)]:
        if key not in ROW_SETTINGS.get(kind, {}):
            can = ", ".join(sorted(ROW_SETTINGS.get(kind, {}))) or "none"
            raise where(f"{key} cannot be read from the input row (settings of {kind!r} that can: {can})")
        try:
            template_variables(params[key])
        except TemplateError as exc:
            raise where(f"{key} is not a valid template: {exc}") from None
        templates[key] = params.pop(key)
    if kind == "contains":
        if "must_contain" not in params and "must_not_contain" not in params and not templates:
            raise where("a contains rule needs must_contain and/or must_not_contain")
        for key in ("must_contain", "must_not_contain"):
            v = params.get(key)
            if v is not None and not (isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))):
                raise where(f"{key} must be a text or a list of texts")
    if kind == "length":
        if params.get("unit", "chars") not in ("chars", "words", "tokens"):
            raise where("length unit must be chars, words or tokens")
        for k in ("min", "max"):
            if k in params and (not isinstance(params[k], int) or isinstance(params[k], bool)):
                raise where(f"length {k} must be a whole number")
    if kind == "banned_phrases" and "phrases" in params:
        _text_list(params["phrases"], "phrases", 'phrases = ["delve", "tapestry"]', where)
    if kind == "markdown" and "require" in params:
        _text_list(params["require"], "require", 'require = ["heading", "list"]', where)
    if kind == "repetition":
        n, ratio = params.get("n", 3), params.get("max_ratio", 0.2)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise where(f"repetition n must be a whole number of words of at least 1, not {n!r}")
        if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0 <= ratio <= 1:
            raise where(f"repetition max_ratio must be a number from 0 to 1, not {ratio!r}")
    if kind == "contains" and not isinstance(params.get("case_sensitive", False), bool):
        raise where("case_sensitive must be true or false")
    if kind == "regex":
        if "must_match" not in params and "must_not_match" not in params and not templates:
            raise where("a regex rule needs must_match and/or must_not_match")
        if not isinstance(params.get("flags", ""), str):
            raise where("flags must be a text, e.g. flags = \"i\" (ignore case)")
        for key, slot in (("must_match", "_must"), ("must_not_match", "_must_not")):
            if key in params:
                try:
                    params[slot] = compile_pattern(params[key], params.get("flags", ""))
                except ValueError as exc:
                    raise where(f"{key} {exc}") from None
    if kind == "json" and "schema" in params:
        import jsonschema

        try:
            jsonschema.Draft202012Validator.check_schema(params["schema"])
        except jsonschema.SchemaError as exc:
            raise where(f"invalid JSON Schema: {exc.message}") from None
    if kind == "schema" and "schema" in params:
        import jsonschema

        schema = params["schema"]
        if not isinstance(schema, dict):
            raise where("schema must be a JSON Schema table, e.g. schema = { type = \"object\", required = [\"answer\"] }")
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise where(f"invalid JSON Schema: {exc.message}") from None
    if kind == "pii" and "kinds" in params:
        kinds = params["kinds"]
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            raise where(f"pii kinds must be a list of kinds, e.g. kinds = [\"email\", \"phone\"], not {kinds!r}")
        unknown = [k for k in kinds if k not in PII_KINDS]
        if unknown or not kinds:
            what = f"unknown pii kind {unknown[0]!r}" if unknown else "pii kinds is empty"
            raise where(f"{what} (kinds: {', '.join(PII_KINDS)})")
    if kind == "markdown":
        bad = set(params.get("require", [])) - {"heading", "list", "code", "table"}
        if bad:
            raise where(f"markdown can require heading, list, code or table, not {', '.join(sorted(bad))}")
    name = str(spec.get("name") or kind)
    return Rule(name=name, type=kind, params=params, templates=templates)


def spec_of_rule(rule: Rule) -> dict[str, Any]:
    """The rule as its ``[[rule]]`` table (what the notebook stores and exports)."""
    spec: dict[str, Any] = {} if rule.name == rule.type else {"name": rule.name}
    spec["type"] = rule.type
    spec.update({k: v for k, v in rule.params.items() if not k.startswith("_")})
    spec.update(rule.templates)
    return spec


def load_rules(path: str | Path) -> list[Rule]:
    path = Path(path)
    data, text = load_rule_file(path)
    return rules_from_data(data, text, path)


def rules_from_data(data: dict[str, Any], text: str, path: Path, *, allow_empty: bool = False) -> list[Rule]:
    """The rules of a parsed file (``text`` locates errors by line)."""
    specs = data.get("rule") or data.get("rules") or []
    if not isinstance(specs, list) or (not specs and not allow_empty):
        raise RuleFileError(path, "declares no rules (add [[rule]] tables, each with a type)", 1)
    rules: list[Rule] = []
    seen: Counter[str] = Counter()
    for i, spec in enumerate(specs):
        anchor = "[[rule]]" if path.suffix == ".toml" else "type:"
        line = line_of(text, anchor, i)

        named = f" ({spec['name']!r})" if isinstance(spec, dict) and isinstance(spec.get("name"), str) else ""

        def where(msg: str, _line: int | None = line, _i: int = i, _named: str = named) -> RuleFileError:
            return RuleFileError(path, f"rule {_i + 1}{_named}: {msg}", _line)

        if not isinstance(spec, dict):
            raise where("must be a table of settings")
        rule = make_rule(dict(spec), where)
        seen[rule.name] += 1
        if seen[rule.name] > 1:
            raise where(f"two rules are named {rule.name!r}; give one a distinct name = \"...\"")
        rules.append(rule)
    return rules
