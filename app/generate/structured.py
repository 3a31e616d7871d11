"""The structured fields a notebook's records can have: what the Records table shows as
``output.<field>`` columns, sorts and filters by, and the map colours points by.

A prompt that declares ``output_schema:`` (app/prompts/structured.py) makes records whose
output is a JSON object; the fields of every version of every prompt in the notebook are
offered, so records made by an older version keep their columns.
"""

from __future__ import annotations

from functools import lru_cache

from app.core.errors import StudioError
from app.prompts.structured import FIELD_PREFIX
from app.prompts.templates import parse_template
from app.store.notebook import Notebook

__all__ = ["FIELD_PREFIX", "field_columns", "notebook_fields"]


@lru_cache(maxsize=512)
def _template_fields(template: str) -> tuple[str, ...]:
    """A template's output fields; none when it does not parse (the prompt editor says why)."""
    try:
        return tuple(parse_template(template).fields)
    except StudioError:
        return ()


def notebook_fields(nb: Notebook, prompt: str | None = None, prompt_version_id: int | None = None) -> list[str]:
    """The top-level fields of every prompt version's output schema, each once, in the order first
    seen (oldest version first, then the order its schema lists them); only one prompt's (any
    version) or one version's when asked."""
    seen: dict[str, None] = {}
    for pv in sorted(nb.prompt_versions(), key=lambda p: p.id):
        if (prompt is not None and pv.name != prompt) or (prompt_version_id is not None and pv.id != prompt_version_id):
            continue
        for name in _template_fields(pv.template):
            seen.setdefault(name, None)
    return list(seen)


def field_columns(nb: Notebook, prompt: str | None = None, prompt_version_id: int | None = None) -> list[str]:
    """The notebook's fields (or one prompt's, or one version's) as column names: ``output.<field>``."""
    return [FIELD_PREFIX + name for name in notebook_fields(nb, prompt, prompt_version_id)]
