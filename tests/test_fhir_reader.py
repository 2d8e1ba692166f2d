"""The FHIR R4 reader: bad input, the mapping, and the real Synthea data.

Bad input: each case writes a little FHIR (Bundles or NDJSON) holding one
valid patient, ``good``, beside the fault, and checks that the problem is
reported with its place (file, line or entry, resource id, field), that
``good`` still loads with its condition, that every resource is accounted
for (mapped + skipped = read), and that ``strict=True`` stops at the problem
with the same place in its message.

The real data tests read ``../shared/data`` (Synthea FHIR R4) and skip
cleanly when it is absent.
"""

from __future__ import annotations

import gzip
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

import engine
from engine.readers import LoadReport, MappingError, ReadError, load_mapping, read_fhir
from pathways.records import PatientRecord

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BUNDLES = DATA / "synthea-r4-bundles"
NDJSON = DATA / "synthea-r4-ndjson"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"


# -- little FHIR builders ----------------------------------------------------------------

def cc(code: str, system: str = SNOMED, display: str = "") -> dict:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def patient(pid: str, birth: str | None = "1940-05-17", **extra) -> dict:
    res = {"resourceType": "Patient", "id": pid, "gender": "female"}
    if birth is not None:
        res["birthDate"] = birth
    res.update(extra)
    return res


def condition(cid: str, subject: str, code: str = "44054006", onset: str | None = "2010-03-01", **extra) -> dict:
    res = {"resourceType": "Condition", "id": cid, "subject": {"reference": subject},
           "clinicalStatus": cc("active", "http://terminology.hl7.org/CodeSystem/condition-clinical"),
           "code": cc(code)}
    if onset is not None:
        res["onsetDateTime"] = onset
    res.update(extra)
    return res


def encounter(eid: str, subject: str, cls: str = "AMB", type_code: str | None = "185349003",
              start: str | None = "2021-01-05T10:00:00+00:00", end: str | None = None, **extra) -> dict:
    res = {"resourceType": "Encounter", "id": eid, "status": "finished",
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": cls},
           "subject": {"reference": subject}}
    if type_code is not None:
        res["type"] = [cc(type_code)]
    period = {}
    if start is not None:
        period["start"] = start
    if end is not None:
        period["end"] = end
    if period:
        res["period"] = period
    res.update(extra)
    return res


def observation(oid: str, subject: str, code: str, system: str = LOINC, value=None,
                date: str | None = "2021-02-01", **extra) -> dict:
    res = {"resourceType": "Observation", "id": oid, "status": "final", "code": cc(code, system),
           "subject": {"reference": subject}}
    if date is not None:
        res["effectiveDateTime"] = date
    if value is not None:
        res["valueQuantity"] = {"value": value, "unit": "{score}"}
    res.update(extra)
    return res


def medication(mid: str, subject: str, code: str = "314076", status: str = "active", **extra) -> dict:
    res = {"resourceType": "MedicationRequest", "id": mid, "status": status, "intent": "order",
           "subject": {"reference": subject}, "authoredOn": "2020-01-10T09:00:00+00:00",
           "medicationCodeableConcept": cc(code, "http://www.nlm.nih.gov/research/umls/rxnorm")}
    res.update(extra)
    return res


def bundle(*resources: dict, urn: bool = False) -> dict:
    """A transaction Bundle; with ``urn``, fullUrls are urn:uuid:<id>."""
    entries = []
    for res in resources:
        entry = {"resource": res}
        if urn and "id" in res:
            entry["fullUrl"] = f"urn:uuid:{res['id']}"
        entries.append(entry)
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def write_json(path: Path, doc, gz: bool = False) -> Path:
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_ndjson(path: Path, lines: list, gz: bool = False) -> Path:
    text = b"\n".join(x.encode() if isinstance(x, str) else orjson.dumps(x) for x in lines) + b"\n"
    path.write_bytes(gzip.compress(text) if gz else text)
    return path


def good_bundle(folder: Path) -> Path:
    """The valid patient every bad-input case carries beside its fault."""
    return write_json(folder / "good.json", bundle(patient("good"), condition("good-c1", "Patient/good")))


def by_id(records: list[PatientRecord]) -> dict[str, PatientRecord]:
    return {rec.id: rec for rec in records}


def balanced(report: LoadReport) -> None:
    assert report.unbalanced() == {}, report.summary()


# -- bad input ---------------------------------------------------------------------------
# Each case writes its files into `tmp` and returns the fragments the problem's
# message must hold (file, line/entry, resource id, field...).

def case_malformed_ndjson_line(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_ndjson(tmp / "Patient.ndjson", [patient("p1"), '{"resourceType": "Patient", "id": "p2",', patient("p3")])
    return ["Patient.ndjson", "line 2", "malformed JSON"]


def case_malformed_bundle_file(tmp: Path) -> list[str]:
    good_bundle(tmp)
    (tmp / "broken.json").write_text('{\n  "resourceType": "Bundle",\n  "entry": [\n    {"resource": }\n  ]\n}\n')
    return ["broken.json", "line 4", "malformed JSON"]


def case_missing_resource_type(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_json(tmp / "b.json", bundle(patient("p1"), {"id": "x1", "subject": {"reference": "Patient/p1"}}))
    return ["b.json", "entry[1]", "x1", "resourceType", "no resourceType"]


def case_wrong_resource_type(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_ndjson(tmp / "Patient.ndjson", [patient("p1"), {"resourceType": "Patinet", "id": "p2"}])
    return ["Patient.ndjson", "line 2", "Patinet/p2", "resourceType", "not a FHIR R4 resource type"]


def case_resource_type_not_a_string(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_json(tmp / "b.json", bundle({"resourceType": 7, "id": "odd"}))
    return ["b.json", "entry[0]", "odd", "resourceType"]


def case_type_in_the_wrong_ndjson_file(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_ndjson(tmp / "Patient.000.ndjson", [patient("p1"), condition("c9", "Patient/p1")])
    return ["Patient.000.ndjson", "line 2", "Condition/c9", "resourceType", "a file of Patient resources"]


def case_patient_without_birth_date(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_json(tmp / "b.json", bundle(patient("nobirth", birth=None)))
    return ["b.json", "entry[0]", "Patient/nobirth", "birthDate", "age is unknown"]


def case_impossible_birth_date(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_ndjson(tmp / "Patient.ndjson", [patient("p1", birth="2023-02-30")])
    return ["Patient.ndjson", "line 1", "Patient/p1", "birthDate", "there is no 30 February 2023"]


def case_impossible_onset(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_json(tmp / "b.json", bundle(patient("p1"), condition("c1", "Patient/p1", onset="2019-04-31T10:00:00Z")))
    return ["b.json", "entry[1]", "Condition/c1", "onsetDateTime", "there is no 31 April 2019"]


def case_impossible_month_in_a_period(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_json(tmp / "b.json", bundle(patient("p1"), encounter("e1", "Patient/p1", start="2020-13-01T10:00:00Z")))
    return ["b.json", "entry[1]", "Encounter/e1", "period.start", "no month 13"]


def case_not_a_date_at_all(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_json(tmp / "b.json", bundle(patient("p1"), observation("o1", "Patient/p1", "8302-2", date="last Tuesday")))
    return ["b.json", "entry[1]", "Observation/o1", "effectiveDateTime", "not a FHIR date"]


def case_reference_to_a_missing_patient(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_ndjson(tmp / "Condition.ndjson", [condition("c1", "Patient/nobody")])
    return ["Condition.ndjson", "line 1", "Condition/c1", "subject", "Patient/nobody", "not in the data"]


def case_unresolved_urn_reference(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_json(tmp / "b.json", bundle(patient("p1"), condition("c1", "urn:uuid:0000-missing"), urn=True))
    return ["b.json", "entry[1]", "Condition/c1", "subject", "urn:uuid:0000-missing"]


def case_no_subject(tmp: Path) -> list[str]:
    good_bundle(tmp)
    res = condition("c1", "Patient/good")
    del res["subject"]
    write_json(tmp / "b.json", bundle(res))
    return ["b.json", "entry[0]", "Condition/c1", "subject", "no subject"]


def case_duplicate_patient(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_json(tmp / "a.json", bundle(patient("twin")))
    write_json(tmp / "b.json", bundle(patient("twin", birth="1950-01-01")))
    return ["b.json", "entry[0]", "Patient/twin", "id", "duplicate id", "a.json, entry[0]"]


def case_duplicate_item(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_ndjson(tmp / "Condition.ndjson", [condition("dup", "Patient/good"), condition("dup", "Patient/good")])
    return ["Condition.ndjson", "line 2", "Condition/dup", "duplicate id", "line 1"]


def case_gz_that_is_not_gzip(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_json(tmp / "fake.json.gz", bundle(patient("p1")))  # plain JSON with a .gz name
    return ["fake.json.gz", "not gzip"]


def case_truncated_gzip(tmp: Path) -> list[str]:
    good_bundle(tmp)
    data = gzip.compress(orjson.dumps(bundle(patient("p1"))))
    (tmp / "cut.json.gz").write_bytes(data[: len(data) // 2])
    return ["cut.json.gz", "not a valid gzip file"]


def case_empty_file(tmp: Path) -> list[str]:
    good_bundle(tmp)
    (tmp / "Observation.ndjson").write_bytes(b"")
    return ["Observation.ndjson", "empty file"]


def case_bundle_that_is_not_a_bundle(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_json(tmp / "single.json", patient("lonely"))
    return ["single.json", "Patient/lonely", "resourceType", "expected a Bundle, found Patient"]


def case_json_that_is_not_a_resource(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_json(tmp / "list.json", [patient("p1")])
    return ["list.json", "not a FHIR resource"]


def case_ndjson_line_that_is_not_an_object(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_ndjson(tmp / "Patient.ndjson", [patient("p1"), "42"])
    return ["Patient.ndjson", "line 2", "not a FHIR resource"]


def case_entry_without_resource(tmp: Path) -> list[str]:
    good_bundle(tmp)
    doc = bundle(patient("p1"))
    doc["entry"].append({"request": {"method": "DELETE", "url": "Patient/old"}})
    write_json(tmp / "b.json", doc)
    return ["b.json", "entry[1]", "entry.resource", "entry without a resource"]


def case_item_without_id(tmp: Path) -> list[str]:
    good_bundle(tmp)
    res = condition("x", "Patient/good")
    del res["id"]
    write_ndjson(tmp / "Condition.ndjson", [res])
    return ["Condition.ndjson", "line 1", "Condition/?", "id", "no id"]


def case_unknown_gender(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_json(tmp / "b.json", bundle(patient("p1", gender="F")))
    return ["b.json", "entry[0]", "Patient/p1", "gender", "'F' is not a FHIR gender"]


def case_observation_without_date(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_json(tmp / "b.json", bundle(patient("p1"), observation("o1", "Patient/p1", "8302-2", date=None)))
    return ["b.json", "entry[1]", "Observation/o1", "effective[x]", "no date"]


def case_encounter_ending_before_it_starts(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_json(tmp / "b.json", bundle(patient("p1"), encounter("e1", "Patient/p1", cls="IMP",
                                                                 start="2021-01-10", end="2021-01-02")))
    return ["b.json", "entry[1]", "Encounter/e1", "period.end", "ends (2021-01-02) before it starts"]


def case_medicine_without_code(tmp: Path) -> list[str]:
    good_bundle(tmp)
    res = medication("m1", "Patient/good")
    del res["medicationCodeableConcept"]
    write_ndjson(tmp / "MedicationRequest.ndjson", [res])
    return ["MedicationRequest.ndjson", "line 1", "MedicationRequest/m1", "medication[x]", "no coded medicine"]


def case_medication_reference_missing(tmp: Path) -> list[str]:
    good_bundle(tmp)
    res = medication("m1", "Patient/good")
    del res["medicationCodeableConcept"]
    res["medicationReference"] = {"reference": "Medication/gone"}
    write_ndjson(tmp / "MedicationRequest.ndjson", [res])
    return ["MedicationRequest.ndjson", "line 1", "MedicationRequest/m1", "medicationReference", "Medication/gone"]


def case_cost_in_dollars(tmp: Path) -> list[str]:
    good_bundle(tmp)
    res = medication("m1", "Patient/good", extension=[{"url": "urn:ltc-pathways:fhir:monthly-cost-gbp",
                                                      "valueMoney": {"value": 120, "currency": "USD"}}])
    write_json(tmp / "b.json", bundle(res))
    return ["b.json", "entry[0]", "MedicationRequest/m1", "monthly cost", "USD"]


def case_assessment_without_value(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_json(tmp / "b.json", bundle(patient("p1"), observation("o1", "Patient/p1", "72106-8")))
    return ["b.json", "entry[1]", "Observation/o1", "value[x]", "cognition assessment"]


def case_practice_not_in_the_data(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_json(tmp / "b.json", bundle(patient("p1", generalPractitioner=[{"reference": "Organization/Y01234"}])))
    return ["b.json", "entry[0]", "Patient/p1", "generalPractitioner[0]", "Organization/Y01234", "not in the data"]


def case_value_that_is_not_a_number(tmp: Path) -> list[str]:
    good_bundle(tmp)
    write_json(tmp / "b.json", bundle(patient("p1"), observation("o1", "Patient/p1", "8302-2", value="tall")))
    return ["b.json", "entry[1]", "Observation/o1", "valueQuantity.value", "not a number"]


def case_unknown_clinical_status(tmp: Path) -> list[str]:
    good_bundle(tmp)
    res = condition("c1", "Patient/good", clinicalStatus=cc("ongoing", "http://terminology.hl7.org/CodeSystem/x"))
    write_json(tmp / "b.json", bundle(res))
    return ["b.json", "entry[0]", "Condition/c1", "clinicalStatus", "'ongoing'"]


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_bad_input_is_reported_with_its_place_and_the_valid_patients_load(tmp_path, case):
    expected = case(tmp_path)
    records, report = read_fhir(tmp_path)
    assert report.problem_count >= 1
    texts = [str(p) for p in report.problems]
    assert any(all(frag in t for frag in expected) for t in texts), (expected, texts)
    good = by_id(records).get("good")
    assert good is not None and "good-c1" in [c.source_id for c in good.conditions]
    balanced(report)
    # strict: the first problem stops the read, and names its place
    with pytest.raises(ReadError) as stopped:
        read_fhir(tmp_path, strict=True)
    assert stopped.value.problem is not None
    assert all(frag in str(stopped.value) for frag in expected), str(stopped.value)


def test_there_are_at_least_twenty_bad_input_cases():
    assert len(CASES) >= 20


def test_a_patient_without_a_birth_date_is_loaded_with_an_unknown_age(tmp_path):
    write_json(tmp_path / "b.json", bundle(patient("p1", birth=None), condition("c1", "Patient/p1")))
    records, report = read_fhir(tmp_path)
    assert records[0].patient.birth_date is None and len(records[0].conditions) == 1
    assert report.patients_loaded == 1
    from engine.record_index import patient_attribute
    import datetime as dt
    assert patient_attribute(records[0], "age", dt.date(2021, 4, 1)) is None


def test_an_impossible_date_leaves_only_that_field_out(tmp_path):
    write_json(tmp_path / "b.json", bundle(patient("p1"), condition("c1", "Patient/p1", onset="2023-02-30",
                                                                   abatementDateTime="2023-06-01")))
    records, report = read_fhir(tmp_path)
    (c,) = records[0].conditions
    assert c.onset is None and str(c.abatement) == "2023-06-01" and c.status == "active"


def test_unknown_codes_are_counted_not_listed_item_by_item(tmp_path):
    items = [encounter(f"e{i}", "Patient/p1", type_code="999999999") for i in range(30)]
    write_json(tmp_path / "b.json", bundle(patient("p1"), *items))
    records, report = read_fhir(tmp_path)
    assert report.problem_count == 0
    assert report.unknown_codes[("Encounter", "kind (class AMB)", "snomed", "999999999", "")] == 30
    assert report.skipped[("Encounter", "encounter kind not in the mapping")] == 30
    assert "999999999" in report.summary()
    balanced(report)


def test_unknown_code_systems_are_counted(tmp_path):
    res = condition("c2", "Patient/p1")
    res["code"] = cc("X1", "http://example.org/local")
    write_json(tmp_path / "b.json", bundle(patient("p1"), res))
    records, report = read_fhir(tmp_path)
    assert records[0].conditions[0].system == "http://example.org/local"
    assert report.unknown_codes[("Condition", "code system not in the mapping", "http://example.org/local", "", "")] == 1


def test_resources_the_model_does_not_use_are_counted_and_skipped(tmp_path):
    write_json(tmp_path / "b.json", bundle(patient("p1"), {"resourceType": "Claim", "id": "cl1"},
                                           {"resourceType": "Immunization", "id": "im1"}))
    _, report = read_fhir(tmp_path)
    assert report.read["Claim"] == 1 and report.skipped[("Claim", "not used by the record model")] == 1
    assert report.skipped[("Immunization", "not used by the record model")] == 1
    balanced(report)


def test_a_missing_path_is_an_error():
    with pytest.raises(ReadError, match="no such file"):
        read_fhir("/nonexistent/fhir/data")


def test_strict_reads_clean_data_without_complaint(tmp_path):
    good_bundle(tmp_path)
    records, report = read_fhir(tmp_path, strict=True)
    assert [r.id for r in records] == ["good"] and report.problem_count == 0


def test_the_summary_accounts_for_everything(tmp_path):
    case_duplicate_item(tmp_path)
    _, report = read_fhir(tmp_path)
    text = report.summary()
    assert "Patients: 1 loaded" in text and "duplicate id" in text and "Problems: 1" in text
    data = report.to_dict()
    assert data["resources"]["Condition"] == {"read": 3, "mapped": 2, "skipped": 1,
                                              "skipped_by_reason": {"duplicate id": 1}}


# -- the mapping -------------------------------------------------------------------------

def read_one(tmp_path: Path, *resources: dict, mapping=None, urn: bool = False) -> tuple[PatientRecord, LoadReport]:
    write_json(tmp_path / "b.json", bundle(patient("p1"), *resources, urn=urn))
    records, report = read_fhir(tmp_path, mapping=mapping)
    balanced(report)
    return by_id(records)["p1"], report


def test_patient_fields(tmp_path):
    rec, _ = read_one(tmp_path)
    write_json(tmp_path / "b.json", bundle(patient("p1", birth="1950-07", gender="male",
                                                   deceasedDateTime="2021-02-03T04:05:06+01:00")))
    (rec,), _ = read_fhir(tmp_path)
    p = rec.patient
    assert (str(p.birth_date), p.birth_date.precision, p.sex, str(p.date_of_death)) == (
        "1950-07", "month", "male", "2021-02-03")
    assert p.lives_alone is None and p.has_carer is None and p.practice is None


def test_synthea_encounter_types_and_classes(tmp_path):
    rec, report = read_one(
        tmp_path,
        encounter("gp1", "Patient/p1", "AMB", "185349003"),       # check-up
        encounter("gp2", "Patient/p1", "AMB", "185347001"),       # encounter for problem
        encounter("gp3", "Patient/p1", "VR", "390906007"),        # follow-up, video
        encounter("op1", "Patient/p1", "AMB", "371883000"),       # outpatient procedure
        encounter("op2", "Patient/p1", "AMB", "698314001"),       # consultation for treatment
        encounter("ae1", "Patient/p1", "EMER", "50849002"),
        encounter("uc1", "Patient/p1", "AMB", "702927004"),       # urgent care clinic
        encounter("hh1", "Patient/p1", "HH", "439708006"),
        encounter("ad1", "Patient/p1", "IMP", "183452005", end="2021-01-09"),
        encounter("ad2", "Patient/p1", "IMP", "183495009", end="2021-01-09"),
        encounter("ad3", "Patient/p1", "IMP", "185347001", end="2021-01-09"),
        encounter("dc1", "Patient/p1", "AMB", "308646001"),       # death certification: ignored
    )
    kinds = {e.source_id: (e.kind, e.method) for e in rec.encounters}
    assert kinds == {
        "gp1": ("gp", None), "gp2": ("gp", None), "gp3": ("gp", None), "op1": ("outpatient", None),
        "op2": ("outpatient", None), "ae1": ("ae", None), "uc1": ("ae", None), "hh1": ("community", None),
        "ad1": ("admission", "emergency"), "ad2": ("admission", "elective"), "ad3": ("admission", None)}
    assert report.skipped[("Encounter", "the mapping says ignore")] == 1
    assert report.unknown_codes[("Encounter", "admission method", "snomed", "185347001", "")] == 1


def test_admission_method_from_priority_admit_source_and_the_uk_extension(tmp_path):
    ext = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AdmissionMethod"
    rec, _ = read_one(
        tmp_path,
        encounter("a1", "Patient/p1", "IMP", None, priority=cc("EM", "http://terminology.hl7.org/CodeSystem/v3-ActPriority")),
        encounter("a2", "Patient/p1", "IMP", None, priority=cc("EL", "http://terminology.hl7.org/CodeSystem/v3-ActPriority")),
        encounter("a3", "Patient/p1", "IMP", None, hospitalization={"admitSource": cc("emd", "http://terminology.hl7.org/CodeSystem/admit-source")}),
        encounter("a4", "Patient/p1", "IMP", None, extension=[{"url": ext, "valueCodeableConcept": cc("21", "https://fhir.hl7.org.uk/CodeSystem/UKCore-AdmissionMethodEngland")}]),
        encounter("a5", "Patient/p1", "IMP", "183452005",  # the extension beats the type code
                  extension=[{"url": ext, "valueCodeableConcept": cc("11", "https://fhir.hl7.org.uk/CodeSystem/UKCore-AdmissionMethodEngland")}]),
    )
    assert {e.source_id: e.method for e in rec.encounters} == {
        "a1": "emergency", "a2": "elective", "a3": "emergency", "a4": "emergency", "a5": "elective"}


def test_assessments_read_impairment_from_the_value(tmp_path):
    rec, _ = read_one(
        tmp_path,
        observation("mmse1", "Patient/p1", "72106-8", value=19),
        observation("mmse2", "Patient/p1", "72106-8", value=29),
        observation("barthel", "Patient/p1", "273302005", SNOMED, value=12),
        observation("iadl", "Patient/p1", "iadl-score", "local", value=8),
        observation("height", "Patient/p1", "8302-2", value=170.5),
    )
    obs = {o.source_id: (o.kind, o.impaired, o.value) for o in rec.observations}
    assert obs == {"mmse1": ("cognition", True, 19.0), "mmse2": ("cognition", False, 29.0),
                   "barthel": ("adl", True, 12.0), "iadl": ("iadl", False, 8.0), "height": ("other", True, 170.5)}
    # an assessment that found no impairment is "assessed, not impaired", not "never assessed"
    from engine.record_index import RecordIndex
    index = RecordIndex(rec)
    import datetime as dt
    assert index.cleared("iadl_impairments", dt.date(2021, 4, 1))[0].source_id == "iadl"
    assert [o.source_id for o in index.collection("adl_impairments")] == ["barthel"]


def test_falls_bereavement_and_cognition_from_conditions(tmp_path):
    bereaved = condition("b1", "Patient/p1", onset="2021-02-01")
    bereaved["code"] = cc("Z63.4", "http://hl7.org/fhir/sid/icd-10")
    rec, _ = read_one(
        tmp_path,
        condition("f1", "Patient/p1", code="161898004", onset="2021-03-01"),
        bereaved,
        condition("cog", "Patient/p1", code="386806002", onset="2020-11-01"),
    )
    assert len(rec.conditions) == 3  # each is a condition too
    assert [(o.source_id, o.kind, o.impaired) for o in rec.observations] == [("f1", "fall", True),
                                                                             ("cog", "cognition", True)]
    assert [(e.event, str(e.date), e.source_id) for e in rec.life_events] == [("bereavement", "2021-02-01", "b1")]


def test_living_alone_the_latest_record_wins_and_an_extension_beats_them(tmp_path):
    alone = observation("o1", "Patient/p1", "105529008", SNOMED, date="2019-01-01")
    family = observation("o2", "Patient/p1", "224133007", SNOMED, date="2020-06-01")
    rec, _ = read_one(tmp_path, alone, family)
    assert rec.patient.lives_alone is False
    size = observation("o3", "Patient/p1", "63512-8", value=1, date="2021-01-01")
    rec, _ = read_one(tmp_path, alone, family, size)
    assert rec.patient.lives_alone is True
    write_json(tmp_path / "b.json", bundle(
        patient("p1", extension=[{"url": "urn:ltc-pathways:fhir:lives-alone", "valueBoolean": False},
                                 {"url": "urn:ltc-pathways:fhir:has-carer", "valueBoolean": True}]), alone))
    (rec,), _ = read_fhir(tmp_path)
    assert (rec.patient.lives_alone, rec.patient.has_carer) == (False, True)


def test_coded_values_say_living_alone(tmp_path):
    obs = observation("o1", "Patient/p1", "LIVING", "http://example.org/q",
                      valueCodeableConcept=cc("105529008"))
    rec, _ = read_one(tmp_path, obs)
    assert rec.patient.lives_alone is True


def test_conditions_status_verification_and_onset(tmp_path):
    resolved = condition("c2", "Patient/p1", abatementDateTime="2015-01-01",
                         clinicalStatus=cc("resolved", "http://terminology.hl7.org/CodeSystem/condition-clinical"))
    refuted = condition("c3", "Patient/p1", verificationStatus=cc(
        "refuted", "http://terminology.hl7.org/CodeSystem/condition-ver-status"))
    recorded_only = condition("c4", "Patient/p1", onset=None, recordedDate="2018-05-06T00:00:00Z")
    no_status = condition("c5", "Patient/p1", abatementDateTime="2016")
    del no_status["clinicalStatus"]
    rec, report = read_one(tmp_path, condition("c1", "Patient/p1"), resolved, refuted, recorded_only, no_status)
    got = {c.source_id: (c.status, str(c.onset), str(c.abatement)) for c in rec.conditions}
    assert got == {"c1": ("active", "2010-03-01", "None"), "c2": ("resolved", "2010-03-01", "2015-01-01"),
                   "c4": ("active", "2018-05-06", "None"), "c5": ("resolved", "2010-03-01", "2016")}
    assert report.skipped[("Condition", "verificationStatus refuted")] == 1


def test_medicines_status_cost_and_references(tmp_path):
    contained = medication("m3", "Patient/p1")
    del contained["medicationCodeableConcept"]
    contained["contained"] = [{"resourceType": "Medication", "id": "med", "code": cc("322236009", "https://dmd.nhs.uk")}]
    contained["medicationReference"] = {"reference": "#med"}
    shared = medication("m4", "Patient/p1")
    del shared["medicationCodeableConcept"]
    shared["medicationReference"] = {"reference": "Medication/amox"}
    statement = {"resourceType": "MedicationStatement", "id": "s1", "status": "active",
                 "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": cc("39732311000001104", "https://dmd.nhs.uk"),
                 "effectivePeriod": {"start": "2019-01-01", "end": "2019-06-30"}}
    rec, report = read_one(
        tmp_path,
        medication("m1", "Patient/p1", extension=[{"url": "urn:ltc-pathways:fhir:monthly-cost-gbp",
                                                   "valueMoney": {"value": 42.5, "currency": "GBP"}}]),
        medication("m2", "Patient/p1", status="stopped"),
        medication("m5", "Patient/p1", status="entered-in-error"),
        contained, shared, statement,
        {"resourceType": "Medication", "id": "amox", "code": cc("323509004", "https://dmd.nhs.uk")},
        mapping={"medication": {"monthly_cost": {"dmd": {"323509004": 3.2}}}},
    )
    got = {m.source_id: (m.code, m.system, m.status, m.monthly_cost, str(m.start), str(m.end)) for m in rec.medications}
    assert got == {
        "m1": ("314076", "rxnorm", "active", 42.5, "2020-01-10", "None"),
        "m2": ("314076", "rxnorm", "stopped", None, "2020-01-10", "None"),
        "m3": ("322236009", "dmd", "active", None, "2020-01-10", "None"),
        "m4": ("323509004", "dmd", "active", 3.2, "2020-01-10", "None"),
        "s1": ("39732311000001104", "dmd", "active", None, "2019-01-01", "2019-06-30")}
    assert report.skipped[("MedicationRequest", "status entered-in-error")] == 1
    assert report.mapped["Medication"] == 1


def test_preferred_coding_is_kept(tmp_path):
    res = condition("c1", "Patient/p1")
    res["code"] = {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11"},
                              {"system": SNOMED, "code": "44054006"}]}
    rec, _ = read_one(tmp_path, res)
    assert (rec.conditions[0].system, rec.conditions[0].code) == ("snomed", "44054006")


def test_every_item_keeps_its_source_id(tmp_path):
    rec, _ = read_one(tmp_path, condition("c1", "Patient/p1"), medication("m1", "Patient/p1"),
                      encounter("e1", "Patient/p1"), observation("o1", "Patient/p1", "8302-2", value=1),
                      {"resourceType": "Procedure", "id": "pr1", "status": "completed", "code": cc("73761001"),
                       "subject": {"reference": "Patient/p1"}, "performedDateTime": "2020-02-02"})
    ids = [i.source_id for coll in (rec.conditions, rec.medications, rec.encounters, rec.observations,
                                    rec.procedures) for i in coll]
    assert ids == ["c1", "m1", "e1", "o1", "pr1"]


def test_urn_references_resolve_across_files(tmp_path):
    org = {"resourceType": "Organization", "id": "org-1", "name": "Castlefields Health Centre",
           "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "N81019"}]}
    write_json(tmp_path / "hospitalInformation.json", bundle(org, urn=True))
    write_json(tmp_path / "ann.json", bundle(
        patient("ann", generalPractitioner=[{"reference": "urn:uuid:org-1"}]),
        condition("c1", "urn:uuid:ann"), urn=True))
    (rec,), report = read_fhir(tmp_path)
    assert rec.patient.practice == "org-1" and rec.conditions[0].source_id == "c1"
    (rec,), _ = read_fhir(tmp_path, mapping={"patient": {"practice_label": "name"}})
    assert rec.patient.practice == "Castlefields Health Centre"
    (rec,), _ = read_fhir(tmp_path, mapping={"patient": {"practice_label": "identifier"}})
    assert rec.patient.practice == "N81019"
    assert report.problem_count == 0


def test_practice_through_a_practitioner_role_or_gp_encounters(tmp_path):
    role = {"resourceType": "PractitionerRole", "id": "r1", "practitioner": {"reference": "Practitioner/dr1"},
            "organization": {"reference": "Organization/P1"}}
    orgs = [{"resourceType": "Organization", "id": i, "name": i} for i in ("P1", "P2", "H1")]
    write_json(tmp_path / "shared.json", bundle(role, *orgs, {"resourceType": "Practitioner", "id": "dr1"}))
    write_json(tmp_path / "a.json", bundle(patient("a", generalPractitioner=[{"reference": "Practitioner/dr1"}])))
    gp = [encounter(f"e{i}", "Patient/b", serviceProvider={"reference": f"Organization/{org}"})
          for i, org in enumerate(["P2", "P2", "P1"])]
    hospital = encounter("e9", "Patient/b", "IMP", serviceProvider={"reference": "Organization/H1"})
    write_json(tmp_path / "b.json", bundle(patient("b"), *gp, hospital))
    write_json(tmp_path / "c.json", bundle(patient("c", managingOrganization={"reference": "Organization/P1"})))
    records, report = read_fhir(tmp_path)
    assert {r.id: r.patient.practice for r in records} == {"a": "P1", "b": "P2", "c": "P1"}
    assert report.problem_count == 0
    (only,), _ = read_fhir(tmp_path / "b.json", mapping={"patient": {"practice_from": ["generalPractitioner"]}})
    assert only.patient.practice is None


def test_ndjson_conditional_references_by_identifier(tmp_path):
    write_ndjson(tmp_path / "Organization.ndjson", [
        {"resourceType": "Organization", "id": "o1", "identifier": [{"system": "https://example.org/ods", "value": "Y123"}]}])
    write_ndjson(tmp_path / "Patient.ndjson", [patient("p1")], gz=True)
    write_ndjson(tmp_path / "Encounter.ndjson", [encounter(
        "e1", "Patient/p1", serviceProvider={"reference": "Organization?identifier=https://example.org/ods|Y123"})], gz=True)
    (rec,), report = read_fhir(tmp_path)
    assert rec.patient.practice == "o1" and report.formats["ndjson"] == 3
    balanced(report)


def test_a_single_file_can_be_read(tmp_path):
    path = write_json(tmp_path / "one.json.gz", bundle(patient("p1"), condition("c1", "Patient/p1")), gz=True)
    (rec,), report = read_fhir(path)
    assert rec.conditions[0].code == "44054006" and report.formats["bundle"] == 1


def test_other_files_in_a_folder_are_listed_as_ignored(tmp_path):
    good_bundle(tmp_path)
    (tmp_path / "README.txt").write_text("not data")
    _, report = read_fhir(tmp_path)
    assert report.files_ignored == [str(tmp_path / "README.txt")]


def test_a_user_mapping_file_extends_the_default(tmp_path):
    user = tmp_path / "local.toml"
    user.write_text("""
[[encounter]]
class = ["AMB"]
type = { snomed = ["185349003"] }
kind = "outpatient"

[[encounter]]
type = { "http://example.org/local-services" = ["SW01"] }
kind = "social_work"

[lives_alone]
yes = { read = ["13F6."] }

[[observation]]
kind = "adl"
codes = { local = ["katz"] }
impaired_below = 5

[[life_event]]
event = "bereavement"
codes = { snomed = ["LOCAL-BEREAVED"] }
""")
    data = tmp_path / "data"
    data.mkdir()
    sw = encounter("sw1", "Patient/p1", "AMB", None, type=[cc("SW01", "http://example.org/local-services")])
    write_json(data / "b.json", bundle(
        patient("p1"), encounter("e1", "Patient/p1", "AMB", "185349003"), encounter("e2", "Patient/p1", "AMB", "185347001"), sw,
        observation("o1", "Patient/p1", "13F6.", "http://read.info/readv2", date="2020-01-01"),
        observation("o2", "Patient/p1", "katz", "local", value=3),
        condition("c1", "Patient/p1", code="LOCAL-BEREAVED", onset="2021-01-01")))
    (rec,), report = read_fhir(data, mapping=user)
    assert {e.source_id: e.kind for e in rec.encounters} == {"e1": "outpatient", "e2": "gp", "sw1": "social_work"}
    assert rec.patient.lives_alone is True
    assert [(o.kind, o.impaired) for o in rec.observations if o.source_id == "o2"] == [("adl", True)]
    assert [e.event for e in rec.life_events] == ["bereavement"]
    # the default's codes still work beside the user's
    assert load_mapping(user).social[("snomed", "105529008")] == ("lives_alone", True)


def test_a_mapping_that_does_not_extend_the_default(tmp_path):
    user = tmp_path / "only.toml"
    user.write_text('extends_default = false\n[[encounter]]\nclass = ["AMB"]\nkind = "gp"\n')
    m = load_mapping(user)
    assert len(m.encounter_rules) == 1 and not m.observations and m.sources == [str(user)]


@pytest.mark.parametrize("text, fragment", [
    ("[nonsense]\nx = 1\n", "unknown section 'nonsense'"),
    ('[[encounter]]\nclass = ["AMB"]\nkind = "clinic"\n', "[[encounter]] #1 kind: 'clinic'"),
    ('[[encounter]]\nkind = "gp"\n', "needs a class, a type or both"),
    ('[[observation]]\nkind = "adl"\ncodes = { local = ["x"] }\n', "says how an impairment is read"),
    ('[patient]\npractice_from = ["somewhere"]\n', "practice_from: 'somewhere'"),
    ('[lives_alone]\nmaybe = { snomed = ["1"] }\n', "[lives_alone]: unknown key 'maybe'"),
    ("[codes\n", "not valid TOML"),
    ('[admission_method]\npriority = { EM = "urgent" }\n', "priority.EM: 'urgent'"),
])
def test_a_bad_mapping_file_names_the_key(tmp_path, text, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(MappingError) as err:
        load_mapping(path)
    assert str(path) in str(err.value) and fragment in str(err.value)


def test_the_default_mapping_ships_with_the_package():
    import tomllib

    from engine.readers.mapping import default_mapping_text
    assert tomllib.loads(default_mapping_text())["format"] == 1
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "engine.readers" in pyproject["tool"]["setuptools"]["packages"]
    assert "*.toml" in pyproject["tool"]["setuptools"]["package-data"]["engine.readers"]


# -- the real data -----------------------------------------------------------------------

def _need(folder: Path) -> None:
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent (the shared Synthea test data)")


@pytest.fixture(scope="module")
def pyramid():
    return engine.load(ROOT / "library" / "ltc_pyramid.pw")


@pytest.mark.parametrize("folder", [BUNDLES, NDJSON], ids=["bundles", "ndjson"])
def test_the_synthea_data_loads_and_every_resource_is_accounted_for(folder, pyramid):
    _need(folder)
    start = time.perf_counter()
    records, report = read_fhir(folder)
    assert report.files_failed == [] and report.problem_count == 0, report.summary()
    balanced(report)
    for rtype, n in report.read.items():
        skipped = sum(v for (t, _), v in report.skipped.items() if t == rtype)
        assert report.mapped[rtype] + skipped == n, rtype
    patients = report.read["Patient"]
    assert len(records) == report.patients_loaded == patients > 0
    if folder == BUNDLES:
        assert patients == 179 and report.formats["bundle"] == 181
        # every patient bundle: each loads on its own too, and matches the whole read
        whole = {r.id: r for r in records}
        for path in sorted(folder.glob("*_*.json.gz"))[:20]:
            (one,), single = read_fhir(path)
            balanced(single)
            assert len(one.conditions) == len(whole[one.id].conditions)
    # items keep their resource ids
    assert all(i.source_id for rec in records for i in (*rec.conditions, *rec.encounters, *rec.observations))
    results = list(pyramid.evaluate_population(records, as_of="2021-04-01"))
    assert len(results) == len(records)
    levels = Counter(r.outcomes["level"] for r in results)
    assert sum(levels.values()) == len(records)
    assert time.perf_counter() - start < 30


def test_the_mapping_example_in_the_docs_loads_and_works(tmp_path):
    import re
    text = (ROOT / "docs" / "data.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```toml\n(# local_codes.toml\n.*?)```", text, re.S)
    path = tmp_path / "local_codes.toml"
    path.write_text(example)
    m = load_mapping(path)
    assert m.social[("social", "LIVES-ALONE")] == ("lives_alone", True)
    assert m.method_types[("snomed", "185347001")] == "emergency"
    sw = encounter("sw1", "Patient/p1", "AMB", None,
                   serviceType=cc("SW-ASSESS", "https://example.nhs.uk/CodeSystem/services"))
    rec, _ = read_one(tmp_path, sw, encounter("ad1", "Patient/p1", "IMP", "185347001"), mapping=path)
    assert {e.source_id: (e.kind, e.method) for e in rec.encounters} == {
        "sw1": ("social_work", None), "ad1": ("admission", "emergency")}
