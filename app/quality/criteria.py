"""Your own criteria, in the notebook: judges' questions and validator rules, versioned like prompts.

A criterion or rule is stored as its ``[[criterion]]`` / ``[[rule]]`` table (the same
format as a criteria or rules file, checked by the same code, so an error names the
line). Saving a changed spec makes a new version; saving it unchanged makes none. Each
can be switched on or off; judging and validating use the active ones. A notebook that
has none yet gets the bundled defaults on first use, so existing flows keep working.

Also here: import from and export to TOML, the preview of a question on one record,
proposals drawn from a prompt's own instructions (``app.quality.propose``), a person's
trust override and a person's labels.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.errors import StudioError
from app.core.paths import resources_dir
from app.quality.judge import (
    SETTINGS,
    Constitution,
    Criterion,
    QuestionError,
    Subject,
    criteria_from_data,
    criterion_from_spec,
    render_question,
    requests_for,
    spec_of,
)
from app.quality.propose import Proposal, propose
from app.quality.rulefile import RuleFileError, load_rule_file, parse_rule_text
from app.quality.trust import Trust, judge_trust
from app.quality.validators import Rule, make_rule, rules_from_data, spec_of_rule
from app.store.criteria import (
    CriterionVersion,
    count_versions,
    get_version,
    latest_versions,
    record_context,
    save_version,
    set_active,
)
from app.store.notebook import Notebook
from app.store.scores import score_names
from app.store.trust import latest_sanity, score_model, set_label, set_override


def default_files() -> tuple[Path, Path]:
    """The bundled (criteria, rules) files a new notebook starts from."""
    quality = resources_dir() / "quality"
    return quality / "default_constitution.toml", quality / "default_rules.toml"


# -- reading and saving ------------------------------------------------------------------------


def parse_document(text: str, source: str | Path = "criteria.toml") -> tuple[Constitution, list[Rule]]:
    """The criteria and rules of a TOML/YAML text (``source``'s suffix names the format; errors name it)."""
    path = Path(source)
    data = parse_rule_text(text, path)
    constitution = criteria_from_data(data, text, path, allow_empty=True)
    rules = rules_from_data(data, text, path, allow_empty=True)
    if not constitution.criteria and not rules:
        raise RuleFileError(path, "declares no criteria or rules (add [[criterion]] or [[rule]] tables)", 1)
    return constitution, rules


def save_criterion(nb: Notebook, c: Criterion, active: bool | None = None) -> tuple[CriterionVersion, bool]:
    return save_version(nb, "criterion", c.name, spec_of(c), active)


def save_rule(nb: Notebook, rule: Rule, active: bool | None = None) -> tuple[CriterionVersion, bool]:
    return save_version(nb, "rule", rule.name, spec_of_rule(rule), active)


def save_spec(nb: Notebook, kind: str, spec: dict[str, Any],
              active: bool | None = None) -> tuple[CriterionVersion, bool]:
    """Check one ``[[criterion]]`` / ``[[rule]]`` table (with its name) and save it as a new version."""
    where = Path(f"{kind} {spec.get('name') or spec.get('type') or '?'}")

    def err(msg: str) -> RuleFileError:
        return RuleFileError(where, msg)

    if kind == "criterion":
        return save_criterion(nb, criterion_from_spec(spec, err), active)
    if kind == "rule":
        return save_rule(nb, make_rule(dict(spec), err), active)
    raise StudioError(f"kind must be criterion or rule, not {kind!r}")


def editable_spec(v: CriterionVersion) -> dict[str, Any]:
    """A version's table with its name, ready to change and save again."""
    return {"name": v.name, **v.spec}


def import_text(nb: Notebook, text: str, source: str | Path = "criteria.toml",
                active: bool | None = None) -> list[tuple[CriterionVersion, bool]]:
    """Save every criterion and rule of a TOML/YAML text; returns (version, created) for each.

    Nothing is saved when any part is malformed. New names are active unless ``active``
    is False; names already in the notebook keep their flag unless ``active`` is given.
    """
    constitution, rules = parse_document(text, source)
    return ([save_criterion(nb, c, active) for c in constitution.criteria]
            + [save_rule(nb, r, active) for r in rules])


def import_file(nb: Notebook, path: str | Path, active: bool | None = None) -> list[tuple[CriterionVersion, bool]]:
    path = Path(path)
    _data, text = load_rule_file(path)
    return import_text(nb, text, path, active)


def ensure_defaults(nb: Notebook) -> list[str]:
    """Import the bundled criteria / rules into a notebook that has none of that kind; returns what was imported."""
    criteria_file, rules_file = default_files()
    done = []
    if count_versions(nb, "criterion") == 0:
        for c in criteria_from_data(*load_rule_file(criteria_file), criteria_file).criteria:
            save_criterion(nb, c)
        done.append("criteria")
    if count_versions(nb, "rule") == 0:
        for r in rules_from_data(*load_rule_file(rules_file), rules_file):
            save_rule(nb, r)
        done.append("rules")
    return done


def _stored_error(v: CriterionVersion) -> Callable[[str], RuleFileError]:
    def err(msg: str) -> RuleFileError:
        return RuleFileError(Path(f"the notebook's {v.kind} {v.label}"), msg)
    return err


def criterion_of_version(v: CriterionVersion) -> Criterion:
    return criterion_from_spec(v.spec, _stored_error(v), version_id=v.id)


def rule_of_version(v: CriterionVersion) -> Rule:
    rule = make_rule(dict(v.spec), _stored_error(v))
    return Rule(rule.name, rule.type, rule.params, rule.templates, version_id=v.id)


def notebook_constitution(nb: Notebook, names: Sequence[str] | None = None) -> Constitution:
    """The notebook's active criteria (only ``names``, active or not, if given), newest versions."""
    ensure_defaults(nb)
    if names is None:
        versions = latest_versions(nb, "criterion", active_only=True)
    else:
        versions = [require_version(nb, "criterion", n) for n in names]
    return Constitution(nb.path.stem, tuple(criterion_of_version(v) for v in versions))


def notebook_rules(nb: Notebook) -> list[Rule]:
    """The notebook's active validator rules, newest versions."""
    ensure_defaults(nb)
    return [rule_of_version(v) for v in latest_versions(nb, "rule", active_only=True)]


def require_version(nb: Notebook, kind: str, name: str, version: int | None = None) -> CriterionVersion:
    ensure_defaults(nb)
    v = get_version(nb, kind, name, version)
    if v is None:
        have = [x.name for x in latest_versions(nb, kind)]
        what = name if version is None else f"{name} v{version}"
        hint = f" (here: {', '.join(have)})" if have else ""
        raise StudioError(f"no {kind} named {what!r}{hint}")
    return v


def activate(nb: Notebook, kind: str, name: str, active: bool) -> None:
    require_version(nb, kind, name)
    set_active(nb, kind, name, active)


# -- TOML out --------------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ORDER = {"criterion": list(SETTINGS), "rule": ["name", "type"]}


def _toml_str(s: str) -> str:
    # JSON's escapes (\" \\ \n \t \uXXXX) are TOML's; DEL is the one control character JSON leaves alone
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, list):
        items = [_toml_value(x) for x in v]
        if sum(len(x) for x in items) > 60:
            return "[\n" + "".join(f"  {x},\n" for x in items) + "]"
        return "[" + ", ".join(items) + "]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(str(k))} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise StudioError(f"cannot write {v!r} in TOML")


def _toml_key(k: str) -> str:
    return k if _BARE_KEY.match(k) else _toml_str(k)


def toml_table(kind: str, spec: dict[str, Any]) -> str:
    """One ``[[criterion]]`` / ``[[rule]]`` table, settings in a readable order."""
    order = _ORDER[kind]
    keys = sorted(spec, key=lambda k: (order.index(k) if k in order else len(order), k))
    return f"[[{kind}]]\n" + "".join(f"{_toml_key(k)} = {_toml_value(spec[k])}\n" for k in keys)


def version_toml(v: CriterionVersion) -> str:
    """What the editor shows for one version: its table, with its name first."""
    return toml_table(v.kind, {"name": v.name, **v.spec} if v.kind == "criterion" else v.spec)


def export_toml(nb: Notebook, *, include_inactive: bool = False) -> str:
    """The notebook's criteria and rules (the active ones unless ``include_inactive``) as one TOML document
    that ``import`` (and the ``--criteria`` / ``--rules`` options) read back."""
    ensure_defaults(nb)
    parts = [f"# criteria and rules exported from {nb.path.name}\n", f"name = {_toml_str(nb.path.stem)}\n"]
    for kind in ("criterion", "rule"):
        for v in latest_versions(nb, kind, active_only=not include_inactive):
            mark = "" if v.active else "# inactive in the notebook (importing this file makes it active)\n"
            parts.append(f"\n# {v.label}\n{mark}" + version_toml(v))
    return "".join(parts)


def export_file(nb: Notebook, path: str | Path, *, include_inactive: bool = False) -> int:
    """Write :func:`export_toml` to ``path``; returns how many tables it holds."""
    text = export_toml(nb, include_inactive=include_inactive)
    Path(path).write_text(text, encoding="utf-8")
    return text.count("\n[[")


# -- what the CLI and the window list --------------------------------------------------------------


@dataclass(frozen=True)
class CriterionEntry:
    version: CriterionVersion
    trust: Trust | None  # None for rules (code validators need no trust)
    auc: float | None
    kappa: float | None
    threshold: float | None  # the suggested threshold of the latest sanity check

    @property
    def kind(self) -> str:
        return self.version.kind

    @property
    def name(self) -> str:
        return self.version.name

    @property
    def trust_label(self) -> str:
        return "" if self.trust is None else self.trust.label


def criterion_trust(nb: Notebook, v: CriterionVersion) -> tuple[Trust, dict[str, Any]]:
    """The trust state of one criterion version, with the model that scored it (any model before it
    has scores), and the stored sanity result it rests on (empty if none)."""
    model = score_model(nb, f"judge:{v.name}")
    sanity = latest_sanity(nb, v.name, model, v.id)
    return judge_trust(nb, v.name, model, v.id, scored=False), ({} if sanity is None else sanity.result)


def list_entries(nb: Notebook, kind: str | None = None) -> list[CriterionEntry]:
    """Every criterion and rule (newest versions) with its trust state, AUC and kappa."""
    ensure_defaults(nb)
    out = []
    for v in latest_versions(nb, kind):
        if v.kind == "rule":
            out.append(CriterionEntry(v, None, None, None, None))
            continue
        trust, result = criterion_trust(nb, v)
        out.append(CriterionEntry(v, trust, result.get("auc"), result.get("kappa"), result.get("suggested_threshold")))
    return out


def known_criteria(nb: Notebook) -> list[str]:
    """Criterion names in the notebook or behind stored judge scores (criteria from a file)."""
    names = [v.name for v in latest_versions(nb, "criterion")]
    kinds = ("judge", "rubric", "additive")
    scored = [n.removeprefix("judge:") for k in kinds for n in score_names(nb, k)]
    return names + [n for n in scored if n not in names]


def _require_criterion(nb: Notebook, name: str) -> None:
    if name not in known_criteria(nb):
        have = ", ".join(known_criteria(nb)) or "none yet"
        raise StudioError(f"no criterion named {name!r} (criteria: {have})")


def set_trust(nb: Notebook, name: str, trusted: bool | None, reason: str = "", author: str = "user") -> Trust:
    """A person's decision: let ``name``'s judge filter and rank (True), never (False), or follow
    its sanity check again (None). Returns the resulting trust state."""
    _require_criterion(nb, name)
    set_override(nb, name, trusted, author=author, reason=reason)
    return judge_trust(nb, name)


def label_record(nb: Notebook, record_id: int, criterion: str, value: bool | None, author: str = "user") -> None:
    """A person's answer to ``criterion``'s question about one record (None removes it): sanity evidence."""
    nb.record(record_id)  # a clear error for an unknown id
    _require_criterion(nb, criterion)
    set_label(nb, record_id, criterion, value, author)


# -- preview -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    questions: list[str]  # each question (additive: each point) as asked about the record
    prompt: str  # the first request exactly as the judge reads it
    error: str | None = None  # why the question cannot be asked about this record


def preview_criterion(nb: Notebook, c: Criterion, record_id: int) -> Preview:
    """The question(s) rendered for one record and the judge's whole request (the criterion's own layout)."""
    ctx = record_context(nb, record_id)
    subject = Subject(ctx.output, ctx.variables, ctx.prompt)
    asks = list(c.points) if c.type == "additive" else [c.question]
    try:
        questions = [render_question(q, subject) for q in asks]
        req = requests_for(c, record_id, subject, 0)[0]
    except QuestionError as exc:
        return Preview([], "", str(exc))
    prompt = req.raw_prompt if req.raw_prompt is not None else "\n".join(m["content"] for m in req.messages)
    return Preview(questions, prompt)


def preview_text(nb: Notebook, text: str, record_id: int) -> Preview:
    """Preview the first criterion of an editor's TOML text (errors come back as the preview's error)."""
    try:
        constitution, _rules = parse_document(text, "criterion.toml")
    except StudioError as exc:
        return Preview([], "", str(exc))
    if not constitution.criteria:
        return Preview([], "", "a rule has no question to preview")
    return preview_criterion(nb, constitution.criteria[0], record_id)


# -- proposals from a prompt --------------------------------------------------------------------------


def propose_for_prompt(nb: Notebook, prompt_name: str, version: int | None = None) -> list[Proposal]:
    """Yes/no criteria (and word-limit rules) proposed from a notebook prompt's instructions."""
    return propose(nb.prompt_version(prompt_name, version).template)


def proposals_toml(proposals: Sequence[Proposal]) -> str:
    """Proposals as a TOML document to edit and import (each with the sentence it came from)."""
    return "\n".join(f"# from: {' '.join(p.sentence.split())}\n" + toml_table(p.kind, {"name": p.name, **p.spec})
                     for p in proposals)


def save_proposals(nb: Notebook, proposals: Sequence[Proposal]) -> list[CriterionVersion]:
    """Save proposals as new, inactive criteria and rules (a name already taken gets a suffix)."""
    saved = []
    for p in proposals:
        name, n = p.name, 2
        while get_version(nb, p.kind, name) is not None:
            name, n = f"{p.name}-{n}", n + 1
        spec = {"name": name, **p.spec}
        if p.kind == "criterion":
            c = criterion_from_spec(spec, lambda msg: RuleFileError(Path("proposal"), msg))
            saved.append(save_criterion(nb, c, active=False)[0])
        else:
            saved.append(save_rule(nb, make_rule(spec, lambda msg: RuleFileError(Path("proposal"), msg)),
                                   active=False)[0])
    return saved
