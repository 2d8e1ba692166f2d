"""Calendar rules. Every rule here is in docs/semantics.md with its cases.

Dates known only to the month or year are ranges (earliest, latest); a
question the range cannot settle gets ``None`` (unknown), never a guess.
"""

from __future__ import annotations

import calendar as _cal
import datetime as dt
from functools import lru_cache

from pathways.records import PartialDate

UNIT_DAYS = {"days": 1, "weeks": 7}


def add_months(day: dt.date, months: int) -> dt.date:
    """Move by whole months, clamping to the end of the month.

    >>> add_months(dt.date(2021, 3, 31), -1)
    datetime.date(2021, 2, 28)
    >>> add_months(dt.date(2024, 2, 29), 12)
    datetime.date(2025, 2, 28)
    """
    total = day.year * 12 + (day.month - 1) + months
    year, month = divmod(total, 12)
    month += 1
    if not 1 <= year <= 9999:
        return dt.date.min if year < 1 else dt.date.max
    return dt.date(year, month, min(day.day, days_in_month(year, month)))


_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def days_in_month(year: int, month: int) -> int:
    """>>> days_in_month(2024, 2), days_in_month(2023, 2), days_in_month(2023, 12)
    (29, 28, 31)
    """
    if month == 2 and _cal.isleap(year):
        return 29
    return _MONTH_DAYS[month]


@lru_cache(maxsize=4096)
def shift(day: dt.date, amount: float, unit: str) -> dt.date:
    """``day`` plus ``amount`` units (negative goes back). Fractions of months
    and years are not calendar units; they are refused by the caller.

    >>> shift(dt.date(2021, 4, 1), -12, "months")
    datetime.date(2020, 4, 1)
    >>> shift(dt.date(2021, 4, 1), -2, "weeks")
    datetime.date(2021, 3, 18)

    Cached: a population run asks for the same few window starts per patient.
    """
    if unit in UNIT_DAYS:
        try:
            return day + dt.timedelta(days=amount * UNIT_DAYS[unit])
        except OverflowError:
            return dt.date.min if amount < 0 else dt.date.max
    months = int(amount) * (12 if unit == "years" else 1)
    return add_months(day, months)


@lru_cache(maxsize=1024)
def window_text(as_of: dt.date, amount: float, unit: str) -> tuple[str, str]:
    """``[as_of - amount unit, as_of]`` as ISO text (``YYYY-MM-DD`` sorts as the dates
    do), for the fast roads that compare record dates as text.

    >>> window_text(dt.date(2024, 4, 1), 12, "months")
    ('2023-04-01', '2024-04-01')

    Cached: every patient of a run asks for the same few windows.
    """
    return shift(as_of, -amount, unit).isoformat(), as_of.isoformat()


@lru_cache(maxsize=256)
def period_text(as_of: dt.date, amount: float, amount_unit: str, size: float, unit: str) -> tuple[str, ...]:
    """The edges of the periods of ``size`` ``unit`` in the window of ``amount`` ``amount_unit``
    ending on the as-of date, as ISO text (period_edges; cached as window_text is).

    >>> period_text(dt.date(2024, 4, 1), 6, "months", 3, "months")
    ('2024-04-01', '2024-01-01', '2023-10-01')
    """
    lo = shift(as_of, -amount, amount_unit)
    return tuple(e.isoformat() for e in period_edges(as_of, as_of, lo, size, unit))


def period_edges(end: dt.date, as_of: dt.date, start: dt.date, amount: float, unit: str) -> list[dt.date]:
    """The edges of the periods of ``amount`` ``unit`` counted back from ``as_of`` that fit
    after ``start``, newest first, beginning with ``end`` (the window's end): period k runs
    from edges[k+1] to edges[k] (`lowest count per 3 months of ... in the last 12 months`).

    >>> period_edges(dt.date(2024, 4, 1), dt.date(2024, 4, 1), dt.date(2023, 10, 1), 3, "months")
    [datetime.date(2024, 4, 1), datetime.date(2024, 1, 1), datetime.date(2023, 10, 1)]
    """
    edges = [end]
    while True:
        nxt = shift(as_of, -amount * len(edges), unit)
        if nxt < start:
            return edges
        edges.append(nxt)


def birthday(birth: dt.date, year: int) -> dt.date:
    """The day someone born on ``birth`` has their birthday in ``year``:
    29 February becomes 1 March in a year without one.

    >>> birthday(dt.date(2000, 2, 29), 2021)
    datetime.date(2021, 3, 1)
    """
    if birth.month == 2 and birth.day == 29 and not _cal.isleap(year):
        return dt.date(year, 3, 1)
    return birth.replace(year=year)


def age_on(birth: dt.date, day: dt.date) -> int:
    """Age in whole years; the birthday is reached on the day.

    >>> age_on(dt.date(1956, 4, 1), dt.date(2021, 4, 1))
    65
    >>> age_on(dt.date(1956, 4, 2), dt.date(2021, 4, 1))
    64
    >>> age_on(dt.date(2000, 2, 29), dt.date(2021, 2, 28)), age_on(dt.date(2000, 2, 29), dt.date(2021, 3, 1))
    (20, 21)
    """
    years = day.year - birth.year
    return years if day >= birthday(birth, day.year) else years - 1


def whole_units(start: dt.date, end: dt.date, unit: str) -> int:
    """Whole calendar units from ``start`` to ``end`` (negative if end is earlier).

    >>> whole_units(dt.date(2020, 10, 1), dt.date(2021, 4, 1), "months")
    6
    >>> whole_units(dt.date(2020, 10, 1), dt.date(2021, 3, 31), "months")
    5
    >>> whole_units(dt.date(2021, 1, 31), dt.date(2021, 2, 28), "months")
    1
    """
    if end < start:
        return -whole_units(end, start, unit)
    if unit in UNIT_DAYS:
        return (end - start).days // UNIT_DAYS[unit]
    months = (end.year - start.year) * 12 + end.month - start.month
    if unit != "years":
        # start + months lands in the end's month, on the start's day clamped to that month's
        # length: past the end only when that day is later than the end's
        if months > 0 and start.day > end.day and min(start.day, days_in_month(end.year, end.month)) > end.day:
            months -= 1
        return months
    guess = months // 12
    # the years counted reach past the end only in its last year: one step back
    if guess > 0 and add_months(start, guess * 12) > end:
        guess -= 1
    return guess


def in_range(date: PartialDate | None, lo: dt.date, hi: dt.date) -> bool | None:
    """Is the date inside the closed range [lo, hi]? None when its precision cannot say.

    >>> in_range(PartialDate.parse("2020-04"), dt.date(2020, 4, 1), dt.date(2021, 4, 1))
    True
    >>> in_range(PartialDate.parse("2020-03"), dt.date(2020, 3, 15), dt.date(2021, 4, 1)) is None
    True
    """
    if date is None:
        return None
    early, late = date.earliest, date.latest
    if early >= lo and late <= hi:
        return True
    if late < lo or early > hi:
        return False
    return None
