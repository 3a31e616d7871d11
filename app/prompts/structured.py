"""Structured outputs: a prompt's JSON Schema and the JSON records a model writes against it.

A prompt declares ``output_schema:`` in its front matter (JSON Schema written as YAML).
The local backend constrains decoding to it with llama.cpp's grammar sampler, a server
gets it as ``response_format``; either way the record's ``output`` is the JSON text,
and its fields become columns (``output.answer``) everywhere records are shown, scored,
mapped and exported.

The studio is offline: a ``$ref`` may only point inside the schema (``#/...``); a URL
or a file reference is refused when the prompt is parsed, never fetched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from app.core.errors import TemplateError

FIELD_PREFIX = "output."


class StructuredText(str):
    """A record's output that is a JSON object: still its text everywhere a text is wanted,
    and its fields readable in templates (``{{ output.answer }}``, ``{{ output["answer"] }}``)."""

    fields: dict[str, Any]

    def __new__(cls, text: str, fields: dict[str, Any]) -> StructuredText:
        obj = super().__new__(cls, text)
        obj.fields = fields
        return obj

    def __getattr__(self, name: str) -> Any:
        fields = self.__dict__.get("fields") or {}
        if name in fields:
            return fields[name]
        raise AttributeError(name)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self.fields[key]
        return str.__getitem__(self, key)


def parse_output(text: str | None) -> dict[str, Any] | None:
    """The JSON object a structured output holds, or None (not JSON, or not an object)."""
    if not text:
        return None
    s = text.strip()
    if not s.startswith("{"):
        return None
    try:
        value = json.loads(s)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def as_output(text: str | None) -> str:
    """``text`` as templates should see it: a StructuredText when it is a JSON object."""
    fields = parse_output(text)
    return StructuredText(text or "", fields) if fields is not None else (text or "")


def field_value(fields: dict[str, Any] | None, name: str) -> Any:
    """A field by dotted name (``answer`` or ``meta.level``); None when absent."""
    value: Any = fields
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def cell_text(value: Any) -> str:
    """A field's value as a table cell shows it."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def check_output_schema(schema: Any) -> dict[str, Any]:
    """Check a prompt's ``output_schema``; raise a TemplateError saying what is wrong."""
    import jsonschema

    if not isinstance(schema, dict):
        raise TemplateError("front matter: output_schema must be a JSON Schema written as a mapping "
                            "(e.g. {type: object, properties: {answer: {type: string}}})")
    for ref in _refs(schema):
        if not ref.startswith("#"):
            raise TemplateError(f"front matter: output_schema has a $ref to {ref!r}; only references inside "
                                "the schema (#/...) are allowed: the studio works offline and never fetches one")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        raise TemplateError(f"front matter: output_schema is not a valid JSON Schema at {where}: {exc.message}") from None
    if schema.get("type") not in (None, "object") and "properties" not in schema:
        raise TemplateError("front matter: output_schema must describe an object (type: object, with properties): "
                            "its fields become the record's columns")
    return schema


def schema_fields(schema: dict[str, Any] | None) -> list[str]:
    """The top-level fields of a schema, in the order written."""
    if not schema:
        return []
    props = schema.get("properties")
    return [str(k) for k in props] if isinstance(props, dict) else []


def schema_json(schema: dict[str, Any]) -> str:
    """The schema as the JSON text the backends receive."""
    return json.dumps(schema, ensure_ascii=False, default=str)  # key order kept: it is the order fields are written


def validate_output(text: str | None, schema: dict[str, Any]) -> str | None:
    """Why ``text`` does not satisfy ``schema`` (None when it does): a record's failure reason."""
    import jsonschema

    s = (text or "").strip()
    if not s:
        return "empty output: expected a JSON object"
    try:
        value = json.loads(s)
    except json.JSONDecodeError as exc:
        return f"not valid JSON: {exc.msg} at character {exc.pos}"
    validator_cls = jsonschema.validators.validator_for(schema)
    error = jsonschema.exceptions.best_match(validator_cls(schema).iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"does not match the output schema{' at ' + where if where else ''}: {error.message}"
