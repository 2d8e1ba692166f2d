"""Compiled values: what one protocol expression is, as SQL over one row per patient.

The per-patient engine's runtime values (engine/values.py) map onto SQL so:

=========  =====================================================================
kind       SQL
=========  =====================================================================
bool       one nullable BOOLEAN: NULL is unknown (SQL's AND/OR/NOT are Kleene's)
num        ``lo``, ``hi``: a number known to lie in [lo, hi]; both NULL: unknown
days       ``lo``, ``hi``: an exact number of days (a total stay), maybe a range
date       ``lo``, ``hi``: a date known to lie in [lo, hi]
span       start [s_lo, s_hi] to end [e_lo, e_hi]: a duration counted in whole units
qty        a duration written in the protocol (a Python constant)
text       one nullable VARCHAR (text and symbols)
items      a list of record items: a three-valued test per item row (TRUE: in the
           list, NULL: may be in it, FALSE: not), aggregated per patient
=========  =====================================================================

``stage`` is the query stage in which every column the value reads exists.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass
class ItemSet:
    """A list of record items of one table, described by SQL tests on its rows."""

    table: str
    item_kind: str
    status: str                       # TRUE sure, NULL maybe, FALSE out
    window: tuple[dt.date, dt.date] | None = None   # the last ``in the last`` window applied
    cleared: str | None = None        # assessments in scope that found no impairment
    source_status: str | None = None  # the list before its last window (for total stay)
    since: dt.date | None = None      # no row whose latest date is before this day is in the list
    scope: str | None = None          # a cheap test every row of the list (and of cleared) passes
    visible: str | None = None        # the part of ``status`` that says the item is dated by the as-of date
    window_test: str | None = None    # the part of ``status`` that says the item is in ``window``


@dataclass
class V:
    kind: str
    lo: str | None = None
    hi: str | None = None
    const: object = None
    is_const: bool = False
    stage: int = 0
    span: tuple[str, str, str, str] | None = None
    birthday: bool = False
    items: ItemSet | None = None
    node: object = None
    extra: dict = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return self.lo == self.hi


NULL = "NULL"


def unknown(kind: str = "null") -> V:
    return V(kind, NULL, NULL, None, True)
