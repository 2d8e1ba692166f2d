"""Write patient records as FHIR R4 that :func:`engine.readers.read_fhir` reads back.

:func:`record_to_resources` turns one :class:`~pathways.records.PatientRecord`
into FHIR R4 resources (dicts) using the codes the default mapping
(``engine/readers/default_mapping.toml``) reads; :func:`write_bundles` writes
one Bundle per patient, :func:`write_ndjson` one Bulk Data NDJSON file per
resource type. Both stream: nothing is kept between patients but the set of
practices already written.

What the reader gives back differs from the record written in three places
(docs/data.md, "Writing FHIR"):

* an Encounter's ``code`` when it is empty and the kind needs a type to be
  recognised (GP, outpatient, social work): it reads back as the local type
  code written (``gp-consultation``...);
* an assessment or fall Observation with no code: it reads back with the
  local code written (``adl-impaired``, ``fall``...), system ``local``;
* a life event is an Observation with the event's code, so it also reads
  back as an ordinary Observation (kind ``other``) with the same source id;
* pathway events have no FHIR mapping and are not written;
* an end before the start (the generator gives a few medicines of patients who
  died soon after starting them an end on the date of death, before the start):
  written as it is, the reader reports it and leaves the end empty.

Resource ids are the items' ``source_id`` (which the reader keeps as
``source_id``); an item with none gets ``{patient id}-{kind}-{n}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path

import orjson

from pathways import records as r
from pathways.schema import CODE_SYSTEMS

LIVES_ALONE_URL = "urn:ltc-pathways:fhir:lives-alone"
HAS_CARER_URL = "urn:ltc-pathways:fhir:has-carer"
COST_URL = "urn:ltc-pathways:fhir:monthly-cost-gbp"
ADMISSION_METHOD_URL = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AdmissionMethod"
ADMISSION_METHOD_SYSTEM = "https://fhir.hl7.org.uk/CodeSystem/UKCore-AdmissionMethodEngland"
LOCAL = "urn:ltc-pathways:local"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

#: NHS Data Dictionary admission method codes for each method (the mapping's extension_codes)
_METHOD_CODES = {"emergency": "21", "elective": "11", "other": "81"}
#: Encounter kind -> (v3 ActCode class, local type code or None when the class alone decides)
_ENCOUNTER = {
    "admission": ("IMP", None),
    "ae": ("EMER", None),
    "community": ("HH", None),
    "gp": ("AMB", "gp-consultation"),
    "outpatient": ("AMB", "outpatient-appointment"),
    "social_work": ("AMB", "social-work-visit"),
}
#: (kind, impaired) -> the local code the default mapping reads as that finding
_ASSESSMENT = {
    ("adl", True): "adl-impaired", ("adl", False): "adl-not-impaired",
    ("iadl", True): "iadl-impaired", ("iadl", False): "iadl-not-impaired",
    ("cognition", True): "cognitive-impairment", ("cognition", False): "cognition-not-impaired",
    ("fall", True): "fall", ("fall", False): "fall",
}
_LIFE_EVENT = {"bereavement": "bereavement", "carer_death": "carer-death", "moved_home": "moved-home",
               "entered_care_home": "entered-care-home"}
_REQUEST_STATUS = {"active": "active", "on_hold": "on-hold", "stopped": "stopped", "completed": "completed",
                   "cancelled": "cancelled"}

def _system_uri(short: str) -> str:
    if short == "local":
        return LOCAL
    return CODE_SYSTEMS.get(short, short)


def _concept(system: str, code: str) -> dict:
    return {"coding": [{"system": _system_uri(system), "code": code}]}


def _uuid(rtype: str, rid: str) -> str:
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:ltc-pathways:{rtype}/{rid}"))


class _Ids:
    """Resource ids: the source id, or a deterministic one when there is none or it repeats."""

    def __init__(self, pid: str):
        self.pid = pid
        self.seen: set[tuple[str, str]] = set()
        self.n = 0

    def __call__(self, rtype: str, item: r.Item, kind: str) -> str:
        rid = item.source_id
        if not rid or (rtype, rid) in self.seen:
            while True:
                self.n += 1
                rid = f"{self.pid}-{kind}-{self.n}"
                if (rtype, rid) not in self.seen:
                    break
        self.seen.add((rtype, rid))
        return rid


def _organization(practice: str) -> dict:
    return {"resourceType": "Organization", "id": practice, "name": practice}


def record_to_resources(record: r.PatientRecord) -> list[dict]:
    """The FHIR R4 resources of one record: the Patient first, then its items in the record's
    order (Conditions, MedicationRequests, Encounters, Observations, Procedures, then the life
    events as Observations). References are relative (``Patient/{id}``, ``Organization/{id}``);
    :func:`write_bundles` turns them into ``urn:uuid:`` references. The practice's Organization
    is not included (the writers add it once)."""
    p = record.patient
    pid = p.id
    subject = {"reference": f"Patient/{pid}"}
    patient: dict = {"resourceType": "Patient", "id": pid}
    ext = []
    if p.lives_alone is not None:
        ext.append({"url": LIVES_ALONE_URL, "valueBoolean": p.lives_alone})
    if p.has_carer is not None:
        ext.append({"url": HAS_CARER_URL, "valueBoolean": p.has_carer})
    if ext:
        patient["extension"] = ext
    patient["gender"] = p.sex
    if p.birth_date is not None:
        patient["birthDate"] = p.birth_date.text
    if p.date_of_death is not None:
        patient["deceasedDateTime"] = p.date_of_death.text
    if p.practice is not None:
        patient["generalPractitioner"] = [{"reference": f"Organization/{p.practice}"}]
    out = [patient]
    ids = _Ids(pid)

    for c in record.conditions:
        res = {"resourceType": "Condition", "id": ids("Condition", c, "condition"),
               "clinicalStatus": {"coding": [{
                   "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": c.status}]},
               "code": _concept(c.system, c.code), "subject": subject}
        if c.onset is not None:
            res["onsetDateTime"] = c.onset.text
        if c.abatement is not None:
            res["abatementDateTime"] = c.abatement.text
        out.append(res)

    for m in record.medications:
        res = {"resourceType": "MedicationRequest", "id": ids("MedicationRequest", m, "medication"),
               "status": _REQUEST_STATUS[m.status], "intent": "order",
               "medicationCodeableConcept": _concept(m.system, m.code), "subject": subject}
        if m.monthly_cost is not None:
            res["extension"] = [{"url": COST_URL, "valueMoney": {"value": m.monthly_cost, "currency": "GBP"}}]
        if m.start is not None:
            res["authoredOn"] = m.start.text
        if m.end is not None:
            res["dispenseRequest"] = {"validityPeriod": {"end": m.end.text}}
        out.append(res)

    for e in record.encounters:
        cls, type_code = _ENCOUNTER[e.kind]
        res = {"resourceType": "Encounter", "id": ids("Encounter", e, e.kind),
               "status": "in-progress" if e.end is None and e.kind == "admission" else "finished",
               "class": {"system": ACT_CODE, "code": cls}}
        types = []
        if e.code:  # the encounter's own code first: the reader keeps the first of equal rank
            types.append(_concept("snomed" if e.code.isdigit() else "local", e.code))
        if type_code is not None:
            types.append(_concept("local", type_code))
        if types:
            res["type"] = types
        if e.kind == "admission" and e.method is not None:
            res["extension"] = [{"url": ADMISSION_METHOD_URL, "valueCodeableConcept": {"coding": [
                {"system": ADMISSION_METHOD_SYSTEM, "code": _METHOD_CODES[e.method]}]}}]
        res["subject"] = subject
        period = {"start": e.start.text}
        if e.end is not None:
            period["end"] = e.end.text
        res["period"] = period
        out.append(res)

    for o in record.observations:
        codings = []
        if o.code:
            codings.append({"system": _system_uri(o.system), "code": o.code})
        helper = _ASSESSMENT.get((o.kind, o.impaired))
        if helper is not None and not (o.code and _reads_as(o)):
            codings.append({"system": LOCAL, "code": helper})
        res = {"resourceType": "Observation", "id": ids("Observation", o, o.kind), "status": "final",
               "code": {"coding": codings}, "subject": subject, "effectiveDateTime": o.date.text}
        if o.value is not None or o.unit:
            q: dict = {}
            if o.value is not None:
                q["value"] = o.value
            if o.unit:
                q["unit"] = o.unit
            res["valueQuantity"] = q
        out.append(res)

    for pr in record.procedures:
        out.append({"resourceType": "Procedure", "id": ids("Procedure", pr, "procedure"), "status": "completed",
                    "code": _concept(pr.system, pr.code), "subject": subject,
                    "performedDateTime": pr.date.text})

    for le in record.life_events:
        out.append({"resourceType": "Observation", "id": ids("Observation", le, le.event), "status": "final",
                    "code": _concept("local", _LIFE_EVENT[le.event]), "subject": subject,
                    "effectiveDateTime": le.date.text})
    return out


_MAPPING = None


def _reads_as(o: r.Observation) -> bool:
    """Whether the default mapping reads the observation's own code as its kind and finding."""
    global _MAPPING
    if _MAPPING is None:
        from engine.readers.mapping import load_mapping
        _MAPPING = load_mapping()
    rule = _MAPPING.observations.get((o.system, o.code))
    if rule is None or rule.kind != o.kind:
        return False
    if o.kind == "fall":
        return True
    return rule.reading(o.value, []) == o.impaired


def _bundle(resources: list[dict], organization: dict | None) -> dict:
    """A collection Bundle with urn:uuid fullUrls and references."""
    entries = list(resources)
    if organization is not None:
        entries.insert(1, organization)
    urls = {f"{res['resourceType']}/{res['id']}": _uuid(res["resourceType"], res["id"]) for res in entries}
    out = []
    for res in entries:
        for key in ("subject", "generalPractitioner"):
            value = res.get(key)
            if isinstance(value, dict) and value.get("reference") in urls:
                res[key] = {"reference": urls[value["reference"]]}
            elif isinstance(value, list):
                res[key] = [{"reference": urls.get(v["reference"], v["reference"])} for v in value]
        out.append({"fullUrl": urls[f"{res['resourceType']}/{res['id']}"], "resource": res})
    return {"resourceType": "Bundle", "type": "collection", "entry": out}


def write_bundles(records: Iterable[r.PatientRecord], folder: str | Path) -> dict[str, int]:
    """One collection Bundle per patient, ``{patient id}.json``, in ``folder`` (created).
    Each Bundle holds the patient's practice Organization too (the reader reads the copies as
    one). Returns the number of resources written by type."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for record in records:
        resources = record_to_resources(record)
        practice = record.patient.practice
        org = _organization(practice) if practice is not None else None
        bundle = _bundle(resources, org)
        for e in bundle["entry"]:
            t = e["resource"]["resourceType"]
            counts[t] = counts.get(t, 0) + 1
        (root / f"{record.patient.id}.json").write_bytes(orjson.dumps(bundle))
    return counts


def write_ndjson(records: Iterable[r.PatientRecord], folder: str | Path) -> dict[str, int]:
    """Bulk Data NDJSON in ``folder`` (created): one ``Type.ndjson`` per resource type, every
    file opened once and appended to as the records come. Returns the resources written by type."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    files: dict = {}  # opened at a type's first resource, so no file is left empty
    practices: set[str] = set()

    def put(res: dict) -> None:
        t = res["resourceType"]
        f = files.get(t)
        if f is None:
            f = files[t] = open(root / f"{t}.ndjson", "wb")
        f.write(orjson.dumps(res) + b"\n")
        counts[t] = counts.get(t, 0) + 1

    try:
        for record in records:
            practice = record.patient.practice
            if practice is not None and practice not in practices:
                practices.add(practice)
                put(_organization(practice))
            for res in record_to_resources(record):
                put(res)
    finally:
        for f in files.values():
            f.close()
    return counts


__all__ = ["as_read_back", "record_to_resources", "write_bundles", "write_ndjson"]


def as_read_back(record: r.PatientRecord) -> r.PatientRecord:
    """The record :func:`engine.readers.read_fhir` (default mapping) gives back for what
    :func:`record_to_resources` writes: the record itself but for the differences listed in the
    module's docstring (empty encounter and assessment codes filled in with the local codes
    written, an Observation for each life event, no pathway events)."""
    encounters = tuple(
        e.model_copy(update={"code": _ENCOUNTER[e.kind][1]}) if not e.code and _ENCOUNTER[e.kind][1] else e
        for e in record.encounters)
    observations = [
        o.model_copy(update={"code": _ASSESSMENT[(o.kind, o.impaired)], "system": "local"})
        if not o.code and (o.kind, o.impaired) in _ASSESSMENT else o
        for o in record.observations]
    observations.extend(r.Observation(source_id=le.source_id, kind="other", code=_LIFE_EVENT[le.event],
                                      system="local", date=le.date) for le in record.life_events)
    medications = tuple(m.model_copy(update={"end": None}) if _backwards(m.start, m.end) else m
                        for m in record.medications)
    encounters = tuple(e.model_copy(update={"end": None}) if _backwards(e.start, e.end) else e
                       for e in encounters)
    return record.model_copy(update={"medications": medications, "encounters": encounters,
                                     "observations": tuple(observations), "pathway_events": ()})


def _backwards(start: r.PartialDate | None, end: r.PartialDate | None) -> bool:
    """An end before the start: written as it is, the reader reports it and leaves the end empty."""
    return start is not None and end is not None and end.latest < start.earliest
