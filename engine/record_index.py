"""A patient record as the evaluator reads it: named collections and item attributes.

The names are those of ``pathways.schema``; this module says how each is
found in a :class:`~pathways.records.PatientRecord`.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

from pathways import records as r

from .values import DateR, Days, Span


def date_of(p: r.PartialDate | None) -> DateR | None:
    return None if p is None else DateR(p.earliest, p.latest)


def _encounters(kind: str, method: str | None = None) -> Callable[[r.PatientRecord], list]:
    def pick(rec: r.PatientRecord) -> list:
        return [e for e in rec.encounters if e.kind == kind and (method is None or e.method == method)]
    return pick


def _observations(kind: str | None) -> Callable[[r.PatientRecord], list]:
    def pick(rec: r.PatientRecord) -> list:
        return [o for o in rec.observations if kind is None or o.kind == kind]
    return pick


#: collection name -> how to pick its items from a record
COLLECTIONS: dict[str, Callable[[r.PatientRecord], list]] = {
    "conditions": lambda rec: list(rec.conditions),
    "medications": lambda rec: list(rec.medications),
    "admissions": _encounters("admission"),
    "emergency_admissions": _encounters("admission", "emergency"),
    "elective_admissions": _encounters("admission", "elective"),
    "ae_attendances": _encounters("ae"),
    "outpatient_appointments": _encounters("outpatient"),
    "gp_consultations": _encounters("gp"),
    "community_contacts": _encounters("community"),
    "social_work_visits": _encounters("social_work"),
    "observations": _observations(None),
    "adl_impairments": _observations("adl"),
    "iadl_impairments": _observations("iadl"),
    "cognitive_impairments": _observations("cognition"),
    "falls": _observations("fall"),
    "procedures": lambda rec: list(rec.procedures),
    "life_events": lambda rec: list(rec.life_events),
    "pathway_events": lambda rec: list(rec.pathway_events),
}


def item_date(item) -> r.PartialDate | None:
    """The date that places an item in a time window: when it started."""
    if isinstance(item, r.Condition):
        return item.onset
    if isinstance(item, (r.Medication, r.Encounter)):
        return item.start
    return item.date


def _span(start: r.PartialDate | None, end: r.PartialDate | None, as_of: dt.date) -> Span | None:
    if start is None:
        return None
    stop = as_of if end is None else min(end.earliest, as_of)
    return Span(start.earliest, start.latest, stop)


def _length(e: r.Encounter) -> Days | None:
    if e.end is None:
        return None
    lo = max((e.end.earliest - e.start.latest).days, 0)
    hi = max((e.end.latest - e.start.earliest).days, 0)
    return Days(lo, hi)


def attribute(item, name: str, as_of: dt.date):
    """The runtime value of an item's attribute (None when not recorded)."""
    if name == "date":
        return date_of(item_date(item))
    if name == "duration":
        if isinstance(item, r.Condition):
            return _span(item.onset, item.abatement, as_of)
        return _span(item.start, item.end, as_of)
    if name == "length":
        return _length(item)
    if name in ("onset", "abatement", "start", "end"):
        return date_of(getattr(item, name, None))
    value = getattr(item, name, None)
    if isinstance(value, r.PartialDate):
        return date_of(value)
    return value


def patient_attribute(rec: r.PatientRecord, name: str, as_of: dt.date):
    """The runtime value of a fact about the patient."""
    p = rec.patient
    if name == "age":
        if p.birth_date is None:
            return None
        return Span(p.birth_date.earliest, p.birth_date.latest, as_of, birthday=True)
    if name == "as_of":
        return DateR(as_of, as_of)
    if name in ("birth_date", "date_of_death"):
        return date_of(getattr(p, name))
    if name == "sex":
        return None if p.sex == "unknown" else p.sex
    return getattr(p, name)


class RecordIndex:
    """One patient's collections, each picked from the record once."""

    __slots__ = ("record", "_lists")

    def __init__(self, record: r.PatientRecord):
        self.record = record
        self._lists: dict[str, list] = {}

    def collection(self, name: str) -> list:
        found = self._lists.get(name)
        if found is None:
            found = self._lists[name] = COLLECTIONS[name](self.record)
        return found
