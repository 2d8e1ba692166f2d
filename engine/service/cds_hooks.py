"""CDS Hooks: discovery and the ``patient-view`` service.

The GP system opens a patient's record and calls ``POST /cds-services/ltc-pyramid``
with the prefetched Patient, Conditions, Encounters, MedicationRequests and
Observations (the templates are in the discovery document). The answer is a
list of cards: the pyramid level and why, what is unknown, the suggested
pathway with its care plan, each with a link to the full explanation.

The as-of date: a CDS client may send it as the request extension
``"extension": {"ltc-pathways.as_of": "YYYY-MM-DD"}``. Without it the
service takes today's date (UTC) *once, here*, and states it on every card
and in the audit log, so the date is never hidden; ``require_as_of = true``
refuses requests that do not send it.
"""

from __future__ import annotations

import datetime as dt

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from .auth import authenticate
from .evaluation import ServiceError, audit, evaluate, parse_as_of, read_records

SERVICE_ID = "ltc-pyramid"
AS_OF_EXTENSION = "ltc-pathways.as_of"
PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "encounters": "Encounter?patient={{context.patientId}}",
    "medications": "MedicationRequest?patient={{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}",
}

router = APIRouter()

_REQUEST_SCHEMA = {
    "type": "object", "required": ["hook", "hookInstance", "context"],
    "properties": {
        "hook": {"type": "string", "enum": ["patient-view"]},
        "hookInstance": {"type": "string"},
        "fhirServer": {"type": "string"},
        "context": {"type": "object", "required": ["patientId"],
                    "properties": {"userId": {"type": "string"}, "patientId": {"type": "string"},
                                   "encounterId": {"type": "string"}}},
        "prefetch": {"type": "object", "additionalProperties": {"type": ["object", "null"]}},
        "extension": {"type": "object"},
    },
}


@router.get("/cds-services", tags=["CDS Hooks"], summary="CDS Hooks discovery (no token needed)")
async def discovery(request: Request) -> dict:
    """The services this CDS service offers, with their prefetch templates."""
    snapshot = request.app.state.library.current
    config = request.app.state.config
    program = snapshot.programs.get(config.card_protocol)
    title = program.protocol.header.title if program else config.card_protocol
    return {"services": [{
        "hook": "patient-view", "id": SERVICE_ID, "title": "Long term conditions pyramid",
        "description": f"Stratifies the patient with {config.card_protocol} ({title}): the level and why, "
                       "what is unknown, and the suggested pathway and care plan.",
        "prefetch": PREFETCH,
        "usageRequirements": "Send Authorization: Bearer <token>. The as-of date may be sent as the request "
                             f"extension {AS_OF_EXTENSION!r} (YYYY-MM-DD).",
    }]}


@router.post(f"/cds-services/{SERVICE_ID}", tags=["CDS Hooks"], summary="patient-view: cards for the patient",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": _REQUEST_SCHEMA}}}})
async def patient_view(request: Request, who: str = Depends(authenticate)) -> Response:
    """Cards: the level and reasons, what is unknown, the suggested pathway and care plan."""
    from .app import run_limited

    body = await request.body()
    base = request.app.state.config.public_url or str(request.base_url).rstrip("/")
    return await run_limited(request, _patient_view, request.app.state, body, who, base, size=len(body))


def _patient_view(state, body: bytes, who: str, base: str) -> Response:
    hook = _json_object(body)
    if hook.get("hook") != "patient-view":
        raise ServiceError(422, f"this service answers the patient-view hook, not {str(hook.get('hook'))[:40]!r}")
    context = hook.get("context")
    if not isinstance(context, dict) or not isinstance(context.get("patientId"), str) or not context["patientId"]:
        raise ServiceError(422, "context.patientId is required (the id of the patient whose record is open)")
    if not isinstance(hook.get("hookInstance"), str):
        raise ServiceError(422, "hookInstance is required (a text id of this hook call)")
    as_of = _as_of(hook, state.config.require_as_of)
    resources = _prefetched(hook.get("prefetch"))
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
    records, _report = read_records(bundle, state.mapping, state.config.limits, source="prefetch")
    record = next((r for r in records if r.patient.id == context["patientId"]), None)
    if record is None:
        raise ServiceError(412, "the prefetched Patient is not the patient in context.patientId; "
                                "send prefetch.patient for that patient")
    snapshot = state.library.current
    name, outcome = state.config.card_protocol, state.config.card_outcome
    result = evaluate(snapshot, name, record, as_of, {}, state.config.limits, explain=True)
    explanation = result.explain()
    key = state.explanations.put(result)
    link = {"label": "Open the full explanation", "url": f"{base}/explanations/{key}?format=text",
            "type": "absolute"}
    header = result.program.protocol.header
    source = {"label": f"ltc-pathways: {header.name} {header.version}"}
    from .cards import level_card, pathway_cards
    reference = snapshot.references.get(name)
    cards = [level_card(result, explanation, outcome, link, source, reference.describe() if reference else None,
                        bool(snapshot.unranked[name]))]
    cards.extend(pathway_cards(snapshot, record, as_of, link, source))
    audit(state, [result], who, "service:patient-view")
    return Response(orjson.dumps({"cards": cards}), media_type="application/json")


def _json_object(body: bytes) -> dict:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ServiceError(400, f"the request is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") \
            from None
    if not isinstance(doc, dict):
        raise ServiceError(422, "the request must be a JSON object (a CDS Hooks request)")
    return doc


def _as_of(hook: dict, required: bool) -> dt.date:
    ext = hook.get("extension")
    given = ext.get(AS_OF_EXTENSION) if isinstance(ext, dict) else None
    if given is None and not required:
        return dt.datetime.now(dt.timezone.utc).date()  # the one clock read; stated on the card and audited
    if not isinstance(given, str):
        raise ServiceError(422, f"extension {AS_OF_EXTENSION!r} is required by this service's configuration: "
                                "the date to evaluate on, YYYY-MM-DD")
    return parse_as_of(given, f"extension {AS_OF_EXTENSION}")


def _prefetched(prefetch) -> list:
    """The resources of every prefetch item (a resource or a searchset Bundle)."""
    if not isinstance(prefetch, dict) or not isinstance(prefetch.get("patient"), dict):
        raise ServiceError(412, "prefetch.patient is missing: this service needs the Patient resource "
                                "prefetched (see the prefetch templates in GET /cds-services)")
    out = []
    for key in sorted(prefetch):
        item = prefetch[key]
        if item is None:
            continue  # the client could not prefetch it: the criteria that need it read as unknown
        if isinstance(item, dict) and item.get("resourceType") == "Bundle":
            entries = item.get("entry") or []
            if not isinstance(entries, list):
                raise ServiceError(422, f"prefetch.{key[:40]}: Bundle.entry must be a list")
            out.extend(e.get("resource") if isinstance(e, dict) else e for e in entries)
        else:
            out.append(item)
    return out
