"""LLM judges: one question per criterion, answered by reading next-token probabilities.

A yes/no criterion's score is P(yes) / (P(yes) + P(no)) from a single forward
pass: nothing is sampled and no text is parsed. A rubric (1-5) reads the
probabilities of the five digits and stores the expected level; an additive
criterion asks one yes/no question per point and adds up P(yes).

Criteria file (TOML or YAML)::

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
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.errors import StudioError
from app.core.tasks import TaskState
from app.quality.rulefile import RuleFileError, line_of, load_rule_file
from app.store.notebook import Notebook
from app.store.records import samples_with_status
from app.store.scores import Score, add_step, sample_texts, save_scores
from backends.protocols import ChoiceRequest, Judge

YES = ("Yes", " Yes", "yes", " yes", "YES")
NO = ("No", " No", "no", " no", "NO")
LEVELS = tuple(str(i) for i in range(1, 6))
KINDS = ("yes_no", "rubric", "additive")
FORMATS = ("completion", "chat")
MAX_TEXT_CHARS = 4000  # judge prompts must fit a small context; longer texts are cut (noted in the step)


@dataclass(frozen=True)
class Criterion:
    name: str
    question: str
    type: str = "yes_no"
    levels: dict[int, str] = field(default_factory=dict)
    points: tuple[str, ...] = ()
    good: tuple[str, ...] = ()
    bad: tuple[str, ...] = ()
    threshold: float | None = None
    format: str = "completion"
    invert: bool = False  # pass when the answer is No (the score is then P(no))
    guidelines: str = ""  # grading notes shown before every text (a shared prefix: evaluated once per batch)

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


def load_criteria(path: str | Path) -> Constitution:
    path = Path(path)
    data, text = load_rule_file(path)
    specs = data.get("criterion") or data.get("criteria")
    if not isinstance(specs, list) or not specs:
        raise RuleFileError(path, "declares no criteria (add [[criterion]] tables with a name and a question)", 1)
    out, names = [], set()
    for i, spec in enumerate(specs):
        line = line_of(text, "[[criterion]]" if path.suffix == ".toml" else "name:", i)

        def err(msg: str, _line: int | None = line, _i: int = i) -> RuleFileError:
            return RuleFileError(path, f"criterion {_i + 1}: {msg}", _line)

        if not isinstance(spec, dict):
            raise err("must be a table of settings")
        known = {"name", "question", "type", "levels", "points", "good", "bad", "threshold", "format", "invert",
                 "guidelines"}
        extra = set(spec) - known
        if extra:
            raise err(f"unknown setting {', '.join(sorted(extra))} (settings: {', '.join(sorted(known))})")
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip():
            raise err("needs a name")
        if name in names:
            raise err(f"two criteria are named {name!r}")
        names.add(name)
        kind = spec.get("type", "yes_no")
        if kind not in KINDS:
            raise err(f"type must be one of {', '.join(KINDS)}, not {kind!r}")
        question = spec.get("question", "")
        if kind != "additive" and (not isinstance(question, str) or not question.strip()):
            raise err("needs a question (one yes/no question, e.g. \"Is this text polite?\")")
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
        for key in ("good", "bad"):
            v = spec.get(key, [])
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise err(f"{key} must be a list of example texts")
        fmt = spec.get("format", "completion")
        if fmt not in FORMATS:
            raise err(f"format must be completion or chat, not {fmt!r}")
        threshold = spec.get("threshold")
        if threshold is not None and not isinstance(threshold, (int, float)):
            raise err("threshold must be a number")
        invert = spec.get("invert", False)
        if not isinstance(invert, bool) or (invert and kind != "yes_no"):
            raise err("invert = true applies to yes/no criteria only")
        guidelines = spec.get("guidelines", "")
        if not isinstance(guidelines, str):
            raise err("guidelines must be text")
        out.append(Criterion(name=name, question=str(question), type=kind, levels=levels, points=points,
                             good=tuple(spec.get("good", [])), bad=tuple(spec.get("bad", [])),
                             threshold=threshold, format=fmt, invert=invert, guidelines=guidelines.strip()))
    return Constitution(name=str(data.get("name") or path.stem), criteria=tuple(out))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + " [...]"


def choice_request(key: Hashable, question: str, text: str, fmt: str,
                   choices: tuple[tuple[str, tuple[str, ...]], ...], answer_hint: str,
                   guidelines: str = "") -> ChoiceRequest:
    """One question about one text.

    Everything before the text (a criterion's guidelines) is the same for every
    record, so the backend evaluates it once and reuses its KV cache. The question
    comes after the text: asked before it, the bundled SmolLM2-135M no longer
    separated rude from polite texts in our measurements. The chat layout suits
    instruction-tuned models.
    """
    text = _clip(text)
    head = f"{guidelines}\n\n" if guidelines else ""
    if fmt == "completion":
        raw = f'{head}Text: "{text}"\nQuestion: {question}\nAnswer ({answer_hint}):'
        return ChoiceRequest(key=key, messages=(), choices=choices, raw_prompt=raw)
    user = f'{head}{question}\n\nText: "{text}"\n\n{question} Answer {answer_hint}.'
    return ChoiceRequest(key=key, messages=({"role": "user", "content": user},), choices=choices)


def _requests(c: Criterion, key: Hashable, text: str) -> list[ChoiceRequest]:
    yn = (("yes", YES), ("no", NO))
    if c.type == "yes_no":
        return [choice_request((key, 0), c.question, text, c.format, yn, "Yes or No", c.guidelines)]
    if c.type == "rubric":
        scale = "; ".join(f"{k} = {v}" for k, v in sorted(c.levels.items()))
        q = f"{c.question} Rate it from 1 to 5 ({scale})."
        choices = tuple((d, (d, " " + d)) for d in LEVELS)
        return [choice_request((key, 0), q, text, c.format, choices, "1, 2, 3, 4 or 5", c.guidelines)]
    return [choice_request((key, i), p, text, c.format, yn, "Yes or No", c.guidelines) for i, p in enumerate(c.points)]


def score_texts(judge: Judge, c: Criterion, texts: Sequence[tuple[Hashable, str]],
                task: TaskState | None = None) -> dict[Hashable, float]:
    """The criterion's score for each text: P(yes), expected rubric level, or expected points."""
    task = task or TaskState()
    reqs = [r for key, text in texts for r in _requests(c, key, text)]
    acc: dict[Hashable, float] = {}
    done = 0
    for res in judge.choice_probs(reqs, cancel=task):
        key, _part = res.key
        if c.type == "rubric":
            value = sum(int(label) * p for label, p in res.probs.items())
        else:
            value = res.probs["no"] if c.invert else res.probs["yes"]
        acc[key] = acc.get(key, 0.0) + value
        done += 1
        task.set_progress(done, len(reqs), c.name)
    task.check()
    return acc


def judge_notebook(nb: Notebook, judge: Judge, constitution: Constitution,
                   task: TaskState | None = None, source: str = "",
                   record_ids: Sequence[int] | None = None) -> dict[str, tuple[int, int]]:
    """Score every sample (or those in ``record_ids``) on every criterion; returns {criterion: (passed, failed)}."""
    task = task or TaskState()
    items = [(rid, text) for rid, text, _ in sample_texts(nb, record_ids)]
    counts: dict[str, tuple[int, int]] = {}
    for c in constitution.criteria:
        step = add_step(nb, "judge", c.name, {"constitution": constitution.name, "source": source,
                                              "criterion": c.__dict__ | {"levels": c.levels}},
                        judge.info.sha256)
        values = score_texts(judge, c, items, task)
        t = c.pass_threshold
        save_scores(nb, [Score(rid, c.score_name, "judge" if c.type == "yes_no" else c.type, v, v >= t,
                               f"{v:.3f} vs threshold {t:g}", judge.info.sha256) for rid, v in values.items()], step)
        passed = sum(v >= t for v in values.values())
        counts[c.name] = (passed, len(values) - passed)
    return counts


# -- sanity checks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SanityReport:
    criterion: str
    n_good: int
    n_bad: int
    auc: float | None  # P(score of a good example > score of a bad one); 0.5 = chance
    accuracy: float | None  # at the criterion's pass threshold
    p_value: float | None  # one-sided: could a judge at chance rank this well?
    suggested_threshold: float | None  # the cut that best separates these examples
    flagged: bool
    verdict: str
    details: list[dict[str, Any]] = field(default_factory=list)


def _auc(good: list[float], bad: list[float]) -> float:
    wins = sum((g > b) + 0.5 * (g == b) for g in good for b in bad)
    return wins / (len(good) * len(bad))


def rank_test_p_value(good: list[float], bad: list[float], max_exact: int = 20000) -> float:
    """One-sided Mann-Whitney p-value that good examples score higher than bad ones by chance alone."""
    import itertools
    import math

    import numpy as np

    n1, n2 = len(good), len(bad)
    u_obs = _auc(good, bad) * n1 * n2
    pooled = np.array(good + bad, dtype=float)
    if math.comb(n1 + n2, n1) <= max_exact:
        total = hits = 0
        for idx in itertools.combinations(range(n1 + n2), n1):
            mask = np.zeros(n1 + n2, bool)
            mask[list(idx)] = True
            u = _auc(list(pooled[mask]), list(pooled[~mask])) * n1 * n2
            hits += u >= u_obs - 1e-9
            total += 1
        return hits / total
    mu, sd = n1 * n2 / 2, math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    z = (u_obs - mu - 0.5) / sd
    return 0.5 * math.erfc(z / math.sqrt(2))


def sanity_check(judge: Judge, c: Criterion, extra_good: Iterable[tuple[str, str]] = (),
                 extra_bad: Iterable[tuple[str, str]] = (), alpha: float = 0.1,
                 task: TaskState | None = None) -> SanityReport:
    """How well the judge separates known-good from known-bad examples of one criterion.

    ``extra_good``/``extra_bad`` are (source, text) pairs, e.g. the user's accepted and
    rejected records. A criterion is flagged when its judge is not shown to beat chance.
    """
    good = [("example", t) for t in c.good] + list(extra_good)
    bad = [("example", t) for t in c.bad] + list(extra_bad)
    if len(good) < 2 or len(bad) < 2:
        return SanityReport(c.name, len(good), len(bad), None, None, None, None, True,
                            "unchecked: needs at least 2 good and 2 bad examples (add good = [...] and bad = [...])")
    texts = [(("g", i), t) for i, (_, t) in enumerate(good)] + [(("b", i), t) for i, (_, t) in enumerate(bad)]
    scores = score_texts(judge, c, texts, task)
    gs = [scores[("g", i)] for i in range(len(good))]
    bs = [scores[("b", i)] for i in range(len(bad))]
    auc = _auc(gs, bs)
    t = c.pass_threshold
    acc = (sum(g >= t for g in gs) + sum(b < t for b in bs)) / (len(gs) + len(bs))
    p = rank_test_p_value(gs, bs)
    suggested = _best_threshold(gs, bs)
    flagged = p >= alpha
    if flagged:
        verdict = (f"no better than chance (AUC {auc:.2f}, p = {p:.2f}): do not trust this judge; "
                   "rephrase the question, add examples, or use a bigger model")
    else:
        verdict = f"better than chance (AUC {auc:.2f}, p = {p:.3f}, accuracy {acc:.0%} at {t:g})"
        if suggested is not None and abs(suggested - t) > 1e-9:
            verdict += f"; these examples separate best at threshold = {suggested:.3g}"
    details = ([{"label": "good", "source": s, "score": v, "text": txt} for (s, txt), v in zip(good, gs)]
               + [{"label": "bad", "source": s, "score": v, "text": txt} for (s, txt), v in zip(bad, bs)])
    return SanityReport(c.name, len(good), len(bad), auc, acc, p, suggested, flagged, verdict, details)


def _best_threshold(good: list[float], bad: list[float]) -> float | None:
    """Midpoint cut with the best accuracy on the examples (ties: the most central)."""
    values = sorted(set(good + bad))
    if len(values) < 2:
        return None
    best, best_acc = None, -1.0
    for lo, hi in zip(values, values[1:]):
        cut = (lo + hi) / 2
        acc = (sum(g >= cut for g in good) + sum(b < cut for b in bad)) / (len(good) + len(bad))
        if acc > best_acc + 1e-12:
            best, best_acc = cut, acc
    return best


def user_labels(nb: Notebook, limit: int = 50) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The user's accepted / rejected samples, used as extra good / bad examples."""
    def fetch(status: str) -> list[tuple[str, str]]:
        return [(f"record {rid}", output) for rid, output in samples_with_status(nb, status, limit)]
    return fetch("accepted"), fetch("rejected")


def sanity_notebook(nb: Notebook, judge: Judge, constitution: Constitution,
                    task: TaskState | None = None) -> list[SanityReport]:
    good, bad = user_labels(nb)
    reports = [sanity_check(judge, c, good, bad, task=task) for c in constitution.criteria]
    add_step(nb, "sanity", constitution.name,
             {r.criterion: {"auc": r.auc, "p": r.p_value, "flagged": r.flagged} for r in reports},
             judge.info.sha256)
    return reports


def require_criteria(c: Constitution) -> None:
    if not c.criteria:
        raise StudioError("no criteria to judge")
