"""Synthetic patient records: a deterministic test fixture for the engine.

This is the engine's own fixture, used by the property tests and the speed
benchmark until the data issue ships the project's real generator; it is
not that generator and makes no claim to model a real population. It aims
only at records that are realistic enough that the library's protocols give
a mix of true, false and unknown, and that every level of the pyramid occurs.

Everything comes from a seeded :class:`random.Random`; nothing reads the
clock. The same ``(seed, as_of)`` always gives the same records, and patient
``i`` depends only on ``(seed, i, as_of)``, so ``generate(10, s, d)`` is the
first ten of ``generate(1000, s, d)``.

>>> a = generate(3, seed=7, as_of="2024-04-01")
>>> a == generate(3, seed=7, as_of="2024-04-01"), len(a), a[0].id
(True, 3, 'syn-7-000000')

What a population looks like:

* ages 40 to 100 (most between 55 and 85); birth dates known to the day,
  and some only to the month or the year; 20 practices of uneven size;
* a hidden frailty in [0, 1], rising with age, drives how much of everything
  else a patient has, so the criteria cluster in the same patients;
* conditions from ``library/codes/long_term_conditions.csv`` and the code
  lists of ``conditions.pw`` and ``evercare.pw`` (some resolved, some with
  imprecise or missing onsets), and a few acute conditions;
* medications with start, end, status and a monthly cost (sometimes unknown);
* 30 months of encounters of every kind: admissions (emergency and elective,
  with stays, some overlapping, a few still in hospital), A&E, outpatient,
  GP consultations (a skewed count: a few patients are frequent attenders),
  community contacts, social-work visits (a few weekly care packages);
* observations (ADL, IADL, cognition, falls, and coded measurements) and life
  events (bereavement, death of a carer, moving home, entering a care home);
* a few dates of every kind known only to the month or the year, so that some
  items may or may not fall in a window.
"""

from __future__ import annotations

import csv
import datetime as dt
import gc
import math
import random
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from pathways.records import (
    Condition, Encounter, LifeEvent, Medication, Observation, PartialDate, Patient, PathwayEventRecord,
    PatientRecord, Procedure,
)

LIBRARY = Path(__file__).resolve().parent.parent / "library"

#: months of history before the as-of date that encounters are drawn from
HISTORY_DAYS = 913  # 30 months

PRACTICES = tuple(f"P{k:03d}" for k in range(1, 21))
# uneven list sizes: a few large practices, a long tail of small ones
_PRACTICE_WEIGHTS = tuple(1.0 / (1 + 0.15 * k) for k in range(len(PRACTICES)))

# Acute, non-long-term conditions (so code filters have something to reject).
ACUTE_CODES = ("444814009", "195662009", "68566005", "36971009", "233604007", "43878008", "271737000")

# Prevalence weights for common long term conditions (others weigh 1).
_COMMON = {"38341003": 8, "59621000": 4, "44054006": 5, "195967001": 4, "13645005": 3, "396275006": 5,
           "53741008": 3, "414545008": 2, "49436004": 3, "709044004": 3, "433144002": 2,
           "370143000": 3, "64859006": 2, "84114007": 2}

_MED_CODES = tuple(str(3_000_000_000_000_000 + 1_000_001 * k) for k in range(60))
_OBS_CODES = (("271649006", "mm[Hg]", 100, 180), ("27113001", "kg", 45, 120), ("60621009", "kg/m2", 17, 42),
              ("1104441000000107", "score", 0, 25))
_PROCEDURE_CODES = ("80146002", "73761001", "387713003", "112798008")


def _read_value_sets() -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """The long term condition codes (the CSV) and each `codes` list written in
    conditions.pw and evercare.pw, read from the library so they stay in step."""
    with open(LIBRARY / "codes" / "long_term_conditions.csv", newline="", encoding="utf-8") as f:
        ltc = tuple(row["code"] for row in csv.DictReader(f) if row["system"] == "snomed")
    lists: dict[str, list[str]] = {}
    for name in ("conditions.pw", "evercare.pw"):
        current = None
        for line in (LIBRARY / name).read_text(encoding="utf-8").splitlines():
            head = re.match(r"codes (\w+) .*:\s*$", line)
            if head:
                current = lists.setdefault(head.group(1), [])
                continue
            code = re.match(r"\s+snomed (\d+)", line)
            if code and current is not None:
                current.append(code.group(1))
            elif line.strip() and not line.startswith(" "):
                current = None
    return ltc, {k: tuple(v) for k, v in lists.items()}


LTC_CODES, VALUE_SETS = _read_value_sets()
EXACERBATION_CODES = VALUE_SETS.get("exacerbations", ())
DEMENTIA_CODES = VALUE_SETS.get("dementia", ())
# the chronic codes an exacerbation is an exacerbation of
_EXACERBATION_PRONE = frozenset(VALUE_SETS.get("copd", ()) + VALUE_SETS.get("heart_failure", ()) + ("195967001",))
_LTC_WEIGHTS = tuple(_COMMON.get(c, 1) for c in LTC_CODES)


@lru_cache(maxsize=8192)
def _pdate(text: str) -> PartialDate:
    """A PartialDate, shared between records (they are immutable). Bounded, so a
    long stream does not grow it without limit."""
    return PartialDate(text=text)


def _as_date(as_of) -> dt.date:
    if isinstance(as_of, dt.datetime):
        return as_of.date()
    if isinstance(as_of, dt.date):
        return as_of
    return dt.date.fromisoformat(str(as_of))


class _Patient:
    """Draws one patient's record from its own Random."""

    def __init__(self, rng: random.Random, as_of: dt.date, pid: str):
        self.rng = rng
        self.as_of = as_of
        self.pid = pid
        self.n = 0

    # --- small helpers -----------------------------------------------------------
    def sid(self, kind: str) -> str:
        self.n += 1
        return f"{self.pid}/{kind}/{self.n}"

    def days_ago(self, days: float) -> dt.date:
        return self.as_of - dt.timedelta(days=int(days))

    def partial(self, day: dt.date, month: float = 0.0, year: float = 0.0) -> PartialDate:
        """``day`` known to the day, or (with these chances) only to the month or year."""
        u = self.rng.random()
        if u < year:
            return _pdate(f"{day.year:04d}")
        if u < year + month:
            return _pdate(f"{day.year:04d}-{day.month:02d}")
        return _pdate(day.isoformat())

    def poisson(self, lam: float) -> int:
        rng = self.rng
        if lam <= 0:
            return 0
        if lam > 30:
            return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= rng.random()
            if p <= limit:
                return k
            k += 1

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    # --- the record --------------------------------------------------------------
    def record(self) -> PatientRecord:
        rng = self.rng
        age = rng.triangular(40.0, 100.999, 68.0)
        # frailty: mostly low, a long tail, rising with age
        f = min(1.0, rng.betavariate(1.0, 5.0) * (0.4 + 1.3 * (age - 40) / 60))
        self.f = f
        birth = self.as_of - dt.timedelta(days=int(age * 365.25))
        patient = Patient(
            id=self.pid,
            birth_date=self.partial(birth, month=0.08, year=0.05),
            sex=rng.choices(("female", "male", "other", "unknown"), (49, 48, 1, 2))[0],
            date_of_death=self.partial(self.days_ago(rng.uniform(0, 180))) if self.chance(0.003) else None,
            practice=rng.choices(PRACTICES, _PRACTICE_WEIGHTS)[0],
            lives_alone=rng.choices((False, True, None), (55, 30 + 20 * f, 15))[0],
            has_carer=rng.choices((False, True, None), (60 - 30 * f, 15 + 40 * f, 25))[0],
        )
        conditions = self.conditions(age)
        has_dementia = any(c.code in DEMENTIA_CODES for c in conditions)
        self.cognitive = self.chance(0.9 if has_dementia else 0.5 * f)
        # someone cognitively impaired and alone often has a care package, and is often unstable
        self.package = self.chance(0.35 if self.cognitive and patient.lives_alone else 0.004 + 0.08 * f * f)
        encounters = self.encounters()
        return PatientRecord(
            patient=patient,
            conditions=tuple(conditions),
            medications=tuple(self.medications()),
            encounters=tuple(encounters),
            observations=tuple(self.observations()),
            procedures=tuple(self.procedures()),
            life_events=tuple(self.life_events()),
            pathway_events=tuple(self.pathway_events()),
        )

    def conditions(self, age: float) -> list[Condition]:
        rng, f = self.rng, self.f
        out: list[Condition] = []
        n = min(self.poisson(0.3 + 7.0 * f), len(LTC_CODES))
        codes: set[str] = set()
        while len(codes) < n:
            codes.add(rng.choices(LTC_CODES, _LTC_WEIGHTS)[0])
        if DEMENTIA_CODES and self.chance(max(0.0, (age - 65) / 35) * 0.4 * f + 0.005):
            codes.add(rng.choice(DEMENTIA_CODES))
        for code in sorted(codes):
            status = rng.choices(("active", "recurrence", "relapse", "inactive", "remission", "resolved"),
                                 (82, 2, 1, 5, 4, 6))[0]
            onset_day = self.days_ago(rng.uniform(30, 25 * 365))
            onset = None if self.chance(0.03) else self.partial(onset_day, month=0.12, year=0.05)
            abatement = None
            if status == "resolved" and onset is not None:
                abatement = self.partial(onset_day + (self.as_of - onset_day) * rng.random())
            out.append(Condition(source_id=self.sid("condition"), code=code, onset=onset,
                                 abatement=abatement, status=status))
        # exacerbations of a chronic illness, recent or not so recent
        prone = any(c in _EXACERBATION_PRONE for c in codes)
        if EXACERBATION_CODES and self.chance((0.5 if prone else 0.05) * f + 0.005):
            for _ in range(1 + self.poisson(0.5)):
                day = self.days_ago(rng.uniform(0, 240))
                out.append(Condition(source_id=self.sid("condition"), code=rng.choice(EXACERBATION_CODES),
                                     onset=self.partial(day, month=0.05),
                                     status=rng.choice(("active", "resolved"))))
        for _ in range(self.poisson(0.6)):
            day = self.days_ago(rng.uniform(0, 5 * 365))
            out.append(Condition(source_id=self.sid("condition"), code=rng.choice(ACUTE_CODES),
                                 onset=self.partial(day), abatement=self.partial(min(day + dt.timedelta(14),
                                                                                    self.as_of)),
                                 status="resolved"))
        return out

    def medications(self) -> list[Medication]:
        rng, f = self.rng, self.f
        out: list[Medication] = []
        for _ in range(min(self.poisson(0.4 + 12.0 * f), 25)):
            status = rng.choices(("active", "on_hold", "stopped", "completed", "cancelled"), (72, 4, 15, 7, 2))[0]
            days = rng.uniform(0, 180) if self.chance(0.2) else rng.uniform(180, 10 * 365)
            start_day = self.days_ago(days)
            start = None if self.chance(0.02) else self.partial(start_day, month=0.06, year=0.01)
            end = None
            if status in ("stopped", "completed", "cancelled"):
                end = self.partial(start_day + (self.as_of - start_day) * rng.random())
            cost = None if self.chance(0.12) else round(rng.lognormvariate(math.log(12.0), 1.0), 2)
            out.append(Medication(source_id=self.sid("medication"), code=rng.choice(_MED_CODES),
                                  start=start, end=end, status=status, monthly_cost=cost))
        return out

    def encounters(self) -> list[Encounter]:
        rng, f = self.rng, self.f
        out: list[Encounter] = []

        def add(kind: str, day: dt.date, end: dt.date | None = None, method=None, precise: float = 0.97):
            imprecise = 1 - precise
            start = self.partial(day, month=imprecise * 0.8, year=imprecise * 0.2)
            end_p = None
            if end is not None:  # the end is known as precisely as the start
                end_p = _pdate(end.isoformat()[:len(start.text)])
            out.append(Encounter(source_id=self.sid(kind), kind=kind, start=start, end=end_p, method=method))

        def when() -> dt.date:
            return self.days_ago(rng.uniform(0, HISTORY_DAYS))

        # inpatient admissions; some long, some overlapping (a transfer recorded twice), a few ongoing
        for _ in range(self.poisson(0.12 + 6.0 * f ** 1.5)):
            method = rng.choices(("emergency", "elective", "other"), (65, 32, 3))[0]
            mean = 7.0 if method == "emergency" else 3.0
            stay = 1 + int(rng.expovariate(1 / mean))
            if self.chance(0.04):
                stay = rng.randint(20, 70)
            start = when()
            end = start + dt.timedelta(days=stay)
            if end > self.as_of:
                end = None if self.chance(0.5) else self.as_of
            add("admission", start, end, method, precise=0.95)
            if self.chance(0.06) and end is not None:
                second = start + dt.timedelta(days=rng.randint(0, stay))
                add("admission", second, min(second + dt.timedelta(days=rng.randint(1, 20)), self.as_of),
                    rng.choice(("emergency", "elective")))
        for _ in range(self.poisson(0.3 + 5.0 * f ** 1.5)):
            add("ae", when())
        for _ in range(self.poisson(1.0 + 8.0 * f)):
            add("outpatient", when())
        # GP consultations: a skewed rate, so a few patients are frequent attenders
        per_year = 3.0 * rng.lognormvariate(0.0, 0.7) * (1.0 + 4.0 * f)
        for _ in range(self.poisson(per_year * HISTORY_DAYS / 365.25)):
            add("gp", when(), precise=0.99)
        for _ in range(self.poisson(25.0 * f * f)):
            add("community", when())
        # social work: a few weekly (or more) care packages, otherwise the odd visit
        if self.package:
            gap = rng.choice((2, 3, 3, 4, 5, 7))
            day = self.days_ago(rng.uniform(300, 500))
            while day <= self.as_of:
                add("social_work", day, precise=1.0)
                day += dt.timedelta(days=max(1, gap + rng.randint(-1, 1)))
        else:
            for _ in range(self.poisson(1.5 * f)):
                add("social_work", when())
        if self.package and self.chance(0.5):
            day = self.days_ago(rng.uniform(0, 100))
            add("admission", day, min(day + dt.timedelta(days=rng.randint(1, 10)), self.as_of), "emergency")
        out.sort(key=lambda e: (e.start.earliest, e.source_id))
        return out

    def observations(self) -> list[Observation]:
        rng, f = self.rng, self.f
        out: list[Observation] = []

        def add(kind: str, day: dt.date, **extra):
            out.append(Observation(source_id=self.sid(kind), kind=kind,
                                   date=self.partial(day, month=0.04, year=0.01), **extra))

        for kind, p in (("adl", 1.4 * f), ("iadl", 1.8 * f)):
            if self.chance(min(0.9, p)):
                for _ in range(1 + self.poisson(0.4)):
                    add(kind, self.days_ago(rng.uniform(0, 730)))
        if self.cognitive:
            add("cognition", self.days_ago(rng.uniform(0, 1500)))
        for _ in range(self.poisson(3.0 * f * f)):
            add("fall", self.days_ago(rng.uniform(0, 365)))
        if self.chance(0.4 * f):  # a run of falls
            for _ in range(rng.randint(2, 5)):
                add("fall", self.days_ago(rng.uniform(0, 75)))
        for _ in range(self.poisson(2.0)):
            code, unit, lo, hi = rng.choice(_OBS_CODES)
            add("other", self.days_ago(rng.uniform(0, 730)), code=code, unit=unit,
                value=round(rng.uniform(lo, hi), 1))
        return out

    def procedures(self) -> list[Procedure]:
        return [Procedure(source_id=self.sid("procedure"), code=self.rng.choice(_PROCEDURE_CODES),
                          date=self.partial(self.days_ago(self.rng.uniform(0, 3000)), month=0.1))
                for _ in range(self.poisson(0.4))]

    def life_events(self) -> list[LifeEvent]:
        out = []
        for event, p, span in (("bereavement", 0.07, 730), ("carer_death", 0.01, 730),
                               ("moved_home", 0.03, 1500), ("entered_care_home", 0.02 * self.f, 730)):
            if self.chance(p):
                out.append(LifeEvent(source_id=self.sid(event), event=event,
                                     date=self.partial(self.days_ago(self.rng.uniform(0, span)), month=0.05)))
        return out

    def pathway_events(self) -> list[PathwayEventRecord]:
        if not self.chance(0.02):
            return []
        day = self.days_ago(self.rng.uniform(30, 400))
        out = []
        for event in ("referred", "approached", "consented", "assessed", "plan_agreed"):
            out.append(PathwayEventRecord(source_id=self.sid(event), event=event, date=_pdate(day.isoformat()),
                                          pathway="case_management"))
            day += dt.timedelta(days=self.rng.randint(1, 20))
            if day > self.as_of or self.chance(0.2):
                break
        return out


def make_patient(seed: int, i: int, as_of) -> PatientRecord:
    """Patient ``i`` of the population ``seed`` on ``as_of``."""
    pid = f"syn-{seed}-{i:06d}"
    rng = random.Random(f"pathways-synthetic:{seed}:{i}")
    return _Patient(rng, _as_date(as_of), pid).record()


def iter_generate(n: int, seed: int, as_of) -> Iterator[PatientRecord]:
    """``n`` patients, one at a time (nothing is kept: memory stays flat)."""
    day = _as_date(as_of)
    for i in range(n):
        yield make_patient(seed, i, day)


def generate(n: int, seed: int, as_of) -> list[PatientRecord]:
    """``n`` patients as a list.

    The cyclic garbage collector is paused while the list is built: records
    hold no cycles, and with it running, building 100,000 records (three
    million objects that all survive) takes several times longer."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return list(iter_generate(n, seed, as_of))
    finally:
        if enabled:
            gc.enable()
