"""A synthetic population: patient records that look like an English GP list.

``generate(n, seed, as_of)`` yields ``n`` :class:`~pathways.records.PatientRecord`
one at a time. Nothing is kept between patients (memory stays flat, so ten
million patients stream as easily as ten), and nothing reads the clock:

* patient ``i`` is drawn from its own ``random.Random`` seeded with
  ``(seed, i)``, so the same seed always gives the same records, and the
  first ``k`` patients are the same whatever ``n`` is;
* ``as_of`` is the date the extract is taken on: ages, onsets and every event
  are placed relative to it.

>>> from engine.generate import generate
>>> first = list(generate(3, seed=7, as_of="2024-04-01"))
>>> [r.id for r in first]
['syn-7-000000', 'syn-7-000001', 'syn-7-000002']
>>> first == list(generate(3, seed=7, as_of="2024-04-01"))
True
>>> first[:2] == list(generate(2, seed=7, as_of="2024-04-01"))
True

What the population is, and where its figures come from
---------------------------------------------------------
Every figure below is either cited (and rounded: these are published
national figures as we read them, rounded to make the shape plain; check a
source before quoting a number from here) or marked **invented**, meaning it
is our guess at a plausible value, chosen so that the records look like
a GP extract and every criterion of the library's protocols occurs.

* **Ages**: all ages, 0 to 104, in the proportions of the ONS mid-2022
  population estimates for England (five-year bands); ``min_age`` restricts
  the extract to older patients (``min_age=65`` is a 65+ case-finding
  extract) with the same shape above it. Sex by age from the same estimates
  (women are the majority from the seventies on). Some birth dates are
  known only to the month (2%) or the year (1%) (**invented** shares).
* **Practices**: patients fill practices one after another, like an extract
  from a group of practices (a primary care network): each practice's list
  size is drawn from a lognormal with median 8,500 (mean about 9,600), as
  in NHS Digital's *Patients Registered at a GP Practice* (about 63 million
  patients in about 6,300 practices in 2024: mean near 10,000, right-skewed).
  So a small ``n`` is one practice (the whole sample is one ranking group),
  20,000 patients are two or three practices, ten million about a thousand.
  With ``min_age`` a practice holds only its share of patients of that age.
* **Long term conditions**: the SNOMED CT codes of
  ``library/codes/long_term_conditions.csv`` (and so every code list of
  ``conditions.pw``), grouped into conditions. Each condition's all-ages
  prevalence is the national recorded prevalence (QOF 2022-23 registers
  where there is one; otherwise cited or invented, see ``_CONDITIONS`` in
  ``engine/generate_figures.py``);
  its age profile (relative prevalence at ages 0, 10, ..., 100) follows the
  usual shape of the QOF and CPRD age-specific figures and is scaled so the
  population-weighted prevalence matches. A patient-level multiplier
  (lognormal) makes conditions cluster in the same people, so
  multimorbidity rises with age faster than independent conditions would
  (Barnett et al., Lancet 2012, counting 40 conditions: most people over 65
  have two or more; with these 23, about a third of people aged 65-74 and
  half of those 85+ have two or more active).
  Some conditions are resolved, inactive or in remission (depression and
  cancer often are); onsets are sometimes known only to the month or year.
* **Hospital and services** (two years of history before ``as_of``):
  heavy-tailed use from a shared propensity (gamma) times a
  service-specific one, rising with age and the burden of disease.
  Emergency admissions about 0.11 a person a year (HES 2022-23, about 6.3
  million emergency admissions), elective about 0.14 (about three quarters
  day cases); stays lognormal and longer with age, so that the top 5% of
  inpatients hold about two fifths of bed days (DOMAIN.md: 5% of
  inpatients account for 42% of acute bed days); a few stays recorded twice
  (a transfer), overlapping, and a few still open on ``as_of``. A&E about
  0.3 attendances a person a year (NHS England A&E attendances, about 15
  million a year at major A&E departments, more at all types), most
  emergency admissions arriving through A&E;
  outpatient about 1.8 a year (HES outpatients, about 100 million attended
  appointments a year); GP consultations about 3.5 a year with a clinician,
  8 or more at 85+ (Hobbs et al., Lancet 2016, CPRD 2007-14: about 5 a
  year counting nurses and telephone consultations), a tenth of patients
  making over a third of them and a fifth none.
* **Medicines**: repeat medicines by condition with typical monthly costs
  (NHS Drug Tariff and BNF prices, rounded; the dm+d codes are
  **invented** and not real products), some stopped, on hold or recently
  started, acute courses, and about 6% with no cost recorded (hospital
  prescribed or missing). About a third of people aged 65 and over are on
  five or more repeat medicines, and 9% of all ages (Gao et al., Age and
  Ageing 2018, CFAS: 49% of people 65+ took five or more in 2011; the DHSC
  National Overprescribing Review 2021: 15% of people take five or more a
  day; ours count only repeat prescriptions, so run a little lower).
* **Social care**: long-term support for about 5% of people aged 65 and over
  and under 1% of younger adults (NHS Digital Adult Social Care Activity
  2022-23, about 840,000 people); home care packages of weekly to daily
  visits (each a ``social_work`` encounter), more likely with dementia and
  when living alone; otherwise the odd assessment visit.
* **Falls**: about a third of people over 65 and half of those over 80 fall
  each year (NICE CG161); fewer reach the GP record (**invented**: a
  recorded fall in two years for about a quarter of people aged 65-74 and
  two fifths of those 85+), and a few frail people have a run of falls in
  weeks.
* **Assessments**: ADL, IADL and cognitive assessments for a minority of
  older and frail people (**invented** rates), most finding an impairment
  (the assessed are the needy: about a quarter of all people over 65 need
  help with an ADL, Health Survey for England 2018); an assessment that
  found none is recorded with ``impaired=False``; most patients have none.
* **Living alone**: about a quarter of people aged 65-74 and over 40% of
  those 75 and over (ONS Families and Households; Age UK), often not
  recorded (``None``, **invented** shares); carers likewise.
* **Bereavement and other life events**: a recorded bereavement about 2% a
  year over 65 (about 2% of people 65+ are widowed each year in England),
  less when younger (**invented** recording rates); death of a carer,
  moving home, entering a care home.
* **Deaths**: people who died in the year before ``as_of`` stay in the
  extract with their date of death, at the rates of the ONS national life
  tables 2020-22 (a Gompertz curve: about 1% a year at 60, 5% at 80, 14%
  at 90), and their records stop at death.

Everything not listed is **invented**: exact multipliers, the shapes of the
tails, the spacing of visits.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
from typing import Iterator

from pathways.records import PatientRecord

# The figures and the per-patient drawing live in their own modules; their public
# names stay importable from here.
from .generate_figures import (  # noqa: F401
    ACUTE_CODES, ACUTE_DRUG_CODES, AGE_WEIGHTS, AGES, DRUG_CODES, EXACERBATION_CODES, FAMILIES, HISTORY_DAYS,
    LTC_CODES, MAX_AGE, ONS_MID_2022_ENGLAND, YEAR, _age_table, share_at_least,
)
from .generate_patient import _Patient

#: the extract date used when none is given (a fixed date: there is no clock)
DEFAULT_AS_OF = dt.date(2024, 4, 1)

# --- practices ----------------------------------------------------------------------------------
PRACTICE_MEDIAN = 8500  # registered patients; lognormal, sigma 0.5 (mean about 9,600)
PRACTICE_SIGMA = 0.5


def practice_size(seed: int, j: int, min_age: int = 0) -> int:
    """How many patients of the extract practice ``j`` holds (all its patients aged
    ``min_age`` or over)."""
    rng = random.Random(f"ltc-synthetic-practice:{seed}:{j}")
    registered = min(40_000, max(1_500, rng.lognormvariate(math.log(PRACTICE_MEDIAN), PRACTICE_SIGMA)))
    return max(1, round(registered * share_at_least(min_age)))


def practice_id(j: int) -> str:
    return f"P{j + 1:04d}"


class _Practices:
    """Which practice patient ``i`` belongs to: practices fill one after another."""

    def __init__(self, seed: int, min_age: int):
        self.seed, self.min_age = seed, min_age
        self.ends: list[int] = []  # ends[j]: the index after practice j's last patient

    def of(self, i: int) -> int:
        while not self.ends or self.ends[-1] <= i:
            start = self.ends[-1] if self.ends else 0
            self.ends.append(start + practice_size(self.seed, len(self.ends), self.min_age))
        return bisect.bisect_right(self.ends, i)


def as_date(as_of) -> dt.date:
    if as_of is None:
        return DEFAULT_AS_OF
    if isinstance(as_of, dt.datetime):
        return as_of.date()
    if isinstance(as_of, dt.date):
        return as_of
    return dt.date.fromisoformat(str(as_of))


# --- the public functions -------------------------------------------------------------------------
def patient_id(seed: int, i: int) -> str:
    return f"syn-{seed}-{i:06d}"


def make_patient(seed: int, i: int, as_of=None, *, min_age: int = 0, practice: str | None = None) -> PatientRecord:
    """Patient ``i`` of the population ``seed`` on ``as_of`` (the same as the ``i``-th
    record of :func:`generate`)."""
    if practice is None:
        practice = practice_id(_Practices(seed, min_age).of(i))
    rng = random.Random(f"ltc-synthetic:{seed}:{i}")
    return _Patient(rng, as_date(as_of), patient_id(seed, i), practice, min_age).record()


def generate(n: int, seed: int = 1, as_of=None, *, min_age: int = 0) -> Iterator[PatientRecord]:
    """``n`` patients, one at a time, deterministic for ``seed`` and ``as_of``.

    ``min_age`` restricts the extract to patients of at least that age (0: all
    ages, England's age structure). Nothing is kept between patients."""
    if n < 0:
        raise ValueError("the number of patients cannot be negative")
    day = as_date(as_of)
    _age_table(min_age)  # checks min_age
    practices = _Practices(seed, min_age)
    for i in range(n):
        yield make_patient(seed, i, day, min_age=min_age, practice=practice_id(practices.of(i)))


__all__ = ["DEFAULT_AS_OF", "LTC_CODES", "EXACERBATION_CODES", "generate", "make_patient", "practice_size",
           "share_at_least"]
