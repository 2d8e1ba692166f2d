"""The calendar and three-valued comparison rules of engine/calendar.py and
engine/values.py, as SQL expressions (the as-of date is a constant)."""

from __future__ import annotations

import calendar as _cal
import datetime as dt


def _is_lit(sql: str) -> bool:
    return sql.replace(".", "", 1).lstrip("-").isdigit()


def interval_compare(a: tuple[str, str], op: str, b: tuple[str, str]) -> str:
    """Decided only when every pair of values agrees (engine.values.interval_compare).
    Any NULL makes every test NULL, so the CASE falls through to unknown."""
    alo, ahi = a
    blo, bhi = b
    if alo == ahi and blo == bhi and op != "=" and op != "!=":
        return f"({alo} {op} {blo})"  # exact values: SQL's comparison is already three-valued
    if alo == ahi and blo == bhi:
        return f"({alo} {'=' if op == '=' else '<>'} {blo})"
    true, false = {
        ">=": (f"{alo} >= {bhi}", f"{ahi} < {blo}"),
        ">": (f"{alo} > {bhi}", f"{ahi} <= {blo}"),
        "<=": (f"{ahi} <= {blo}", f"{alo} > {bhi}"),
        "<": (f"{ahi} < {blo}", f"{alo} >= {bhi}"),
    }.get(op, (None, None))
    if true is not None:
        return f"(CASE WHEN {true} THEN TRUE WHEN {false} THEN FALSE ELSE NULL END)"
    equal = f"({alo} = {ahi} AND {ahi} = {blo} AND {blo} = {bhi})"
    apart = f"({ahi} < {blo} OR {alo} > {bhi})"
    if op == "=":
        return f"(CASE WHEN {equal} THEN TRUE WHEN {apart} THEN FALSE ELSE NULL END)"
    return f"(CASE WHEN {equal} THEN FALSE WHEN {apart} THEN TRUE ELSE NULL END)"


def age_on(birth: str, day: str, as_of: dt.date) -> str:
    """Whole years by the birthday rule (29 February has its birthday on 1 March
    in other years). ``day`` is the as-of date here, a constant."""
    mmdd = as_of.month * 100 + as_of.day
    birth_mmdd = f"(MONTH({birth}) * 100 + DAY({birth}))"
    if not _cal.isleap(as_of.year):
        birth_mmdd = f"(CASE WHEN {birth_mmdd} = 229 THEN 301 ELSE {birth_mmdd} END)"
    return f"({as_of.year} - YEAR({birth}) - CASE WHEN {mmdd} < {birth_mmdd} THEN 1 ELSE 0 END)"


def _forward_units(start: str, end: str, unit: str) -> str:
    """Whole units from start to end, end not before start."""
    if unit in ("days", "weeks"):
        days = f"DATE_DIFF('day', {start}, {end})"
        return days if unit == "days" else f"FLOOR({days} / 7)"
    per = 12 if unit == "years" else 1
    months = f"((YEAR({end}) - YEAR({start})) * 12 + MONTH({end}) - MONTH({start}))"
    guess = months if per == 1 else f"FLOOR({months} / 12)"
    # add_months(start, guess) lands in end's month only when guess * per is the whole
    # difference; it overshoots when start's day is later than end's, unless end is
    # the last day of its month (the calendar rule clamps to it)
    over = (f"CASE WHEN {guess} > 0 AND {guess} * {per} = {months} AND DAY({start}) > DAY({end}) "
            f"AND DAY({end}) <> DAY(LAST_DAY({end})) THEN 1 ELSE 0 END")
    return f"({guess} - {over})"


def whole_units(start: str, end: str, unit: str) -> str:
    """engine.calendar.whole_units: negative when end is before start."""
    return (f"(CASE WHEN {end} < {start} THEN -({_forward_units(end, start, unit)}) "
            f"ELSE {_forward_units(start, end, unit)} END)")


def span_at_least(span: tuple[str, str, str, str], op: str, k: int, unit: str) -> str | None:
    """``duration op k units`` for a span start [s_lo, s_hi] to end [e_lo, e_hi], three-valued,
    without counting the units: for whole k >= 1, ``whole_units(s, e) >= k`` exactly when
    ``shift(s, k units) <= e`` (shift clamps to the month's end as add_months does, and the
    months counted from s only grow). Counting them per row (whole_units) is most of the cost of
    a medication list's pass. None when the shortcut does not apply."""
    if op in (">", "<="):
        op, k = {">": ">=", "<=": "<"}[op], k + 1
    if op not in (">=", "<") or k < 1:
        return None
    s_lo, s_hi, e_lo, e_hi = span
    if unit in ("months", "years"):
        step = f"INTERVAL {k * (12 if unit == 'years' else 1)} MONTH"
    elif unit in ("days", "weeks"):
        step = f"INTERVAL {k * (7 if unit == 'weeks' else 1)} DAY"
    else:
        return None
    surely = f"CAST({s_hi} + {step} AS DATE) <= {e_lo}"     # the fewest units it can be reach k
    maybe = f"CAST({s_lo} + {step} AS DATE) <= {e_hi}"      # the most it can be reach k
    if op == ">=":
        return f"(CASE WHEN {surely} THEN TRUE WHEN NOT ({maybe}) THEN FALSE ELSE NULL END)"
    return f"(CASE WHEN NOT ({maybe}) THEN TRUE WHEN {surely} THEN FALSE ELSE NULL END)"
