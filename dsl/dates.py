"""Checking calendar dates written in a protocol."""

from __future__ import annotations

import datetime as dt


def check_date(text: str) -> str | None:
    """A kind message if ``text`` (YYYY, YYYY-MM or YYYY-MM-DD) is not a real date.

    >>> check_date("2024-02-29") is None
    True
    >>> check_date("2023-02-29")
    '2023-02-29 is not a date: February 2023 has 28 days'
    >>> check_date("2023-13")
    '2023-13 is not a date: there is no month 13'
    """
    parts = [int(p) for p in text.split("-")]
    year = parts[0]
    if year < 1:
        return f"{text} is not a date: there is no year 0"
    if len(parts) > 1 and not 1 <= parts[1] <= 12:
        return f"{text} is not a date: there is no month {parts[1]}"
    if len(parts) > 2:
        month = parts[1]
        nxt = dt.date(year + (month == 12), month % 12 + 1, 1) if year < 9999 or month < 12 else dt.date(9999, 12, 31)
        days = (nxt - dt.date(year, month, 1)).days + (1 if year == 9999 and month == 12 else 0)
        if not 1 <= parts[2] <= days:
            return f"{text} is not a date: {dt.date(year, month, 1):%B %Y} has {days} days"
    return None
