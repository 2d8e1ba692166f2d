"""How explanations put values, record items and rules into words."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pathways import records as r

from .record_index import item_date
from .values import DateR, Days, Items, Qty, Rng, Span, to_json


SCHEMA = "ltc-pathways/explanation/1"

_NOT_EVALUATED = object()  # a node the evaluation never reached (short-circuit, earlier level matched)

DURATION_UNITS = ("days", "weeks", "months", "years")
_OP_WORDS = {">=": "at least", ">": "more than", "<=": "at most", "<": "less than", "=": "exactly", "!=": "not"}
_QUANTIFIER_WORDS = {"all": "all of", "any": "any of", "none": "none of"}

COLLECTION_WORDS = {
    "conditions": "conditions",
    "medications": "medications",
    "admissions": "hospital admissions",
    "emergency_admissions": "unplanned (emergency) hospital admissions",
    "elective_admissions": "planned (elective) hospital admissions",
    "ae_attendances": "A&E attendances",
    "outpatient_appointments": "outpatient appointments",
    "gp_consultations": "GP consultations",
    "community_contacts": "community contacts",
    "social_work_visits": "social work visits",
    "observations": "observations",
    "adl_impairments": "ADL impairments",
    "iadl_impairments": "IADL impairments",
    "cognitive_impairments": "cognitive impairments",
    "falls": "falls",
    "procedures": "procedures",
    "life_events": "life events",
    "pathway_events": "pathway events",
}

PATIENT_WORDS = {
    "age": "age",
    "birth_date": "date of birth",
    "date_of_death": "date of death",
    "sex": "sex",
    "lives_alone": "lives alone",
    "has_carer": "has a carer",
    "practice": "registered practice",
    "as_of": "the as-of date",
}

#: patient fact -> (what is missing, what would decide it)
MISSING_FACTS = {
    "lives_alone": ("living arrangements not recorded", "record whether the patient lives alone"),
    "has_carer": ("carer status not recorded", "record whether the patient has a carer"),
    "age": ("date of birth not recorded", "record the patient's date of birth"),
    "birth_date": ("date of birth not recorded", "record the patient's date of birth"),
    "sex": ("sex not recorded", "record the patient's sex"),
    "practice": ("registered practice not recorded", "record the patient's registered practice"),
    "date_of_death": ("no date of death recorded", "record the date of death if the patient has died"),
}

_ENCOUNTER_WORDS = {
    "admission": "hospital admission", "ae": "A&E attendance", "outpatient": "outpatient appointment",
    "gp": "GP consultation", "community": "community contact", "social_work": "social work visit",
}
_OBSERVATION_WORDS = {
    "adl": "ADL impairment", "iadl": "IADL impairment", "cognition": "cognitive impairment",
    "fall": "fall", "other": "observation",
}
_ATTRIBUTE_WORDS = {"monthly_cost": "monthly cost"}
_ATTRIBUTE_UNITS = {"monthly_cost": "gbp", "length": "days", "duration": "days", "value": "count"}


# --- formatting of values -----------------------------------------------------------------------

def _num(x) -> str:
    if isinstance(x, float) and x.is_integer():
        x = int(x)
    if isinstance(x, float):
        return f"{x:.2f}".rstrip("0").rstrip(".")
    return str(x)


def _plural(n, unit: str) -> str:
    word = unit[:-1] if n == 1 and unit.endswith("s") else unit
    return f"{_num(n)} {word}"


def amount(x, unit: str | None) -> str:
    """A number in the unit it is counted in: ``£80``, ``£80.50``, ``3%``, ``12 months``, ``3``."""
    if unit == "gbp":
        return f"£{int(x):,}" if float(x).is_integer() else f"£{x:,.2f}"
    if unit == "percent":
        return f"{_num(x)}%"
    if unit in DURATION_UNITS:
        return _plural(x, unit)
    return _num(x)


def _span_text(lo, hi, unit: str | None) -> str:
    if lo == hi:
        return amount(lo, unit)
    joint = "or" if unit in (None, "count", *DURATION_UNITS) and hi - lo == 1 else "to"
    if unit in DURATION_UNITS:
        return f"{_num(lo)} {joint} {_plural(hi, unit)}"
    return f"{amount(lo, unit)} {joint} {amount(hi, unit)}"


def _date_text(d: DateR) -> str:
    if d.lo == d.hi:
        return d.lo.isoformat()
    return _partial(d) or f"between {d.lo} and {d.hi}"


def _partial(d: DateR) -> str | None:
    """``2020-04`` or ``2020`` when the range is exactly that month or year."""
    if d.lo.day == 1 and d.lo.month == 1 and d.hi == dt.date(d.lo.year, 12, 31):
        return f"{d.lo.year:04d}"
    if d.lo.day == 1 and d.hi.year == d.lo.year and d.hi.month == d.lo.month \
            and d.hi == r.PartialDate.parse(f"{d.lo.year:04d}-{d.lo.month:02d}").latest:
        return f"{d.lo.year:04d}-{d.lo.month:02d}"
    return None


def show(v, unit: str | None = None) -> str:
    """A runtime value in words."""
    if v is _NOT_EVALUATED:
        return "not evaluated"
    if v is None:
        return "not known"
    if v is True:
        return "yes"
    if v is False:
        return "no"
    if isinstance(v, (int, float)):
        return amount(v, unit)
    if isinstance(v, Rng):
        return _span_text(v.lo, v.hi, unit)
    if isinstance(v, Qty):
        return _plural(v.value, v.unit)
    if isinstance(v, Span):
        u = unit if unit in DURATION_UNITS else ("years" if v.birthday else "days")
        lo, hi = v.count(u)
        return _span_text(lo, hi, u)
    if isinstance(v, Days):
        return _span_text(v.lo, v.hi, "days")
    if isinstance(v, DateR):
        return _date_text(v)
    if isinstance(v, Items):
        n, k = len(v.sure), len(v.maybe)
        head = "none" if n == 0 else f"{n} item" + ("s" if n != 1 else "")
        return head + (f", and {k} that may belong" if k else "")
    if isinstance(v, (frozenset, set)):
        return f"{len(v)} codes"
    if isinstance(v, tuple):  # possible higher levels
        if not v:
            return "none"
        return ("level " if len(v) == 1 else "levels ") + " or ".join(str(x) for x in v)
    return str(v)


def _json(v):
    if v is _NOT_EVALUATED:
        return None
    if isinstance(v, (frozenset, set)):
        return {"codes": len(v)}
    return to_json(v)


def status_of(v) -> str:
    """true, false, unknown, known (a value), uncertain (a range) or not_evaluated."""
    if v is _NOT_EVALUATED:
        return "not_evaluated"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "unknown"
    if isinstance(v, Rng) or (isinstance(v, Days) and v.lo != v.hi) or (isinstance(v, Items) and v.maybe):
        return "uncertain"
    if isinstance(v, Span) and v.start_lo != v.start_hi:
        return "uncertain"
    return "known"


def _lower_first(label: str) -> str:
    if len(label) > 1 and label[0].isupper() and label[1].islower():
        return label[0].lower() + label[1:]
    return label


def _quote(text: str) -> str:
    return f"\u201c{text}\u201d"


# --- record items as evidence ----------------------------------------------------------------

def _item_sort_key(item) -> tuple:
    date = item_date(item)
    return (date is None, date.earliest if date else dt.date.min, date.latest if date else dt.date.min,
            item.source_id, type(item).__name__)


class _Evidence:
    """Record items in JSON and in words; code displays come from the protocols' code lists."""

    def __init__(self, displays: dict[tuple[str, str], str]):
        self.displays = displays

    def item(self, item, as_of: dt.date, extra: dict | None = None) -> dict:
        out: dict[str, Any] = {"source_id": item.source_id}
        date = item_date(item)
        if isinstance(item, r.Condition):
            out.update(record="condition", kind="condition", code=item.code, system=item.system,
                       status=item.status)
            words = "condition"
        elif isinstance(item, r.Medication):
            out.update(record="medication", kind="medication", code=item.code, system=item.system,
                       status=item.status)
            if item.end is not None:
                out["end"] = item.end.text
            if item.monthly_cost is not None:
                out["monthly_cost"] = to_json(float(item.monthly_cost))
            words = "medication"
        elif isinstance(item, r.Encounter):
            out.update(record="encounter", kind=item.kind)
            if item.method is not None:
                out["method"] = item.method
            if item.code:
                out.update(code=item.code)
            if item.end is not None:
                out["end"] = item.end.text
            words = _ENCOUNTER_WORDS.get(item.kind, item.kind)
            if item.method in ("emergency", "elective"):
                words = f"{item.method} {words}"
        elif isinstance(item, r.Observation):
            out.update(record="observation", kind=item.kind, code=item.code, system=item.system)
            if item.value is not None:
                out["value"] = to_json(float(item.value))
                if item.unit:
                    out["unit"] = item.unit
            words = _OBSERVATION_WORDS.get(item.kind, item.kind)
        elif isinstance(item, r.Procedure):
            out.update(record="procedure", kind="procedure", code=item.code, system=item.system)
            words = "procedure"
        elif isinstance(item, r.LifeEvent):
            out.update(record="life_event", kind=item.event)
            words = item.event.replace("_", " ")
        elif isinstance(item, r.PathwayEventRecord):
            out.update(record="pathway_event", kind=item.event)
            if item.pathway:
                out["pathway"] = item.pathway
            words = f"pathway event: {item.event.replace('_', ' ')}"
        else:  # pragma: no cover - every record item kind is listed above
            out.update(record=type(item).__name__.lower(), kind=type(item).__name__.lower())
            words = out["kind"]
        out["date"] = date.text if date is not None else None
        out["date_precision"] = date.precision if date is not None else None
        code = getattr(item, "code", "")
        system = getattr(item, "system", "")
        if code:
            display = self.displays.get((system, code))
            words += f" {_quote(display)} ({system} {code})" if display else f" {system} {code}"
        if isinstance(item, (r.Condition, r.Medication)) and item.status != "active":
            words += f", {item.status}"
        if extra:
            out.update(extra)
        when = "date not recorded" if date is None else date.text
        if isinstance(item, r.Condition):
            when = "onset not recorded" if date is None else f"onset {date.text}"
        elif isinstance(item, r.Medication):
            when = "start not recorded" if date is None else f"started {date.text}"
        if isinstance(item, (r.Encounter, r.Medication)) and item.end is not None:
            when += f" to {item.end.text}"
        out["text"] = f"{item.source_id or '(no source id)'}: {words}, {when}"
        return out


def _maybe_reason(item) -> tuple[str, str]:
    """Why an item may or may not belong to a list, and what would settle it."""
    date = item_date(item)
    sid = item.source_id or "an item without a source id"
    if date is None:
        return (f"{sid}: date not recorded", f"record the date of {sid}")
    if date.precision != "day":
        return (f"{sid}: date known only to the {date.precision} ({date.text})",
                f"record the exact date of {sid}")
    return (f"{sid}: a value the criterion tests is not recorded", f"complete the record of {sid}")
