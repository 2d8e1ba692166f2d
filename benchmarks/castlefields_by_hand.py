"""The Castlefields criteria written by hand in Python: a ceiling for the per-patient engine.

Issue 3 asks the engine for 100,000 Castlefields patients a second on one
core. This module answers "how fast can plain Python go on the same records
at all?": one function, written for this one protocol, that reads each item
of a record once, compares ISO dates as text and takes every shortcut the
protocol allows. It is what the engine would be if it compiled each protocol
to Python, which it must not (protocols are data).

It covers records whose dates are all known to the day (almost every
generated record; :func:`exact` says which), which lets it skip the ranges
that imprecise dates need. ``benchmarks/engine_speed.py --by-hand`` checks
that it gives the engine's eligible, criteria_met and all eleven criterion
values on every such record, then times both on the same records.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from math import ceil

from engine.calendar import add_months, age_on, period_text, window_text
from engine.record_index import SYSTEMS


def exact(record) -> bool:
    """Every date the criteria read is known to the day (and every medicine has a start)."""
    p = record.patient
    if p.birth_date is not None and len(p.birth_date.text) != 10:
        return False
    for c in record.conditions:
        if c.onset is not None and len(c.onset.text) != 10:
            return False
    for m in record.medications:
        if m.start is None or len(m.start.text) != 10 or (m.end is not None and len(m.end.text) != 10):
            return False
    for e in record.encounters:
        if len(e.start.text) != 10 or (e.end is not None and len(e.end.text) != 10):
            return False
    return all(len(o.date.text) == 10 for o in record.observations)


def checker(ltc_codes: frozenset, as_of: dt.date, practice_gp_counts: dict[str, list[float]]):
    """The criteria for one as-of date: a function of a record giving
    (eligible, criteria_met as (fewest, most), the eleven criteria), None for unknown, as the
    engine gives them (it gives a range of criteria met when some are unknown)."""
    day = as_of.isoformat()
    year_ago = window_text(as_of, 12, "months")[0]
    one_year = dt.date.fromisoformat(window_text(as_of, 1, "years")[0])
    edges = period_text(as_of, 12, "months", 3, "months")
    oldest = window_text(as_of, 12, "months")[0]
    systems: dict[str, str] = {}

    def criteria(record):
        # 1: four or more active long term conditions (seen on the as-of date)
        n = 0
        for c in record.conditions:
            if c.status == "active" and (c.onset is None or c.onset.text <= day):
                system = c.system
                short = systems.get(system)
                if short is None:
                    short = systems[system] = SYSTEMS.get(system) or SYSTEMS.get(system.lower(), system)
                if (short, c.code) in ltc_codes:
                    n += 1
        # 2 and 11: long-term medicines, prescribing cost of the active ones
        long_term = 0
        cost = 0.0
        for m in record.medications:
            start = m.start.text
            if m.status != "active" or start > day:
                continue
            stop = as_of if m.end is None else min(dt.date.fromisoformat(m.end.text), as_of)
            if add_months(dt.date.fromisoformat(start), 6) <= stop:
                long_term += 1
            if m.monthly_cost is not None:
                cost += m.monthly_cost
        # 3, 4, 7, 8, 9, 10: one pass over the encounters
        admissions = ae = gp = outpatient = 0
        stays = []
        social = [0, 0, 0, 0]
        for e in record.encounters:
            start = e.start.text
            if start > day:
                continue
            kind = e.kind
            if kind == "admission":
                if start >= year_ago:
                    admissions += 1
                begin = max(dt.date.fromisoformat(start), one_year)
                end = as_of if e.end is None else min(dt.date.fromisoformat(e.end.text), as_of)
                if end > begin:
                    stays.append((begin, end))
            elif start < oldest:
                continue
            elif kind == "gp":
                gp += 1
            elif kind == "outpatient":
                outpatient += 1
            elif kind == "ae":
                ae += 1
            elif kind == "social_work":
                # period k holds (edges[k+1], edges[k]]; the oldest holds its first day too
                for k in range(3):
                    if start > edges[k + 1]:
                        social[k] += 1
                        break
                else:
                    social[3] += 1
        nights = 0
        if stays:
            stays.sort()
            lo, hi = stays[0]
            for begin, end in stays[1:]:
                if begin <= hi:
                    hi = max(hi, end)
                else:
                    nights += (hi - lo).days
                    lo, hi = begin, end
            nights += (hi - lo).days
        # 5, 6: an impairment in the window; no impairment found there is unknown
        adl = iadl = None
        for o in record.observations:
            kind = o.kind
            if kind == "adl" or kind == "iadl":
                date = o.date.text
                if year_ago <= date <= day:
                    if o.impaired:
                        if kind == "adl":
                            adl = True
                        else:
                            iadl = True
                    elif kind == "adl":
                        adl = adl or False
                    else:
                        iadl = iadl or False
        # 7: in the top 3% of the practice for GP consultations
        practice = record.patient.practice
        dist = practice_gp_counts.get(practice) if practice is not None else None
        if dist:
            top = gp > dist[0] and len(dist) - bisect_left(dist, gp) <= max(ceil(0.03 * len(dist)), 1)
        else:
            top = None
        items = (n >= 4, long_term >= 4, admissions >= 2, ae >= 2, adl, iadl, top, outpatient >= 2,
                 nights > 28, min(social) > 4, cost > 100)
        met = items.count(True)
        published = True if met >= 3 else (False if met + items.count(None) < 3 else None)
        birth = record.patient.birth_date
        if birth is None:
            eligible = False if published is False else None
        elif age_on(dt.date.fromisoformat(birth.text), as_of) >= 65:
            eligible = published
        else:
            eligible = False
        return eligible, (met, met + items.count(None)), items
    return criteria


def prepared(program, records: list, as_of: str):
    """For the library's Castlefields ``program``: (the records the hand-written criteria
    cover, the population's distributions, the criteria function)."""
    ltc = next(u.protocol for u in program.protocol.uses if u.alias == "conditions").get("long_term_conditions")
    codes = frozenset((c.system, c.code) for c in ltc.codes)
    subset = [r for r in records if exact(r)]
    population = program.distributions(subset, as_of)
    (_term, groups), = population.items()
    return subset, population, checker(codes, dt.date.fromisoformat(as_of), groups)


def disagreements(program, records: list, population: dict, criteria, as_of: str) -> list[str]:
    """Where the hand-written criteria and the engine differ (a line per patient)."""
    ids = [item.id for item in program.protocol.get("published_criteria").expr.items]
    found = []
    for r in records:
        res = program.evaluate(r, as_of, explain=True, population=population)
        met = res.outcomes["criteria_met"]
        engine = (res.outcomes["eligible"], (met.lo, met.hi) if hasattr(met, "lo") else (met, met),
                  tuple(res.trace[i] for i in ids))
        mine = criteria(r)
        if mine != engine:
            found.append(f"patient {r.patient.id}: by hand {mine}, engine {engine}")
    return found
