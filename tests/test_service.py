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
  agencies "Who does what":
    "Visit at home and agree the plan" by "community matron"
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


def test_the_pathway_card_suggests_the_draft_care_plan_as_a_fhir_careplan(client, patient3):
    """CDS Hooks: a suggestion whose `create` action holds the personalised plan, a draft
    proposal (the clinician agrees it with the patient), valid FHIR R4."""
    from fhir.resources.R4B.careplan import CarePlan

    cards = client.post("/cds-services/ltc-pyramid", json=_hook(patient3), headers=AUTH).json()["cards"]
    (pathway,) = [c for c in cards if c["summary"].startswith("Suggested pathway")]
    assert pathway["selectionBehavior"] == "at-most-one"
    (suggestion,) = pathway["suggestions"]
    assert suggestion["label"] == "Draft the care plan: Personalised care plan" and suggestion["isRecommended"]
    assert len(suggestion["uuid"]) == 36
    (action,) = suggestion["actions"]
    plan = action["resource"]
    assert action["type"] == "create" and "agree with the patient" in action["description"]
    assert (plan["resourceType"], plan["status"], plan["intent"]) == ("CarePlan", "draft", "proposal")
    assert plan["subject"] == {"reference": f"Patient/{patient3.patient.id}"}
    assert plan["contained"][0]["description"]["text"].startswith("Avoid unplanned hospital admissions (")
    (activity,) = plan["activity"]
    assert activity["detail"]["performer"] == [{"display": "community matron"}]
    CarePlan.model_validate(plan) if hasattr(CarePlan, "model_validate") else CarePlan.parse_obj(plan)


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


def test_companion_test_files_are_checked_but_not_served(tmp_path):
    lib = make_library(tmp_path / "library")
    shutil.copy(ROOT / "library" / "ltc_pyramid_tests.pw", lib / "ltc_pyramid_tests.pw")
    names = {p["name"] for p in _client(lib).get("/protocols", headers=AUTH).json()["protocols"]}
    assert "ltc_pyramid" in names and "ltc_pyramid_tests" not in names


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


def test_the_request_time_limit_cuts_off_threaded_requests_and_checks_inline_ones(library, patient3, monkeypatch):
    data = orjson.dumps(_bundle(patient3))
    original = engine.Program.evaluate

    def sluggish(self, *args, **kwargs):
        time.sleep(0.6)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(engine.Program, "evaluate", sluggish)
    url = f"/evaluate?protocol=ltc_pyramid&as_of={AS_OF}&explain=false"
    for inline in (0, 10_000_000):  # 0: every body goes to a thread, abandoned at the limit
        client = _client(library, request_seconds=0.2, inline_bytes=inline)
        start = time.perf_counter()
        r = client.post(url, content=data, headers=AUTH)
        took = time.perf_counter() - start
        assert r.status_code == 503 and "longer than the limit of 0.2 seconds" in r.json()["error"]
        assert (took < 0.55) if inline == 0 else (took >= 0.6)


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


# --- JWT (CDS Hooks security) --------------------------------------------------------------------

SERVICE_URL = "https://pathways.example.org/cds-services/ltc-pyramid"
EHR = "https://ehr.example.org"


@pytest.fixture(scope="module")
def ehr_keys(tmp_path_factory):
    """The EHR's EC P-384 key (ES384, as CDS Hooks asks), its JWKS file and a service.toml trusting it."""
    import jwt as pyjwt
    from cryptography.hazmat.primitives.asymmetric import ec

    folder = tmp_path_factory.mktemp("jwt")
    key = ec.generate_private_key(ec.SECP384R1())
    public = orjson.loads(pyjwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    (folder / "ehr-jwks.json").write_bytes(orjson.dumps({"keys": [{**public, "kid": "ehr-1", "alg": "ES384",
                                                                    "use": "sig"}]}))
    config = folder / "service.toml"
    config.write_text(f'[tokens]\ngp = "{TOKEN}"\n\n[jwt]\naudience = ["{SERVICE_URL}"]\n\n'
                      f'[jwt.issuers.ehr]\niss = "{EHR}"\njwks = "ehr-jwks.json"\n', encoding="utf-8")
    return key, config


def _jwt(key, kid="ehr-1", **claims) -> str:
    import uuid

    import jwt as pyjwt

    now = int(time.time())
    body = {"iss": EHR, "sub": "ehr-client", "aud": SERVICE_URL, "iat": now, "exp": now + 300,
            "jti": str(uuid.uuid4()), **claims}
    return pyjwt.encode(body, key, algorithm="ES384", headers={"kid": kid})


@pytest.fixture(scope="module")
def jwt_client(library, ehr_keys):
    from engine.service import load_config
    return TestClient(create_app(library, load_config(ehr_keys[1], environ={})))


def test_a_jwt_signed_by_a_configured_ehr_is_accepted_and_named_by_its_issuer(jwt_client, ehr_keys, patient3):
    stream = io.StringIO()
    setup_logging(stream)
    r = jwt_client.post("/cds-services/ltc-pyramid", json=_hook(patient3),
                        headers={"Authorization": f"Bearer {_jwt(ehr_keys[0])}"})
    assert r.status_code == 200, r.text
    assert r.json()["cards"][0]["summary"].startswith("Level of the long term conditions pyramid")
    assert '"who":"ehr"' in stream.getvalue()
    assert jwt_client.get("/protocols", headers=AUTH).status_code == 200  # plain tokens still work


def test_expired_wrong_audience_wrong_key_and_replayed_jwts_are_refused(jwt_client, ehr_keys):
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ehr_keys[0]
    old = int(time.time()) - 3600
    stranger = ec.generate_private_key(ec.SECP384R1())
    cases = [
        (_jwt(key, iat=old, exp=old + 300), "has expired"),
        (_jwt(key, aud="https://elsewhere.example.org/cds-services/x"), "audience (aud) is not this service"),
        (_jwt(stranger), "signature does not match issuer 'ehr'"),
        (_jwt(stranger, kid="other"), "not among issuer 'ehr'"),
        (_jwt(key, iss="https://unknown.example.org"), "issuer (iss) is not one this service"),
        (_jwt(key, jti=None), "lacks the 'jti' claim"),
        (_jwt(key, exp=int(time.time()) + 7200), "lives longer than"),
    ]
    for token, message in cases:
        r = jwt_client.get("/protocols", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and message in r.json()["error"], (message, r.text)
        assert 'error="invalid_token"' in r.headers["www-authenticate"] and token not in r.text
    once = _jwt(key)
    assert jwt_client.get("/protocols", headers={"Authorization": f"Bearer {once}"}).status_code == 200
    r = jwt_client.get("/protocols", headers={"Authorization": f"Bearer {once}"})
    assert r.status_code == 401 and "already used" in r.json()["error"]


def test_a_public_key_cannot_be_used_as_a_shared_secret(jwt_client, ehr_keys):
    import jwt as pyjwt

    now = int(time.time())
    forged = pyjwt.encode({"iss": EHR, "sub": "x", "aud": SERVICE_URL, "iat": now, "exp": now + 60, "jti": "f1"},
                          "any-secret-value-at-all-0123456789", algorithm="HS256", headers={"kid": "ehr-1"})
    r = jwt_client.get("/protocols", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and "only public-key signatures" in r.json()["error"]


def test_workers_share_the_record_of_used_jwt_ids(tmp_path):
    from engine.service.jwt_auth import SeenIds

    first, second = SeenIds(tmp_path / "ids.sqlite"), SeenIds(tmp_path / "ids.sqlite")
    assert first.first_use(EHR, "a", exp=2000.0, now=1000.0)
    assert not second.first_use(EHR, "a", exp=2000.0, now=1001.0)  # replayed to another worker
    assert second.first_use(EHR, "b", exp=2000.0, now=1001.0)


def test_jwt_configuration_mistakes_are_named(tmp_path):
    from engine.service import load_config

    config = tmp_path / "service.toml"
    config.write_text(f'[tokens]\ngp = "{TOKEN}"\n[jwt.issuers.ehr]\niss = "{EHR}"\njwks = "missing.json"\n'
                      f'[jwt]\naudience = ["{SERVICE_URL}"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[jwt.issuers.ehr\]: cannot read the JWKS file .*missing.json"):
        load_config(config, environ={})
    (tmp_path / "missing.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a usable JWKS"):
        load_config(config, environ={})
    config.write_text(f'[jwt.issuers.ehr]\niss = "{EHR}"\npem = "k.pem"\n', encoding="utf-8")
    (tmp_path / "k.pem").write_text("not a key", encoding="utf-8")
    with pytest.raises(ConfigError, match="k.pem is not a PEM public key"):
        load_config(config, environ={})


# --- reference populations -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def population():
    """Older people of a few practices: enough frequent visitors for the top 3% to mean something."""
    return list(generate(600, seed=11, as_of=AS_OF, min_age=60))


@pytest.fixture(scope="module")
def reference_file(library, population, tmp_path_factory):
    from engine.service.reference import build, dumps

    program = engine.load(library / "ltc_pyramid.pw")
    path = tmp_path_factory.mktemp("ref") / "pyramid-reference.json"
    path.write_bytes(dumps(build(program, population, AS_OF)))
    return path


def test_a_reference_population_decides_ranked_terms_as_the_population_run_does(library, population,
                                                                               reference_file):
    from engine.fhir_write import as_read_back

    program = engine.load(library / "ltc_pyramid.pw")
    ranked = program.distributions([as_read_back(r) for r in population], AS_OF)
    unranked = {t.id: {} for _, _, t in program.population_terms()}
    client = _client(library, reference=(str(reference_file),))
    plain = _client(library)
    changed = 0
    for record in population[:80]:
        data = orjson.dumps(_bundle(record))
        url = f"/evaluate?protocol=ltc_pyramid&as_of={AS_OF}&explain=false"
        body = client.post(url, content=data, headers=AUTH).json()
        (result,) = body["results"]
        back = as_read_back(record)
        assert result["outcomes"] == program.evaluate(back, AS_OF, population=ranked).values()
        assert body["reference"] == {"file": "pyramid-reference.json", "protocol": "ltc_pyramid",
                                     "as_of": AS_OF, "patients": 600}
        without = plain.post(url, content=data, headers=AUTH).json()
        assert without["reference"] is None
        assert without["results"][0]["outcomes"] == program.evaluate(back, AS_OF, population=unranked).values()
        changed += without["results"][0]["outcomes"] != result["outcomes"]
    assert changed > 0  # the reference decided something that was unknown without it
    # other parameters than the reference's rank nobody: back to unknown
    r = client.post(f"/evaluate?protocol=ltc_pyramid&as_of={AS_OF}&explain=false&param=castlefields.lookback=6 months",
                    content=orjson.dumps(_bundle(population[0])), headers=AUTH)
    assert r.status_code == 200 and r.json()["reference"] is None


def test_the_card_says_whether_ranked_terms_were_decided(library, reference_file, patient3):
    with_ref = _client(library, reference=(str(reference_file),))
    detail = with_ref.post("/cds-services/ltc-pyramid", json=_hook(patient3), headers=AUTH).json()["cards"][0]["detail"]
    assert "Ranked against a reference population of 600 patients as of 2024-04-01." in detail
    detail = _client(library).post("/cds-services/ltc-pyramid", json=_hook(patient3),
                                   headers=AUTH).json()["cards"][0]["detail"]
    assert "not decided: the service has no reference population" in detail
    listed = {p["name"]: p for p in with_ref.get("/protocols", headers=AUTH).json()["protocols"]}
    assert listed["ltc_pyramid"]["reference"]["patients"] == 600
    assert listed["cm_test"]["reference"]["protocol"] == "ltc_pyramid"  # it imports the same ranked term


def test_a_stale_or_broken_reference_stops_the_service_with_a_plain_message(library, reference_file, tmp_path):
    doc = orjson.loads(reference_file.read_bytes())
    for term in doc["terms"].values():
        term["digest"] = "sha256:" + "0" * 64  # as if castlefields had changed since
    stale = tmp_path / "stale.json"
    stale.write_bytes(orjson.dumps(doc))
    with pytest.raises(ConfigError, match="ranks no term of the protocols served"):
        create_app(library, ServiceConfig(tokens={"gp": TOKEN}, reference=(str(stale),)))
    broken = tmp_path / "broken.json"
    broken.write_bytes(orjson.dumps({**doc, "terms": {"x": {"digest": "d", "groups": {"P1": [3, 1]}}}}))
    with pytest.raises(ConfigError, match=r"broken.json: terms.x.groups.P1: the values must be in ascending"):
        create_app(library, ServiceConfig(tokens={"gp": TOKEN}, reference=(str(broken),)))
    (tmp_path / "notjson.json").write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"notjson.json: not JSON"):
        create_app(library, ServiceConfig(tokens={"gp": TOKEN}, reference=(str(tmp_path / "notjson.json"),)))


def test_pathways_reference_writes_the_same_file_for_the_same_inputs(library, tmp_path):
    from click.testing import CliRunner

    from tui.cli import cli

    data = tmp_path / "pop.jsonl"
    data.write_bytes(b"".join(orjson.dumps(r.model_dump(mode="json")) + b"\n"
                              for r in generate(150, seed=3, as_of=AS_OF, min_age=60)))
    runner = CliRunner()
    args = ["reference", str(library / "ltc_pyramid.pw"), "--data", str(data), "--as-of", AS_OF]
    first = runner.invoke(cli, [*args, "--out", str(tmp_path / "a.json")])
    assert first.exit_code == 0, first.output
    assert "150 patients; 1 ranked term(s)" in first.output and "150 loaded, 0 skipped" in first.output
    assert runner.invoke(cli, [*args, "--out", str(tmp_path / "b.json")]).exit_code == 0
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    r = runner.invoke(cli, [*args[:-1], "2024-02-30", "--out", str(tmp_path / "c.json")])
    assert r.exit_code == 2 and "--as-of" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli, ["reference", str(library / "conditions.pw"), "--data", str(data), "--as-of", AS_OF,
                            "--out", str(tmp_path / "d.json")])
    assert r.exit_code == 1 and "needs no reference population" in r.output


def test_serve_with_two_workers_reloads_every_worker_on_sighup_and_stops_cleanly(tmp_path):
    """`pathways serve --workers 2`: each worker on its own SO_REUSEPORT socket (engine.service.workers)."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request

    lib = make_library(tmp_path / "library")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PATHWAYS_TOKENS": f"gp:{TOKEN}"}
    proc = subprocess.Popen([sys.executable, "-c", "from tui.cli import main; main()", "serve", "--library", str(lib),
                             "--port", str(port), "--workers", "2"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def generation() -> int | None:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/protocols", headers=AUTH)
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return orjson.loads(answer.read())["generation"]
        except OSError:
            return None
    try:
        deadline = time.time() + 90
        while generation() is None:
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read().decode()[-2000:]
            time.sleep(0.3)
        pyramid = lib / "ltc_pyramid.pw"
        pyramid.write_text(pyramid.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        seen = set()
        while time.time() < deadline and seen != {2}:
            seen = {generation() for _ in range(6)}  # new connections: both workers answer, in time
            time.sleep(0.5)
        assert seen == {2}
        workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "spawn_main"],
                                                  capture_output=True, text=True).stdout.split()]
        assert len(workers) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0  # (each worker may take up to 15 s to finish its requests)
    for pid in workers:  # the workers stopped with the service
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_a_worker_that_is_asked_to_reload_while_it_compiles_reloads_once_it_is_up(library, monkeypatch):
    # `pathways serve --workers 2` signals every worker through a file; one still compiling the
    # library when the signal came (a SIGHUP as it starts) read the folder before the change
    # and must not take the signal as already done (it once did: that worker never reloaded)
    from engine.service import reload as reload_module

    signal_file = library.parent / "reload-signal"
    real = reload_module.compile_library
    calls = []

    def compile_while_signalled(*args, **kwargs):
        calls.append(args[2])  # the generation compiled
        if len(calls) == 1:
            signal_file.write_text("another worker reloaded")  # arrives during the first compile
        return real(*args, **kwargs)
    monkeypatch.setattr(reload_module, "compile_library", compile_while_signalled)
    lib = reload_module.Library(library, Limits(), signal_file)
    assert lib.current.generation == 1
    done = []
    lib._checked = 0.0  # (a request more than half a second later)
    lib.follow(lambda ok, snapshot, problems: done.append((ok, snapshot.generation)))
    deadline = time.time() + 30
    while not done and time.time() < deadline:
        time.sleep(0.05)
    assert done == [(True, 2)] and calls == [1, 2]
    lib._checked = 0.0
    lib.follow(lambda *a: done.append(a))  # the signal is now followed: nothing more to do
    time.sleep(0.2)
    assert len(done) == 1 and calls == [1, 2]
