"""Runtime values and three-valued comparison.

Unknown is ``None``. A number the data cannot pin down (the age of someone
whose birth is known only to the year, a count with items whose dates may or
may not fall in the window) is a :class:`Rng` of what it could be; a
comparison is true when every possibility satisfies it, false when none
does, unknown otherwise. Durations stay calendar-aware until compared: the
unit they are compared in decides how they are counted.
"""

from __future__ import annotations

import datetime as dt
import operator
from dataclasses import dataclass, field

from . import calendar as cal


@dataclass(frozen=True, slots=True)
class Rng:
    """A number known to lie in [lo, hi]."""

    lo: float
    hi: float


@dataclass(frozen=True, slots=True)
class Qty:
    """A duration as written in the protocol: ``6 months``."""

    value: float
    unit: str


@dataclass(frozen=True, slots=True)
class Span:
    """The time from a start (known to lie in [start_lo, start_hi]) to ``end``
    (known to lie in [end_lo, end]; ``end_lo`` None when the end is exact).
    ``birthday``: counted in years by the birthday rule (ages)."""

    start_lo: dt.date
    start_hi: dt.date
    end: dt.date
    birthday: bool = False
    end_lo: dt.date | None = None

    def count(self, unit: str) -> tuple[int, int]:
        # shortest: latest start to earliest end; longest: earliest start to latest end
        end_lo = self.end if self.end_lo is None else self.end_lo
        if self.birthday and unit == "years":
            return cal.age_on(self.start_hi, end_lo), cal.age_on(self.start_lo, self.end)
        return cal.whole_units(self.start_hi, end_lo, unit), cal.whole_units(self.start_lo, self.end, unit)


@dataclass(frozen=True, slots=True)
class Days:
    """An exact number of days (a total length of stay), possibly a range."""

    lo: float
    hi: float


@dataclass(frozen=True, slots=True)
class DateR:
    """A date known to lie in [lo, hi]."""

    lo: dt.date
    hi: dt.date


@dataclass(slots=True)
class Items:
    """A list of record items: those certainly in it and those that may be
    (their date's precision cannot say whether they fall in a window, or a
    filter's test on them is unknown). ``window`` remembers the last window
    applied, for stays clipped to it and counts per period."""

    kind: str
    sure: list
    maybe: list = field(default_factory=list)
    window: tuple[dt.date, dt.date] | None = None
    #: for lists of impairments found by assessments: the assessments in scope
    #: that found none. None for lists of events, whose absence is a count of 0.
    cleared: list | None = None


def number_range(v) -> tuple[float, float] | None:
    """A number as the range it may lie in; a length of time in days (so stays and
    ages can be ranked and their extremes taken); None for anything else."""
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, Rng):
        return v.lo, v.hi
    if isinstance(v, (int, float)):
        return float(v), float(v)
    if isinstance(v, Days):
        return float(v.lo), float(v.hi)
    if isinstance(v, Span):
        return float(((v.end_lo or v.end) - v.start_hi).days), float((v.end - v.start_lo).days)
    if isinstance(v, Qty) and v.unit in cal.UNIT_DAYS:
        return v.value * cal.UNIT_DAYS[v.unit], v.value * cal.UNIT_DAYS[v.unit]
    return None


def duration_range(v, unit: str, as_of: dt.date) -> tuple[float, float] | None:
    """Count a duration in whole ``unit``s (exact for days and weeks)."""
    if v is None:
        return None
    if isinstance(v, Qty):
        if v.unit == unit:
            return v.value, v.value
        if unit in cal.UNIT_DAYS and v.unit in cal.UNIT_DAYS:
            days = v.value * cal.UNIT_DAYS[v.unit]
            return days / cal.UNIT_DAYS[unit], days / cal.UNIT_DAYS[unit]
        if unit in ("months", "years") and v.unit in ("months", "years"):
            months = v.value * (12 if v.unit == "years" else 1)
            return (months / 12, months / 12) if unit == "years" else (months, months)
        # days against months: measured back from the as-of date
        start = cal.shift(as_of, -v.value, v.unit)
        n = cal.whole_units(start, as_of, unit)
        return n, n
    if isinstance(v, Span):
        lo, hi = v.count(unit)
        return lo, hi
    if isinstance(v, Days):
        if unit in cal.UNIT_DAYS:
            return v.lo / cal.UNIT_DAYS[unit], v.hi / cal.UNIT_DAYS[unit]
        lo = cal.whole_units(as_of - dt.timedelta(days=int(v.lo)), as_of, unit)
        hi = cal.whole_units(as_of - dt.timedelta(days=int(v.hi)), as_of, unit)
        return lo, hi
    return None


def _unit_of(v) -> str | None:
    return v.unit if isinstance(v, Qty) else None


def compare(left, op: str, right, as_of: dt.date) -> bool | None:
    """Three-valued comparison of two runtime values."""
    if left is None or right is None:
        return None
    if isinstance(left, (Qty, Span, Days)) or isinstance(right, (Qty, Span, Days)):
        unit = _unit_of(right) or _unit_of(left) or "days"
        a, b = duration_range(left, unit, as_of), duration_range(right, unit, as_of)
    elif isinstance(left, DateR) or isinstance(right, DateR):
        if not (isinstance(left, DateR) and isinstance(right, DateR)):
            return None
        a = (left.lo.toordinal(), left.hi.toordinal())
        b = (right.lo.toordinal(), right.hi.toordinal())
    elif isinstance(left, (int, float, Rng)) and not isinstance(left, bool) \
            and isinstance(right, (int, float, Rng)) and not isinstance(right, bool):
        a, b = number_range(left), number_range(right)
    else:
        if op == "=":
            return left == right
        if op == "!=":
            return left != right
        return None
    if a is None or b is None:
        return None
    return interval_compare(a, op, b)


#: a comparison between two plain numbers (no range, nothing unknown) is Python's own
PLAIN_OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "=": operator.eq,
                   "!=": operator.ne}


def interval_compare(a: tuple[float, float], op: str, b: tuple[float, float]) -> bool | None:
    """Compare two intervals: decided only if every pair of values agrees.

    >>> interval_compare((3, 3), ">=", (2, 2)), interval_compare((1, 4), ">=", (2, 2))
    (True, None)
    """
    alo, ahi = a
    blo, bhi = b
    if op == ">=":
        return True if alo >= bhi else False if ahi < blo else None
    if op == ">":
        return True if alo > bhi else False if ahi <= blo else None
    if op == "<=":
        return True if ahi <= blo else False if alo > bhi else None
    if op == "<":
        return True if ahi < blo else False if alo >= bhi else None
    if op == "=":
        if alo == ahi == blo == bhi:
            return True
        return False if ahi < blo or alo > bhi else None
    if alo == ahi == blo == bhi:
        return False
    return True if ahi < blo or alo > bhi else None


def k_and(a, b):
    """Kleene and: false wins over unknown."""
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def k_or(a, b):
    """Kleene or: true wins over unknown."""
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


def k_not(a):
    return None if a is None else not a


def at_least(values: list, n: float) -> bool | None:
    """True when at least n are true; false when the true and unknown together
    are fewer than n; otherwise unknown."""
    true = sum(1 for v in values if v is True)
    unknown = sum(1 for v in values if v is None)
    if true >= n:
        return True
    if true + unknown < n:
        return False
    return None


def to_json(v):
    """A plain JSON form of a runtime value (used in results and traces)."""
    if v is None or isinstance(v, (bool, str, int)):
        return v
    if isinstance(v, float):
        return int(v) if v.is_integer() else round(v, 6)
    if isinstance(v, Rng):
        return {"between": [to_json(float(v.lo)), to_json(float(v.hi))]}
    if isinstance(v, Qty):
        return {"value": to_json(float(v.value)), "unit": v.unit}
    if isinstance(v, Span):
        return {"from": (v.start_lo.isoformat() if v.start_lo == v.start_hi
                         else [v.start_lo.isoformat(), v.start_hi.isoformat()]),
                "to": (v.end.isoformat() if v.end_lo is None or v.end_lo == v.end
                       else [v.end_lo.isoformat(), v.end.isoformat()])}
    if isinstance(v, Days):
        return {"days": to_json(float(v.lo))} if v.lo == v.hi else {"days": [to_json(float(v.lo)),
                                                                              to_json(float(v.hi))]}
    if isinstance(v, DateR):
        return v.lo.isoformat() if v.lo == v.hi else {"between": [v.lo.isoformat(), v.hi.isoformat()]}
    if isinstance(v, Items):
        return {"count": len(v.sure), "maybe": len(v.maybe)}
    if isinstance(v, tuple):
        return [to_json(x) for x in v]
    return str(v)
