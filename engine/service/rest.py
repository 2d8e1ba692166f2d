"""The REST endpoints: health, protocols, evaluate, explanations, reload."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response

from .auth import authenticate, authorise_admin
from .evaluation import ServiceError, audit, evaluate, load_summary, parse_as_of, parse_params, read_records
from .logs import log

router = APIRouter()

_BUNDLE_SCHEMA = {
    "type": "object", "required": ["resourceType"],
    "description": "A FHIR R4 Bundle (or a single resource) holding one or more patients' Patient, "
                   "Condition, Encounter, MedicationRequest, Observation... resources.",
    "properties": {"resourceType": {"type": "string", "example": "Bundle"},
                   "type": {"type": "string"}, "entry": {"type": "array", "items": {"type": "object"}}},
}


@router.get("/health", tags=["service"], summary="Is the service up (no token needed)")
async def health(request: Request) -> dict:
    snapshot = request.app.state.library.current
    return {"status": "ok", "protocols": len(snapshot.programs), "generation": snapshot.generation}


@router.get("/protocols", tags=["service"], summary="The protocols served: name, version, sha256, parameters")
def protocols(request: Request, who: str = Depends(authenticate)) -> dict:
    snapshot = request.app.state.library.current
    return {"generation": snapshot.generation, "protocols": snapshot.describe()}


@router.post("/evaluate", tags=["evaluate"], summary="Evaluate a protocol for the patients in a FHIR Bundle",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/fhir+json": {"schema": _BUNDLE_SCHEMA},
                 "application/json": {"schema": _BUNDLE_SCHEMA}}}})
async def evaluate_bundle(
    request: Request,
    protocol: Annotated[str, Query(description="The protocol's name (GET /protocols)", min_length=1)],
    as_of: Annotated[str, Query(description="The date to evaluate on, YYYY-MM-DD (there is no hidden clock)")],
    param: Annotated[list[str], Query(description="A parameter override NAME=VALUE (repeatable)")] = [],  # noqa: B006
    explain: Annotated[bool, Query(description="Add each patient's explanation")] = True,
    who: str = Depends(authenticate),
) -> Response:
    """Outcomes (and explanations) for every patient in the Bundle, with the load report."""
    from .app import run_limited

    body = await request.body()
    return await run_limited(request, _evaluate, request.app.state, body, protocol, as_of, param, explain, who,
                             size=len(body))


def _evaluate(state, body: bytes, protocol: str, as_of: str, param: list[str], explain: bool, who: str):
    day = parse_as_of(as_of)
    parameters = parse_params(param)
    snapshot = state.library.current  # one snapshot for the whole request, whatever a reload does meanwhile
    if protocol not in snapshot.programs:
        evaluate(snapshot, protocol, None, day, parameters, state.config.limits, False)  # raises the 404
    if not body.strip():
        raise ServiceError(422, "the request has no body: send a FHIR Bundle")
    records, report = read_records(body, state.mapping, state.config.limits)
    results, out = [], []
    for record in records:
        result = evaluate(snapshot, protocol, record, day, parameters, state.config.limits, explain)
        results.append(result)
        item = {"patient_id": result.patient_id, "outcomes": result.values(), "envelope": result.envelope}
        if explain:
            item["explanation_id"] = state.explanations.put(result)
            item["explanation"] = result.explain()
        out.append(item)
    audit(state, results, who, "service:evaluate")
    program = snapshot.programs[protocol].protocol
    answer = {"protocol": {"name": program.header.name, "version": program.header.version,
                           "sha256": program.sha256},
              "as_of": day.isoformat(), "results": out, "load": load_summary(report),
              "reference": _reference(snapshot, protocol, parameters)}
    return Response(orjson.dumps(answer), media_type="application/json")


def _reference(snapshot, name: str, parameters: dict) -> dict | None:
    """The reference population the ranked terms were decided against (None: they are unknown)."""
    reference = snapshot.references.get(name)
    if reference is None or snapshot.population(name, parameters) is snapshot.unranked[name]:
        return None
    return reference.describe()


@router.get("/explanations/{explanation_id}", tags=["evaluate"],
            summary="A recent explanation (from a card's link or /evaluate), as JSON or text")
def explanation(request: Request, explanation_id: str,
                format: Annotated[str, Query(pattern="^(json|text)$")] = "json",  # noqa: A002
                who: str = Depends(authenticate)) -> Response:
    result = request.app.state.explanations.get(explanation_id)
    if result is None:
        raise ServiceError(404, "no such explanation: it was never made here or is no longer held "
                                "(the service keeps the most recent ones); evaluate again to see it")
    if format == "text":
        return PlainTextResponse(result.explain_text())
    return Response(orjson.dumps(result.explain()), media_type="application/json")


@router.post("/admin/reload", tags=["service"], summary="Compile the library again and swap it in, atomically")
async def reload(request: Request, who: str = Depends(authenticate)) -> Response:
    from starlette.concurrency import run_in_threadpool

    authorise_admin(request, who)
    ok, snapshot, problems = await run_in_threadpool(request.app.state.library.reload)
    report_reload(ok, snapshot, problems, who)
    body = {"reloaded": ok, "generation": snapshot.generation,
            "protocols": [{"name": p["name"], "version": p["version"], "sha256": p["sha256"]}
                          for p in snapshot.describe()]}
    if not ok:
        body["problems"] = problems
        body["message"] = "the library was not reloaded: a protocol has errors; the previous version keeps serving"
    return Response(orjson.dumps(body), status_code=200 if ok else 409, media_type="application/json")


def report_reload(ok: bool, snapshot, problems: list[str], who: str) -> None:
    """Log a reload (from the endpoint or SIGHUP); a refusal lists every problem."""
    if ok:
        log("library reloaded", generation=snapshot.generation, protocols=sorted(snapshot.programs), who=who)
    else:
        log("library reload refused; the previous version keeps serving", 30, generation=snapshot.generation,
            problems=problems, who=who)
