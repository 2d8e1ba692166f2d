"""Personalised care plans: markdown (golden file), text, and a FHIR R4 CarePlan."""

from __future__ import annotations

import json
import os
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

import engine
from engine.careplan import personalise, to_markdown, to_text
from engine.fhir_careplan import care_plan_resource
from pathways.records import (
    Condition, Encounter, Medication, PartialDate, Patient, PathwayEventRecord, PatientRecord,
)

HERE = Path(__file__).parent / "fixtures" / "pathways"
FIXTURE = HERE / "case_management.pw"
GOLDEN = HERE / "careplan_p1.md"
AS_OF = "2023-08-01"


def ev(event, date, sid):
    return PathwayEventRecord(event=event, date=PartialDate.parse(date), source_id=sid, pathway="case_management")


P1 = PatientRecord(
    patient=Patient(id="p1", birth_date=PartialDate.parse("1940-01-01"), practice="A", lives_alone=True),
    encounters=(Encounter(kind="admission", method="emergency", start=PartialDate.parse("2023-01-10"), source_id="adm1"),
                Encounter(kind="admission", method="emergency", start=PartialDate.parse("2023-03-05"), source_id="adm2")),
    conditions=(Condition(code="13645005", onset=PartialDate.parse("2015-02"), source_id="cond-copd"),),
    medications=(Medication(code="x1", source_id="med1"), Medication(code="x2", source_id="med2")),
    pathway_events=(ev("approached", "2023-03-20", "e1"), ev("consented", "2023-03-25", "e2"),
                    ev("assessed", "2023-04-01", "e3"), ev("plan_agreed", "2023-04-20", "e4"),
                    ev("reviewed", "2023-07-15", "e5")))
# lives_alone not recorded, no COPD: those lines are left out, and say why
P2 = PatientRecord(patient=Patient(id="p2", birth_date=PartialDate.parse("1950-06-01")))


@pytest.fixture(scope="module")
def program():
    return engine.load(FIXTURE)


def test_markdown_matches_the_golden_file(program):
    text = to_markdown(personalise(program, "case_management_plan", P1, AS_OF))
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_lines_say_why_they_are_there(program):
    plan = personalise(program, "case_management_plan", P1, AS_OF)
    lines = {line.text: line for s in plan.sections for line in s.lines}
    assert "Avoid unplanned hospital admissions (2 in the last 12 months)" in lines
    assert "Take my 2 regular medicines as prescribed, and say when I cannot" in lines
    copd = lines["Keep my breathing under control at home"]
    assert copd.criterion.condition == "has_copd" and copd.criterion.met
    assert [e["source_id"] for e in copd.evidence] == ["cond-copd"]
    social = lines["Assess my social care needs"]
    assert social.role == "social worker" and social.criterion.because[0]["value"] == "yes"
    assert plan.review_date.isoformat() == "2023-10-15" and "every 3 months" in plan.review_basis
    assert plan.left_out == []


def test_left_out_lines_and_review_from_the_pathway_interval(program):
    plan = personalise(program, "case_management_plan", P2, AS_OF)
    left = {line.text: reason for reason, line in plan.left_out}
    assert left == {"Keep my breathing under control at home": "condition not met",
                    "Start my COPD rescue pack when my breathing gets worse, and tell my matron": "condition not met",
                    "Assess my social care needs": "not known from the record"}
    assert plan.step is None  # not on the pathway: review 3 months from the as-of date
    assert plan.review_date.isoformat() == "2023-11-01"
    text = to_text(plan)
    assert "Left out of this plan" in text and "lives_alone - not known from the record" in text
    assert text.splitlines()[0] == "Personalised care plan"


def test_fhir_careplan_structure(program):
    resource = care_plan_resource(personalise(program, "case_management_plan", P1, AS_OF))
    assert (resource["resourceType"], resource["status"], resource["intent"]) == ("CarePlan", "active", "plan")
    assert resource["subject"] == {"reference": "Patient/p1"}
    assert resource["period"] == {"start": "2023-08-01", "end": "2023-10-15"}
    goals = resource["contained"]
    assert [g["resourceType"] for g in goals] == ["Goal", "Goal"]
    assert resource["goal"] == [{"reference": f"#{g['id']}"} for g in goals]
    assert goals[1]["description"]["text"] == "Keep my breathing under control at home"
    assert goals[1]["addresses"][0]["reference"] == "Condition/cond-copd"
    activities = [a["detail"] for a in resource["activity"]]
    assert all(d["status"] == "not-started" and d["description"] for d in activities)
    social = next(d for d in activities if d["description"] == "Assess my social care needs")
    assert social["performer"] == [{"display": "social worker"}]
    assert social["reasonCode"][0]["text"].startswith("lives_alone")
    rescue = next(d for d in activities if d["description"].startswith("Start my COPD rescue pack"))
    assert rescue["reasonReference"][0]["reference"] == "Condition/cond-copd"
    assert [s["reference"] for s in resource["supportingInfo"]] == ["Condition/cond-copd"]
    again = care_plan_resource(personalise(program, "case_management_plan", P1, AS_OF))
    assert orjson.dumps(again) == orjson.dumps(resource)  # deterministic ids and order


def test_fhir_careplan_validates_against_r4():
    # fhir.resources is in the test extra: a missing install fails here rather than skipping unseen
    from fhir.resources.R4B.careplan import CarePlan
    from fhir.resources.R4B.goal import Goal

    resource = care_plan_resource(personalise(engine.load(FIXTURE), "case_management_plan", P1, AS_OF))
    library = care_plan_resource(_plan(LIBRARY / "case_management_plan.pw", P1))
    for plan in (resource, library):
        CarePlan.parse_obj(plan) if not hasattr(CarePlan, "model_validate") else CarePlan.model_validate(plan)
        for goal in plan["contained"]:
            Goal.parse_obj(goal) if not hasattr(Goal, "model_validate") else Goal.model_validate(goal)
    with pytest.raises(Exception):  # the validator is not a rubber stamp: status is required
        CarePlan.model_validate({k: v for k, v in resource.items() if k != "status"})


def test_careplan_command_formats(tmp_path):
    from tui.cli import cli

    data = tmp_path / "people.jsonl"
    data.write_bytes(b"".join(orjson.dumps(r.model_dump(mode="json")) + b"\n" for r in (P1, P2)))
    base = ["careplan", str(FIXTURE), "--data", str(data), "--patient", "p1", "--as-of", AS_OF]
    md = CliRunner().invoke(cli, base)
    assert md.exit_code == 0, md.output
    assert md.stdout == GOLDEN.read_text(encoding="utf-8")
    fhir = CliRunner().invoke(cli, [*base, "--format", "fhir"])
    assert fhir.exit_code == 0 and json.loads(fhir.stdout)["resourceType"] == "CarePlan"
    out = tmp_path / "plan.txt"
    text = CliRunner().invoke(cli, [*base, "--format", "text", "--output", str(out)])
    assert text.exit_code == 0 and out.read_text(encoding="utf-8").startswith("Personalised care plan\n")


def test_library_care_plan_if_present():
    library = Path(__file__).parent.parent / "library" / "case_management_plan.pw"
    if not library.exists():
        pytest.skip("library/case_management_plan.pw not written yet (the main behaviour is tested on the fixture)")
    program = engine.load(library)
    population = program.distributions([P1], AS_OF) if program.population_terms() else None
    plan = personalise(program, None, P1, AS_OF, population=population)
    assert plan.sections and all(line.text for s in plan.sections for line in s.lines)
    assert care_plan_resource(plan)["subject"] == {"reference": "Patient/p1"}


# --- plans for a pathway of an imported protocol (`for alias.pathway`) ------------------------------

LIBRARY = Path(__file__).parent.parent / "library"


def _plan(path, record, plan=None, parameters=None, as_of=AS_OF):
    program = engine.load(path)
    population = program.distributions([record], as_of, parameters) if program.population_terms() else None
    return personalise(program, plan, record, as_of, parameters, population)


def test_library_case_management_plan_reviews_on_the_imported_pathway():
    plan = _plan(LIBRARY / "case_management_plan.pw", P1)  # `for case_management.case_management`
    assert plan.pathway == "case_management.case_management" and plan.step == "monitoring"
    assert plan.review_date.isoformat() == "2023-10-15"  # reviewed 15 July, every 3 months
    assert plan.review_basis.startswith("the next \u201cReview the care plan at home or by telephone")
    resource = care_plan_resource(plan)
    assert resource["period"] == {"start": AS_OF, "end": "2023-10-15"}
    longer = _plan(LIBRARY / "case_management_plan.pw", P1, parameters={"case_management.review_interval": "6 months"})
    assert longer.review_date.isoformat() == "2024-01-15" and "every 6 months" in longer.review_basis
    off = _plan(LIBRARY / "case_management_plan.pw", P2)  # not on the pathway: 3 months from the as-of date
    assert off.step is None and off.review_date.isoformat() == "2023-11-01"


COPD = PatientRecord(
    patient=Patient(id="c1", birth_date=PartialDate.parse("1950-01-01"), practice="A"),
    conditions=(Condition(code="13645005", onset=PartialDate.parse("2015-02"), source_id="cond-copd"),),
    pathway_events=(PathwayEventRecord(event="assessed", date=PartialDate.parse("2023-01-10"), source_id="d1",
                                       pathway="copd_management"),
                    PathwayEventRecord(event="reviewed", date=PartialDate.parse("2023-03-01"), source_id="d2",
                                       pathway="copd_management")))


def test_library_disease_management_plan_reviews_on_the_imported_register():
    plan = _plan(LIBRARY / "disease_management_plans.pw", COPD, "copd_plan")  # `for dm.copd_management`
    assert plan.step == "annual_review" and plan.review_date.isoformat() == "2024-03-01"
    sooner = _plan(LIBRARY / "disease_management_plans.pw", COPD, "copd_plan", {"dm.review_interval": "6 months"})
    assert sooner.review_date.isoformat() == "2023-09-01"


def test_careplan_command_takes_overrides_for_the_imported_pathway(tmp_path):
    from tui.cli import cli

    data = tmp_path / "people.jsonl"
    data.write_bytes(orjson.dumps(P1.model_dump(mode="json")) + b"\n")
    base = ["careplan", str(LIBRARY / "case_management_plan.pw"), "--data", str(data), "--patient", "p1",
            "--as-of", AS_OF, "--format", "fhir"]
    result = CliRunner().invoke(cli, [*base, "--param", "case_management.review_interval=6 months"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["period"] == {"start": AS_OF, "end": "2024-01-15"}
    wrong = CliRunner().invoke(cli, [*base, "--param", "case_management.review_intervl=6 months"])
    assert wrong.exit_code == 1 and "did you mean `review_interval`" in wrong.output
