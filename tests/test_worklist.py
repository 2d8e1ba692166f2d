"""Worklists, registers and recall, caseload arithmetic, and the commands' bad-input messages."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

import engine
from engine.caseload import case_managers, caseload
from engine.pathway_state import Due, PathwayState, find_pathway
from engine.worklist import recall, row, states, urgency, worklist
from pathways.records import Condition, Encounter, PartialDate, Patient, PathwayEventRecord, PatientRecord

FIXTURE = Path(__file__).parent / "fixtures" / "pathways" / "case_management.pw"
D = dt.date.fromisoformat
AS_OF = "2023-08-25"


def ev(event, date, sid, pathway="case_management"):
    return PathwayEventRecord(event=event, date=PartialDate.parse(date), source_id=sid, pathway=pathway)


def person(pid, events=(), admissions=("2023-01-10", "2023-03-05"), practice="A", copd=False):
    return PatientRecord(
        patient=Patient(id=pid, birth_date=PartialDate.parse("1940-01-01"), practice=practice),
        encounters=tuple(Encounter(kind="admission", method="emergency", start=PartialDate.parse(d),
                                   source_id=f"{pid}-adm{i}") for i, d in enumerate(admissions)),
        conditions=(Condition(code="13645005", source_id=f"{pid}-copd"),) if copd else (),
        pathway_events=tuple(events))


def population() -> list[PatientRecord]:
    """Hand-made: on 2023-08-25 the case-management worklist is, most urgent first,
    late-review (review due 2023-07-20, 36 days overdue), late-plan (plan due 2023-08-12,
    13 days overdue), assessing (assessment due 2023-09-03), then new-a and new-b
    (identified today with no events: approach due 2023-09-08; ties by id).
    declined has left; nobody is only on the COPD register (review missed 2023-06-01)."""
    journey = [ev("approached", "2023-03-20", "e1"), ev("consented", "2023-03-25", "e2"),
               ev("assessed", "2023-04-01", "e3"), ev("plan_agreed", "2023-04-20", "e4")]
    return [
        person("new-b", admissions=("2023-05-01", "2023-06-01"), practice="B"),
        person("late-review", events=journey, admissions=("2023-01-10", "2023-03-05", "2023-06-01")),
        person("new-a", admissions=("2023-05-01", "2023-06-01")),
        person("late-plan", events=[ev("approached", "2023-07-01", "f1"), ev("consented", "2023-07-02", "f2"),
                                    ev("assessed", "2023-07-15", "f3")]),
        person("assessing", events=[ev("approached", "2023-08-15", "g1"), ev("consented", "2023-08-20", "g2")],
               practice="B"),
        person("declined", events=[ev("approached", "2023-07-01", "h1"), ev("declined", "2023-07-02", "h2")]),
        person("nobody", admissions=(), copd=True,
               events=[ev("reviewed", "2022-06-01", "c1", pathway="copd_register")]),
    ]


@pytest.fixture(scope="module")
def program():
    return engine.load(FIXTURE)


def test_worklist_is_sorted_by_urgency(program):
    cm = find_pathway(program.protocol, "case_management")
    listed = worklist(states(program, cm, population(), AS_OF))
    assert [s.patient_id for s in listed] == ["late-review", "late-plan", "assessing", "new-a", "new-b"]
    rows = [row(s) for s in listed]
    assert rows[0] | {"findings": []} == {
        "patient_id": "late-review", "practice": "A", "pathway": "case_management", "step": "monitoring",
        "step_label": "Co-ordination, monitoring and review",
        "next_action": "Review the care plan at home or by telephone", "due": "2023-07-20", "overdue": True,
        "days_overdue": 36, "recall": True, "findings": []}
    assert (rows[1]["due"], rows[1]["days_overdue"], rows[1]["recall"]) == ("2023-08-12", 13, False)
    assert rows[2]["due"] == "2023-09-03" and rows[3]["due"] == rows[4]["due"] == "2023-09-08"


def test_urgency_key_orders_overdue_then_due_then_id():
    def state(pid, due, overdue, days=0):
        s = PathwayState(pid, "p", D("2024-01-01"), on_pathway=True)
        s.actions = [Due("x", "s", "within", "1 day", D(due), overdue, days)] if due else []
        return s
    mixed = [state("c", "2024-02-01", False), state("b", "2023-12-01", True, 31), state("z", None, False),
             state("a", "2024-02-01", False), state("d", "2023-12-20", True, 12)]
    assert [s.patient_id for s in sorted(mixed, key=urgency)] == ["b", "d", "a", "c", "z"]


def test_register_and_recall(program):
    copd = find_pathway(program.protocol, "copd_register")
    all_states = states(program, copd, population(), AS_OF)
    assert [s.patient_id for s in worklist(all_states)] == ["nobody"]
    assert [s.patient_id for s in recall(all_states, D(AS_OF), overdue_only=True)] == ["nobody"]
    cm_states = states(program, find_pathway(program.protocol, "case_management"), population(), AS_OF)
    assert [s.patient_id for s in recall(cm_states, D(AS_OF), due_within=10)] == \
        ["late-review", "late-plan", "assessing"]
    assert [s.patient_id for s in recall(cm_states, D(AS_OF), due_within=0)] == ["late-review", "late-plan"]


def test_case_managers_round_up():
    assert [case_managers(n, 80) for n in (0, 1, 80, 81, 160, 161)] == [0, 1, 1, 2, 2, 3]
    assert [case_managers(n, 50) for n in (49, 50, 51)] == [1, 1, 2]
    with pytest.raises(ValueError):
        case_managers(10, 0)


def test_caseload_counts_levels_steps_and_managers(program):
    result = caseload(program, population(), AS_OF).to_dict()
    levels = {lv["level"]: lv["patients"] for lv in result["per_level"]}
    # level 3 needs two unplanned admissions in the 12 months before 2023-08-25
    assert levels == {3: 6, 2: 1, 0: 0}
    assert result["per_step"]["case_management"] == {
        "identified": 2, "approached": 0, "assessment": 1, "care_planning": 1, "monitoring": 1, "in_hospital": 0}
    assert result["case_managers"] == [
        {"practice": "overall", "patients": 6, "at_50": 1, "at_80": 1},
        {"practice": "A", "patients": 4, "at_50": 1, "at_80": 1},
        {"practice": "B", "patients": 2, "at_50": 1, "at_80": 1}]


# --- the commands ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("people") / "people.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r.model_dump(mode="json")) + b"\n" for r in population()))
    return path


def invoke(*args):
    from tui.cli import cli
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_worklist_command_formats(data):
    result = invoke("worklist", FIXTURE, "--pathway", "case_management", "--data", data, "--as-of", AS_OF,
                    "--format", "jsonl")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [x["patient_id"] for x in lines] == ["late-review", "late-plan", "assessing", "new-a", "new-b"]
    assert {"patient_id", "step", "next_action", "due", "overdue", "days_overdue"} <= set(lines[0])
    assert "7 read, 7 loaded, 0 skipped" in result.stderr
    csv_out = invoke("worklist", FIXTURE, "--data", data, "--as-of", AS_OF, "--format", "csv", "--caseload", "2")
    assert csv_out.exit_code == 0
    assert csv_out.stdout.splitlines()[0].startswith("patient_id,practice,pathway,step,step_label,next_action,due")
    assert len(csv_out.stdout.splitlines()) == 3 and csv_out.stdout.splitlines()[1].startswith("late-review,A,")
    assert "showing the 2 most urgent (a caseload of 2); 3 case manager(s)" in csv_out.stderr
    table = invoke("worklist", FIXTURE, "--data", data, "--as-of", AS_OF)
    assert table.exit_code == 0 and "late-review" in table.stdout and "36 days (recall)" in table.stdout


def test_register_command(data):
    result = invoke("register", FIXTURE, "--pathway", "copd_register", "--data", data, "--as-of", AS_OF,
                    "--overdue", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    (line,) = [json.loads(x) for x in result.stdout.splitlines()]
    assert (line["patient_id"], line["next_action"], line["due"], line["recall"]) == \
        ("nobody", "Annual COPD review", "2023-06-01", True)


def test_caseload_command(data):
    result = invoke("caseload", FIXTURE, "--data", data, "--as-of", AS_OF, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["case_managers"][0] == {"practice": "overall", "patients": 6,
                                                             "at_50": 1, "at_80": 1}
    table = invoke("caseload", FIXTURE, "--data", data, "--as-of", AS_OF)
    assert table.exit_code == 0 and "rounded up" in table.stdout


@pytest.mark.parametrize("args, code, message", [
    (["worklist", FIXTURE, "--pathway", "case_managment", "--as-of", AS_OF], 2, "Did you mean case_management?"),
    (["register", FIXTURE, "--pathway", "asthma", "--as-of", AS_OF], 2, "its pathways: case_management"),
    (["worklist", FIXTURE, "--as-of", "2023-02-30"], 2, "2023-02-30"),
    (["worklist", FIXTURE, "--as-of", "25/08/2023"], 2, "YYYY-MM-DD"),
    (["careplan", FIXTURE, "--patient", "late-reveiw", "--as-of", AS_OF], 1, "Did you mean late-review?"),
    (["careplan", FIXTURE, "--plan", "case_plan", "--patient", "nobody", "--as-of", AS_OF], 2,
     "Did you mean case_management_plan?"),
    (["simulate", FIXTURE, "--from", "2024-01-01", "--to", "2023-01-01"], 2, "is before --from"),
    (["simulate", FIXTURE, "--from", "2023-01-01", "--to", "2024-01-01", "--every", "monthly"], 2,
     'e.g. "1 month"'),
    (["graph", FIXTURE, "--pathway", "case_management", "--patient", "nobody"], 2, "together"),
])
def test_bad_input_is_a_clear_message(data, args, code, message):
    result = invoke(*args, "--data", data)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (KeyError, AttributeError,
                                                                                   TypeError, ValueError))


def test_graph_highlights_the_patients_path(data):
    result = invoke("graph", FIXTURE, "--pathway", "case_management", "--data", data, "--patient", "late-plan",
                    "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    out = result.stdout
    import re
    node = {found.group(2): found.group(1) for found in re.finditer(r'^\s+(n\d+)\(?\["([^"]+)"', out, re.M)}
    passed = [line for line in out.splitlines() if "fill:#dbe9f6" in line]
    current = [line for line in out.splitlines() if "fill:#ffd966" in line]
    assert {p.split()[1] for p in passed} == {node["start"], node["Identified"], node["Approached"],
                                              node["Comprehensive assessment"]}
    assert [c.split()[1] for c in current] == [node["Care planning"]]
    dot = invoke("graph", FIXTURE, "--format", "dot", "--data", data, "--patient", "late-plan", "--as-of", AS_OF)
    assert dot.exit_code == 0 and 'label="Care planning", shape=box, style=filled, fillcolor="#ffd966"' in dot.stdout


# --- `--param` on pathway times (tests/fixtures/pathways/timed.pw) ---------------------------------

TIMED = Path(__file__).parent / "fixtures" / "pathways" / "timed.pw"


@pytest.fixture(scope="module")
def timed_data(tmp_path_factory) -> Path:
    """mon: in monitoring since 25 March, reviewed 5 April (medicines check due 14 days later, 19 April);
    waiting: approached 20 March and never answered (gone at 28 days, 17 April; still waiting at 60)."""
    people = [person("mon", admissions=(), events=[ev("approached", "2023-03-20", "m1"),
                                                    ev("consented", "2023-03-25", "m2"),
                                                    ev("reviewed", "2023-04-05", "m3")]),
              person("waiting", admissions=(), events=[ev("approached", "2023-03-20", "w1")])]
    path = tmp_path_factory.mktemp("timed") / "people.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r.model_dump(mode="json")) + b"\n" for r in people))
    return path


def test_worklist_and_register_take_timing_overrides(timed_data):
    base = ["--data", timed_data, "--as-of", "2023-05-01", "--format", "jsonl"]
    rows = [json.loads(x) for x in invoke("worklist", TIMED, *base).stdout.splitlines()]
    assert [(r["patient_id"], r["next_action"], r["due"], r["overdue"]) for r in rows] == [
        ("mon", "Check the medicines", "2023-04-19", True)]
    result = invoke("worklist", TIMED, *base, "--param", "medicines_check=60 days", "--param", "response_period=60 days")
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in result.stdout.splitlines()]
    assert [(r["patient_id"], r["step"], r["due"], r["overdue"]) for r in rows] == [
        ("mon", "monitoring", "2023-06-04", False), ("waiting", "approached", None, False)]
    assert rows[1]["next_action"] == "Waiting for consented or exited (else exit: No response to the approach on 2023-05-19)"
    overdue = invoke("register", TIMED, *base, "--overdue")
    assert [json.loads(x)["patient_id"] for x in overdue.stdout.splitlines()] == ["mon"]
    overdue = invoke("register", TIMED, *base, "--overdue", "--param", "medicines_check=60 days")
    assert overdue.exit_code == 0 and overdue.stdout == ""


def test_caseload_takes_timing_overrides_and_a_wrong_one_is_a_clear_message(timed_data):
    base = ["caseload", TIMED, "--data", timed_data, "--as-of", "2023-05-01", "--format", "json"]
    steps = json.loads(invoke(*base).stdout)["per_step"]["case_management"]
    assert (steps["approached"], steps["monitoring"]) == (0, 1)
    steps = json.loads(invoke(*base, "--param", "response_period=60 days").stdout)["per_step"]["case_management"]
    assert (steps["approached"], steps["monitoring"]) == (1, 1)
    wrong = invoke(*base, "--param", "response_period=60")
    assert wrong.exit_code == 1 and "parameter `response_period` is a duration" in wrong.output
    assert "Traceback" not in wrong.output


def test_one_evaluation_for_every_pathway_gives_each_pathways_own_state(program):
    from engine.pathway_state import state_of, states_of

    pathways = program.protocol.of_kind("pathway")
    assert len(pathways) == 2  # case management and the COPD register, evaluated together
    for rec in population():
        together, _ = states_of(program, pathways, rec, AS_OF)
        assert [s.to_dict() for s in together] == [state_of(program, p, rec, AS_OF).to_dict() for p in pathways]


def test_graph_of_a_patient_takes_timing_overrides(timed_data):
    """`waiting` was approached on 20 March and never answered: gone at 28 days (17 April),
    still waiting on 1 May when the protocol gives 60 days."""
    import re
    base = ["graph", TIMED, "--format", "dot", "--data", timed_data, "--patient", "waiting", "--as-of", "2023-05-01"]

    def current(result) -> list[str]:
        assert result.exit_code == 0, result.output
        return re.findall(r'label="([^"]+)"[^\]]*fillcolor="#ffd966"', result.stdout)

    assert current(invoke(*base)) == ["No response to the approach"]
    assert current(invoke(*base, "--param", "response_period=60 days")) == ["Approached"]
    wrong = invoke(*base, "--param", "response_period=60")
    assert wrong.exit_code == 1 and "parameter `response_period` is a duration" in wrong.output
    alone = invoke("graph", TIMED, "--param", "response_period=60 days")
    assert alone.exit_code == 2 and "--param, --strict and --mapping go with them" in alone.output
