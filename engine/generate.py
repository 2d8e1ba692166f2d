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
  where there is one; otherwise cited or invented, see ``_CONDITIONS``);
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
from functools import lru_cache
from itertools import accumulate
from typing import Iterator

from pathways.records import (
    Condition, Encounter, LifeEvent, Medication, Observation, PartialDate, Patient, PathwayEventRecord,
    PatientRecord, Procedure,
)

#: the extract date used when none is given (a fixed date: there is no clock)
DEFAULT_AS_OF = dt.date(2024, 4, 1)
#: how much activity (encounters, assessments, falls) the extract holds before as_of
HISTORY_DAYS = 730
YEAR = 365.25

# --- ages --------------------------------------------------------------------------------------
# ONS mid-2022 population estimates, England (total about 57.1 million), thousands of people in
# five-year bands, rounded to the nearest 50,000. The last band is 90 and over.
ONS_MID_2022_ENGLAND = (
    (0, 3150), (5, 3350), (10, 3500), (15, 3300), (20, 3500), (25, 3700), (30, 3900), (35, 3850),
    (40, 3650), (45, 3500), (50, 3850), (55, 3850), (60, 3350), (65, 2900), (70, 2800), (75, 2300),
    (80, 1450), (85, 850), (90, 500),
)
MAX_AGE = 104
# Share of women by age (ONS mid-2022, rounded): even until the sixties, then rising.
_FEMALE_SHARE = ((0, 0.488), (20, 0.497), (40, 0.505), (60, 0.510), (70, 0.525), (80, 0.565),
                 (85, 0.600), (90, 0.670), (100, 0.780))


def _single_year_weights() -> list[float]:
    """People of each single year of age 0..MAX_AGE: flat within a band; 90+ falling
    away geometrically (about 3% of the 90+ are centenarians)."""
    weights = [0.0] * (MAX_AGE + 1)
    for lo, thousands in ONS_MID_2022_ENGLAND:
        if lo < 90:
            for a in range(lo, lo + 5):
                weights[a] = thousands / 5
    tail = [0.74 ** k for k in range(MAX_AGE - 89)]
    for k, w in enumerate(tail):
        weights[90 + k] = 500 * w / sum(tail)
    return weights


AGE_WEIGHTS = _single_year_weights()


def _interp(points, x: float) -> float:
    """Piecewise-linear interpolation through ``points`` ((x, y), ...), flat beyond the ends."""
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]


def share_at_least(min_age: int) -> float:
    """The share of England's population aged ``min_age`` or over."""
    return sum(AGE_WEIGHTS[min_age:]) / sum(AGE_WEIGHTS)


@lru_cache(maxsize=16)
def _age_table(min_age: int) -> tuple[list[float], int]:
    if not 0 <= min_age <= 100:
        raise ValueError(f"min_age must be between 0 and 100, not {min_age}")
    return list(accumulate(AGE_WEIGHTS[min_age:])), min_age


def _annual_death_risk(age: float) -> float:
    """ONS national life tables 2020-22, both sexes, as a Gompertz curve (0.1% at 40,
    0.7% at 60, 1.9% at 70, 5% at 80, 14% at 90); infants 0.35%."""
    if age < 1:
        return 0.0035
    return min(0.5, 0.00002 * math.exp(0.098 * age))


# --- long term conditions -----------------------------------------------------------------------
AGES = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
_STATUSES = ("active", "recurrence", "relapse", "inactive", "remission", "resolved")
_MOSTLY_ACTIVE = (95, 0, 0, 2, 1, 2)


class _Family:
    """One long term condition: its codes, prevalence, age profile and what it brings."""

    __slots__ = ("name", "codes", "weights", "prevalence", "female_to_male", "profile", "status_weights",
                 "burden", "source", "by_age", "sex_factor")

    def __init__(self, name, codes, prevalence, female_to_male, profile, burden, source,
                 status_weights=_MOSTLY_ACTIVE):
        self.name = name
        self.codes = tuple(c for c, _ in codes)
        self.weights = tuple(w for _, w in codes)
        self.prevalence = prevalence  # share of all ages
        self.female_to_male = female_to_male
        self.profile = profile  # relative prevalence at AGES
        self.status_weights = status_weights
        self.burden = burden  # how much it adds to a patient's need for care (invented weights)
        self.source = source
        # (female factor, male factor), averaging 1, with the given ratio
        r = female_to_male
        self.sex_factor = (2 * r / (1 + r), 2 / (1 + r))
        pts = list(zip(AGES, profile))
        raw = [_interp(pts, a) for a in range(MAX_AGE + 1)]
        total = sum(AGE_WEIGHTS)
        mean = sum(w * p for w, p in zip(AGE_WEIGHTS, raw)) / total
        self.by_age = tuple(prevalence * p / mean for p in raw)


# All-ages recorded prevalence. "QOF" is NHS Digital's Quality and Outcomes Framework 2022-23,
# England: registers as a share of all registered patients, or of the register's age group
# (converted here to all ages with the ONS age structure). Age profiles: relative, the usual
# shape of QOF/CPRD age-specific prevalence (rises steeply with age for cardiovascular and
# renal disease and dementia, flat for asthma and epilepsy, mid-life for mental illness).
_CONDITIONS = (
    _Family("hypertension", (("59621000", 3), ("38341003", 1)), 0.144, 0.95,
            (0, 0, 0.5, 2, 6, 14, 27, 42, 55, 60, 60), 0.3, "QOF hypertension 14.4%"),
    _Family("asthma", (("195967001", 1),), 0.061, 1.2,
            (0, 9, 8, 7, 7, 7, 7.5, 8, 7, 6, 5), 0.5, "QOF asthma (6+) 6.5%",
            (84, 0, 0, 4, 0, 12)),
    _Family("copd", (("13645005", 8), ("185086009", 1), ("87433001", 1)), 0.019, 0.95,
            (0, 0, 0, 0.1, 0.5, 1.5, 3.5, 6, 8, 7, 6), 2.5, "QOF COPD 1.9%"),
    _Family("chd", (("414545008", 5), ("53741008", 3), ("22298006", 2)), 0.030, 0.55,
            (0, 0, 0, 0.1, 0.6, 2.2, 5.5, 10, 15, 17, 17), 1.2, "QOF coronary heart disease 3.0%"),
    _Family("heart_failure", (("84114007", 3), ("88805009", 1)), 0.010, 0.8,
            (0, 0, 0, 0.05, 0.15, 0.4, 1.0, 2.6, 6, 10, 11), 3.0, "QOF heart failure 1.0%"),
    _Family("atrial_fibrillation", (("49436004", 1),), 0.021, 0.75,
            (0, 0, 0, 0.05, 0.2, 0.7, 2.2, 6, 11, 15, 15), 1.0, "QOF atrial fibrillation 2.1%"),
    _Family("stroke", (("230690007", 2), ("266257000", 1)), 0.019, 0.9,
            (0, 0, 0.05, 0.15, 0.4, 1.0, 2.5, 5, 9, 11, 11), 1.5, "QOF stroke and TIA 1.9%"),
    _Family("type_2_diabetes", (("44054006", 1),), 0.055, 0.8,
            (0, 0, 0.3, 1.5, 4, 8, 13, 17, 17, 13, 10), 1.0,
            "QOF diabetes (17+) 7.5%, about 90% type 2"),
    _Family("type_1_diabetes", (("46635009", 1),), 0.005, 0.85,
            (0, 1, 1, 1, 1, 1, 1, 1, 0.7, 0.4, 0.3), 1.0, "about 8% of people with diabetes (Diabetes UK)"),
    _Family("ckd", (("433144002", 5), ("709044004", 2), ("431857002", 0.8), ("431856006", 0.7),
                    ("431855005", 0.3), ("433146000", 0.3)), 0.032, 1.3,
            (0, 0, 0.02, 0.1, 0.4, 1.2, 3.2, 8, 18, 28, 30), 1.5, "QOF CKD stages 3-5 (18+) 4.0%"),
    _Family("dementia", (("52448006", 2), ("26929004", 1)), 0.0073, 1.4,
            (0, 0, 0, 0, 0.02, 0.1, 0.4, 1.8, 7, 20, 28), 3.0, "QOF dementia 0.7%"),
    _Family("epilepsy", (("84757009", 1),), 0.0075, 0.95,
            (0, 1, 1, 1, 1, 1, 1, 1.1, 1.2, 1.2, 1.2), 0.8, "QOF epilepsy (18+) 0.8%",
            (88, 0, 0, 4, 4, 4)),
    _Family("cancer", (("363346000", 3), ("254837009", 2), ("126906006", 1.5), ("363406005", 1),
                       ("254637007", 0.6)), 0.035, 1.05,
            (0, 0.05, 0.3, 0.6, 1.5, 3, 6, 10, 13, 13, 12), 2.0, "QOF cancer 3.5%",
            (55, 2, 1, 2, 25, 15)),
    _Family("rheumatoid_arthritis", (("69896004", 1),), 0.0065, 2.5,
            (0, 0.02, 0.2, 0.4, 0.6, 1.0, 1.4, 1.8, 2.0, 1.8, 1.5), 1.0, "QOF rheumatoid arthritis (16+) 0.8%"),
    _Family("osteoporosis", (("64859006", 1),), 0.025, 4.0,
            (0, 0, 0, 0.05, 0.3, 1.5, 4, 8, 14, 18, 18), 0.8,
            "invented from 'over 3 million in the UK' (Royal Osteoporosis Society), as recorded by GPs"),
    _Family("multiple_sclerosis", (("24700007", 1),), 0.002, 2.5,
            (0, 0.01, 0.1, 0.25, 0.35, 0.4, 0.35, 0.3, 0.2, 0.1, 0.1), 2.0,
            "about 130,000 in the UK (MS Society)", (85, 0, 10, 3, 2, 0)),
    _Family("parkinsons", (("49049000", 1),), 0.002, 0.65,
            (0, 0, 0, 0, 0.02, 0.06, 0.2, 0.6, 1.4, 1.8, 1.8), 2.5, "about 150,000 in the UK (Parkinson's UK)"),
    _Family("schizophrenia", (("58214004", 1),), 0.0045, 0.6,
            (0, 0, 0.3, 0.6, 0.7, 0.7, 0.6, 0.5, 0.4, 0.3, 0.3), 1.0,
            "QOF mental health (schizophrenia, bipolar, other psychoses) 0.95%, half each", (85, 0, 5, 5, 5, 0)),
    _Family("bipolar", (("13746004", 1),), 0.0045, 1.2,
            (0, 0, 0.3, 0.6, 0.7, 0.7, 0.6, 0.5, 0.4, 0.3, 0.3), 1.0,
            "QOF mental health, the other half", (85, 0, 5, 5, 5, 0)),
    _Family("depression", (("370143000", 1),), 0.105, 2.0,
            (0, 0.3, 10, 15, 17, 17, 15, 13, 12, 11, 11), 0.6,
            "QOF depression (18+, diagnosed since 2006) 13.2%; many resolved", (40, 5, 0, 12, 3, 40)),
    _Family("osteoarthritis", (("396275006", 1),), 0.060, 1.5,
            (0, 0, 0.1, 0.3, 2, 6, 12, 20, 26, 28, 28), 0.7,
            "invented from CPRD consultation prevalence (about 1 in 10 adults over 45 with a diagnosis)"),
    _Family("liver_disease", (("235856003", 1),), 0.005, 0.8,
            (0, 0, 0.05, 0.2, 0.5, 0.8, 1.0, 1.0, 0.8, 0.6, 0.5), 1.5, "invented", (90, 0, 0, 3, 2, 5)),
    _Family("chronic_sinusitis", (("40055000", 1),), 0.010, 1.1,
            (0, 0.3, 1, 1.3, 1.5, 1.5, 1.5, 1.3, 1.0, 0.8, 0.8), 0.2, "invented", (70, 5, 0, 5, 0, 20)),
)
FAMILIES = {f.name: f for f in _CONDITIONS}
#: every long term condition code the generator writes
LTC_CODES = tuple(c for f in _CONDITIONS for c in f.codes)

# Exacerbations (the codes of evercare.pw's `exacerbations` list): recorded a year, per
# patient with the condition (invented; COPD about 1-2 a year of which about half recorded).
_EXACERBATIONS = {
    "copd": (("195951007",), 0.7),
    "asthma": (("281239006",), 0.12),
    "heart_failure": (("367391008", "10633002"), 0.3),
}
EXACERBATION_CODES = tuple(c for codes, _ in _EXACERBATIONS.values() for c in codes)

# Acute, not long-term, conditions (so code filters have something to leave out).
ACUTE_CODES = ("444814009", "195662009", "68566005", "36971009", "233604007", "43878008", "271737000")
_PROCEDURE_CODES = ("80146002", "73761001", "387713003", "112798008")
# (code, unit, typical value, spread): systolic BP, weight, BMI, a frailty score
_OBSERVATIONS = (("271649006", "mm[Hg]", 135, 15), ("27113001", "kg", 78, 15), ("60621009", "kg/m2", 27.5, 5),
                 ("1104441000000107", "score", 8, 5))

# --- medicines ----------------------------------------------------------------------------------
# (name, typical monthly cost in GBP or None when it is hospital-prescribed and not costed in
# the GP record). Costs: NHS Drug Tariff / BNF prices for a month's supply, rounded.
_DRUGS = (
    ("amlodipine", 0.9), ("ramipril", 1.2), ("indapamide", 2.0), ("losartan", 1.5), ("doxazosin", 1.5),
    ("salbutamol inhaler", 2.0), ("ICS/LABA inhaler", 25.0), ("ICS inhaler", 8.0), ("montelukast", 1.5),
    ("LAMA inhaler", 33.0), ("LABA/LAMA inhaler", 33.0), ("triple therapy inhaler", 45.0),
    ("carbocisteine", 6.0), ("aspirin", 0.8), ("atorvastatin", 1.2), ("bisoprolol", 0.9),
    ("GTN spray", 4.0), ("clopidogrel", 1.3), ("furosemide", 0.8), ("spironolactone", 3.0),
    ("sacubitril/valsartan", 91.0), ("dapagliflozin", 37.0), ("apixaban", 27.0), ("edoxaban", 25.0),
    ("warfarin", 1.5), ("digoxin", 2.5), ("metformin", 2.0), ("gliclazide", 1.5), ("sitagliptin", 33.0),
    ("GLP-1 agonist", 73.0), ("basal insulin", 35.0), ("bolus insulin", 25.0), ("blood glucose strips", 15.0),
    ("glucose sensors", 70.0), ("sodium bicarbonate", 8.0), ("alfacalcidol", 6.0), ("donepezil", 1.5),
    ("memantine", 2.0), ("levetiracetam", 6.0), ("lamotrigine", 3.0), ("sodium valproate", 6.0),
    ("carbamazepine", 5.0), ("aromatase inhibitor", 1.8), ("opioid analgesic", 9.0),
    ("hospital anticancer drug", None), ("methotrexate", 4.0), ("folic acid", 1.0),
    ("hydroxychloroquine", 5.0), ("sulfasalazine", 6.0), ("adalimumab biosimilar", 330.0),
    ("alendronic acid", 0.9), ("calcium and vitamin D", 4.0), ("denosumab", 30.0), ("baclofen", 2.0),
    ("MS disease-modifying drug", None), ("co-careldopa", 12.0), ("rasagiline", 3.0), ("ropinirole", 4.0),
    ("olanzapine", 1.5), ("aripiprazole", 2.0), ("risperidone", 2.0), ("paliperidone depot", 180.0),
    ("clozapine", None), ("lithium", 3.0), ("quetiapine", 3.0), ("sertraline", 1.2), ("citalopram", 1.0),
    ("mirtazapine", 2.0), ("fluoxetine", 1.2), ("venlafaxine", 4.0), ("paracetamol", 2.5),
    ("naproxen", 2.0), ("codeine", 2.5), ("topical NSAID", 4.0), ("lactulose", 3.0), ("rifaximin", 260.0),
    ("propranolol", 2.0), ("steroid nasal spray", 3.5), ("omeprazole", 1.0), ("colecalciferol", 3.0),
    ("macrogol", 4.5), ("emollient", 5.0), ("combined contraceptive", 2.0), ("levothyroxine", 1.5),
    ("tamsulosin", 1.5), ("gabapentin", 2.5), ("amitriptyline", 1.2), ("eye drops", 3.0),
)
_DRUG_COST = dict(_DRUGS)
# Invented dm+d-style codes: not real products.
DRUG_CODES = {name: str(990_000_001_000_000 + 1_000 * k) for k, (name, _) in enumerate(_DRUGS)}
_ACUTE_DRUGS = (("amoxicillin", 1.5), ("nitrofurantoin", 3.0), ("prednisolone", 1.5), ("doxycycline", 2.0))
ACUTE_DRUG_CODES = {name: str(990_000_002_000_000 + 1_000 * k) for k, (name, _) in enumerate(_ACUTE_DRUGS)}

# What a patient with each condition is usually prescribed: (drug, chance). Invented from
# NICE pathways (e.g. heart failure: beta-blocker, ACE inhibitor, diuretic, MRA, SGLT2).
_REGIMENS = {
    "hypertension": (("amlodipine", 0.55), ("ramipril", 0.45), ("indapamide", 0.2), ("losartan", 0.2),
                     ("doxazosin", 0.08)),
    "asthma": (("salbutamol inhaler", 0.9), ("ICS/LABA inhaler", 0.45), ("ICS inhaler", 0.35),
               ("montelukast", 0.1)),
    "copd": (("salbutamol inhaler", 0.9), ("LAMA inhaler", 0.35), ("LABA/LAMA inhaler", 0.3),
             ("triple therapy inhaler", 0.35), ("carbocisteine", 0.2)),
    "chd": (("aspirin", 0.75), ("atorvastatin", 0.85), ("bisoprolol", 0.6), ("GTN spray", 0.4),
            ("clopidogrel", 0.3), ("ramipril", 0.5)),
    "heart_failure": (("bisoprolol", 0.8), ("ramipril", 0.6), ("furosemide", 0.75), ("spironolactone", 0.45),
                      ("sacubitril/valsartan", 0.2), ("dapagliflozin", 0.35)),
    "atrial_fibrillation": (("apixaban", 0.5), ("edoxaban", 0.25), ("warfarin", 0.08), ("bisoprolol", 0.6),
                            ("digoxin", 0.1)),
    "stroke": (("clopidogrel", 0.7), ("atorvastatin", 0.85), ("ramipril", 0.3)),
    "type_2_diabetes": (("metformin", 0.8), ("gliclazide", 0.3), ("sitagliptin", 0.2), ("dapagliflozin", 0.3),
                        ("GLP-1 agonist", 0.08), ("basal insulin", 0.12), ("blood glucose strips", 0.2),
                        ("atorvastatin", 0.7)),
    "type_1_diabetes": (("basal insulin", 0.95), ("bolus insulin", 0.9), ("blood glucose strips", 0.8),
                        ("glucose sensors", 0.4)),
    "ckd": (("atorvastatin", 0.6), ("ramipril", 0.4), ("sodium bicarbonate", 0.1), ("alfacalcidol", 0.05)),
    "dementia": (("donepezil", 0.5), ("memantine", 0.3)),
    "epilepsy": (("levetiracetam", 0.5), ("lamotrigine", 0.35), ("sodium valproate", 0.2),
                 ("carbamazepine", 0.1)),
    "cancer": (("aromatase inhibitor", 0.3), ("opioid analgesic", 0.15), ("hospital anticancer drug", 0.05)),
    "rheumatoid_arthritis": (("methotrexate", 0.6), ("folic acid", 0.6), ("hydroxychloroquine", 0.3),
                             ("sulfasalazine", 0.2), ("adalimumab biosimilar", 0.15)),
    "osteoporosis": (("alendronic acid", 0.65), ("calcium and vitamin D", 0.7), ("denosumab", 0.12)),
    "multiple_sclerosis": (("baclofen", 0.3), ("MS disease-modifying drug", 0.35)),
    "parkinsons": (("co-careldopa", 0.8), ("rasagiline", 0.3), ("ropinirole", 0.25)),
    "schizophrenia": (("olanzapine", 0.35), ("aripiprazole", 0.3), ("risperidone", 0.2),
                      ("paliperidone depot", 0.15), ("clozapine", 0.05)),
    "bipolar": (("lithium", 0.4), ("quetiapine", 0.35), ("sodium valproate", 0.15), ("lamotrigine", 0.1)),
    "depression": (("sertraline", 0.45), ("citalopram", 0.25), ("mirtazapine", 0.2), ("fluoxetine", 0.15),
                   ("venlafaxine", 0.08)),
    "osteoarthritis": (("paracetamol", 0.4), ("naproxen", 0.2), ("codeine", 0.15), ("topical NSAID", 0.2)),
    "liver_disease": (("lactulose", 0.3), ("rifaximin", 0.05), ("propranolol", 0.15)),
    "chronic_sinusitis": (("steroid nasal spray", 0.5),),
}

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


# --- small helpers ------------------------------------------------------------------------------
@lru_cache(maxsize=16384)
def _pdate(text: str) -> PartialDate:
    """A PartialDate, shared between records (they are immutable); bounded, so a long
    stream does not grow it."""
    return PartialDate(text=text)


def as_date(as_of) -> dt.date:
    if as_of is None:
        return DEFAULT_AS_OF
    if isinstance(as_of, dt.datetime):
        return as_of.date()
    if isinstance(as_of, dt.date):
        return as_of
    return dt.date.fromisoformat(str(as_of))


def _band(age: float, table) -> float:
    """The value of the last (from_age, value) row at or below ``age``."""
    value = table[0][1]
    for lo, v in table:
        if age >= lo:
            value = v
    return value


# Per person-year, by age band (see the module docstring for the sources).
_GP_RATE = ((0, 4.0), (5, 1.8), (15, 2.2), (25, 2.8), (45, 3.4), (65, 5.0), (75, 6.5), (85, 8.0))
_AE_RATE = ((0, 0.42), (5, 0.18), (15, 0.32), (25, 0.22), (65, 0.22), (75, 0.33), (85, 0.55))
_EMERGENCY_RATE = ((0, 0.13), (5, 0.04), (15, 0.07), (45, 0.09), (65, 0.13), (75, 0.21), (85, 0.40))
_ELECTIVE_RATE = ((0, 0.03), (15, 0.07), (45, 0.16), (65, 0.28), (75, 0.30), (85, 0.18))
_OUTPATIENT_RATE = ((0, 0.9), (15, 1.3), (45, 1.9), (65, 2.8), (75, 3.2), (85, 2.8))
# median nights of an emergency stay that is not same-day (HES: longer with age)
_EMERGENCY_NIGHTS = ((0, 1.0), (18, 2.5), (65, 4.0), (80, 6.0))
# long-term social care support (NHS Digital Adult Social Care Activity 2022-23, rounded)
_SOCIAL_CARE = ((0, 0.0), (18, 0.007), (65, 0.02), (75, 0.055), (85, 0.15))
# lives alone (ONS Families and Households; Age UK), when recorded
_LIVES_ALONE = ((0, 0.0), (18, 0.08), (30, 0.12), (45, 0.15), (65, 0.24), (75, 0.38), (85, 0.52))
# at least one fall a year (NICE CG161): a third over 65, half over 80
_FALLS = ((0, 0.03), (45, 0.08), (65, 0.3), (80, 0.5))
# at least one ADL/IADL assessment in two years (invented)
_ASSESSED = ((0, 0.0), (18, 0.01), (65, 0.08), (75, 0.18), (85, 0.35))
# mean need-for-care score (the latent "f" below) by age, as the generator draws it; used to
# turn the average rates by age into rates for the sick and the well (measured, not sourced)
_MEAN_F = ((0, 0.0), (18, 0.005), (30, 0.015), (45, 0.04), (55, 0.08), (65, 0.2), (70, 0.3), (80, 0.47),
           (90, 0.65), (100, 0.72))
# a recorded bereavement a year (invented from widowhood rates, about 2% a year over 65)
_BEREAVED = ((0, 0.002), (18, 0.004), (40, 0.008), (65, 0.02), (80, 0.03))


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
