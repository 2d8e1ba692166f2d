"""Results as FHIR R4: one RiskAssessment per patient and protocol run.

``prediction`` holds each outcome (the level, the eligibility, ...); ``basis``
references the record items that counted towards them (from the evaluation
trace, so a result must be evaluated with ``explain=True``); ``method`` and a
note name the protocol, its version and its sha256, so an auditor can find
exactly what produced it. Ids are derived from the content, so the same run
gives byte-identical output.
"""

from __future__ import annotations

import hashlib

from pathways import records as r

from .values import Items, to_json

#: record item type -> the FHIR resource type it was read from
RESOURCE_TYPES = {
    r.Condition: "Condition",
    r.Medication: "MedicationRequest",
    r.Encounter: "Encounter",
    r.Observation: "Observation",
    r.Procedure: "Procedure",
}


def _evidence(result) -> list[dict]:
    """References to every record item that was certainly counted in a list the
    protocol looked at, in a stable order."""
    refs: set[tuple[str, str]] = set()
    for value in (result.trace or {}).values():
        if isinstance(value, Items):
            for item in value.sure:
                kind = RESOURCE_TYPES.get(type(item))
                if kind and item.source_id:
                    refs.add((kind, item.source_id))
    return [{"reference": f"{kind}/{sid}"} for kind, sid in sorted(refs)]


def _show(value) -> str:
    shown = to_json(value)
    if shown is None:
        return "unknown"
    if isinstance(shown, bool):
        return "yes" if shown else "no"
    return str(shown)


def risk_assessment(result) -> dict:
    """A FHIR R4 RiskAssessment for one result (evaluated with ``explain=True``)."""
    if result.trace is None:
        raise ValueError("a RiskAssessment's basis needs the evaluation trace: evaluate with explain=True")
    protocol = result.program.protocol
    header = protocol.header
    key = f"{protocol.sha256}|{result.patient_id}|{result.as_of.isoformat()}|{sorted(result.parameters.items())}"
    predictions = []
    for name in result.program.outcome_names:
        decl = protocol.get(name)
        label = decl.label if decl is not None and decl.label else name
        predictions.append({"outcome": {"text": f"{label} ({name}): {_show(result.outcomes[name])}"}})
    note = (f"Evaluated with protocol {header.name} version {header.version} (sha256 {protocol.sha256}) "
            f"as of {result.as_of.isoformat()}")
    if result.parameters:
        note += "; parameters: " + ", ".join(f"{k} = {v}" for k, v in sorted(result.parameters.items()))
    resource = {
        "resourceType": "RiskAssessment",
        "id": hashlib.sha256(key.encode()).hexdigest()[:32],
        "status": "final",
        "subject": {"reference": f"Patient/{result.patient_id}"},
        "occurrenceDateTime": result.as_of.isoformat(),
        "method": {"coding": [{"system": "urn:ltc-pathways:protocol", "code": f"{header.name}|{header.version}",
                               "display": header.title or header.name}]},
        "prediction": predictions,
        "note": [{"text": note}],
    }
    basis = _evidence(result)
    if basis:
        resource["basis"] = basis
    return resource


def bundle(resources: list[dict]) -> dict:
    """A collection Bundle of the resources, in the order given."""
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:{res['id']}", "resource": res} for res in resources]}
