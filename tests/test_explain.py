"""Explanations of results, on fixed hand-built patients.

Castlefields is evaluated over a small fixed population (it ranks patients
within their practice), as of 2021-04-01:

- ``cf-eligible``: 80 years old, seven of the eleven criteria met;
- ``cf-not-eligible``: 71 years old, one criterion met, several close to
  their thresholds (one A&E attendance of two, £80 a month of £100);
- ``cf-unknown``: born in 1956 (64 or 65 on the day), two criteria met and an
  A&E attendance dated only to the year;
- ``x0``...``x39``: the rest of practice P1, with 0 to 2 GP consultations.

Evercare is evaluated for ``ev-unknown``, whose living arrangements are not
recorded; the pyramid for the three Castlefields patients.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

import engine
from dsl.compiler import compile_text
from engine.explain import SCHEMA, explain_json, explain_text
from pathways.records import (
    Condition, Encounter, Medication, Observation, PartialDate, Patient, PatientRecord,
)

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "library"
SCHEMA_FILE = ROOT / "docs" / "explanation.schema.json"
AS_OF = "2021-04-01"
D = PartialDate.parse

COPD, HEART_FAILURE, DIABETES, DEMENTIA = "13645005", "84114007", "44054006", "52448006"

CASTLEFIELDS_ITEMS = (
    "four or more active long term conditions",
    "four or more medicines, prescribed for six months or more",
    "two or more hospital admissions in the past 12 months",
    "two or more A&E attendances in the past 12 months",
    "significant impairment in one or more activities of daily living",
    "significant impairment in one or more instrumental activities of daily living",
    "in the top 3% of frequent visitors to the practice",
    "two or more outpatient appointments",
    "total stay in hospital exceeding four weeks in a year",
    "social work contact exceeding four assessment visits in each three-month period",
    "prescribing costs exceeding £100 per month",
)
AGE_ITEM = "aged 65 or over"


def enc(sid: str, kind: str, start: str, end: str | None = None, method: str | None = None) -> Encounter:
    return Encounter(source_id=sid, kind=kind, start=D(start), end=D(end) if end else None, method=method)


def condition(sid: str, code: str, onset: str = "2010-01-01") -> Condition:
    return Condition(source_id=sid, code=code, onset=D(onset))


ELIGIBLE = PatientRecord(
    patient=Patient(id="cf-eligible", birth_date=D("1940-05-17"), practice="P1", lives_alone=True),
    conditions=(condition("c1", COPD, "2010-03"), condition("c2", HEART_FAILURE, "2015-01-02"),
                condition("c3", DIABETES, "2001"), condition("c4", DEMENTIA, "2019-07-01")),
    medications=tuple(Medication(source_id=f"m{i}", code=f"dmd-{i}", start=D("2020-01-01"), monthly_cost=30.0)
                      for i in range(1, 5)),
    encounters=(enc("a1", "admission", "2020-05-01", "2020-05-20", "emergency"),
                enc("a2", "admission", "2021-01-10", "2021-01-25", "emergency"),
                enc("ae1", "ae", "2020-12-01"),
                enc("g1", "gp", "2020-06-01"), enc("g2", "gp", "2020-07-01"), enc("g3", "gp", "2021-03-15")),
    observations=(Observation(source_id="o1", kind="adl", date=D("2021-02-01")),
                  Observation(source_id="o2", kind="iadl", date=D("2021-02-01"), impaired=False)),
)

NOT_ELIGIBLE = PatientRecord(
    patient=Patient(id="cf-not-eligible", birth_date=D("1950-03-02"), practice="P1", lives_alone=False),
    conditions=(condition("c1", COPD, "2010-03"),),
    medications=(Medication(source_id="m1", code="dmd-a", start=D("2020-01-01"), monthly_cost=50.0),
                 Medication(source_id="m2", code="dmd-b", start=D("2021-01-01"), monthly_cost=30.0),
                 Medication(source_id="m3", code="dmd-c", start=D("2019-01-01"))),
    encounters=(enc("ae1", "ae", "2020-12-01"),
                enc("a1", "admission", "2020-03-20", "2020-04-10", "elective"),
                enc("op1", "outpatient", "2020-05-05"), enc("op2", "outpatient", "2020-09-05"),
                enc("sw1", "social_work", "2021-02-01"), enc("sw2", "social_work", "2020-11-01"),
                enc("sw3", "social_work", "2020-12-01")),
    observations=(Observation(source_id="o1", kind="adl", date=D("2020-10-01"), impaired=False),
                  Observation(source_id="o2", kind="iadl", date=D("2020-10-01"), impaired=False)),
)

UNKNOWN = PatientRecord(
    patient=Patient(id="cf-unknown", birth_date=D("1956"), practice="P1"),
    conditions=(condition("c1", COPD), condition("c2", HEART_FAILURE), condition("c3", DIABETES),
                condition("c4", DEMENTIA)),
    encounters=(enc("ae1", "ae", "2020-12-01"), enc("ae2", "ae", "2020"),
                enc("op1", "outpatient", "2020-05-05"), enc("op2", "outpatient", "2020-06-05")),
)

BACKGROUND = [PatientRecord(patient=Patient(id=f"x{i}", practice="P1"),
                            encounters=tuple(enc(f"x{i}-g{j}", "gp", "2020-09-01") for j in range(i % 3)))
              for i in range(40)]

EVERCARE_UNKNOWN = PatientRecord(
    patient=Patient(id="ev-unknown", birth_date=D("1940-01-01"), practice="P1"),  # lives_alone not recorded
    observations=(Observation(source_id="cog1", kind="cognition", date=D("2020-11-02")),),
    encounters=(enc("ea1", "admission", "2021-03-01", "2021-03-04", "emergency"),
                *(enc(f"sw{i}", "social_work", f"2021-03-{i + 5:02d}") for i in range(8))),
)


@pytest.fixture(scope="module")
def castlefields() -> engine.Program:
    return engine.load(LIBRARY / "castlefields.pw")


@pytest.fixture(scope="module")
def pyramid() -> engine.Program:
    return engine.load(LIBRARY / "ltc_pyramid.pw")


def run(program: engine.Program, records=(ELIGIBLE, NOT_ELIGIBLE, UNKNOWN), **kw) -> dict[str, engine.Result]:
    results = program.evaluate_population([*records, *BACKGROUND], as_of=AS_OF, explain=True, **kw)
    return {r.patient_id: r for r in results if not r.patient_id.startswith("x")}


@pytest.fixture(scope="module")
def cf(castlefields) -> dict[str, engine.Result]:
    return run(castlefields)


@pytest.fixture(scope="module")
def pyr(pyramid) -> dict[str, engine.Result]:
    return run(pyramid)


# --- helpers -------------------------------------------------------------------------------------

def nodes(tree: dict):
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.get("children", [])))


def outcome(data: dict, name: str) -> dict:
    return next(o for o in data["outcomes"] if o["name"] == name)


def node_by_id(data: dict, node_id: str) -> dict:
    """The expanded node with this id (not a later `see` reference)."""
    for o in data["outcomes"]:
        for node in nodes(o["tree"]):
            if node["id"] == node_id and "see" not in node:
                return node
    raise KeyError(node_id)


def items_of(data: dict) -> dict[str, dict]:
    """Castlefields' twelve labelled items (the age item and the eleven), label -> item node."""
    out = {}
    for o in data["outcomes"]:
        for node in nodes(o["tree"]):
            if node["kind"] == "item" and node["id"].startswith("castlefields.") and node["label"] not in out:
                if node["label"] in CASTLEFIELDS_ITEMS or node["label"] == AGE_ITEM:
                    out[node["label"]] = node
    return out


def why_not_entries(entries: list[dict]):
    for e in entries:
        yield e
        yield from why_not_entries(e["because"])


def find_entry(entries: list[dict], label: str) -> dict:
    return next(e for e in why_not_entries(entries) if e["label"].strip("\u201c\u201d") == label)


# --- a small JSON Schema check, for when jsonschema is not installed ------------------------------

def validate(instance, schema: dict, root: dict | None = None, path: str = "$") -> list[str]:
    """The subset of JSON Schema docs/explanation.schema.json uses: $ref, type, const, enum,
    required, properties, additionalProperties, items, minimum."""
    root = root or schema
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return validate(instance, target, root, path)
    errors = []
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        checks = {"object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
                  "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
                  "null": lambda v: v is None,
                  "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
                  "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)}
        if not any(checks[k](instance) for k in kinds):
            return [f"{path}: {instance!r} is not of type {kinds}"]
    if "const" in schema and instance != schema["const"]:
        errors.append(f"{path}: {instance!r} is not {schema['const']!r}")
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{path}: {instance!r} is not one of {schema['enum']}")
    if "minimum" in schema and isinstance(instance, (int, float)) and instance < schema["minimum"]:
        errors.append(f"{path}: {instance} is below {schema['minimum']}")
    if isinstance(instance, dict):
        for key in schema.get("required", []):
            if key not in instance:
                errors.append(f"{path}: missing required {key!r}")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, value in instance.items():
            if key in props:
                errors.extend(validate(value, props[key], root, f"{path}.{key}"))
            elif extra is False:
                errors.append(f"{path}: unexpected property {key!r}")
            elif isinstance(extra, dict):
                errors.extend(validate(value, extra, root, f"{path}.{key}"))
    if isinstance(instance, list) and "items" in schema:
        for i, value in enumerate(instance):
            errors.extend(validate(value, schema["items"], root, f"{path}[{i}]"))
    return errors


def check_schema(data: dict) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert validate(data, schema) == []
    try:
        import jsonschema
    except ImportError:
        return
    jsonschema.validate(data, schema)


# --- Castlefields: every item, with value, threshold and evidence ---------------------------------

@pytest.mark.parametrize("patient", ["cf-eligible", "cf-not-eligible", "cf-unknown"])
def test_every_castlefields_item_is_named_with_value_threshold_and_evidence_in_json(cf, patient):
    data = explain_json(cf[patient])
    items = items_of(data)
    assert set(items) == {*CASTLEFIELDS_ITEMS, AGE_ITEM}
    for label, item in items.items():
        assert item["status"] in ("true", "false", "unknown"), label
        leaf = item["children"][0]
        assert leaf["kind"] == "expression", label
        assert leaf["expression"] and leaf["summary"] and "value" in leaf, label
        if "comparison" in leaf:
            comparison = leaf["comparison"]
            assert comparison["actual_display"] and comparison["threshold_display"], label
            assert comparison["threshold_display"] in leaf["summary"], label
        elif "ranking" in leaf:
            assert leaf["ranking"]["in_top_from"] is not None, label  # where the top 3% starts
            assert leaf["ranking"]["group_key"] == "P1" and leaf["ranking"]["group_size"] == 43
        else:
            assert leaf["expression"].startswith("any "), label
            assert "needs at least 1" in leaf["summary"], label
        if label == AGE_ITEM:
            assert leaf["comparison"]["threshold_display"] == "65 years"
            assert leaf["facts"][0]["name"] == "birth_date"  # the evidence for an age is the birth date
        else:
            assert leaf["evidence"] and all("counted" in ev and "might_count" in ev for ev in leaf["evidence"])
    check_schema(data)


@pytest.mark.parametrize("patient", ["cf-eligible", "cf-not-eligible", "cf-unknown"])
def test_every_castlefields_item_is_named_with_value_threshold_and_evidence_in_text(cf, patient):
    text = explain_text(cf[patient])
    data = explain_json(cf[patient])
    for label, item in items_of(data).items():
        leaf = item["children"][0]
        word = {"true": "met", "false": "not met", "unknown": "unknown"}[item["status"]]
        assert f"\u201c{label}\u201d: {word}" in text, label
        assert f"rule: {leaf['expression']}" in text, label
        assert leaf["summary"] in text, label  # the value and its threshold, in words
        for ev in leaf.get("evidence", []):
            for record_item in ev["counted"]:
                assert record_item["text"] in text, (label, record_item)
            assert ("counted: none" in text) or ev["counted"]
        for fact in leaf.get("facts", []):
            assert f"recorded: {fact['display']}" in text


def test_eligible_patient(cf):
    result = cf["cf-eligible"]
    assert result.values() == {"eligible": True, "criteria_met": 7}
    data = explain_json(result)
    eligible = outcome(data, "eligible")
    assert eligible["status"] == "true" and "why_not" not in eligible
    items = items_of(data)
    met = {label for label, node in items.items() if node["status"] == "true"}
    assert met == {AGE_ITEM, CASTLEFIELDS_ITEMS[0], CASTLEFIELDS_ITEMS[1], CASTLEFIELDS_ITEMS[2],
                   CASTLEFIELDS_ITEMS[4], CASTLEFIELDS_ITEMS[6], CASTLEFIELDS_ITEMS[8], CASTLEFIELDS_ITEMS[10]}
    # evidence: the admissions counted, with their source ids and dates
    admissions = items[CASTLEFIELDS_ITEMS[2]]["children"][0]["evidence"][0]
    assert [(i["source_id"], i["date"]) for i in admissions["counted"]] == [("a1", "2020-05-01"),
                                                                          ("a2", "2021-01-10")]
    assert admissions["window"] == {"from": "2020-04-01", "to": "2021-04-01"}
    stay = items[CASTLEFIELDS_ITEMS[8]]["children"][0]
    assert [i["days_in_window"] for i in stay["evidence"][0]["counted"]] == [19, 15]
    cost = items[CASTLEFIELDS_ITEMS[10]]["children"][0]
    assert cost["comparison"]["actual_display"] == "£120"
    assert [i["amount"] for i in cost["evidence"][0]["counted"]] == [30, 30, 30, 30]
    frequent = items[CASTLEFIELDS_ITEMS[6]]["children"][0]
    assert frequent["ranking"]["in_top_from"] == 3  # the 2-visit tie would overfill the top, so it is left out
    assert [i["source_id"] for i in frequent["evidence"][0]["counted"]] == ["g1", "g2", "g3"]
    # the conditions counted carry their code and its display from the code lists
    ltcs = items[CASTLEFIELDS_ITEMS[0]]["children"][0]["evidence"][0]["counted"]
    assert [(i["source_id"], i["code"]) for i in ltcs] == [("c3", DIABETES), ("c1", COPD), ("c2", HEART_FAILURE),
                                                           ("c4", DEMENTIA)]
    text = explain_text(result)
    assert "\u2713 Eligible for case management (Castlefields) (eligible): yes" in text
    assert "c2: condition \u201cHeart failure\u201d (snomed 84114007), onset 2015-01-02" in text
    assert "Why not" not in text.split("(criteria_met)")[0]


def test_not_eligible_patient_why_not_names_the_missing_criteria_and_distances(cf):
    result = cf["cf-not-eligible"]
    assert result.values() == {"eligible": False, "criteria_met": 1}
    data = explain_json(result)
    eligible = outcome(data, "eligible")
    assert eligible["status"] == "false"
    why = eligible["why_not"]
    assert [e["label"] for e in why] == ["At least three of the eleven published criteria"]
    top = why[0]
    assert top["needs_more_of"]["count"] == 2
    assert top["needs_more_of"]["of"] == [x for x in CASTLEFIELDS_ITEMS if x != "two or more outpatient appointments"]
    assert "1 of 11 met; needs 2 more of: \u201cfour or more active long term conditions\u201d" in top["reason"]
    reasons = {e["label"].strip("\u201c\u201d"): e["reason"] for e in top["because"]}
    assert set(reasons) == set(top["needs_more_of"]["of"])
    assert reasons["two or more A&E attendances in the past 12 months"] == (
        "count of A&E attendances in the last 12 months: 1; needs at least 2 (needs 1 more)")
    assert reasons["prescribing costs exceeding £100 per month"] == (
        "total monthly cost of medications where status is active: £80; needs more than £100 (needs over £20 more)")
    assert reasons["four or more active long term conditions"].endswith("1; needs at least 4 (needs 3 more)")
    assert reasons["four or more medicines, prescribed for six months or more"].endswith(
        "2; needs at least 4 (needs 2 more)")
    assert reasons["total stay in hospital exceeding four weeks in a year"].endswith(
        "9 days; needs more than 4 weeks (28 days) (needs 20 days more)")
    assert reasons["social work contact exceeding four assessment visits in each three-month period"].endswith(
        "0; needs more than 4 (needs 5 more)")
    # structured distances in the tree
    items = items_of(data)
    ae = items["two or more A&E attendances in the past 12 months"]["children"][0]
    assert ae["comparison"]["gap"] == {"short_by": 1, "unit": "count", "text": "needs 1 more"}
    cost = items["prescribing costs exceeding £100 per month"]["children"][0]
    assert cost["comparison"]["gap"]["short_by"] == 20 and cost["comparison"]["gap"]["unit"] == "gbp"
    assert cost["evidence"][0]["notes"] == ["monthly cost not recorded for m3 (left out of the sum)"]
    visits = items["social work contact exceeding four assessment visits in each three-month period"]
    assert [p["count"] for p in visits["children"][0]["evidence"][0]["periods"]] == [1, 2, 0, 0]
    # the stay that began before the window counts only its days inside it
    stay = items["total stay in hospital exceeding four weeks in a year"]["children"][0]["evidence"][0]
    assert [(i["source_id"], i["days_in_window"]) for i in stay["counted"]] == [("a1", 9)]

    text = explain_text(result)
    assert "\u2717 Eligible for case management (Castlefields) (eligible): no" in text
    why_text = text.split("  Why not:\n", 1)[1]
    assert why_text.startswith("    \u2717 At least three of the eleven published criteria: 1 of 11 met; "
                               "needs 2 more of:\n")
    assert ("\u2717 \u201ctwo or more A&E attendances in the past 12 months\u201d: count of A&E attendances "
            "in the last 12 months: 1; needs at least 2 (needs 1 more)") in why_text
    assert "outpatient" not in why_text.split("(criteria_met)")[0]


def test_unknowns_say_what_data_is_missing_and_what_would_decide_it(cf):
    result = cf["cf-unknown"]
    assert result.values()["eligible"] is None
    assert result.values()["criteria_met"] == {"between": [2, 5]}  # ADL and IADL never assessed: unknown
    data = explain_json(result)
    items = items_of(data)
    age = items[AGE_ITEM]
    assert age["status"] == "unknown"
    leaf = age["children"][0]
    assert leaf["comparison"]["actual_display"] == "64 or 65 years"
    assert leaf["missing"] == [{
        "what": "date of birth known only to the year (1956)",
        "action": "record the full date of birth (it holds if born on or before 1956-04-01, and not if born after)"}]
    ae = items["two or more A&E attendances in the past 12 months"]
    assert ae["status"] == "unknown"
    evidence = ae["children"][0]["evidence"][0]
    assert [i["source_id"] for i in evidence["counted"]] == ["ae1"]
    assert [(i["source_id"], i["date"], i["date_precision"]) for i in evidence["might_count"]] == [
        ("ae2", "2020", "year")]
    assert evidence["might_count"][0]["action"] == "record the exact date of ae2"
    assert ae["children"][0]["missing"][0]["source_id"] == "ae2"

    why = outcome(data, "eligible")["why_not"]
    assert [e["status"] for e in why] == ["unknown", "unknown"]
    assert find_entry(why, AGE_ITEM)["reason"].endswith(
        "date of birth known only to the year (1956): record the full date of birth "
        "(it holds if born on or before 1956-04-01, and not if born after)")
    criteria = find_entry(why, "At least three of the eleven published criteria")
    assert criteria["needs_more_of"]["count"] == 1
    assert "2 of 11 met, 3 unknown; needs 1 more of:" in criteria["reason"]
    text = explain_text(result)
    assert "? Eligible for case management (Castlefields) (eligible): not known" in text
    assert "missing: date of birth known only to the year (1956) \u2014 record the full date of birth" in text
    assert "ae2: A&E attendance, 2020 \u2014 date known only to the year (2020); record the exact date of ae2" in text


def test_evercare_living_arrangements_not_recorded():
    program = engine.load(LIBRARY / "evercare.pw")
    result = program.evaluate(EVERCARE_UNKNOWN, as_of=AS_OF, explain=True)
    assert result.values()["eligible"] is None
    assert result.values()["cognitively_impaired_alone_unstable"] is None
    data = explain_json(result)
    check_schema(data)
    why = outcome(data, "eligible")["why_not"]
    living = find_entry(why, "living alone")
    assert living["status"] == "unknown"
    assert living["reason"] == ("lives alone: not known \u2014 living arrangements not recorded: "
                                "record whether the patient lives alone")
    high_risk = find_entry(why, "Aged 65 or over with two or more unplanned admissions in the last 13 months")
    assert high_risk["status"] == "false"
    assert find_entry(why, "two or more unplanned hospital admissions in the last 13 months")["reason"].endswith(
        "1; needs at least 2 (needs 1 more)")
    leaf = node_by_id(data, "evercare.cognitively_impaired_alone_unstable/expr/items.1/expr")
    assert leaf["facts"] == [{"name": "lives_alone", "value": None, "display": "lives alone: not recorded"}]
    assert leaf["missing"] == [{"what": "living arrangements not recorded",
                                "action": "record whether the patient lives alone"}]
    text = explain_text(result)
    assert "? \u201cliving alone\u201d: unknown" in text
    assert "missing: living arrangements not recorded \u2014 record whether the patient lives alone" in text


# --- the pyramid: levels ---------------------------------------------------------------------------

def test_pyramid_levels_say_which_matched_and_why_not_higher(pyr):
    assert {k: r.values()["level"] for k, r in pyr.items()} == {
        "cf-eligible": 3, "cf-not-eligible": 2, "cf-unknown": 2}

    top = explain_json(pyr["cf-eligible"])
    level = outcome(top, "level")["level"]
    assert level == {"matched": 3, "label": "Case management", "higher_levels": []}
    # the imported protocol's outcome is expanded, with its own items
    castlefields_eligible = node_by_id(top, "castlefields.eligible")
    assert castlefields_eligible["name"] == "castlefields.eligible" and castlefields_eligible["status"] == "true"
    assert set(items_of(top)) == {*CASTLEFIELDS_ITEMS, AGE_ITEM}
    # evercare is not needed once castlefields holds (`or` stops at the first true)
    assert node_by_id(top, "ltc_pyramid.level/levels.0/condition")["children"][1]["status"] == "not_evaluated"
    check_schema(top)

    data = explain_json(pyr["cf-not-eligible"])
    level = outcome(data, "level")["level"]
    assert level["matched"] == 2 and level["label"] == "Disease-specific care management"
    [higher] = level["higher_levels"]
    assert higher["number"] == 3 and higher["status"] == "false"
    [either] = higher["why_not"]
    assert either["reason"] == ("none of these holds: Eligible for case management (Castlefields); "
                                "Eligible for Evercare case management")
    castle = find_entry(higher["why_not"], "Eligible for case management (Castlefields)")
    assert find_entry(castle["because"], "At least three of the eleven published criteria")["needs_more_of"][
        "count"] == 2
    levels = {n["number"]: n for n in outcome(data, "level")["tree"]["children"]}
    assert levels[2]["matched"] and levels[1]["status"] == "not_evaluated" and not levels[0]["matched"]
    check_schema(data)

    unknown = explain_json(pyr["cf-unknown"])
    [higher] = outcome(unknown, "level")["level"]["higher_levels"]
    assert higher["status"] == "unknown"  # a level whose condition is unknown is not assigned
    assert find_entry(higher["why_not"], AGE_ITEM)["status"] == "unknown"

    text = explain_text(pyr["cf-not-eligible"])
    assert "\u2022 Level of the long term conditions pyramid (level): level 2 \u201cDisease-specific care management\u201d" \
        in text
    assert "\u2713 level 2 \u201cDisease-specific care management\u201d: matched" in text
    assert "\u2013 level 1 \u201cSupported self care\u201d: not evaluated (a higher level matched)" in text
    assert "  Why not a higher level:\n    \u2717 level 3 \u201cCase management\u201d: no\n" in text
    assert "parameters:  castlefields.minimum_age = 65 years;" in text
    text = explain_text(pyr["cf-unknown"])
    assert "    ? level 3 \u201cCase management\u201d: unknown\n" in text


# --- envelope, determinism, renderings ---------------------------------------------------------------

def test_text_carries_the_envelope(cf):
    result = cf["cf-eligible"]
    text = explain_text(result)
    env = result.envelope
    head = text.split("\n\n", 1)[0]
    assert head.startswith("Explanation for patient cf-eligible\n")
    assert "protocol:    castlefields version 1.0.0" in head
    assert f"sha256:      {env['sha256'][:16]}" in head
    assert f"engine:      {env['engine_version']}" in head
    assert "as of:       2021-04-01" in head
    assert "parameters:  minimum_age = 65 years; minimum_criteria = 3; lookback = 12 months; cost_limit = £100" \
        in head
    assert f"record:      {env['record_fingerprint'][:23]}" in head
    data = explain_json(result)
    assert data["schema"] == SCHEMA == "ltc-pathways/explanation/1"
    assert data["envelope"] == env
    assert data["patient_id"] == "cf-eligible"


def test_explanations_are_deterministic(castlefields, pyramid):
    for program in (castlefields, pyramid):
        first, second = run(program), run(program)
        for pid in first:
            assert explain_text(first[pid]) == explain_text(second[pid])
            assert orjson.dumps(explain_json(first[pid])) == orjson.dumps(explain_json(second[pid]))
            assert json.dumps(explain_json(first[pid]), ensure_ascii=False) == \
                json.dumps(explain_json(second[pid]), ensure_ascii=False)


def test_record_item_order_does_not_change_the_explanation_tree(castlefields):
    shuffled = NOT_ELIGIBLE.model_copy(update={"encounters": tuple(reversed(NOT_ELIGIBLE.encounters)),
                                               "medications": tuple(reversed(NOT_ELIGIBLE.medications))})
    a = run(castlefields, records=(NOT_ELIGIBLE,))["cf-not-eligible"]
    b = run(castlefields, records=(shuffled,))["cf-not-eligible"]
    ja, jb = explain_json(a), explain_json(b)
    assert ja["outcomes"] == jb["outcomes"]  # the fingerprint differs; the explanation does not


def test_parameters_set_for_the_run_are_shown(castlefields):
    result = run(castlefields, records=(NOT_ELIGIBLE,), parameters={"cost_limit": "£75"})["cf-not-eligible"]
    text = explain_text(result)
    assert "cost_limit = £75 (set for this run)" in text
    data = explain_json(result)
    assert data["envelope"]["parameters"] == {"cost_limit": "£75"}
    assert [p for p in data["parameters"] if p["name"] == "cost_limit"] == [
        {"name": "cost_limit", "label": "Monthly prescribing cost limit", "value": 75, "display": "£75",
         "overridden": True}]
    cost = items_of(data)["prescribing costs exceeding £100 per month"]
    assert cost["status"] == "true"
    assert cost["children"][0]["summary"] == "total monthly cost of medications where status is active: £80; " \
                                             "needs more than £75"


def test_ascii_rendering(cf):
    text = explain_text(cf["cf-not-eligible"], ascii=True)
    assert text.isascii()
    assert 'x "two or more A&E attendances in the past 12 months": not met' in text
    assert cf["cf-not-eligible"].explain_text(ascii=True) == text


def test_result_methods_and_errors(castlefields, cf):
    result = cf["cf-eligible"]
    assert result.explain() == explain_json(result)
    assert result.explain_text() == explain_text(result)
    plain = next(iter(castlefields.evaluate_population([ELIGIBLE, *BACKGROUND], as_of=AS_OF)))
    with pytest.raises(engine.EngineError, match="explain=True"):
        explain_json(plain)


def test_definitions_are_expanded_once_and_referred_to_after(cf):
    data = explain_json(cf["cf-eligible"])
    expanded = [n for o in data["outcomes"] for n in nodes(o["tree"])
                if n["id"] == "castlefields.published_criteria" and "see" not in n]
    referred = [n for o in data["outcomes"] for n in nodes(o["tree"])
                if n["id"] == "castlefields.published_criteria" and "see" in n]
    assert len(expanded) == 1 and len(referred) == 1
    assert referred[0]["children"] == [] and referred[0]["see"] == "castlefields.published_criteria"
    criteria_met = outcome(data, "criteria_met")
    assert criteria_met["tree"]["children"][0]["kind"] == "items_met"
    assert criteria_met["tree"]["children"][0]["met"] == [
        CASTLEFIELDS_ITEMS[i] for i in (0, 1, 2, 4, 6, 8, 10)]


# --- scores, bands, none of, not, lists --------------------------------------------------------------

FRAILTY = '''protocol frail:
  version "0.1"

parameter cost_limit "Cost limit" = £50

criterion recent_falls "Two or more falls in the last year":
  count falls in the last 12 months at least 2

score frailty "Local frailty score":
  "lives alone" weight 2: lives_alone
  "any unplanned admission in the last year" weight 3: any emergency_admissions in the last 12 months
  "four or more medicines": count medications where status is active at least 4
  recent_falls weight 2

bands frailty_band "Frailty band" of frailty:
  fit "Fit": less than 2
  mild "Mild frailty": at most 3
  moderate "Moderate frailty": at most 5
  severe "Severe frailty": otherwise

criterion excluded "Excluded":
  none of:
    "has a carer": has_carer
    "costly": sum monthly_cost of medications more than cost_limit

criterion not_alone "Not living alone": not lives_alone and age at least 70 years

define falls_list "Falls": falls in the last 12 months
'''


@pytest.fixture(scope="module")
def frail() -> engine.Program:
    compiled = compile_text(FRAILTY, "frail.pw")
    assert compiled.protocol is not None
    return engine.compile(compiled.protocol)


def test_scores_bands_none_of_and_not(frail):
    record = PatientRecord(
        patient=Patient(id="f1", birth_date=D("1950-02-10"), lives_alone=True, has_carer=False),
        medications=(Medication(source_id="m1", code="x", start=D("2020-01-01"), monthly_cost=60.0),),
        encounters=(enc("ea1", "admission", "2021-02-01", "2021-02-03", "emergency"),),
        observations=(Observation(source_id="f1", kind="fall", date=D("2020")),
                      Observation(source_id="f2", kind="fall", date=D("2021-01-05"))))
    result = frail.evaluate(record, as_of=AS_OF, explain=True)
    assert result.values()["frailty"] == {"between": [5, 7]}
    data = explain_json(result)
    check_schema(data)
    score = outcome(data, "frailty")
    assert score["status"] == "uncertain" and score["display"] == "5 to 7"
    weights = {n["label"]: (n["weight"], n["status"]) for n in score["tree"]["children"]}
    assert weights == {"lives alone": (2, "true"), "any unplanned admission in the last year": (3, "true"),
                       "four or more medicines": (1, "false"),
                       "Two or more falls in the last year": (2, "unknown")}
    bands = outcome(data, "frailty_band")
    assert bands["value"] is None
    band_tests = [(n["name"], n["test"], n["status"]) for n in bands["tree"]["children"] if n["kind"] == "band"]
    assert band_tests == [("fit", "less than 2", "false"), ("mild", "at most 3", "false"),
                          ("moderate", "at most 5", "unknown"), ("severe", "otherwise", "not_evaluated")]
    excluded = outcome(data, "excluded")
    assert excluded["status"] == "false"
    [costly] = excluded["why_not"]
    assert costly["label"] == "\u201ccostly\u201d"
    assert costly["reason"] == "holds, and must not: total monthly cost of medications: £60; needs more than £50"
    not_alone = outcome(data, "not_alone")
    assert not_alone["status"] == "false"
    assert not_alone["why_not"][0]["reason"] == "lives_alone holds, and must not"
    falls = outcome(data, "falls_list")
    assert falls["status"] == "uncertain"
    assert [i["source_id"] for i in falls["evidence"][0]["counted"]] == ["f2"]
    assert [i["source_id"] for i in falls["evidence"][0]["might_count"]] == ["f1"]
    text = explain_text(result)
    assert "\u2713 \u201clives alone\u201d (weight 2): met, adds 2" in text
    assert "? band Moderate frailty (moderate): at most 5: unknown" in text
    assert "f1: fall, 2020 \u2014 date known only to the year (2020); record the exact date of f1" in text


def test_an_explicit_default_says_it_was_used():
    from dsl.compiler import compile_text
    source = ('protocol e:\n  version "1"\noutcomes alone, no_carer\n'
              'criterion alone "Lives alone (not recorded counts as no)": lives_alone is true\n'
              'criterion no_carer "No carer recorded": has_carer is not true\n')
    program = engine.compile(compile_text(source, "e.pw").protocol)
    result = program.evaluate(PatientRecord(patient=Patient(id="d")), as_of=AS_OF, explain=True)
    assert result.values() == {"alone": False, "no_carer": True}
    data = explain_json(result)
    defaults = [n["comparison"]["default_used"] for o in data["outcomes"] for n in nodes(o["tree"])
                if "default_used" in n.get("comparison", {})]
    assert defaults == ["not recorded, so the protocol's default was used: counted as no"] * 2
    assert "the protocol's default was used" in result.explain_text()
