"""Identification over time: re-stratify a population at a series of dates.

At each date every patient's level (the protocol's first ``levels``, else an
imported protocol's) is
evaluated afresh, and so is whether they are active on each pathway (the
pathway-state rules: entry criteria met, or events on it, and not out of it).
Between consecutive dates a patient *entered* a value if they hold it now and
did not at the date before, and *left* it if they held it then and do not
now. The first date has nothing before it: its entered/left are empty.

Rows are long format, one per (date, outcome, value), ready to plot:
``date, outcome, value, count, entered, left``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable

from pathways import model as m
from pathways.records import PatientRecord

from .calendar import shift

ON = "on pathway"


@dataclass(frozen=True)
class Row:
    date: dt.date
    outcome: str
    value: str
    count: int
    entered: int | None
    left: int | None

    def as_list(self) -> list:
        return [self.date.isoformat(), self.outcome, self.value, self.count,
                "" if self.entered is None else self.entered, "" if self.left is None else self.left]


COLUMNS = ("date", "outcome", "value", "count", "entered", "left")


def dates(start: dt.date, end: dt.date, amount: int, unit: str) -> list[dt.date]:
    """``start``, ``start`` + every, ... up to and including ``end``; steps are counted
    from ``start`` (so month ends do not drift: 31 Jan, 28 Feb, 31 Mar).

    >>> dates(dt.date(2024, 1, 31), dt.date(2024, 4, 30), 1, "months")
    [datetime.date(2024, 1, 31), datetime.date(2024, 2, 29), datetime.date(2024, 3, 31), datetime.date(2024, 4, 30)]
    """
    if amount <= 0:
        raise ValueError("the interval must be 1 or more")
    out, k = [], 0
    while True:
        day = shift(start, amount * k, unit)
        if day > end:
            return out
        out.append(day)
        k += 1


def _level_text(v) -> str:
    return "unknown" if v is None else str(v)


def simulate(program, records: Iterable[PatientRecord], when: list[dt.date], parameters=None) -> list[Row]:
    """Entries to and exits from each level and pathway between consecutive dates."""
    from .caseload import levels_ref
    from .pathway_state import states_of
    from .worklist import population_for

    records = list(records)
    protocol = program.protocol
    found = levels_ref(protocol, "simulate")
    levels, ref = found if found else (None, None)
    pathways_: list[m.Pathway] = protocol.of_kind("pathway")
    values: list[tuple[str, str]] = []
    if levels is not None:
        for lv in (*levels.levels, *((levels.fallback,) if levels.fallback else ())):
            values.append((ref.dotted, str(lv.number)))
    values += [(p.name, ON) for p in pathways_]
    wanted = (ref,) if ref is not None else ()
    rows: list[Row] = []
    before: dict[tuple[str, str], set[str]] | None = None
    for day in when:
        population = population_for(program, records, day, parameters)
        now: dict[tuple[str, str], set[str]] = {}
        for record in records:
            # one evaluation per patient and date serves the level and every pathway's entry criteria
            got, level = states_of(program, pathways_, record, day, parameters, explain=False,
                                     population=population, extra=wanted)
            for p, s in zip(pathways_, got):
                if s.active:
                    now.setdefault((p.name, ON), set()).add(record.id)
            if ref is not None:
                now.setdefault((ref.dotted, _level_text(level[0])), set()).add(record.id)
        keys = values + sorted(k for k in now if k not in values)  # e.g. an unknown level
        for key in keys:
            held = now.get(key, set())
            if before is None:
                rows.append(Row(day, key[0], key[1], len(held), None, None))
            else:
                was = before.get(key, set())
                rows.append(Row(day, key[0], key[1], len(held), len(held - was), len(was - held)))
        before = now
        values = keys
    return rows
