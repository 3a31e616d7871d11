"""LLM judges: one question per criterion, answered by reading next-token probabilities.

A yes/no criterion's score is P(yes) / (P(yes) + P(no)) from a single forward
pass: nothing is sampled and no text is parsed. A rubric (1-5) reads the
probabilities of the five digits and stores the expected level; an additive
criterion asks one yes/no question per point and adds up P(yes).

Criteria live in the notebook (``app.quality.criteria``: versioned, active or not)
and are written like a criteria file (TOML or YAML)::

    name = "support-tickets"            # the constitution
    [[criterion]]
    name = "polite"
    question = "Is this text polite?"
    good = ["Thank you for your help."]   # known-good (should be yes)
    bad = ["Fix it now, idiot."]          # known-bad (should be no)

    [[criterion]]
    name = "helpful"
    type = "rubric"
    question = "How helpful is this reply?"
    levels = {1 = "useless", 2 = "vague", 3 = "partly helpful", 4 = "helpful", 5 = "complete and concrete"}

    [[criterion]]
    name = "on-topic"
    question = "Does this text mention {{ input.topic }}?"
    good = [{ output = "My invoice is wrong.", input = { topic = "billing" } }]
    samples = 2

A question (and each additive point) is a Jinja template rendered in the prompts'
sandbox for each record, with ``input`` (the record's input-row variables), ``prompt``
(the rendered prompt) and ``output`` (the text; when it is a JSON object, a prompt with
``output_schema:``, its fields too: ``{{ output.answer }}``). A question without ``{{ output }}``
keeps the plain layout (guidelines, the text, then the question); one with it is the
whole request, so the text sits where the question puts it. A record whose row lacks
a variable the question reads is not judged: its score says why. Known examples are
texts, or tables with the ``input`` (and ``prompt``) a template question reads.

``samples = k`` (1 to 4) averages the score over k wordings of the same request, for a
judge whose single answer is noisy: 1 = the criterion's own layout; 2 = also the other
layout (completion <-> chat); 3 = also the question placed differently (completion:
asked before the text too; chat: only after it); 4 = that placement in the other layout.

A score is only as good as the model's intent to answer: when the answer tokens hold less
than ``MIN_ANSWER_MASS`` of the next-token probability (a reasoning model opening with
``<think>``, a model ignoring the layout), the record's score is stored as *unreliable*: no
value, failed, and a reason naming the share ("unreliable: answer tokens hold only 3% of the
probability ..."). The funnel then drops it with that reason (when the judge filters), so a
guess neither passes nor fails silently, and a person can still accept the record in review.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic

from app.core.errors import StudioError, TemplateError
from app.core.tasks import TaskState
from app.prompts.structured import StructuredText, as_output
from app.prompts.templates import render_string, template_variables
from app.quality.rulefile import RuleFileError, line_of, load_rule_file
from app.quality.validators import output_field_error, template_context
from app.store.criteria import sample_contexts
from app.store.notebook import Notebook
from app.store.scores import Score, save_step_scores
from backends.protocols import ChoiceRequest, Judge, K

YES = ("Yes", " Yes", "yes", " yes", "YES")
NO = ("No", " No", "no", " no", "NO")
LEVELS = tuple(str(i) for i in range(1, 6))
KINDS = ("yes_no", "rubric", "additive")
FORMATS = ("completion", "chat")
MAX_SAMPLES = 4  # wordings of one request (see the module docstring)
QUESTION_NAMES = ("input", "prompt", "output")  # what a question template may read
SETTINGS = ("name", "question", "type", "levels", "points", "good", "bad", "threshold", "format", "invert",
            "guidelines", "samples")
MAX_TEXT_CHARS = 4000  # judge prompts must fit a small context; longer texts are cut (noted in the step)
# Below this share of next-token probability on the answer tokens a score is unreliable (the model meant
# to say something else: a reasoning model's <think>, a wrong layout). Not 0.5: the bundled SmolLM2-135M
# puts only 0.19-0.54 on Yes/No in the default completion layout and still separates texts; a model that
# opens with <think> puts about 0 there.
MIN_ANSWER_MASS = 0.1


@dataclass(frozen=True)
class Subject:
    """What a judge reads about one record: its text, its input row's variables, its rendered prompt."""

    output: str
    input: dict[str, Any] = field(default_factory=dict)
    prompt: str = ""


Example = str | Subject


@dataclass(frozen=True)
class Criterion:
    name: str
    question: str
    type: str = "yes_no"
    levels: dict[int, str] = field(default_factory=dict)
    points: tuple[str, ...] = ()
    good: tuple[Example, ...] = ()
    bad: tuple[Example, ...] = ()
    threshold: float | None = None
    format: str = "completion"
    invert: bool = False  # pass when the answer is No (the score is then P(no))
    guidelines: str = ""  # grading notes shown before every text (a shared prefix: evaluated once per batch)
    samples: int = 1  # wordings averaged (1 = one pass)
    version_id: int | None = None  # the notebook's criteria_versions row it came from (None: a file)

    @property
    def score_name(self) -> str:
        return f"judge:{self.name}"

    @property
    def pass_threshold(self) -> float:
        if self.threshold is not None:
            return self.threshold
        return {"yes_no": 0.5, "rubric": 3.0, "additive": len(self.points) / 2}[self.type]


@dataclass(frozen=True)
class Constitution:
    name: str
    criteria: tuple[Criterion, ...]


# -- reading criteria ------------------------------------------------------------------------------


def _check_question(q: str, what: str, err: Callable[[str], RuleFileError]) -> None:
    try:
        names = template_variables(q)
    except TemplateError as exc:
        raise err(f"{what} is not a valid template: {exc}") from None
    extra = names - set(QUESTION_NAMES)
    if extra:
        raise err(f"{what} uses {', '.join(sorted(extra))}; a question can read input.NAME (the record's input "
                  "row), prompt and output")


def _example(x: Any, key: str, err: Callable[[str], RuleFileError]) -> Example:
    if isinstance(x, str):
        return x
    if isinstance(x, dict):
        extra = set(x) - {"output", "input", "prompt"}
        if extra or not isinstance(x.get("output"), str):
            raise err(f"each of {key} is a text, or a table with output (and input, prompt)")
        if not isinstance(x.get("input", {}), dict) or not isinstance(x.get("prompt", ""), str):
            raise err(f"in {key}, input must be a table of variables and prompt a text")
        return Subject(x["output"], dict(x.get("input", {})), x.get("prompt", ""))
    raise err(f"{key} must be a list of example texts")


def criterion_from_spec(spec: Any, err: Callable[[str], RuleFileError], version_id: int | None = None) -> Criterion:
    """One ``[[criterion]]`` table checked and turned into a :class:`Criterion` (errors through ``err``)."""
    if not isinstance(spec, dict):
        raise err("must be a table of settings")
    extra = set(spec) - set(SETTINGS)
    if extra:
        raise err(f"unknown setting {', '.join(sorted(extra))} (settings: {', '.join(sorted(SETTINGS))})")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise err("needs a name")
    kind = spec.get("type", "yes_no")
    if kind not in KINDS:
        raise err(f"type must be one of {', '.join(KINDS)}, not {kind!r}")
    question = spec.get("question", "")
    if kind != "additive" and (not isinstance(question, str) or not question.strip()):
        raise err("needs a question (one yes/no question, e.g. \"Is this text polite?\")")
    if not isinstance(question, str):
        raise err("question must be text")
    if question.strip():
        _check_question(question, "the question", err)
    levels: dict[int, str] = {}
    if kind == "rubric":
        raw = spec.get("levels") or {}
        try:
            levels = {int(k): str(v) for k, v in raw.items()}
        except (ValueError, AttributeError):
            raise err("levels must map 1..5 to a description of each level") from None
        if sorted(levels) != [1, 2, 3, 4, 5]:
            raise err("a rubric needs a description for each level 1, 2, 3, 4 and 5")
    points: tuple[str, ...] = ()
    if kind == "additive":
        pts = spec.get("points")
        if not isinstance(pts, list) or not pts or not all(isinstance(p, str) for p in pts):
            raise err("an additive criterion needs points: a list of yes/no questions")
        points = tuple(pts)
        for i, p in enumerate(points, 1):
            _check_question(p, f"point {i}", err)
    examples: dict[str, tuple[Example, ...]] = {}
    for key in ("good", "bad"):
        v = spec.get(key, [])
        if not isinstance(v, list):
            raise err(f"{key} must be a list of example texts")
        examples[key] = tuple(_example(x, key, err) for x in v)
    fmt = spec.get("format", "completion")
    if fmt not in FORMATS:
        raise err(f"format must be completion or chat, not {fmt!r}")
    threshold = spec.get("threshold")
    if threshold is not None and (not isinstance(threshold, (int, float)) or isinstance(threshold, bool)):
        raise err("threshold must be a number")
    invert = spec.get("invert", False)
    if not isinstance(invert, bool) or (invert and kind != "yes_no"):
        raise err("invert = true applies to yes/no criteria only")
    guidelines = spec.get("guidelines", "")
    if not isinstance(guidelines, str):
        raise err("guidelines must be text")
    samples = spec.get("samples", 1)
    if not isinstance(samples, int) or isinstance(samples, bool) or not 1 <= samples <= MAX_SAMPLES:
        raise err(f"samples must be a whole number from 1 to {MAX_SAMPLES} (wordings of the question averaged)")
    return Criterion(name=name, question=question, type=kind, levels=levels, points=points,
                     good=examples["good"], bad=examples["bad"], threshold=threshold, format=fmt, invert=invert,
                     guidelines=guidelines.strip(), samples=samples, version_id=version_id)


def criteria_from_data(data: dict[str, Any], text: str, path: Path, *, allow_empty: bool = False) -> Constitution:
    """The criteria of a parsed file (``text`` locates errors by line)."""
    specs = data.get("criterion") or data.get("criteria") or []
    if not isinstance(specs, list) or (not specs and not allow_empty):
        raise RuleFileError(path, "declares no criteria (add [[criterion]] tables with a name and a question)", 1)
    out: list[Criterion] = []
    names: set[str] = set()
    for i, spec in enumerate(specs):
        line = line_of(text, "[[criterion]]" if path.suffix == ".toml" else "name:", i)

        def err(msg: str, _line: int | None = line, _i: int = i) -> RuleFileError:
            return RuleFileError(path, f"criterion {_i + 1}: {msg}", _line)

        c = criterion_from_spec(spec, err)
        if c.name in names:
            raise err(f"two criteria are named {c.name!r}")
        names.add(c.name)
        out.append(c)
    return Constitution(name=str(data.get("name") or path.stem), criteria=tuple(out))


def load_criteria(path: str | Path) -> Constitution:
    path = Path(path)
    data, text = load_rule_file(path)
    return criteria_from_data(data, text, path)


def _example_spec(x: Example) -> str | dict[str, Any]:
    if isinstance(x, str):
        return x
    out: dict[str, Any] = {"output": x.output}
    if x.input:
        out["input"] = dict(x.input)
    if x.prompt:
        out["prompt"] = x.prompt
    return out


def spec_of(c: Criterion) -> dict[str, Any]:
    """The criterion as its ``[[criterion]]`` table, defaults left out (what the notebook stores and exports)."""
    spec: dict[str, Any] = {"name": c.name}
    if c.question:
        spec["question"] = c.question
    if c.type != "yes_no":
        spec["type"] = c.type
    if c.levels:
        spec["levels"] = {str(k): v for k, v in sorted(c.levels.items())}
    if c.points:
        spec["points"] = list(c.points)
    if c.invert:
        spec["invert"] = True
    if c.threshold is not None:
        spec["threshold"] = c.threshold
    if c.format != "completion":
        spec["format"] = c.format
    if c.samples != 1:
        spec["samples"] = c.samples
    if c.guidelines:
        spec["guidelines"] = c.guidelines
    for key, examples in (("good", c.good), ("bad", c.bad)):
        if examples:
            spec[key] = [_example_spec(x) for x in examples]
    return spec


# -- asking ----------------------------------------------------------------------------------------


class QuestionError(StudioError):
    """A question that cannot be asked about one record (its row lacks a variable the question reads)."""


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + " [...]"


def as_subject(x: Example) -> Subject:
    return Subject(x) if isinstance(x, str) else x


def is_template(question: str) -> bool:
    return "{{" in question or "{%" in question


@functools.lru_cache(maxsize=256)
def embeds_output(question: str) -> bool:
    """Whether the question places the text itself (``{{ output }}``) instead of following it."""
    return is_template(question) and "output" in template_variables(question)


def _output(text: str) -> str:
    """The record's output as a question reads it: clipped, and its fields readable when it is a JSON object."""
    out = as_output(text)
    if isinstance(out, StructuredText):  # the fields whole, the text clipped like any other
        return StructuredText(_clip(text), out.fields)
    return _clip(text)


def render_question(question: str, subject: Subject) -> str:
    """The question as asked about ``subject`` (a plain question is returned as it is).

    A question may be about one field of a structured output: ``Is {{ output.answer }} correct
    for {{ input.question }}?`` puts only that field in the request (the rest of the output is
    not shown, as with any question that places ``output`` itself)."""
    if not is_template(question):
        return question
    row = template_context(subject.input, "")["input"]  # input.output of a chained prompt reads fields too
    ctx = {"input": row, "prompt": subject.prompt, "output": _output(subject.output)}
    try:
        return render_string(question, ctx)
    except TemplateError as exc:
        msg = str(exc)
        why = output_field_error(msg, ctx["output"], "output" in template_variables(question))
        if why:
            raise QuestionError(f"the question cannot be asked: {why}") from None
        missing = re.search(r"has no attribute '([^']+)'", msg)
        if missing:
            have = ", ".join(sorted(subject.input)) or "none"
            msg = f"the question reads input.{missing.group(1)}, which this record's input row lacks (its variables: {have})"
        raise QuestionError(msg) from None


def choice_request(key: K, question: str, text: str, fmt: str,
                   choices: tuple[tuple[str, tuple[str, ...]], ...], answer_hint: str,
                   guidelines: str = "", *, other_placement: bool = False,
                   text_in_question: bool = False) -> ChoiceRequest[K]:
    """One question about one text.

    Everything before the text (a criterion's guidelines) is the same for every
    record, so the backend evaluates it once and reuses its KV cache. The question
    comes after the text: asked only before it, the bundled SmolLM2-135M no longer
    separated rude from polite texts in our measurements. The chat layout suits
    instruction-tuned models. ``other_placement`` is the second wording used by
    ``samples``: the completion layout also asks before the text, the chat layout
    only after it. With ``text_in_question`` the (rendered) question already holds the text.
    """
    head = f"{guidelines}\n\n" if guidelines else ""
    if text_in_question:
        lead = f"Answer the question below with {answer_hint}.\n" if other_placement else ""
        if fmt == "completion":
            return ChoiceRequest(key=key, messages=(), choices=choices,
                                 raw_prompt=f"{head}{lead}{question}\nAnswer ({answer_hint}):")
        user = f"{head}{lead}{question}\n\nAnswer {answer_hint}."
        return ChoiceRequest(key=key, messages=({"role": "user", "content": user},), choices=choices)
    text = _clip(text)
    if fmt == "completion":
        ask = f"Question: {question}\n" if other_placement else ""
        raw = f'{head}{ask}Text: "{text}"\nQuestion: {question}\nAnswer ({answer_hint}):'
        return ChoiceRequest(key=key, messages=(), choices=choices, raw_prompt=raw)
    ask = "" if other_placement else f"{question}\n\n"
    user = f'{head}{ask}Text: "{text}"\n\n{question} Answer {answer_hint}.'
    return ChoiceRequest(key=key, messages=({"role": "user", "content": user},), choices=choices)


def requests_for(c: Criterion, key: K, subject: Subject, variant: int,
                 criterion: int = 0) -> list[ChoiceRequest[tuple[K, int, int, int]]]:
    """The requests of one wording (``variant``) of ``c`` about one subject, keyed (key, variant, question,
    ``criterion``: the criterion's index among those judged together); raises QuestionError."""
    yn = (("yes", YES), ("no", NO))
    fmt = c.format if variant % 2 == 0 else next(f for f in FORMATS if f != c.format)
    other = variant >= 2
    Choices = tuple[tuple[str, tuple[str, ...]], ...]
    asks: list[tuple[str, Choices, str, str]]  # (question, choices, answer hint, text after the question)
    if c.type == "additive":
        asks = [(p, yn, "Yes or No", "") for p in c.points]
    elif c.type == "rubric":
        scale = "; ".join(f"{k} = {v}" for k, v in sorted(c.levels.items()))
        digits = tuple((d, (d, " " + d)) for d in LEVELS)
        asks = [(c.question, digits, "1, 2, 3, 4 or 5", f" Rate it from 1 to 5 ({scale}).")]
    else:
        asks = [(c.question, yn, "Yes or No", "")]
    return [choice_request((key, variant, i, criterion), render_question(q, subject) + tail, subject.output, fmt, choices, hint,
                           c.guidelines, other_placement=other, text_in_question=embeds_output(q))
            for i, (q, choices, hint, tail) in enumerate(asks)]


@dataclass
class CriterionScores(Generic[K]):
    """What judging one criterion gave: each item's score, the lowest answer mass over its requests
    (how much next-token probability the answer tokens held), and why an item could not be asked."""

    values: dict[K, float] = field(default_factory=dict)
    masses: dict[K, float] = field(default_factory=dict)
    errors: dict[K, str] = field(default_factory=dict)


def score_criteria(judge: Judge, criteria: Sequence[Criterion], items: Sequence[tuple[K, Example]],
                   task: TaskState | None = None) -> list[CriterionScores[K]]:
    """Every criterion's scores for each item, in one stream of requests: P(yes), expected rubric
    level, or expected points, averaged over the criterion's ``samples`` wordings.

    The records go a chunk at a time, every criterion over the chunk in turn: a layout that puts
    the text before the question (the default, without guidelines) shares the record's tokens, so
    the backend decodes them once and each later question reuses the KV cache of the slot that
    holds the record. A criterion's scores do not depend on the others judged with it."""
    task = task or TaskState()
    out: list[CriterionScores[K]] = [CriterionScores() for _ in criteria]
    n_variants = max((c.samples for c in criteria), default=0)
    # made[variant][criterion]: per record, in record order
    made: list[list[list[list[ChoiceRequest[tuple[K, int, int, int]]]]]] = [
        [[] for _ in criteria] for _ in range(n_variants)]
    for key, item in items:
        subject = as_subject(item)
        for ci, c in enumerate(criteria):
            try:
                wordings = [requests_for(c, key, subject, v, ci) for v in range(c.samples)]
            except QuestionError as exc:
                out[ci].errors[key] = str(exc)
                continue
            for v, asked in enumerate(wordings):
                made[v][ci].append(asked)
    # One wording after the other (requests that share a layout share their prefix); within it, the
    # records a chunk at a time, each criterion over the whole chunk: the backend decodes a batch of
    # `parallel` requests in slots 0..P-1, so a chunk of at most P records (fewer when a criterion
    # asks several questions of each) keeps each record in the same slot from one criterion to the
    # next, and every question after the first decodes only what follows the record's text.
    asks = max((len(asked) for per_v in made for per_c in per_v for asked in per_c), default=1)
    chunk = max(1, int(getattr(judge, "parallel", 0) or len(items) or 1) // asks)
    reqs: list[ChoiceRequest[tuple[K, int, int, int]]] = []
    for per_v in made:
        for start in range(0, max((len(per_c) for per_c in per_v), default=0), chunk):
            for per_c in per_v:
                reqs.extend(r for record in per_c[start : start + chunk] for r in record)
    done = 0
    label = criteria[0].name if len(criteria) == 1 else f"{len(criteria)} criteria"
    for res in judge.choice_probs(reqs, cancel=task):
        key, ci = res.key[0], res.key[3]
        c, acc = criteria[ci], out[ci]
        if c.type == "rubric":
            value = sum(int(label) * p for label, p in res.probs.items())
        else:
            value = res.probs["no"] if c.invert else res.probs["yes"]
        acc.values[key] = acc.values.get(key, 0.0) + value / c.samples
        acc.masses[key] = min(acc.masses.get(key, 1.0), res.mass)
        done += 1
        task.set_progress(done, len(reqs), label)
    task.check()
    return out


def score_subjects(judge: Judge, c: Criterion, items: Sequence[tuple[K, Example]],
                   task: TaskState | None = None, *,
                   masses: dict[K, float] | None = None) -> tuple[dict[K, float], dict[K, str]]:
    """(scores, reasons it could not ask) for each item on one criterion (:func:`score_criteria`).
    ``masses``, when given, receives each item's lowest answer mass over its requests."""
    got = score_criteria(judge, [c], items, task)[0]
    if masses is not None:
        masses.update(got.masses)
    return got.values, got.errors


def score_texts(judge: Judge, c: Criterion, texts: Sequence[tuple[K, Example]],
                task: TaskState | None = None) -> dict[K, float]:
    """The criterion's score for each text (or :class:`Subject`); a question it cannot ask is an error."""
    values, errors = score_subjects(judge, c, texts, task)
    if errors:
        key, why = next(iter(errors.items()))
        raise QuestionError(f"{c.name}: cannot ask about {key!r}: {why}")
    return values


def judge_notebook(nb: Notebook, judge: Judge, constitution: Constitution | None = None,
                   task: TaskState | None = None, source: str = "",
                   record_ids: Sequence[int] | None = None) -> dict[str, tuple[int, int]]:
    """Score every sample (or those in ``record_ids``) on every criterion; returns {criterion: (passed, failed)}.

    Without a ``constitution`` the notebook's active criteria are used (the bundled
    defaults are imported into a notebook that has none yet).
    """
    task = task or TaskState()
    if constitution is None:
        from app.quality.criteria import notebook_constitution  # criteria.py builds on this module

        constitution = notebook_constitution(nb)
        source = source or "notebook"
    require_criteria(constitution)
    items = [(s.record_id, Subject(s.output, s.variables, s.prompt)) for s in sample_contexts(nb, record_ids)]
    criteria = constitution.criteria
    results = score_criteria(judge, criteria, items, task)  # all criteria in one pass over the records
    counts: dict[str, tuple[int, int]] = {}
    for c, got in zip(criteria, results):
        t = c.pass_threshold
        kind = "judge" if c.type == "yes_no" else c.type
        # An answer the model hardly meant to give (a reasoning model opening with <think>) fails with the
        # reason instead of passing or failing silently; value None keeps it off score axes and stats.
        low = {rid: got.masses[rid] for rid in got.values if got.masses.get(rid, 1.0) < MIN_ANSWER_MASS}
        scores = [Score(rid, c.score_name, kind, None, False, unreliable_reason(low[rid], v, t), judge.info.sha256,
                        c.version_id) for rid, v in got.values.items() if rid in low]
        values = {rid: v for rid, v in got.values.items() if rid not in low}
        scores += [Score(rid, c.score_name, kind, v, v >= t, f"{v:.3f} vs threshold {t:g}", judge.info.sha256,
                         c.version_id) for rid, v in values.items()]
        scores += [Score(rid, c.score_name, kind, None, False, f"not judged: {why}", judge.info.sha256, c.version_id)
                   for rid, why in got.errors.items()]
        save_step_scores(nb, "judge", c.name, {"constitution": constitution.name, "source": source,
                                               "criterion": spec_of(c), "criterion_version_id": c.version_id},
                         scores, judge.info.sha256)
        passed = sum(v >= t for v in values.values())
        counts[c.name] = (passed, len(values) + len(low) + len(got.errors) - passed)
    return counts


def unreliable_reason(mass: float, value: float, threshold: float) -> str:
    """Why a score was not trusted: the answer tokens held too little of the next-token probability."""
    return (f"unreliable: answer tokens hold only {mass:.0%} of the probability (below {MIN_ANSWER_MASS:.0%}; "
            f"it would score {value:.3f} vs threshold {threshold:g})")


def require_criteria(c: Constitution) -> None:
    if not c.criteria:
        raise StudioError("no criteria to judge (add one with `synth-studio criteria add`, or activate one)")
