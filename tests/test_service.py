"""The service: CDS Hooks discovery and patient-view, REST, authentication,
limits, atomic reload, logs without patient data, and schemathesis."""

from __future__ import annotations

import dataclasses
import io
import shutil
import time
import warnings
from pathlib import Path

import orjson
import pytest

warnings.filterwarnings("ignore", message=".*httpx.*", category=DeprecationWarning)

from fastapi.testclient import TestClient  # noqa: E402

import engine  # noqa: E402
from engine.audit import verify  # noqa: E402
from engine.fhir_write import record_to_resources  # noqa: E402
from engine.generate import generate  # noqa: E402
from engine.limits import Limits  # noqa: E402
from engine.service import ConfigError, ServiceConfig, create_app  # noqa: E402
from engine.service.logs import setup_logging  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "gp-system-secret-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AS_OF = "2024-04-01"


#: A pathway with a care plan, so the tests do not depend on where the library keeps its own.
PATHWAY = """protocol cm_test:
  version "1.0.0"
  title "Case management (service tests)"
  status active

uses "ltc_pyramid.pw" as pyramid

define emergency "Unplanned admissions in the last 12 months": count emergency_admissions in the last 12 months

pathway case_management "Case management by a community matron":
  entry when pyramid.level is 3
  step identified "Identified":
    due "Approach the patient and seek agreement to case management" within 14 days
    on approached go to exit approached
  exit approached "Approached"

care plan cm_plan "Personalised care plan" for case_management:
  objectives "Health objectives":
    "Avoid unplanned hospital admissions ({emergency} in the last 12 months)"
"""


def make_library(folder: Path) -> Path:
    """The pyramid and what it imports, copied (other protocols of the library change independently)."""
    folder.mkdir(parents=True)
    for name in ("ltc_pyramid.pw", "castlefields.pw", "evercare.pw", "conditions.pw"):
        shutil.copy(ROOT / "library" / name, folder / name)
    shutil.copytree(ROOT / "library" / "codes", folder / "codes")
    (folder / "cm_test.pw").write_text(PATHWAY, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """A private copy of the library, so a reload test can break it."""
    return make_library(tmp_path_factory.mktemp("lib") / "library")


def _patient(level: int):
    program = engine.load(ROOT / "library" / "ltc_pyramid.pw")
    population = {t.id: {} for _, _, t in program.population_terms()}
    for record in generate(400, seed=7, as_of=AS_OF, min_age=65):
        if len(record_to_resources(record)) >= 15 and \
                program.evaluate(record, AS_OF, population=population).values()["level"] == level:
            return record
    raise AssertionError(f"no generated patient on level {level}")


@pytest.fixture(scope="module")
def patient3():
    return _patient(3)


def _bundle(record) -> dict:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in record_to_resources(record)]}


def _hook(record, as_of: str | None = AS_OF) -> dict:
    resources = record_to_resources(record)
    patient = next(r for r in resources if r["resourceType"] == "Patient")

    def search(kind):
        return {"resourceType": "Bundle", "type": "searchset",
                "entry": [{"resource": r} for r in resources if r["resourceType"] == kind]}
    hook = {"hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"userId": "Practitioner/example", "patientId": patient["id"]},
            "prefetch": {"patient": patient, "conditions": search("Condition"), "encounters": search("Encounter"),
                         "medications": search("MedicationRequest"), "observations": search("Observation")}}
    if as_of:
        hook["extension"] = {"ltc-pathways.as_of": as_of}
    return hook


def _client(library, **changes) -> TestClient:
    config = dataclasses.replace(ServiceConfig(tokens={"gp": TOKEN, "ops": "ops-secret-0123456789abc"}), **changes)
    return TestClient(create_app(library, config))


@pytest.fixture(scope="module")
def client(library) -> TestClient:
    return _client(library)


# --- discovery and patient-view ------------------------------------------------------------------

def test_discovery_lists_the_patient_view_service_with_prefetch_templates(client):
    r = client.get("/cds-services")  # no token: discovery is open
    assert r.status_code == 200
    (service,) = r.json()["services"]
    assert service["hook"] == "patient-view" and service["id"] == "ltc-pyramid" and service["description"]
    assert set(service["prefetch"]) == {"patient", "conditions", "encounters", "medications", "observations"}
    assert service["prefetch"]["conditions"] == "Condition?patient={{context.patientId}}"


def test_patient_view_card_gives_the_level_reasons_unknowns_pathway_and_a_working_link(client, patient3):
    r = client.post("/cds-services/ltc-pyramid", json=_hook(patient3), headers=AUTH)
    assert r.status_code == 200, r.text
    cards = r.json()["cards"]
    level = cards[0]
    assert "level 3" in level["summary"] and len(level["summary"]) <= 140
    assert level["indicator"] == "warning"
    assert level["source"]["label"].startswith("ltc-pathways: ltc_pyramid")
    assert "Why:" in level["detail"] and "as of 2024-04-01" in level["detail"]
    suggested = [c for c in cards if c["summary"].startswith("Suggested pathway")]
    (pathway,) = suggested
    assert pathway["summary"] == "Suggested pathway: Case management by a community matron"
    assert "First step: Identified: Approach the patient" in pathway["detail"]
    assert "in the last 12 months)" in pathway["detail"] and "{emergency}" not in pathway["detail"]
    assert pathway["source"]["label"] == "ltc-pathways: cm_test 1.0.0"
    link = level["links"][0]
    assert link["type"] == "absolute" and "/explanations/" in link["url"]
    text = client.get(link["url"].replace("http://testserver", ""), headers=AUTH)
    assert text.status_code == 200 and text.text.startswith(f"Explanation for patient {patient3.patient.id}")
    assert client.get(link["url"].replace("http://testserver", "")).status_code == 401


def test_patient_view_is_deterministic_for_the_same_as_of(client, patient3):
    first = client.post("/cds-services/ltc-pyramid", json=_hook(patient3), headers=AUTH)
    second = client.post("/cds-services/ltc-pyramid", json=_hook(patient3), headers=AUTH)
    assert first.content == second.content


def test_patient_view_refuses_missing_prefetch_and_wrong_hooks(client, library, patient3):
    hook = _hook(patient3)
    del hook["prefetch"]["patient"]
    r = client.post("/cds-services/ltc-pyramid", json=hook, headers=AUTH)
    assert r.status_code == 412 and "prefetch.patient" in r.json()["error"]
    r = client.post("/cds-services/ltc-pyramid", json={**_hook(patient3), "hook": "order-select"}, headers=AUTH)
    assert r.status_code == 422 and "patient-view" in r.json()["error"]
    r = client.post("/cds-services/ltc-pyramid", content=b"{not json", headers=AUTH)
    assert r.status_code == 400 and "line 1" in r.json()["error"]
    strict = _client(library, require_as_of=True)
    r = strict.post("/cds-services/ltc-pyramid", json=_hook(patient3, as_of=None), headers=AUTH)
    assert r.status_code == 422 and "ltc-pathways.as_of" in r.json()["error"]


# --- REST ----------------------------------------------------------------------------------------

def test_evaluate_returns_the_engines_outcomes_envelope_and_explanation(client, library, patient3):
    r = client.post(f"/evaluate?protocol=ltc_pyramid&as_of={AS_OF}", content=orjson.dumps(_bundle(patient3)),
                    headers={**AUTH, "Content-Type": "application/fhir+json"})
    assert r.status_code == 200, r.text
    body = r.json()
    (result,) = body["results"]
    program = engine.load(library / "ltc_pyramid.pw")
    population = {t.id: {} for _, _, t in program.population_terms()}
    from engine.fhir_write import as_read_back
    direct = program.evaluate(as_read_back(patient3), AS_OF, population=population)
    assert result["outcomes"] == direct.values()
    assert result["envelope"]["sha256"] == program.protocol.sha256 == body["protocol"]["sha256"]
    assert result["explanation"]["schema"] == "ltc-pathways/explanation/1"
    assert body["load"]["patients"]["loaded"] == 1


def test_evaluate_needs_an_explicit_as_of_and_a_known_protocol(client, patient3):
    data = orjson.dumps(_bundle(patient3))
    r = client.post("/evaluate?protocol=ltc_pyramid", content=data, headers=AUTH)
    assert r.status_code == 422 and "as_of" in r.json()["error"]
    r = client.post("/evaluate?protocol=ltc_pyramid&as_of=2024-02-30", content=data, headers=AUTH)
    assert r.status_code == 422 and "not a date in the calendar" in r.json()["error"]
    r = client.post(f"/evaluate?protocol=nonesuch&as_of={AS_OF}", content=data, headers=AUTH)
    assert r.status_code == 404 and "ltc_pyramid" in r.json()["error"]
    r = client.post(f"/evaluate?protocol=ltc_pyramid&as_of={AS_OF}&param=castlefields.lookback=purple",
                    content=data, headers=AUTH)
    assert r.status_code == 422 and "lookback" in r.json()["error"]


def test_evaluate_reports_malformed_fhir_with_its_place(client):
    r = client.post(f"/evaluate?protocol=ltc_pyramid&as_of={AS_OF}", content=b'{"resourceType": "Bundle",\n "entry": [',
                    headers=AUTH)
    assert r.status_code == 422
    (problem,) = r.json()["details"]
    assert problem["line"] == 2 and "malformed JSON" in problem["message"]


def test_protocols_lists_name_version_sha256_and_parameters(client):
    protocols = {p["name"]: p for p in client.get("/protocols", headers=AUTH).json()["protocols"]}
    pyramid = protocols["ltc_pyramid"]
    assert len(pyramid["sha256"]) == 64 and pyramid["version"]
    assert any(p["name"] == "castlefields.minimum_criteria" and p["default"] == "3" for p in pyramid["parameters"])


# --- authentication and limits -------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-value-123456"},
                                     {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer "}])
def test_every_service_call_needs_a_valid_token_which_is_never_echoed(client, patient3, headers):
    for method, url, body in [("get", "/protocols", None), ("post", f"/evaluate?protocol=ltc_pyramid&as_of={AS_OF}",
                                                             _bundle(patient3)),
                              ("post", "/cds-services/ltc-pyramid", _hook(patient3)), ("post", "/admin/reload", None)]:
        r = client.request(method, url, json=body, headers=headers)
        assert r.status_code == 401, (url, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert "wrong-token" not in r.text and TOKEN not in r.text


def test_the_service_does_not_start_without_tokens(library):
    with pytest.raises(ConfigError, match="no tokens"):
        create_app(library, ServiceConfig())


def test_oversize_requests_get_413_whether_declared_or_streamed(library):
    small = _client(library, max_request_bytes=1000)
    r = small.post(f"/evaluate?protocol=ltc_pyramid&as_of={AS_OF}", content=b"x" * 5000, headers=AUTH)
    assert r.status_code == 413 and "1,000 bytes" in r.json()["error"]

    def chunks():
        for _ in range(10):
            yield b"y" * 500
    r = small.post(f"/evaluate?protocol=ltc_pyramid&as_of={AS_OF}", content=chunks(), headers=AUTH)
    assert r.status_code == 413


def test_time_and_item_limits_give_clear_errors(library, patient3, monkeypatch):
    data = orjson.dumps(_bundle(patient3))
    slow = _client(library, limits=Limits(max_seconds_per_patient=0.05))
    original = engine.Program.evaluate

    def sluggish(self, *args, **kwargs):  # a protocol far slower than any in the library
        time.sleep(0.5)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(engine.Program, "evaluate", sluggish)
    r = slow.post(f"/evaluate?protocol=ltc_pyramid&as_of={AS_OF}", content=data, headers=AUTH)
    assert r.status_code == 503 and "longer than the limit of 0.05 seconds" in r.json()["error"]
    assert patient3.patient.id in r.json()["error"]
    monkeypatch.undo()
    few = _client(library, limits=Limits(max_items_per_record=3))
    r = few.post(f"/evaluate?protocol=ltc_pyramid&as_of={AS_OF}", content=data, headers=AUTH)
    assert r.status_code == 422
    assert any("the limit is 3 per record" in p["message"] and p["resource_id"] == patient3.patient.id
               for p in r.json()["details"])


# --- reload --------------------------------------------------------------------------------------

def test_a_broken_reload_is_refused_and_the_previous_version_keeps_serving(tmp_path, patient3):
    lib = make_library(tmp_path / "library")
    client = _client(lib, admins=("ops",))
    before = {p["name"]: p["sha256"] for p in client.get("/protocols", headers=AUTH).json()["protocols"]}
    assert client.post("/admin/reload", headers=AUTH).status_code == 403  # gp is not an admin
    ops = {"Authorization": "Bearer ops-secret-0123456789abc"}
    pyramid = lib / "ltc_pyramid.pw"
    good = pyramid.read_text(encoding="utf-8")
    pyramid.write_text(good.replace("outcomes level", "outcomes level, no_such_outcome"), encoding="utf-8")
    r = client.post("/admin/reload", headers=ops)
    assert r.status_code == 409 and r.json()["reloaded"] is False
    assert any("no_such_outcome" in p for p in r.json()["problems"])
    after = client.get("/protocols", headers=AUTH).json()
    assert after["generation"] == 1 and {p["name"]: p["sha256"] for p in after["protocols"]} == before
    r = client.post(f"/evaluate?protocol=ltc_pyramid&as_of={AS_OF}&explain=false",
                    content=orjson.dumps(_bundle(patient3)), headers=AUTH)
    assert r.status_code == 200 and r.json()["protocol"]["sha256"] == before["ltc_pyramid"]
    pyramid.write_text(good.replace('\n## The', '\n# changed\n## The', 1), encoding="utf-8")
    r = client.post("/admin/reload", headers=ops)
    assert r.status_code == 200 and r.json()["generation"] == 2


# --- audit and logs ------------------------------------------------------------------------------

def test_service_evaluations_are_audited_and_logs_hold_no_patient_data(library, tmp_path, patient3):
    stream = io.StringIO()
    setup_logging(stream)
    log = tmp_path / "audit.jsonl"
    client = _client(library, audit=str(log))
    client.post(f"/evaluate?protocol=ltc_pyramid&as_of={AS_OF}", content=orjson.dumps(_bundle(patient3)),
                headers=AUTH)
    client.post("/cds-services/ltc-pyramid", json=_hook(patient3), headers=AUTH)
    client.get("/protocols", headers={"Authorization": "Bearer not-the-token-000000"})
    checked = verify(log)
    assert checked.ok and checked.entries == 2
    entries = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    assert [e["who"] for e in entries] == ["gp", "gp"]
    assert [e["via"] for e in entries] == ["service:evaluate", "service:patient-view"]
    assert patient3.patient.id not in log.read_text()
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    requests = [entry for entry in lines if entry["event"] == "request"]
    assert {(e["route"], e["status"]) for e in requests} >= {("/evaluate", 200), ("/cds-services/ltc-pyramid", 200),
                                                             ("/protocols", 401)}
    text = stream.getvalue()
    assert patient3.patient.id not in text and TOKEN not in text and "not-the-token" not in text
    assert AS_OF not in text  # not even the query string


# --- schemathesis --------------------------------------------------------------------------------

def test_schemathesis_finds_no_server_error(client):
    import schemathesis
    from hypothesis import HealthCheck, Phase, settings

    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    failures, called = [], set()
    for operation in schema.get_all_operations():
        op = operation.ok()
        strategy = op.as_strategy()

        @settings(max_examples=25, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @__import__("hypothesis").given(case=strategy)
        def run(case):
            for headers in (AUTH, None):
                response = case.call(headers=headers)
                called.add(op.label)
                if response.status_code >= 500:
                    failures.append((op.label, response.status_code, response.text[:200]))
        run()
    assert failures == []
    assert {"POST /evaluate", "POST /cds-services/ltc-pyramid", "GET /protocols"} <= called


def test_workers_follow_a_reload_made_by_another_worker(tmp_path):
    lib = make_library(tmp_path / "library")
    signal = tmp_path / "reload-signal"
    config = ServiceConfig(tokens={"gp": TOKEN})
    first, second = TestClient(create_app(lib, config, signal)), TestClient(create_app(lib, config, signal))
    pyramid = lib / "ltc_pyramid.pw"
    pyramid.write_text(pyramid.read_text(encoding="utf-8") + "\n# a comment changes the sha256\n", encoding="utf-8")
    assert first.post("/admin/reload", headers=AUTH).json()["generation"] == 2
    deadline = time.time() + 20
    while time.time() < deadline:
        time.sleep(0.6)  # workers look at the signal at most twice a second
        if second.get("/protocols", headers=AUTH).json()["generation"] == 2:
            break
    after = {p["name"]: p["sha256"] for p in second.get("/protocols", headers=AUTH).json()["protocols"]}
    assert after == {p["name"]: p["sha256"] for p in first.get("/protocols", headers=AUTH).json()["protocols"]}
