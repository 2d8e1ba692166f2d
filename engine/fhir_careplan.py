"""A personalised care plan as a FHIR R4 CarePlan, with its goals as contained Goal resources.

- status ``active``, intent ``plan``, subject ``Patient/<id>``, period from the
  as-of date to the review date;
- the ``objectives`` section becomes contained ``Goal`` resources (lifecycle
  ``proposed``: the plan is to be agreed with the patient), referenced from
  ``CarePlan.goal``; every other line becomes an ``activity.detail`` with its
  description, the responsible role as ``performer.display`` and the section as
  ``detail.code.text``;
- the criterion that put a line in the plan is ``detail.reasonCode.text``;
  the record items it rested on are ``detail.reasonReference`` (conditions
  and observations, as R4 allows) and, all of them, ``CarePlan.supportingInfo``.
  A goal's evidence is its ``addresses``.

Ids are derived from the protocol, template, patient, as-of date and the
template item's id, so the same inputs give byte-identical JSON.
"""

from __future__ import annotations

import hashlib

from .careplan import Line, PersonalPlan, reasons

#: engine record kind -> FHIR resource type (for references built from a bare source id)
RESOURCE_TYPES = {"condition": "Condition", "medication": "MedicationRequest", "encounter": "Encounter",
                  "observation": "Observation", "procedure": "Procedure"}
REASON_TYPES = ("Condition", "Observation")


def _id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def _reference(ev: dict) -> dict | None:
    sid = ev.get("source_id") or ""
    if not sid:
        return None
    if "/" in sid:
        ref = sid
    else:
        rtype = RESOURCE_TYPES.get(ev.get("record") or "")
        if rtype is None:
            return {"display": ev.get("text") or sid}
        ref = f"{rtype}/{sid}"
    out = {"reference": ref}
    if ev.get("text"):
        out["display"] = ev["text"]
    return out


def _reason(line: Line) -> str:
    c = line.criterion
    if c is None:
        return "in the template for every patient"
    names = reasons(line)
    return f"{c.condition}" + (f" ({names})" if names else "")


def care_plan_resource(plan: PersonalPlan) -> dict:
    """The plan as a FHIR R4 CarePlan (JSON data)."""
    key = (plan.protocol, plan.version, plan.name, plan.patient_id, plan.as_of.isoformat())
    subject = {"reference": f"Patient/{plan.patient_id}"}
    contained, goal_refs, activities, supporting = [], [], [], []
    seen_support: set[str] = set()
    for section in plan.sections:
        for line in section.lines:
            refs = [r for r in (_reference(ev) for ev in line.evidence) if r is not None]
            for r in refs:
                k = r.get("reference") or r.get("display", "")
                if k not in seen_support:
                    seen_support.add(k)
                    supporting.append(r)
            if section.kind == "objectives":
                gid = "goal-" + _id(*key, line.id)[:16]
                goal = {"resourceType": "Goal", "id": gid, "lifecycleStatus": "proposed",
                        "description": {"text": line.text}, "subject": subject,
                        "note": [{"text": f"Included because: {_reason(line)}"}]}
                addresses = [r for r in refs if r.get("reference", "").split("/")[0] in ("Condition", "Observation")]
                if addresses:
                    goal["addresses"] = addresses
                contained.append(goal)
                goal_refs.append({"reference": f"#{gid}"})
                continue
            detail = {"code": {"text": section.title}, "status": "not-started", "description": line.text,
                      "reasonCode": [{"text": _reason(line)}]}
            reasons = [r for r in refs if r.get("reference", "").split("/")[0] in REASON_TYPES]
            if reasons:
                detail["reasonReference"] = reasons
            if line.role:
                detail["performer"] = [{"display": line.role}]
            activities.append({"detail": detail})
    resource = {
        "resourceType": "CarePlan",
        "id": "careplan-" + _id(*key)[:24],
        "status": "active",
        "intent": "plan",
        "title": plan.title,
        "description": f"Personalised from template {plan.name} of protocol {plan.protocol} {plan.version}",
        "subject": subject,
        "created": plan.as_of.isoformat(),
        "period": {"start": plan.as_of.isoformat(),
                   **({"end": plan.review_date.isoformat()} if plan.review_date else {})},
    }
    if contained:
        resource["contained"] = contained
        resource["goal"] = goal_refs
    if supporting:
        resource["supportingInfo"] = supporting
    if activities:
        resource["activity"] = activities
    if plan.review_date:
        resource["note"] = [{"text": f"Review by {plan.review_date.isoformat()}: {plan.review_basis}"}]
    return resource
