"""What a patient record holds, as the language sees it.

The type checker reads this table to know which collections exist
(``conditions``, ``emergency_admissions``...), which attributes each item
has, and which symbols an attribute may take (``status is active``).
The engine maps real records onto the same names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Type:
    """A value's type. ``base`` is bool/number/date/text/symbol/list/level;
    ``detail`` is the dimension of a number (count, duration, gbp, percent),
    the enumeration of a symbol, or the item kind of a list."""

    base: str
    detail: str = ""

    def __str__(self) -> str:
        if self.base == "number":
            return {"count": "number", "duration": "duration", "gbp": "amount of money (GBP)",
                    "percent": "percentage"}.get(self.detail, "number")
        if self.base == "list":
            kind = self.detail.replace("_", " ")
            return f"list of {kind}" if kind.endswith("s") else f"list of {kind}s"
        if self.base == "symbol":
            return f"{self.detail.replace('_', ' ')}"
        return {"bool": "true/false", "date": "date", "text": "text",
                "level": "level"}.get(self.base, self.base)


BOOL = Type("bool")
COUNT = Type("number", "count")
DURATION = Type("number", "duration")
GBP = Type("number", "gbp")
PERCENT = Type("number", "percent")
DATE = Type("date")
TEXT = Type("text")
UNKNOWN = Type("unknown")  # the type of an expression already reported as wrong

UNIT_TYPES = {
    "count": COUNT, "days": DURATION, "weeks": DURATION, "months": DURATION,
    "years": DURATION, "gbp": GBP, "percent": PERCENT,
}

ENUMS: dict[str, tuple[str, ...]] = {
    "condition_status": ("active", "recurrence", "relapse", "inactive", "remission", "resolved"),
    "medication_status": ("active", "on_hold", "stopped", "completed", "cancelled"),
    "admission_method": ("emergency", "elective", "other"),
    "sex": ("female", "male", "other", "unknown"),
    "life_event": ("bereavement", "carer_death", "moved_home", "entered_care_home"),
    "pathway_event": ("referred", "approached", "consented", "declined", "assessed",
                      "plan_agreed", "reviewed", "admitted", "discharged", "exited", "died"),
}

# Attributes shared by every dated item.
_DATED = {"date": DATE}

#: item kind -> attribute -> type
ITEM_ATTRIBUTES: dict[str, dict[str, Type]] = {
    "condition": {**_DATED, "code": TEXT, "onset": DATE, "abatement": DATE,
                  "status": Type("symbol", "condition_status"), "duration": DURATION},
    "medication": {**_DATED, "code": TEXT, "start": DATE, "end": DATE,
                   "status": Type("symbol", "medication_status"), "duration": DURATION,
                   "monthly_cost": GBP},
    "admission": {**_DATED, "start": DATE, "end": DATE, "length": DURATION,
                  "method": Type("symbol", "admission_method"), "code": TEXT},
    "encounter": {**_DATED, "start": DATE, "end": DATE, "code": TEXT},
    "observation": {**_DATED, "code": TEXT, "value": COUNT, "unit": TEXT},
    "procedure": {**_DATED, "code": TEXT},
    "life_event": {**_DATED, "event": Type("symbol", "life_event")},
    "pathway_event": {**_DATED, "event": Type("symbol", "pathway_event"), "pathway": TEXT},
}

#: collection name -> item kind; what a protocol can count, filter and window.
COLLECTIONS: dict[str, str] = {
    "conditions": "condition",
    "medications": "medication",
    "admissions": "admission",
    "emergency_admissions": "admission",
    "elective_admissions": "admission",
    "ae_attendances": "encounter",
    "outpatient_appointments": "encounter",
    "gp_consultations": "encounter",
    "community_contacts": "encounter",
    "social_work_visits": "encounter",
    "observations": "observation",
    "adl_impairments": "observation",
    "iadl_impairments": "observation",
    "cognitive_impairments": "observation",
    "falls": "observation",
    "procedures": "procedure",
    "life_events": "life_event",
    "pathway_events": "pathway_event",
}

#: facts about the patient, usable anywhere.
PATIENT_ATTRIBUTES: dict[str, Type] = {
    "age": DURATION,
    "birth_date": DATE,
    "date_of_death": DATE,
    "sex": Type("symbol", "sex"),
    "lives_alone": BOOL,
    "has_carer": BOOL,
    "practice": TEXT,
    "as_of": DATE,
}

#: groups a population-relative term can rank a patient within.
GROUPS = ("practice", "population")

CODE_SYSTEMS = {
    "snomed": "http://snomed.info/sct",
    "icd10": "http://hl7.org/fhir/sid/icd-10",
    "dmd": "https://dmd.nhs.uk",
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "loinc": "http://loinc.org",
    "read": "http://read.info/readv2",
    "ctv3": "http://read.info/ctv3",
    "local": "local",
}

HEADER_FIELDS = ("version", "title", "status", "authors", "source", "description")

SECTION_KINDS = ("objectives", "needs", "self_care", "agencies", "preventive", "contingency", "review")
