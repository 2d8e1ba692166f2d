"""The figures the synthetic population generator draws from.

Ages, long term conditions, medicines and rates of care by age: the tables
:mod:`engine.generate` builds patients from (the patient-level drawing is in
:mod:`engine.generate_patient`). Where each figure comes from, cited or
**invented**, is in the docstring of :mod:`engine.generate` (and
``docs/generate.md``).
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import accumulate

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


def _band(age: float, table) -> float:
    """The value of the last (from_age, value) row at or below ``age``."""
    value = table[0][1]
    for lo, v in table:
        if age >= lo:
            value = v
    return value


# Per person-year, by age band (see engine/generate.py's docstring for the sources).
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
