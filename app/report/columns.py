"""Column shapes, as SDMetrics' Quality Report measures them, and the text fields' words.

- a **numeric** column scores ``1 - KS`` (KSComplement: one minus the two-sample
  Kolmogorov-Smirnov statistic, the largest gap between the two empirical CDFs);
- a **categorical** column scores ``1 - TVD`` (TVComplement: one minus the total variation
  distance between the two category frequency distributions, a missing value counting as a
  category of its own);
- a **text** field (the output, and any input column of free text) is measured by its length in
  words and in tokens (each a numeric column scored as above), its vocabulary and its top 1-2-grams.

A record's columns are its variables and, when its output is a JSON object (a prompt's
``output_schema``), that object's fields (``record_columns``): a synthetic table generated
as JSON rows is compared column by column with a real table (``column_shapes``).

Tokens here are words and punctuation marks (one regular expression, the same for real and
synthetic text): model tokens are only known for generated records, never for real ones.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.core.tasks import TaskState
from app.map.projection import STOPWORDS
from app.prompts.structured import FIELD_PREFIX, parse_output

WORD = re.compile(r"\w+(?:['’-]\w+)*")
TOKEN = re.compile(r"\w+|[^\w\s]")
MISSING = "(missing)"
TEXT_MIN_WORDS = 5  # an input column of values this long (mean words) is free text, not categories
IDENTIFIER_SHARE, IDENTIFIER_MIN_ROWS = 0.9, 20  # ... and one with a value of its own per row is an id


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def count_tokens(text: str) -> int:
    return len(TOKEN.findall(text))


def tvd_similarity(real: Sequence[Hashable], synthetic: Sequence[Hashable]) -> float:
    """1 - total variation distance between the category frequencies of two samples (TVComplement)."""
    if not real or not synthetic:
        return 0.0
    p, q = Counter(real), Counter(synthetic)
    n, m = len(real), len(synthetic)
    tvd = 0.5 * sum(abs(p[c] / n - q[c] / m) for c in p.keys() | q.keys())
    return float(min(1.0, max(0.0, 1.0 - tvd)))


def frequency_similarity(p: Counter[Any], q: Counter[Any]) -> float:
    """1 - total variation distance between two frequency tables (e.g. of n-grams)."""
    n, m = sum(p.values()), sum(q.values())
    if not n or not m:
        return 1.0 if n == m else 0.0
    tvd = 0.5 * sum(abs(p[c] / n - q[c] / m) for c in p.keys() | q.keys())
    return float(min(1.0, max(0.0, 1.0 - tvd)))


def ks_similarity(real: Sequence[float], synthetic: Sequence[float]) -> float:
    """1 - the two-sample Kolmogorov-Smirnov statistic (KSComplement)."""
    from scipy.stats import ks_2samp

    if len(real) == 0 or len(synthetic) == 0:
        return 0.0
    stat = ks_2samp(np.asarray(real, float), np.asarray(synthetic, float)).statistic
    return float(min(1.0, max(0.0, 1.0 - float(stat))))


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _category(v: Any) -> str:
    if v is None or v == "":
        return MISSING
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


def column_kind(values: Sequence[Any]) -> str:
    """``numeric``, ``categorical``, ``text``, ``identifier`` or ``empty`` for an input column's values
    (both sets together).

    Short values are categories however many there are (a topic column), unless nearly every
    row has its own (an id or a name: comparing those distributions says nothing).
    """
    present = [v for v in values if v is not None and v != ""]
    if not present:
        return "empty"
    if all(_number(v) is not None for v in present):
        return "numeric"
    texts = [_category(v) for v in present]
    if sum(len(words(t)) for t in texts) / len(texts) >= TEXT_MIN_WORDS:
        return "text"
    if len(texts) >= IDENTIFIER_MIN_ROWS and len(set(texts)) >= IDENTIFIER_SHARE * len(texts):
        return "identifier"
    return "categorical"


@dataclass(frozen=True)
class ColumnShape:
    """One column's two distributions compared: one row of the column-shape table."""

    column: str
    kind: str  # numeric | categorical
    metric: str  # KSComplement | TVComplement
    score: float
    real: str  # a short summary of the real distribution
    synthetic: str
    real_values: Sequence[Any] = field(default=(), repr=False, compare=False)  # for the plots
    synthetic_values: Sequence[Any] = field(default=(), repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "kind": self.kind, "metric": self.metric, "score": self.score,
                "real": self.real, "synthetic": self.synthetic}


def _numeric_summary(x: Sequence[float]) -> str:
    if len(x) == 0:
        return "no values"
    a = np.asarray(x, float)
    return f"mean {a.mean():.3g}, median {np.median(a):.3g}, p10-p90 {np.percentile(a, 10):.3g}-{np.percentile(a, 90):.3g}"


def _categorical_summary(x: Sequence[str], top: int = 3) -> str:
    if not x:
        return "no values"
    c = Counter(x)
    head = ", ".join(f"{k} {v / len(x):.0%}" for k, v in c.most_common(top))
    return f"{len(c)} {'category' if len(c) == 1 else 'categories'}: {head}{', …' if len(c) > top else ''}"


def numeric_shape(column: str, real: Sequence[float], synthetic: Sequence[float]) -> ColumnShape:
    return ColumnShape(column, "numeric", "KSComplement", ks_similarity(real, synthetic),
                       _numeric_summary(real), _numeric_summary(synthetic), real, synthetic)


def categorical_shape(column: str, real: Sequence[str], synthetic: Sequence[str]) -> ColumnShape:
    return ColumnShape(column, "categorical", "TVComplement", tvd_similarity(real, synthetic),
                       _categorical_summary(real), _categorical_summary(synthetic), real, synthetic)


@dataclass
class TextSide:
    """One set's text in one field."""

    count: int
    words: list[int]  # per record
    tokens: list[int]
    vocabulary: int  # distinct words
    unigrams: Counter[str] = field(repr=False)
    bigrams: Counter[tuple[str, str]] = field(repr=False)

    def top_unigrams(self, n: int) -> list[tuple[str, int]]:
        """The most frequent words, stopwords left out."""
        return [(w, c) for w, c in self.unigrams.most_common(n + len(STOPWORDS)) if w not in STOPWORDS][:n]

    def top_bigrams(self, n: int) -> list[tuple[str, int]]:
        """The most frequent word pairs, pairs of two stopwords left out."""
        out = [(f"{a} {b}", c) for (a, b), c in self.bigrams.most_common(n + 200)
               if not (a in STOPWORDS and b in STOPWORDS)]
        return out[:n]

    def to_dict(self, top: int) -> dict[str, Any]:
        w = np.asarray(self.words or [0], float)
        t = np.asarray(self.tokens or [0], float)
        return {"records": self.count, "mean_words": float(w.mean()), "median_words": float(np.median(w)),
                "mean_tokens": float(t.mean()), "vocabulary": self.vocabulary,
                "top_unigrams": self.top_unigrams(top), "top_bigrams": self.top_bigrams(top)}


def text_side(texts: Sequence[str]) -> TextSide:
    uni: Counter[str] = Counter()
    bi: Counter[tuple[str, str]] = Counter()
    n_words, n_tokens = [], []
    for t in texts:
        ws = words(t)
        n_words.append(len(ws))
        n_tokens.append(count_tokens(t))
        uni.update(ws)
        bi.update(zip(ws, ws[1:]))
    return TextSide(len(texts), n_words, n_tokens, len(uni), uni, bi)


@dataclass
class TextField:
    """A text field (the output, or an input column of free text) in both sets."""

    name: str
    real: TextSide
    synthetic: TextSide

    @property
    def ngram_similarity(self) -> float:
        """Mean of 1 - TVD over the word and the word-pair frequency distributions."""
        return (frequency_similarity(self.real.unigrams, self.synthetic.unigrams)
                + frequency_similarity(self.real.bigrams, self.synthetic.bigrams)) / 2

    @property
    def shared_vocabulary(self) -> float:
        """The share of the synthetic text's words (occurrences) that real text uses too."""
        total = sum(self.synthetic.unigrams.values())
        if not total:
            return 0.0
        return sum(c for w, c in self.synthetic.unigrams.items() if w in self.real.unigrams) / total

    def shapes(self) -> list[ColumnShape]:
        return [numeric_shape(f"{self.name} · words", self.real.words, self.synthetic.words),
                numeric_shape(f"{self.name} · tokens", self.real.tokens, self.synthetic.tokens)]

    def to_dict(self, top: int) -> dict[str, Any]:
        return {"field": self.name, "ngram_similarity": self.ngram_similarity,
                "shared_vocabulary": self.shared_vocabulary,
                "real": self.real.to_dict(top), "synthetic": self.synthetic.to_dict(top)}


def record_columns(output: str | None, variables: dict[str, Any]) -> dict[str, Any]:
    """A record as a table row: its variables and, when its output is a JSON object (a prompt's
    ``output_schema``), the object's fields (a field wins over a variable of the same name)."""
    return {**variables, **(parse_output(output) or {})}


def compare_columns(real: Sequence[tuple[str, dict[str, Any]]], synthetic: Sequence[tuple[str, dict[str, Any]]],
                    task: TaskState | None = None, *, output_fields: Collection[str] = ()
                    ) -> tuple[list[TextField], list[ColumnShape], list[str]]:
    """(text fields, column shapes, notes) for two sets of (output, columns); ``task`` is checked
    for a cancel between columns. A column named in ``output_fields`` is a structured output's
    field (labelled ``output.<name>``, see :func:`record_columns`), any other an input column
    (``variables.<name>``).

    Columns present in only one set are listed in the notes, not scored (as SDMetrics needs
    one metadata for both tables).
    """
    fields = [TextField("output", text_side([o for o, _ in real]), text_side([o for o, _ in synthetic]))]
    more, shapes, notes = column_shapes(
        [v for _, v in real], [v for _, v in synthetic], task,
        label=lambda col: f"{FIELD_PREFIX}{col}" if col in output_fields else f"variables.{col}")
    fields += more
    text_shapes = [sh for f in fields if f.real.count and f.synthetic.count for sh in f.shapes()]
    return fields, text_shapes + shapes, notes


def column_shapes(real: Sequence[dict[str, Any]], synthetic: Sequence[dict[str, Any]],
                  task: TaskState | None = None, *, label: Callable[[str], str] = str
                  ) -> tuple[list[TextField], list[ColumnShape], list[str]]:
    """(free-text columns, column shapes, notes) for two tables given as rows of {column: value}:
    each column both tables have is scored 1 - KS (numeric) or 1 - TVD (categorical); a column
    of free text becomes a text field; ids and columns only one table has are named in the notes."""
    task = task or TaskState()
    fields: list[TextField] = []
    shapes: list[ColumnShape] = []
    notes: list[str] = []
    real_cols = {k for v in real for k in v}
    synth_cols = {k for v in synthetic for k in v}
    for only, where in ((sorted(real_cols - synth_cols), "real"), (sorted(synth_cols - real_cols), "synthetic")):
        if only:
            notes.append(f"columns only in the {where} records (not compared): {', '.join(only)}")
    ids: list[str] = []
    for col in sorted(real_cols & synth_cols):
        task.check()
        r = [v.get(col) for v in real]
        s = [v.get(col) for v in synthetic]
        kind = column_kind(r + s)
        name = label(col)
        if kind == "numeric":
            rn = [x for x in map(_number, r) if x is not None]
            sn = [x for x in map(_number, s) if x is not None]
            shapes.append(numeric_shape(name, rn, sn))
        elif kind == "categorical":
            shapes.append(categorical_shape(name, [_category(v) for v in r], [_category(v) for v in s]))
        elif kind == "text":
            fields.append(TextField(name, text_side([_category(v) for v in r if v not in (None, "")]),
                                    text_side([_category(v) for v in s if v not in (None, "")])))
        elif kind == "identifier":
            ids.append(col)
    if ids:
        notes.append(f"columns with a different value in nearly every row (ids, names; not compared): "
                     f"{', '.join(ids)}")
    return fields, shapes, notes
