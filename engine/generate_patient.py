"""One synthetic patient's record, drawn from its own ``random.Random``.

:class:`_Patient` is the per-patient half of :mod:`engine.generate`: given the
patient's Random, the extract date and the practice, it draws the age and sex,
then the conditions (which drive everything else), social circumstances,
encounters, medicines, observations, procedures and life events. The figures
it draws from are in :mod:`engine.generate_figures`. Use
:func:`engine.generate.generate` or :func:`engine.generate.make_patient`.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
from functools import lru_cache

from pathways.records import (
    Condition, Encounter, LifeEvent, Medication, Observation, PartialDate, Patient, PathwayEventRecord,
    PatientRecord, Procedure,
)

from .generate_figures import (
    ACUTE_CODES, ACUTE_DRUG_CODES, AGES, DRUG_CODES, HISTORY_DAYS, MAX_AGE, YEAR, _ACUTE_DRUGS, _AE_RATE,
    _ASSESSED, _BEREAVED, _CONDITIONS, _DRUG_COST, _ELECTIVE_RATE, _EMERGENCY_NIGHTS, _EMERGENCY_RATE,
    _EXACERBATIONS, _FALLS, _FEMALE_SHARE, _GP_RATE, _LIVES_ALONE, _MEAN_F, _OBSERVATIONS, _OUTPATIENT_RATE,
    _PROCEDURE_CODES, _REGIMENS, _SOCIAL_CARE, _STATUSES, _age_table, _annual_death_risk, _band, _interp,
)


# --- small helpers ------------------------------------------------------------------------------
@lru_cache(maxsize=16384)
def _pdate(text: str) -> PartialDate:
    """A PartialDate, shared between records (they are immutable); bounded, so a long
    stream does not grow it."""
    return PartialDate(text=text)


class _Patient:
    """Draws one patient's record from its own Random."""

    def __init__(self, rng: random.Random, as_of: dt.date, pid: str, practice: str, min_age: int):
        self.rng = rng
        self.as_of = as_of
        self.pid = pid
        self.practice = practice
        self.min_age = min_age
        self.n = 0

    # --- helpers -----------------------------------------------------------------------------
    def sid(self, kind: str) -> str:
        self.n += 1
        return f"{self.pid}-{kind.replace('_', '-')}-{self.n}"  # letters, digits, `-`: a valid FHIR id

    def partial(self, day: dt.date, month: float = 0.0, year: float = 0.0) -> PartialDate:
        """``day``, known to the day or (with these chances) only to the month or the year."""
        if month or year:
            u = self.rng.random()
            if u < year:
                return _pdate(f"{day.year:04d}")
            if u < year + month:
                return _pdate(f"{day.year:04d}-{day.month:02d}")
        return _pdate(day.isoformat())

    def poisson(self, lam: float) -> int:
        if lam <= 0:
            return 0
        rng = self.rng
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

    def gamma1(self, shape: float) -> float:
        """A gamma variable with mean 1 (smaller shape: heavier tail)."""
        return self.rng.gammavariate(shape, 1.0 / shape)

    def day_in_history(self, span: float = HISTORY_DAYS) -> dt.date:
        """A day in the ``span`` days up to the end of the record (as_of, or the death)."""
        return self.until - dt.timedelta(days=int(self.rng.random() * min(span, self.alive_days)))

    # --- the record --------------------------------------------------------------------------
    def record(self) -> PatientRecord:
        rng = self.rng
        cumulative, lo = _age_table(self.min_age)
        k = bisect.bisect_right(cumulative, rng.random() * cumulative[-1])
        age = lo + min(k, len(cumulative) - 1) + rng.random()
        self.age = age
        female = rng.random() < _interp(_FEMALE_SHARE, age)
        u = rng.random()
        sex = "unknown" if u < 0.0005 else "other" if u < 0.001 else ("female" if female else "male")
        self.female = female
        birth = self.as_of - dt.timedelta(days=int(age * YEAR))
        self.birth = birth
        # conditions first: they drive everything else
        self.m = rng.lognormvariate(-0.5 * 0.7 ** 2, 0.7)  # mean 1: clustering of disease (invented)
        conditions = self.conditions()
        # need for care: disease burden and age, with individual variation (invented scale)
        x = 0.11 * self.burden + 0.025 * max(0.0, age - 60)
        self.f = f = 1.0 - math.exp(-x * rng.lognormvariate(0.0, 0.5))
        # how much more (or less) care than is usual at this age the patient needs: the rates
        # by age below are averages, and this spreads them over the sick and the well
        mean_f = _interp(_MEAN_F, age)
        self.need = (0.35 + 2.2 * f) / (0.35 + 2.2 * mean_f)
        self.rel_f = (0.2 + f) / (0.2 + mean_f)
        # died in the year before as_of? (stays in the extract with a date of death)
        death = None
        if self.chance(_annual_death_risk(age) * self.rel_f):
            death = self.as_of - dt.timedelta(days=rng.randrange(0, 365))
        self.until = death or self.as_of
        self.alive_days = max(1, (self.until - birth).days)
        self.social(age)
        encounters, more_conditions = self.encounters(age, death)
        conditions.extend(more_conditions)
        conditions.extend(self.acute_conditions())
        patient = Patient(
            id=self.pid,
            birth_date=self.partial(birth, month=0.02, year=0.01),
            sex=sex,
            date_of_death=_pdate(death.isoformat()) if death else None,
            practice=self.practice,
            lives_alone=self.lives_alone,
            has_carer=self.has_carer,
        )
        return PatientRecord(
            patient=patient,
            conditions=tuple(conditions),
            medications=tuple(self.medications(age)),
            encounters=tuple(encounters),
            observations=tuple(self.observations(age)),
            procedures=tuple(self.procedures()),
            life_events=tuple(self.life_events(age)),
            pathway_events=tuple(self.pathway_events(age)),
        )

    def conditions(self) -> list[Condition]:
        rng, age, m = self.rng, self.age, self.m
        a = min(int(age), MAX_AGE)
        sex = 0 if self.female else 1
        out: list[Condition] = []
        self.families: dict[str, str] = {}  # family -> status
        self.onsets: dict[str, dt.date] = {}
        burden = 0.0
        for fam in _CONDITIONS:
            p = fam.by_age[a]
            if p <= 0.0 or rng.random() >= min(0.95, p * m * fam.sex_factor[sex]):
                continue
            weights = fam.weights
            if fam.name == "cancer":  # breast cancer mostly in women, prostate only in men
                weights = (3, 2 if self.female else 0.02, 0 if self.female else 1.5, 1, 0.6)
            code = rng.choices(fam.codes, weights)[0]
            status = rng.choices(_STATUSES, fam.status_weights)[0]
            # onset: some time since the condition became possible, recent more often
            first = next(x for x, v in zip(AGES, fam.profile) if v > 0)
            start_age = max(0.5, first - 8.0)
            onset_age = start_age + (age - start_age) * rng.random() ** 0.7 if age > start_age else age * 0.9
            onset_day = self.as_of - dt.timedelta(days=int((age - onset_age) * YEAR) + 14)
            onset = None if self.chance(0.02) else self.partial(onset_day, month=0.10, year=0.05)
            abatement = None
            if status == "resolved" and onset is not None:
                abatement = self.partial(onset_day + (self.as_of - onset_day) * rng.random(), month=0.1)
            out.append(Condition(source_id=self.sid("condition"), code=code, onset=onset,
                                 abatement=abatement, status=status))
            if fam.name == "chd" and code != "22298006" and self.chance(0.2):  # a past infarction too
                out.append(Condition(source_id=self.sid("condition"), code="22298006",
                                     onset=self.partial(onset_day + (self.as_of - onset_day) * rng.random()),
                                     status="active"))
            self.families[fam.name] = status
            self.onsets[fam.name] = onset_day
            if status in ("active", "recurrence", "relapse"):
                burden += fam.burden
            elif fam.name == "cancer":
                burden += 0.5
        self.burden = burden
        self.dementia = self.families.get("dementia") in ("active", "recurrence", "relapse")
        return out

    def acute_conditions(self) -> list[Condition]:
        """Acute illnesses of the last three years (not long term conditions)."""
        rng, out = self.rng, []
        for _ in range(self.poisson(0.35 * 3)):
            day = self.day_in_history(3 * 365)
            out.append(Condition(source_id=self.sid("condition"), code=rng.choice(ACUTE_CODES),
                                 onset=self.partial(day), status="resolved",
                                 abatement=self.partial(min(day + dt.timedelta(days=rng.randint(5, 21)),
                                                            self.until))))
        return out

    def social(self, age: float) -> None:
        rng, f = self.rng, self.f
        alone = self.chance(min(0.85, _band(age, _LIVES_ALONE) * (0.8 + 0.6 * f)))
        self.care_home = age >= 70 and self.chance(0.02 * (0.3 + 3 * f * f) * (1 + (age - 70) / 10))
        if self.care_home:
            alone = False
        # recorded? (invented) mostly for older and frailer people
        unrecorded = 0.65 if age < 65 else 0.3 - 0.2 * f
        self.lives_alone = None if (age < 16 and self.chance(0.9)) or self.chance(unrecorded) else alone
        carer = self.chance(min(0.9, 0.02 + 0.9 * f * f)) if age >= 16 else False
        self.has_carer = None if self.chance(0.75 if age < 65 else 0.45 - 0.3 * f) else carer
        self.alone = alone
        # long-term social care support (home care), visits recorded as social_work encounters
        p = _band(age, _SOCIAL_CARE) * self.rel_f ** 1.5 * (2.5 if self.dementia else 1.0) * (1.5 if alone else 1.0)
        if self.dementia and alone:
            p = max(p, 0.75)  # most people with dementia who live alone have home care (invented)
        self.package = not self.care_home and age >= 18 and self.chance(min(0.9, p))
        if self.package:
            heavy = self.dementia and alone
            # visits a week (invented): a review every few weeks up to daily home care
            self.package_rate = rng.choices((0.25, 0.5, 1, 2, 3, 7),
                                            (1, 2, 4, 8, 8, 14) if heavy else (10, 15, 25, 20, 12, 8))[0]
            self.package_start = self.until - dt.timedelta(days=int(rng.uniform(20, 6 * 365)))
        # two things that make an emergency admission more likely together: dementia, alone
        self.unstable = 4.0 if (self.dementia and alone) else 1.0

    # --- encounters -------------------------------------------------------------------------------
    def encounters(self, age: float, death: dt.date | None) -> tuple[list[Encounter], list[Condition]]:
        rng, f = self.rng, self.f
        out: list[Encounter] = []
        conds: list[Condition] = []
        years = min(HISTORY_DAYS, self.alive_days) / YEAR
        need = self.need
        g = self.gamma1(1.2)  # shared propensity to use services: heavy users use everything more
        sid = self.sid
        until = self.until

        def add(kind, day, end=None, method=None, month=0.0):
            start = self.partial(day, month=month)
            end_p = None
            if end is not None:  # the end is known as precisely as the start
                end_p = _pdate(end.isoformat()[:len(start.text)])
            out.append(Encounter(source_id=sid(kind), kind=kind, start=start, end=end_p, method=method))

        def stay(day, nights, method, month=0.015):
            end = day + dt.timedelta(days=nights)
            if end > until:
                end = None if death is None and self.chance(0.7) else until  # still in hospital
            add("admission", day, end, method, month=month)
            if end is not None and self.chance(0.03):  # a transfer recorded twice: overlapping stays
                second = day + dt.timedelta(days=rng.randint(0, nights))
                add("admission", second, min(second + dt.timedelta(days=rng.randint(1, 15)), until), method)

        def emergency_nights():
            if self.chance(0.3 if age < 65 else 0.15):
                return 0  # same-day emergency care
            median = _band(age, _EMERGENCY_NIGHTS) * (0.7 + 0.8 * f)
            return max(1, min(200, int(rng.lognormvariate(math.log(median), 1.0) + 0.5)))

        # emergency admissions, most through A&E
        rate = _band(age, _EMERGENCY_RATE) * need * g * self.gamma1(0.6) * self.unstable
        for _ in range(self.poisson(rate * years)):
            day = self.day_in_history()
            if self.chance(0.75):
                add("ae", day)
            stay(day, emergency_nights(), "emergency")
        # elective admissions: about three quarters day cases
        rate = _band(age, _ELECTIVE_RATE) * (0.5 + 0.5 * need) * self.gamma1(0.7)
        if self.families.get("cancer") == "active":
            rate += 1.0 * self.gamma1(0.5)  # treatment as day cases
        for _ in range(self.poisson(rate * years)):
            nights = 0 if self.chance(0.75) else max(1, int(rng.lognormvariate(math.log(2.5), 0.8) + 0.5))
            stay(self.day_in_history(), nights, "elective" if self.chance(0.97) else "other")
        # exacerbations of chronic illness, some ending in an admission
        for fam, (codes, per_year) in _EXACERBATIONS.items():
            if self.families.get(fam) not in ("active", "recurrence", "relapse"):
                continue
            for _ in range(self.poisson(per_year * (0.5 + f) * years * self.gamma1(1.0))):
                day = self.day_in_history()
                end = day + dt.timedelta(days=rng.randint(7, 28))
                conds.append(Condition(source_id=sid("condition"), code=rng.choice(codes),
                                       onset=self.partial(day, month=0.05),
                                       abatement=None if end > self.as_of else self.partial(end),
                                       status="active" if end > self.as_of else "resolved"))
                if self.chance(0.5 if fam == "heart_failure" else 0.2):
                    add("ae", day)
                    stay(day, emergency_nights(), "emergency")
        if self.dementia and self.alone and self.chance(0.4):
            # a recent crisis (a fall, an infection, delirium) for someone with dementia living
            # alone: the "medically unstable" of the Evercare pilots (invented rate)
            day = self.day_in_history(120)
            add("ae", day)
            stay(day, emergency_nights(), "emergency")
        if death is not None and self.chance(0.5):  # the last weeks of life
            day = death - dt.timedelta(days=rng.randint(0, 30))
            add("ae", day)
            stay(day, (death - day).days, "emergency")
        # A&E attendances not ending in admission
        rate = _band(age, _AE_RATE) * (0.5 + 0.5 * need) * g * self.gamma1(0.4)
        for _ in range(self.poisson(rate * years)):
            add("ae", self.day_in_history())
        # outpatient appointments
        rate = _band(age, _OUTPATIENT_RATE) * (0.4 + 0.6 * need) * g * self.gamma1(0.8)
        if self.families.get("cancer") == "active":
            rate += 4.0
        for _ in range(self.poisson(rate * years)):
            add("outpatient", self.day_in_history())
        # GP consultations: heavy-tailed, so a few patients are frequent attenders
        rate = _band(age, _GP_RATE) * (1.1 if self.female and 15 <= age < 65 else 1.0) * (0.6 + 0.4 * need)
        for _ in range(self.poisson(rate * g * self.gamma1(1.5) * years)):
            add("gp", self.day_in_history())
        # community (district nursing) contacts for the housebound and frail
        if age >= 60:
            for _ in range(self.poisson(24.0 * f ** 3 * years * self.gamma1(1.0))):
                add("community", self.day_in_history())
        # social care: a package of regular visits, or the odd assessment visit
        if self.package:
            gap = 7.0 / self.package_rate
            day = max(self.package_start, until - dt.timedelta(days=425))
            day += dt.timedelta(days=rng.random() * gap)
            while day <= until:
                add("social_work", day)
                day += dt.timedelta(days=max(1, int(gap * rng.uniform(0.7, 1.3) + 0.5)))
        elif age >= 18:
            for _ in range(self.poisson(0.01 + 0.6 * f * f)):
                add("social_work", self.day_in_history(), month=0.02)
        out.sort(key=lambda e: (e.start.earliest, e.source_id))
        return out, conds

    # --- medicines ---------------------------------------------------------------------------------
    def medications(self, age: float) -> list[Medication]:
        rng, f = self.rng, self.f
        chosen: dict[str, tuple[str, bool]] = {}  # drug -> (the family it is for, is it current)
        more = 0.85 + 1.0 * f  # the frail are on more of each regimen (invented)
        for fam, status in self.families.items():
            current = status in ("active", "recurrence", "relapse")
            for drug, p in _REGIMENS[fam]:
                if drug not in chosen and self.chance(min(0.95, p * more) if current else p * 0.3):
                    chosen[drug] = (fam, current)
        # medicines of age rather than of a listed condition (invented shares)
        old = age >= 65
        for drug, p in (("atorvastatin", 0.45 if old else 0.18 if age >= 45 else 0.0),
                        ("omeprazole", (0.25 + 0.3 * f) if old else 0.14 if age >= 45 else 0.01),
                        ("aspirin", 0.08 if old else 0.0),
                        ("paracetamol", (0.15 + 0.4 * f) if old else 0.03 if age >= 45 else 0.0),
                        ("colecalciferol", (0.15 + 0.3 * f) if old else 0.02 if age >= 45 else 0.0),
                        ("macrogol", (0.05 + 0.3 * f) if old else 0.0),
                        ("levothyroxine", (0.10 if self.female else 0.03) if age >= 60 else 0.02 if age >= 18 else 0),
                        ("tamsulosin", 0.2 if old and not self.female else 0.0),
                        ("gabapentin", (0.05 + 0.15 * f) if age >= 45 else 0.0),
                        ("amitriptyline", 0.05 if age >= 30 else 0.0),
                        ("eye drops", 0.06 if old else 0.0),
                        ("emollient", 0.05 + 0.1 * f),
                        ("combined contraceptive", 0.25 if self.female and 15 <= age < 50 else 0.0)):
            if p and drug not in chosen and self.chance(p):
                chosen[drug] = ("", True)
        out: list[Medication] = []
        as_of = self.as_of
        last = min(as_of, self.until)  # the record ends at death: nothing starts after it
        for drug, (fam, current) in chosen.items():
            onset = self.onsets.get(fam, self.birth + dt.timedelta(days=int(max(0.0, self.age - 10) * YEAR)))
            years_on = min((last - onset).days / YEAR, rng.expovariate(1 / 4.0))
            start_day = last - dt.timedelta(days=int(max(0.05, years_on) * YEAR))
            if current:  # for a current condition (or of age)
                status = rng.choices(("active", "on_hold", "stopped", "completed"), (86, 2, 10, 2))[0]
            else:  # for a condition that has resolved
                status = rng.choices(("active", "stopped", "completed"), (20, 70, 10))[0]
            end = None
            if status in ("stopped", "completed"):
                end = self.partial(start_day + (last - start_day) * rng.random(), month=0.02)
            elif self.until < as_of:
                status, end = "stopped", _pdate(self.until.isoformat())
            cost = _DRUG_COST[drug]
            if cost is not None and not self.chance(0.06):
                cost = round(cost * rng.lognormvariate(0.0, 0.25), 2)  # strengths and pack sizes
            else:
                cost = None
            start = None if self.chance(0.01) else self.partial(start_day, month=0.04, year=0.01)
            out.append(Medication(source_id=self.sid("medication"), code=DRUG_CODES[drug], start=start,
                                  end=end, status=status, monthly_cost=cost))
        # acute courses in the last two years
        for _ in range(self.poisson((0.3 + 0.6 * f) * 2)):
            name, cost = rng.choice(_ACUTE_DRUGS)
            day = self.day_in_history()
            out.append(Medication(source_id=self.sid("medication"), code=ACUTE_DRUG_CODES[name],
                                  start=self.partial(day), end=self.partial(day + dt.timedelta(days=7)),
                                  status="completed", monthly_cost=cost))
        return out

    # --- observations ------------------------------------------------------------------------------
    def observations(self, age: float) -> list[Observation]:
        rng, f = self.rng, self.f
        out: list[Observation] = []

        def add(kind, day, month=0.0, **extra):
            out.append(Observation(source_id=self.sid(kind), kind=kind, date=self.partial(day, month=month),
                                   **extra))

        # ADL and IADL assessments (with what they found); most patients have none
        if self.chance(min(0.95, _band(age, _ASSESSED) * self.rel_f ** 1.5 * (1.5 if self.package else 1.0))):
            for kind, base in (("adl", 0.15), ("iadl", 0.25)):
                if kind == "iadl" and self.chance(0.25):
                    continue  # only the ADL assessment
                impaired = self.chance(min(0.95, base + 0.9 * f))
                for _ in range(1 + self.poisson(0.5)):
                    add(kind, self.day_in_history(), month=0.03,
                        impaired=impaired if self.chance(0.85) else not impaired)
        # cognition: dementia on record, or a memory screen
        if self.dementia and self.chance(0.8):
            add("cognition", self.day_in_history(1500), impaired=True)
        elif age >= 65 and self.chance(0.05 + 0.3 * f):
            add("cognition", self.day_in_history(), impaired=self.chance(0.1 + 0.5 * f))
        # falls: a third of over-65s fall each year, half of over-80s; about 40% recorded
        p_fall = _band(age, _FALLS) * self.rel_f
        if self.chance(min(0.95, p_fall)):
            for _ in range(self.poisson((1.0 + 2.0 * f) * 0.4 * 2)):
                add("fall", self.day_in_history(), month=0.03)
        if age >= 65 and self.chance(0.2 * f * f):  # a run of falls in a few weeks
            start = self.day_in_history(HISTORY_DAYS - 60)
            for _ in range(rng.randint(3, 5)):
                add("fall", min(self.until, start + dt.timedelta(days=rng.randrange(0, 56))), month=0.05)
        # measurements: blood pressure, weight, BMI, a frailty score (older people)
        if age >= 16:
            for _ in range(min(10, self.poisson(0.4 + 0.5 * len(self.families)))):
                code, unit, mean, spread = rng.choice(_OBSERVATIONS[:3] if age < 65 else _OBSERVATIONS)
                value = round(max(0.0, rng.gauss(mean + (spread * 2 * f if unit == "score" else 0), spread)), 1)
                add("other", self.day_in_history(), code=code, unit=unit, value=value)
        return out

    def procedures(self) -> list[Procedure]:
        rng = self.rng
        return [Procedure(source_id=self.sid("procedure"), code=rng.choice(_PROCEDURE_CODES),
                          date=self.partial(self.day_in_history(5 * 365), month=0.1))
                for _ in range(self.poisson(0.05 + 0.1 * len(self.families)))]

    def life_events(self, age: float) -> list[LifeEvent]:
        out = []
        years = min(HISTORY_DAYS, self.alive_days) / YEAR
        for event, p in (("bereavement", _band(age, _BEREAVED) * years),
                         ("carer_death", (0.015 if self.has_carer else 0.0) * years),
                         ("moved_home", 0.04 * years),
                         ("entered_care_home", 1.0 if self.care_home and self.chance(0.5) else 0.0)):
            if self.chance(p):
                out.append(LifeEvent(source_id=self.sid(event), event=event,
                                     date=self.partial(self.day_in_history(), month=0.08)))
        return out

    def pathway_events(self, age: float) -> list[PathwayEventRecord]:
        """Some frail older patients are already on the case management pathway."""
        if age < 65 or not self.chance(0.08 * self.f * self.f):
            return []
        rng = self.rng
        day = self.until - dt.timedelta(days=rng.randint(30, 400))
        out = []
        for event in ("referred", "approached", "consented", "assessed", "plan_agreed", "reviewed"):
            if day > self.until:
                break
            out.append(PathwayEventRecord(source_id=self.sid(event), event=event, date=_pdate(day.isoformat()),
                                          pathway="case_management"))
            if self.chance(0.12):
                break
            day += dt.timedelta(days=rng.randint(1, 30))
        return out
