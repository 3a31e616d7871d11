"""Heuristic scorers: cheap numeric signals of reasoning structure."""

from __future__ import annotations

import re

_STEP = re.compile(
    r"(?im)^\s*(?:step\s*\d+|\d+[.)])\s+|\b(?:first(?:ly)?|second(?:ly)?|third(?:ly)?|then|next|finally|after that)\b"
)
_EXPLAIN = re.compile(r"(?i)\b(?:because|since|this means|therefore|so that|which means|as a result|due to)\b")


def step_indicators(text: str) -> int:
    """Numbered steps and sequencing words ("first", "then", "finally")."""
    return len(_STEP.findall(text))


def explanation_phrases(text: str) -> int:
    """Phrases that give a reason ("because", "since", "this means")."""
    return len(_EXPLAIN.findall(text))


SCORERS = {"steps": step_indicators, "explanations": explanation_phrases}
