"""Sampled columns: values drawn per sample from the front matter's ``columns:``.

::

    columns:
      difficulty: {categories: {easy: 3, medium: 2, hard: 1}, target: 20}  # weighted; 20 kept each
      tier:       {categories: [free, pro, enterprise]}                     # uniform
      age:        {normal: [40, 12], min: 18, max: 90, integer: true}
      budget:     {uniform: [100, 5000], decimals: 0}
      opened:     {date: [2024-01-01, 2024-12-31]}
      customer:   {person: name, locale: en_US}                             # Faker, offline

Each column draws from its own random stream, seeded by the sample's seed and the
column's name, so a record re-renders exactly and adding a column does not change the
values of the others. The values become the record's variables: they show as
``var.<name>`` columns, are exported with the record, and count towards targets.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import TemplateError

KINDS = ("categories", "uniform", "normal", "date", "person")
# Faker providers a column may name: person-like attributes, nothing that reaches outside
PERSON_FIELDS = (
    "name", "first_name", "last_name", "job", "company", "city", "country", "email", "phone_number",
    "street_address", "address", "user_name", "postcode", "state", "language_name", "color_name",
)
_fakers: dict[str, Any] = {}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    values: tuple[Any, ...] = ()  # categories
    weights: tuple[float, ...] = ()
    low: float | None = None  # uniform bounds, or normal's clip bounds
    high: float | None = None
    mean: float = 0.0
    std: float = 1.0
    integer: bool = False
    decimals: int | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    person: str = ""
    locale: str = "en_US"
    target: dict[str, int] = field(default_factory=dict)  # category value -> kept records wanted


def _err(name: str, msg: str) -> TemplateError:
    return TemplateError(f"front matter: columns.{name}: {msg}")


def _number(name: str, value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _err(name, f"{what} must be a number, got {value!r}")
    return float(value)


def _date(name: str, value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise _err(name, f"{value!r} is not a date (write YYYY-MM-DD)") from None


def _target(name: str, spec: Any, values: tuple[Any, ...]) -> dict[str, int]:
    if spec is None:
        return {}
    if not values:
        raise _err(name, "target applies to categories only (kept records per category value)")
    if isinstance(spec, bool) or not isinstance(spec, int | dict):
        raise _err(name, "target must be a number (for every value) or a mapping {value: count}")
    wanted = {str(v): spec for v in values} if isinstance(spec, int) else {str(k): v for k, v in spec.items()}
    unknown = set(wanted) - {str(v) for v in values}
    if unknown:
        raise _err(name, f"target names value(s) not in its categories: {', '.join(sorted(unknown))}")
    for v, n in wanted.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise _err(name, f"target for {v!r} must be a whole number >= 0, got {n!r}")
    return wanted


def parse_column(name: str, spec: Any) -> Column:
    if not isinstance(spec, dict):
        raise _err(name, "must be a mapping with one of: " + ", ".join(KINDS))
    kinds = [k for k in KINDS if k in spec]
    if len(kinds) != 1:
        raise _err(name, "give exactly one of: " + ", ".join(KINDS))
    kind = kinds[0]
    known = {kind, "target", "min", "max", "integer", "decimals", "weights", "locale"}
    unknown = set(spec) - known
    if unknown:
        raise _err(name, f"unknown setting(s) {', '.join(sorted(unknown))}")
    integer = bool(spec.get("integer", False))
    decimals = spec.get("decimals")
    if decimals is not None and (isinstance(decimals, bool) or not isinstance(decimals, int) or decimals < 0):
        raise _err(name, "decimals must be a whole number >= 0")
    if kind == "categories":
        cats = spec["categories"]
        if isinstance(cats, dict):
            values = tuple(cats)
            weights = tuple(_number(name, w, f"the weight of {k!r}") for k, w in cats.items())
        elif isinstance(cats, list):
            values = tuple(cats)
            raw = spec.get("weights")
            if raw is None:
                weights = tuple(1.0 for _ in values)
            elif not isinstance(raw, list) or len(raw) != len(values):
                raise _err(name, f"weights must be a list of {len(values)} numbers, one per category")
            else:
                weights = tuple(_number(name, w, "a weight") for w in raw)
        else:
            raise _err(name, "categories must be a list of values or a mapping {value: weight}")
        if not values:
            raise _err(name, "categories must not be empty")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise _err(name, "weights must be >= 0 and not all 0")
        if len({str(v) for v in values}) != len(values):
            raise _err(name, "categories repeat a value")
        return Column(name, kind, values=values, weights=weights, target=_target(name, spec.get("target"), values))
    _target(name, spec.get("target"), ())
    lo = _number(name, spec["min"], "min") if "min" in spec else None
    hi = _number(name, spec["max"], "max") if "max" in spec else None
    if kind == "uniform":
        bounds = spec["uniform"]
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise _err(name, "uniform takes [low, high]")
        lo, hi = _number(name, bounds[0], "low"), _number(name, bounds[1], "high")
        if lo > hi:
            raise _err(name, f"uniform low {lo:g} is above high {hi:g}")
        return Column(name, kind, low=lo, high=hi, integer=integer, decimals=decimals)
    if kind == "normal":
        ms = spec["normal"]
        if not isinstance(ms, list) or len(ms) != 2:
            raise _err(name, "normal takes [mean, standard deviation]")
        mean, std = _number(name, ms[0], "mean"), _number(name, ms[1], "standard deviation")
        if std < 0:
            raise _err(name, "the standard deviation must be >= 0")
        if lo is not None and hi is not None and lo > hi:
            raise _err(name, f"min {lo:g} is above max {hi:g}")
        return Column(name, kind, low=lo, high=hi, mean=mean, std=std, integer=integer, decimals=decimals)
    if kind == "date":
        span = spec["date"]
        if not isinstance(span, list) or len(span) != 2:
            raise _err(name, "date takes [first day, last day]")
        start, end = _date(name, span[0]), _date(name, span[1])
        if start > end:
            raise _err(name, f"date {start} is after {end}")
        return Column(name, kind, start=start, end=end)
    what = str(spec["person"])
    if what not in PERSON_FIELDS:
        raise _err(name, f"person: {what!r} is not offered (use one of: {', '.join(PERSON_FIELDS)})")
    locale = str(spec.get("locale", "en_US"))
    _faker(locale, name)  # an unknown locale fails now, not mid-run
    return Column(name, kind, person=what, locale=locale)


def parse_columns(spec: Any) -> dict[str, Column]:
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise TemplateError("front matter: columns must map names to column settings")
    return {str(name): parse_column(str(name), s) for name, s in spec.items()}


def _faker(locale: str, name: str = "") -> Any:
    fk = _fakers.get(locale)
    if fk is None:
        try:
            from faker import Faker

            fk = Faker(locale)
        except (AttributeError, ImportError) as exc:
            raise _err(name, f"locale {locale!r} is not available ({exc})") from None
        _fakers[locale] = fk
    return fk


def _round(col: Column, x: float) -> float | int:
    if col.integer:
        return int(round(x))
    return round(x, col.decimals) if col.decimals is not None else x


def draw(col: Column, seed: int) -> Any:
    """One value of ``col`` for the sample with ``seed`` (the same value every time)."""
    rng = random.Random(f"{seed}:{col.name}")
    if col.kind == "categories":
        return rng.choices(col.values, weights=col.weights)[0]
    if col.kind == "uniform":
        assert col.low is not None and col.high is not None
        if col.integer:
            return rng.randint(math.ceil(col.low), math.floor(col.high))
        return _round(col, rng.uniform(col.low, col.high))
    if col.kind == "normal":
        lo = -math.inf if col.low is None else col.low
        hi = math.inf if col.high is None else col.high
        x = rng.gauss(col.mean, col.std)
        for _ in range(100):  # truncated normal by rejection; clipped if the bounds are far out
            if lo <= x <= hi:
                break
            x = rng.gauss(col.mean, col.std)
        return _round(col, min(max(x, lo), hi))
    if col.kind == "date":
        assert col.start is not None and col.end is not None
        days = (col.end - col.start).days
        return (col.start + dt.timedelta(days=rng.randint(0, days))).isoformat()
    fk = _faker(col.locale, col.name)
    fk.seed_instance(rng.getrandbits(32))
    return str(getattr(fk, col.person)())


def draw_all(columns: dict[str, Column], seed: int) -> dict[str, Any]:
    return {name: draw(col, seed) for name, col in columns.items()}


def targets(columns: dict[str, Column]) -> dict[str, dict[str, int]]:
    """column -> {value: kept records wanted}, for the columns that declare a target."""
    return {name: dict(col.target) for name, col in columns.items() if col.target}
