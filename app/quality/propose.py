"""Criteria proposed from a prompt template's own instructions (no model: plain rules on the text).

The template body is split into sentences; the ones that instruct ("Write ...", "Mention ...",
"Do not ...", "Avoid ...", "... must/should ...", "... under 120 words") each become a yes/no
question with a name. A row variable in the sentence becomes ``{{ input.NAME }}`` so the
question is asked about each record's own row; helpers and front-matter lists (``persona``,
``sample(details, 2)``) become words, since a record does not keep what they drew. A word
limit also becomes a length rule, which counts better than a small judge. The person edits
the proposals before they are used: the CLI and the window save them inactive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from app.prompts.templates import PromptTemplate, parse_template

# an imperative's first word -> how its question starts ("Is this text ..." or "Does this text <verb> ...")
_IS_VERBS = {"write", "be", "sound", "stay", "remain"}
_VERBS = _IS_VERBS | {
    "mention", "include", "use", "keep", "avoid", "start", "begin", "end", "finish", "close", "answer", "explain",
    "list", "describe", "ask", "give", "add", "make", "provide", "state", "respond", "reply", "refer", "cite",
    "quote", "address", "focus", "limit", "format", "sign", "apologize", "apologise", "thank", "name", "summarize",
    "summarise", "return", "output", "offer", "suggest", "show", "express", "stick", "ensure", "follow", "reference",
    "contain", "greet", "acknowledge", "write",
}
_LEADS = ("please ", "always ", "also ", "then ", "finally ", "and ")
_NEGATIONS = ("do not ", "don't ", "never ", "dont ")
_MODAL = re.compile(r"\b(?:must|should|shall|needs? to|has to|have to)(\s+not|n't)?\s+(.+)$", re.I)
_WORD_LIMIT = re.compile(r"\b(under|at most|no more than|fewer than|less than|maximum of|up to|at least|"
                         r"no fewer than|more than|over)\s+(\d+)\s+words\b", re.I)
_STOP = {"a", "an", "the", "this", "that", "it", "its", "of", "for", "to", "in", "on", "and", "or", "by", "with",
         "only", "your", "you", "their", "them", "is", "be", "as", "at", "from", "text", "reply", "words", "write",
         "what", "which", "prompt", "asked", "does", "do", "not", "keep", "make", "sure"}
_PROVIDED = {"persona", "context", "glossary", "examples", "sample", "pick", "few_shot", "glossary_block"}


@dataclass(frozen=True)
class Proposal:
    kind: str  # criterion | rule
    name: str
    spec: dict[str, Any]  # the [[criterion]] / [[rule]] table (without name)
    sentence: str  # the instruction it came from, as written in the template


def _protect(body: str) -> tuple[str, list[str]]:
    """Body with comments and tags removed and each ``{{ expression }}`` replaced by a marker."""
    body = re.sub(r"\{#.*?#\}", " ", body, flags=re.S)
    body = re.sub(r"\{%.*?%\}", " ", body, flags=re.S)
    exprs: list[str] = []

    def keep(m: re.Match[str]) -> str:
        exprs.append(m.group(1).strip())
        return f"\x00{len(exprs) - 1}\x00"

    return re.sub(r"\{\{(.*?)\}\}", keep, body, flags=re.S), exprs


def instruction_sentences(body: str) -> list[tuple[str, list[str]]]:
    """The body's sentences with expressions as markers: (sentence, expressions)."""
    text, exprs = _protect(body)
    items: list[str] = []
    current: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        bullet = re.match(r"^(?:[-*+•]|\d+[.)])\s+", line)
        if not line or bullet:
            if current:
                items.append(" ".join(current))
            current = []
            if bullet:
                line = line[bullet.end():]
        if line:
            current.append(line)
    if current:
        items.append(" ".join(current))
    sentences = [s.strip() for item in items for s in re.split(r"(?<=[.!?])\s+", item) if s.strip()]
    return [(s, exprs) for s in sentences]


def _phrase(expr: str, pt: PromptTemplate) -> str:
    """An expression as it reads in a question: a row variable stays a variable, anything else becomes words."""
    if re.fullmatch(r"[A-Za-z_]\w*", expr) and expr not in _PROVIDED and expr not in pt.lists:
        return "{{ input." + expr + " }}"
    names = [n for n in re.findall(r"[A-Za-z_]\w*", expr) if n in pt.lists or n in _PROVIDED - {"sample", "pick"}]
    return f"the {names[0].replace('_', ' ')} the prompt asked for" if names else "what the prompt asked for"


def _restore(s: str, exprs: list[str], pt: PromptTemplate) -> str:
    return re.sub(r"\x00(\d+)\x00", lambda m: _phrase(exprs[int(m.group(1))], pt), s)


def _as_written(s: str, exprs: list[str]) -> str:
    return re.sub(r"\x00(\d+)\x00", lambda m: "{{ " + exprs[int(m.group(1))] + " }}", s)


def _question(s: str) -> tuple[str, bool] | None:
    """(question, invert) for an instruction sentence, or None when it does not instruct."""
    body = s.rstrip(".!?;: ").strip()
    low = body.lower()
    for lead in _LEADS:
        if low.startswith(lead):
            body, low = body[len(lead):], low[len(lead):]
    for neg in _NEGATIONS:
        if low.startswith(neg):
            rest = body[len(neg):]
            return (f"Is this text {rest[3:]}?" if rest.lower().startswith("be ") else f"Does this text {rest}?"), True
    first = low.split(" ", 1)[0]
    rest = body[len(first):].strip()
    if first in _VERBS and rest:
        if first in _IS_VERBS:
            return f"Is this text {rest}?", False
        if first == "keep":
            m = re.match(r"(?:it|the (?:reply|answer|text|response|ticket)|your (?:reply|answer|response))\s+(.+)",
                         rest, re.I)
            if m:
                return f"Is this text {m.group(1)}?", False
        if first in ("make", "ensure") and re.match(r"(?:sure\s+)?(?:that\s+)?", rest, re.I):
            rest = re.sub(r"^(?:sure\s+)?(?:that\s+)?", "", rest, flags=re.I)
            return f"Is it true of this text that {rest}?", False
        return f"Does this text {first} {rest}?", False
    m = _MODAL.search(body)
    if m:
        rest, negated = m.group(2), bool(m.group(1))
        if rest.lower().startswith("be "):
            return f"Is this text {rest[3:]}?", negated
        return f"Does this text {rest}?", negated
    if _WORD_LIMIT.search(body):
        limit = _WORD_LIMIT.search(body)
        assert limit is not None
        return f"Is this text {limit.group(0)}?", False
    return None


def _slug(question: str, invert: bool) -> str:
    plain = re.sub(r"\{\{.*?\}\}|'s\b", " ", question.lower())
    words = [w for w in re.findall(r"[a-z0-9]+", plain) if w not in _STOP]
    words = [w for w in words if w not in ("is", "does", "this")][:3]
    return ("no-" if invert else "") + ("-".join(words) or "instruction")


def propose(template_text: str) -> list[Proposal]:
    """Yes/no criteria (and word-limit rules) from a template's instruction sentences, in order."""
    pt = parse_template(template_text)
    out: list[Proposal] = []
    names: set[str] = set()

    def unique(name: str) -> str:
        base, n = name, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.add(name)
        return name

    for sentence, exprs in instruction_sentences(pt.body):
        asked = _question(sentence)
        if asked is None:
            continue
        question, invert = asked
        question = _restore(question, exprs, pt)
        written = _as_written(sentence, exprs)
        spec: dict[str, Any] = {"question": question}
        if invert:
            spec["invert"] = True
        out.append(Proposal("criterion", unique(_slug(question, invert)), spec, written))
        limit = _WORD_LIMIT.search(sentence)
        if limit:
            n = int(limit.group(2))
            bound = "min" if limit.group(1).lower() in ("at least", "no fewer than", "more than", "over") else "max"
            out.append(Proposal("rule", unique(f"{bound}-words"), {"type": "length", "unit": "words", bound: n},
                                written))
    return out
