"""engine.fhir_write: generated records written as FHIR R4 read back to the same records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from engine.fhir_write import as_read_back, record_to_resources, write_bundles, write_ndjson
from engine.generate import generate
from engine.readers import read_fhir

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2024-04-01"
SEED = 5
N = 300


@pytest.fixture(scope="module")
def records():
    return list(generate(N, seed=SEED, as_of=AS_OF))


@pytest.fixture(scope="module", params=["bundles", "ndjson"])
def written(request, records, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    counts = (write_bundles if request.param == "bundles" else write_ndjson)(records, folder)
    return request.param, folder, counts


def _dump(rec) -> dict:
    return rec.model_dump(mode="json")


def test_read_back_equals_the_records(records, written):
    fmt, folder, counts = written
    back, report = read_fhir(folder)
    # the generator never ends a medicine before it starts (a record ends at death)
    backwards = {m.source_id for rec in records for m in rec.medications
                 if m.start and m.end and m.end.latest < m.start.earliest}
    assert backwards == set()
    assert not report.problems, [str(p) for p in report.problems]
    assert report.patients_loaded == N
    for rtype, n in report.read.items():
        skipped = sum(c for (t, _), c in report.skipped.items() if t == rtype)
        assert report.mapped[rtype] + skipped == n, rtype
    # every skip is the practice's Organization repeated in each patient's Bundle
    assert set(report.skipped) <= {("Organization", "another copy of a resource already read")}
    assert dict(report.read) == counts
    by_id = {rec.id: rec for rec in back}
    assert [rec.id for rec in back] == [rec.id for rec in records]
    for rec in records:
        # what cannot round trip (engine/fhir_write.py): empty encounter/assessment codes come back
        # as the local codes written, life events bring an Observation, pathway events are not written
        assert _dump(by_id[rec.id]) == _dump(as_read_back(rec)), rec.id
        got, want = by_id[rec.id], rec
        assert _dump(got.patient) == _dump(want.patient)
        for field in ("conditions", "procedures", "life_events"):
            assert [_dump(x) for x in getattr(got, field)] == [_dump(x) for x in getattr(want, field)]
        assert [_dump(e) | {"code": ""} for e in got.encounters] == [_dump(e) | {"code": ""} for e in want.encounters]


def test_what_differs_is_only_what_the_module_says(records):
    """as_read_back changes nothing but the fields engine/fhir_write.py lists."""
    seen = set()
    for rec in records:
        after = as_read_back(rec)
        assert after.patient == rec.patient
        assert (after.conditions, after.procedures, after.life_events) == (rec.conditions, rec.procedures,
                                                                           rec.life_events)
        assert after.pathway_events == ()
        for a, b in zip(after.medications, rec.medications, strict=True):
            if a != b:
                assert a == b.model_copy(update={"end": None}) and b.end.latest < b.start.earliest
                seen.add("medication end")
        for a, b in zip(after.encounters, rec.encounters, strict=True):
            if a != b:
                assert b.code == "" and b.kind in ("gp", "outpatient", "social_work")
                assert a == b.model_copy(update={"code": a.code})
                seen.add("encounter code")
        own = after.observations[:len(rec.observations)]
        for a, b in zip(own, rec.observations, strict=True):
            if a != b:
                assert b.code == "" and b.kind in ("adl", "iadl", "cognition", "fall") and a.system == "local"
                assert a == b.model_copy(update={"code": a.code, "system": "local"})
                seen.add("observation code")
        extra = after.observations[len(rec.observations):]
        assert [(o.source_id, o.date) for o in extra] == [(e.source_id, e.date) for e in rec.life_events]
    assert seen >= {"encounter code", "observation code"}


def test_resources_use_the_mapping_codes(records):
    rec = next(r for r in records if r.patient.lives_alone is not None and r.life_events
               and any(m.monthly_cost is not None for m in r.medications))
    resources = record_to_resources(rec)
    patient = resources[0]
    assert patient["resourceType"] == "Patient" and patient["id"] == rec.id
    urls = {e["url"] for e in patient["extension"]}
    assert "urn:ltc-pathways:fhir:lives-alone" in urls
    ids = [(res["resourceType"], res["id"]) for res in resources]
    assert len(ids) == len(set(ids))
    assert any(res["resourceType"] == "MedicationRequest" and res.get("extension") for res in resources)


def test_a_hand_made_record_round_trips(tmp_path):
    """What the generator does not make: no source ids, an encounter's own code, coded
    assessments read from their value, partial dates, an admission of unknown method."""
    from pathways import records as r

    d = r.PartialDate.parse
    rec = r.PatientRecord(
        patient=r.Patient(id="p1", birth_date=d("1940"), sex="female", lives_alone=False, has_carer=True),
        conditions=(r.Condition(code="44054006", onset=d("2010-03")),
                    r.Condition(code="E11", system="icd10", status="remission", source_id="c9")),
        medications=(r.Medication(code="123", status="on_hold", end=d("2023")),),
        encounters=(r.Encounter(kind="admission", start=d("2023-01-02")),
                    r.Encounter(kind="admission", start=d("2023-02"), end=d("2023-03"), method="other"),
                    r.Encounter(kind="gp", start=d("2023-05-06"), code="185349003")),
        observations=(r.Observation(kind="cognition", impaired=False, code="72106-8", system="loinc",
                                    date=d("2022-07-01"), value=27.0),
                      r.Observation(code="271649006", date=d("2022"), value=140.5, unit="mm[Hg]"),
                      r.Observation(kind="adl", impaired=True, date=d("2022-09-09"), value=10.0)),
        procedures=(r.Procedure(code="80146002", date=d("2019-11")),),
    )
    write_bundles([rec], tmp_path)
    back, report = read_fhir(tmp_path)
    assert not report.problems, [str(p) for p in report.problems]
    want = as_read_back(rec)
    # items without a source id get ids made from the patient's: compare without them
    strip = lambda x: {k: [{**i, "source_id": ""} for i in v] if isinstance(v, list) else v  # noqa: E731
                       for k, v in _dump(x).items()}
    assert strip(back[0]) == strip(want)
    assert back[0].conditions[1].source_id == "c9"
    ids = [i.source_id for i in (*back[0].conditions, *back[0].encounters)]
    assert all(ids) and len(set(ids)) == len(ids)


def test_bundle_references_are_uuids(records, tmp_path):
    write_bundles(records[:3], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{rec.id}.json" for rec in records[:3]]
    bundle = orjson.loads((tmp_path / f"{records[0].id}.json").read_bytes())
    assert bundle["resourceType"] == "Bundle"
    urls = {e["fullUrl"] for e in bundle["entry"]}
    assert all(u.startswith("urn:uuid:") for u in urls)
    for e in bundle["entry"]:
        if "subject" in e["resource"]:
            assert e["resource"]["subject"]["reference"] in urls
    patient = bundle["entry"][0]["resource"]
    assert patient["generalPractitioner"][0]["reference"] in urls


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], capture_output=True, text=True, cwd=ROOT)


def _levels(path: Path) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if "outcomes" in row:
            out[row["patient_id"]] = row["outcomes"]["level"]
    return out


def test_pyramid_levels_are_the_same_from_fhir(tmp_path):
    data = {}
    for fmt in ("jsonl", "bundles", "ndjson"):
        out = tmp_path / (f"records.{fmt}" if fmt == "jsonl" else fmt)
        done = _cli("generate", "-n", "200", "--seed", str(SEED), "--as-of", AS_OF, "--format", fmt,
                    "--out", str(out))
        assert done.returncode == 0, done.stderr
        data[fmt] = out
    assert len(list(data["bundles"].glob("*.json"))) == 200
    levels = {}
    for fmt, path in data.items():
        result = tmp_path / f"levels-{fmt}.jsonl"
        done = _cli("run", "library/ltc_pyramid.pw", "--data", str(path), "--as-of", AS_OF,
                    "--output", str(result))
        assert done.returncode == 0, done.stderr
        levels[fmt] = _levels(result)
    assert len(levels["jsonl"]) == 200 and len(set(levels["jsonl"].values())) >= 3
    assert levels["bundles"] == levels["jsonl"]
    assert levels["ndjson"] == levels["jsonl"]



def test_written_ids_are_valid_fhir_ids(records, written):
    import re

    fmt, folder, counts = written
    ids = []
    for path in sorted(Path(folder).iterdir()):
        text = path.read_text()
        if fmt == "ndjson":
            ids += [orjson.loads(line)["id"] for line in text.splitlines() if line.strip()]
        else:
            ids += [e["resource"]["id"] for e in orjson.loads(text)["entry"]]
    assert ids and all(re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", i) for i in ids), [i for i in ids][:3]
