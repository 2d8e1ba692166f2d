"""A patient record as the evaluator reads it: named collections and item attributes.

The names are those of ``pathways.schema``; this module says how each is
found in a :class:`~pathways.records.PatientRecord`.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

from pathways import records as r
from pathways import schema

from .values import DateR, Days, Span


#: a code system as records may name it (short name or canonical URI, any case) -> its short name
SYSTEMS: dict[str, str] = {**{uri.lower(): short for short, uri in schema.CODE_SYSTEMS.items()},
                           **{short: short for short in schema.CODE_SYSTEMS}}


def code_key(item) -> tuple[str, str]:
    """(system, code) of an item, as code lists hold them. Records from FHIR name
    systems by URI (``http://snomed.info/sct``), protocols by short name
    (``snomed``): both mean the same system. Codes are compared exactly (Read
    codes are case-sensitive)."""
    system = getattr(item, "system", "")
    return SYSTEMS.get(system) or SYSTEMS.get(system.lower(), system), getattr(item, "code", "")


def date_of(p: r.PartialDate | None) -> DateR | None:
    return None if p is None else DateR(p.earliest, p.latest)


def _observations(kind: str | None, impaired: bool | None = None) -> Callable[[r.PatientRecord], list]:
    def pick(rec: r.PatientRecord) -> list:
        return [o for o in rec.observations
                if (kind is None or o.kind == kind) and (impaired is None or o.impaired is impaired)]
    return pick


#: Impairments are facts found by assessments: with no assessment on record,
#: whether the patient is impaired is unknown (not false). Each maps to the
#: assessments that found no impairment.
ASSESSED = {
    "adl_impairments": _observations("adl", False),
    "iadl_impairments": _observations("iadl", False),
    "cognitive_impairments": _observations("cognition", False),
}


#: encounter collection -> (the encounters' kind, their admission method or None for any)
ENCOUNTER_COLLECTIONS: dict[str, tuple[str, str | None]] = {
    "admissions": ("admission", None), "emergency_admissions": ("admission", "emergency"),
    "elective_admissions": ("admission", "elective"), "ae_attendances": ("ae", None),
    "outpatient_appointments": ("outpatient", None), "gp_consultations": ("gp", None),
    "community_contacts": ("community", None), "social_work_visits": ("social_work", None),
}

#: collection name -> how to pick its items from a record (the encounter collections are
#: picked all together, in one pass over the encounters: RecordIndex._split_encounters)
COLLECTIONS: dict[str, Callable[[r.PatientRecord], list]] = {
    "conditions": lambda rec: list(rec.conditions),
    "medications": lambda rec: list(rec.medications),
    "observations": _observations(None),
    "adl_impairments": _observations("adl", True),
    "iadl_impairments": _observations("iadl", True),
    "cognitive_impairments": _observations("cognition", True),
    "falls": _observations("fall"),
    "procedures": lambda rec: list(rec.procedures),
    "life_events": lambda rec: list(rec.life_events),
    "pathway_events": lambda rec: list(rec.pathway_events),
}


#: attributes held on items as plain numbers (a sum of them is a plain sum)
PLAIN_NUMBERS = frozenset(name for attrs in schema.ITEM_ATTRIBUTES.values()
                          for name, t in attrs.items() if t.base == "number" and t != schema.DURATION)


def plain_sum(items, attr: str) -> int | float | None:  # (not `-> float`: compiled, it would turn 0 into 0.0)
    """The sum of a plain-number attribute over items, those not recorded left out, as
    the general aggregate adds them (a float; 0 when there is none); None if a value is not
    a plain number."""
    total = None  # (not 0: compiled, a local only ever 0 or a float would become a C double)
    for item in items:
        v = getattr(item, attr)
        if v is None:
            continue
        if type(v) is not float and type(v) is not int:
            return None
        total = float(v) if total is None else total + float(v)
    return 0 if total is None else total


_DATE_FIELD = {r.Condition: "onset", r.Medication: "start", r.Encounter: "start"}


def item_date(item) -> r.PartialDate | None:
    """The date that places an item in a time window: when it started."""
    return getattr(item, _DATE_FIELD.get(type(item), "date"))


def _span(start: r.PartialDate | None, end: r.PartialDate | None, as_of: dt.date) -> Span | None:
    """From the start to the end, or to the as-of date while it goes on (and never past it).
    An end known only to the month or year leaves the length a range."""
    if start is None:
        return None
    if end is None:
        return Span(start.earliest, start.latest, as_of)
    stop_lo, stop_hi = min(end.earliest, as_of), min(end.latest, as_of)
    return Span(start.earliest, start.latest, stop_hi, end_lo=None if stop_lo == stop_hi else stop_lo)


def _length(e: r.Encounter, as_of: dt.date) -> Days:
    """Nights in hospital (end - start). A stay with no end, or one ending after the
    as-of date, counts up to the as-of date, as in `total stay of`."""
    end_lo, end_hi = (as_of, as_of) if e.end is None else (min(e.end.earliest, as_of), min(e.end.latest, as_of))
    lo = max((end_lo - e.start.latest).days, 0)
    hi = max((end_hi - e.start.earliest).days, 0)
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
        return _length(item, as_of)
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


class Dated:
    """A collection's items (in record order) with their dates, for the fast roads.

    ``exact`` says every item has a date known to the day: only then do the
    evaluator's fast roads (a bisect instead of a scan) apply, and they give
    what the general road gives. ``first`` holds each item's date as ISO
    text (``YYYY-MM-DD``, which sorts as the dates do: nothing is parsed),
    ``days`` the same sorted, ``last`` the latest."""

    __slots__ = ("items", "exact", "first", "last", "_days")

    def __init__(self, items: list, field: str):
        self.items = items
        self.exact = False
        self._days = None
        try:
            first = [getattr(item, field).text for item in items]
        except AttributeError:  # an item with no date
            return
        if first and min(map(len, first)) != 10:
            return
        self.exact = True
        self.first = first
        self.last = max(first) if first else ""

    @property
    def days(self) -> list[str]:
        """The dates sorted, for binary searches (sorted on first use: most lists are only filtered)."""
        if self._days is None:
            self._days = sorted(self.first)
        return self._days


#: the field that dates each collection's items (item_date, by collection)
_DATE_FIELDS = {"conditions": "onset", "medications": "start",
                **{name: "start" for name in ENCOUNTER_COLLECTIONS}}


class RecordIndex:
    """One patient's collections, each picked from the record once.

    An index may be kept and reused: for another protocol, another as-of
    date, another evaluation (see :func:`prepare`). It only ever adds to
    its own caches, which depend on the record alone (and the date asked)."""

    __slots__ = ("record", "_lists", "_seen", "_dated")

    def __init__(self, record: r.PatientRecord):
        self.record = record
        self._lists: dict[str, list] = {}
        self._seen: dict[tuple[str, dt.date], tuple[list, list]] = {}
        self._dated: dict[str, Dated] = {}

    def collection(self, name: str) -> list:
        found = self._lists.get(name)
        if found is None:
            if name in ENCOUNTER_COLLECTIONS:
                self._split_encounters()
                return self._lists[name]
            found = self._lists[name] = COLLECTIONS[name](self.record)
        return found

    def _split_encounters(self) -> None:
        """Every encounter collection in one pass over the encounters."""
        lists = {name: [] for name in ENCOUNTER_COLLECTIONS}
        for e in self.record.encounters:
            for name in _BY_KIND[e.kind, e.method]:
                lists[name].append(e)
        self._lists.update(lists)

    def dated(self, name: str) -> Dated:
        """The collection with its items' dates (``cleared:NAME``: the assessments
        that found no impairment of that kind)."""
        found = self._dated.get(name)
        if found is None:
            if name.startswith("cleared:"):
                found = Dated(ASSESSED[name[8:]](self.record), "date")
            else:
                found = Dated(self.collection(name), _DATE_FIELDS.get(name, "date"))
            self._dated[name] = found
        return found

    def as_of(self, name: str, as_of: dt.date) -> tuple[list, list]:
        """The collection as it stood on ``as_of``: (items dated on or before it, items
        whose imprecise date may fall either side of it).

        An evaluation as of a date answers as it would have been answered on that
        date, so items dated after it (a booked admission, a diagnosis made later
        and found when an auditor re-runs an old date) are not seen. An item with
        no date at all (a condition without an onset) is on the record.
        The lists returned are shared: read them, never change them.
        """
        key = (name, as_of)
        found = self._seen.get(key)
        if found is None:
            dated = self._dated.get(name)  # (only if a fast road has listed the dates already)
            if dated is not None and dated.exact:
                day = as_of.isoformat()
                if dated.last <= day:
                    found = (dated.items, [])
                else:
                    found = ([item for item, d in zip(dated.items, dated.first) if d <= day], [])
            else:
                found = self._scan(name, as_of)
            self._seen[key] = found
        return found

    def _scan(self, name: str, as_of: dt.date) -> tuple[list, list]:
        items = self.collection(name)
        sure, maybe = [], []
        day = as_of.isoformat()
        for item in items:
            date = item_date(item)
            if date is None or (date.text <= day if len(date.text) == 10 else date.latest <= as_of):
                sure.append(item)
            elif date.earliest <= as_of:
                maybe.append(item)
        if len(sure) == len(items):
            return items, maybe  # everything is seen: share the collection's list
        return sure, maybe

    def cleared(self, name: str, as_of: dt.date) -> list:
        """The assessments on record by ``as_of`` that found no impairment of this kind."""
        key = ("cleared:" + name, as_of)
        found = self._seen.get(key)
        if found is None:
            found = self._seen[key] = ([o for o in ASSESSED[name](self.record)
                                        if o.date.latest <= as_of], [])
        return found[0]


#: (encounter kind, method) -> the collections an encounter of that kind belongs to
_BY_KIND: dict[tuple[str, str | None], tuple[str, ...]] = {
    (kind, method): tuple(name for name, (k, m) in ENCOUNTER_COLLECTIONS.items()
                          if k == kind and m in (None, method))
    for kind in ("admission", "ae", "outpatient", "gp", "community", "social_work")
    for method in ("emergency", "elective", "other", None)}


def prepare(record: r.PatientRecord) -> RecordIndex:
    """A record made ready for evaluation: its collections picked and their dates
    read, once. Pass the result to ``Program.evaluate`` in place of the record
    to evaluate several protocols, or several dates, without doing it again."""
    index = RecordIndex(record)
    for name in (*COLLECTIONS, *ENCOUNTER_COLLECTIONS):
        index.dated(name)
    for name in ASSESSED:
        index.dated("cleared:" + name)
    return index
