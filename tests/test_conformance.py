"""Conformance cases: the settled semantics of docs/semantics.md, as data.

Each ``tests/conformance/*.toml`` file is a group of cases (``[[case]]``).
A case gives an expression (``expr``) or a small protocol body (``protocol``,
which declares ``value``), a run date (``as_of``), a compact patient record
(``record``), optional ``parameters``, and the ``expected`` value of ``value``
in the JSON form of results: true, false, a number, a string, a JSON object
(a duration, a range) or the string ``"unknown"`` for unknown (null).

A population case gives ``population`` (a list of records, each with its
``id``) and ``patient``, the id whose result is checked; ``record``, if
present, is added to the population.

The record is compact: patient fields (``id``, ``birth_date``, ``sex``,
``date_of_death``, ``practice``, ``lives_alone``, ``has_carer``) at its top
level, and lists named as in :class:`pathways.records.PatientRecord`
(``conditions``, ``medications``, ``encounters``, ``observations``,
``procedures``, ``life_events``, ``pathway_events``) whose items have the
fields of the record model. Dates are strings, and may be partial
(``"2020"``, ``"2020-03"``). An item without ``source_id`` gets one
(``encounters-1``...); ``repeat = N`` on an item stands for N copies of it.
``note`` is free text for readers. Imports (``uses "evercare.pw"``) are read
from ``library/``.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pytest

import engine
from dsl.compiler import compile_text
from dsl.diagnostics import render
from pathways import records as r

HERE = Path(__file__).resolve().parent
CASES = HERE / "conformance"
LIBRARY = HERE.parent / "library"

HEADER = 'protocol example:\n  version "1"\n\noutcomes value\n\n'
PATIENT_FIELDS = {"id", "birth_date", "sex", "date_of_death", "practice", "lives_alone", "has_carer"}
LISTS = {
    "conditions": r.Condition,
    "medications": r.Medication,
    "encounters": r.Encounter,
    "observations": r.Observation,
    "procedures": r.Procedure,
    "life_events": r.LifeEvent,
    "pathway_events": r.PathwayEventRecord,
}
DATE_FIELDS = {"birth_date", "date_of_death", "onset", "abatement", "start", "end", "date"}
CASE_KEYS = {"name", "expr", "protocol", "as_of", "record", "parameters", "expected", "population", "patient",
             "note"}


def _plain(value):
    """TOML dates (written without quotes) become ISO text, as partial dates are."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _dates(fields: dict) -> dict:
    return {k: r.PartialDate.parse(str(v)) if k in DATE_FIELDS and v is not None else v for k, v in fields.items()}


def build_record(data: dict, default_id: str = "patient") -> r.PatientRecord:
    data = _plain(data)
    unknown = set(data) - PATIENT_FIELDS - set(LISTS)
    if unknown:
        raise ValueError(f"record has unknown fields {sorted(unknown)}")
    patient = r.Patient(**_dates({"id": default_id, **{k: v for k, v in data.items() if k in PATIENT_FIELDS}}))
    lists = {}
    for name, model in LISTS.items():
        items = []
        for item in data.get(name, []):
            item = dict(item)
            repeat = item.pop("repeat", 1)
            for copy in range(repeat):
                source_id = item.get("source_id", f"{name}-{len(items) + 1}")
                if repeat > 1 and "source_id" in item:
                    source_id = f"{source_id}-{copy + 1}"
                items.append(model(**_dates({**item, "source_id": source_id})))
        lists[name] = tuple(items)
    return r.PatientRecord(patient=patient, **lists)


def protocol_text(case: dict) -> str:
    if ("expr" in case) == ("protocol" in case):
        raise ValueError("a case has either `expr` or `protocol`")
    if "expr" in case:
        return HEADER + "define value: " + case["expr"].strip() + "\n"
    return HEADER + case["protocol"].strip() + "\n"


def compile_case(case: dict) -> engine.Program:
    text = protocol_text(case)
    compiled = compile_text(text, file="case.pw", base_dir=LIBRARY)
    errors = [d for d in compiled.diagnostics if d.severity == "error"]
    if compiled.protocol is None or errors:
        raise AssertionError("the case does not compile:\n" + text + "\n"
                             + "\n".join(render(d, compiled.sources.get(d.file)) for d in errors))
    return engine.compile(compiled.protocol)


def evaluate_case(case: dict, explain: bool = False):
    """The JSON value of ``value`` for the case's patient. ``explain``: through the
    traced evaluator, which never takes engine.fast_roads' shortcuts."""
    program = compile_case(case)
    as_of = _plain(case["as_of"])
    parameters = case.get("parameters")
    if "population" in case:
        records = [build_record(p, default_id=f"member-{i + 1}") for i, p in enumerate(case["population"])]
        if "record" in case:
            records.append(build_record(case["record"]))
        wanted = case.get("patient", "patient")
        results = {res.patient_id: res for res in program.evaluate_population(records, as_of=as_of,
                                                                                parameters=parameters,
                                                                                explain=explain)}
        return results[wanted].values()["value"]
    record = build_record(case.get("record", {}))
    return program.evaluate(record, as_of=as_of, parameters=parameters, explain=explain).values()["value"]


def _matches(actual, expected) -> bool:
    if expected == "unknown":
        return actual is None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return actual == pytest.approx(expected)
    return actual == _plain(expected)


def load_cases() -> list:
    params = []
    for path in sorted(CASES.glob("*.toml")):
        with path.open("rb") as f:
            data = tomllib.load(f)
        seen = set()
        for case in data.get("case", []):
            extra = set(case) - CASE_KEYS
            assert not extra, f"{path.name}: case {case.get('name')!r} has unknown keys {sorted(extra)}"
            assert case["name"] not in seen, f"{path.name}: two cases called {case['name']!r}"
            seen.add(case["name"])
            params.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return params


ALL_CASES = load_cases()


@pytest.mark.parametrize("explain", [False, True], ids=["fast", "traced"])
@pytest.mark.parametrize("case", ALL_CASES)
def test_case(case, explain):
    actual = evaluate_case(case, explain)
    expected = case["expected"]
    assert _matches(actual, expected), (
        f"{case['name']}: expected {expected!r}, got {actual!r}\n{protocol_text(case)}as of {case['as_of']}")


def test_there_are_enough_cases():
    groups = {p.id.split(":")[0] for p in ALL_CASES}
    assert len(ALL_CASES) >= 120 and len(groups) >= 10


# --- population-relative terms need a population -------------------------------------------------

def test_a_population_term_for_one_patient_alone_is_an_error():
    program = compile_case({"protocol": "define value: count gp_consultations in the last 12 months "
                                        "is in the top 3% of practice"})
    record = build_record({"practice": "P1", "encounters": [{"kind": "gp", "start": "2021-03-01"}]})
    with pytest.raises(engine.PopulationRequired, match="evaluate_population"):
        program.evaluate(record, as_of="2021-04-01")


def test_a_population_of_one_is_allowed():
    program = compile_case({"expr": "count gp_consultations in the last 12 months is in the top 3% of practice"})
    record = build_record({"practice": "P1", "encounters": [{"kind": "gp", "start": "2021-03-01"}]})
    [result] = program.evaluate_population([record], as_of="2021-04-01")
    assert result.values()["value"] is False  # nobody above the lowest of a group of one


def test_every_evaluation_needs_an_as_of_date():
    program = compile_case({"expr": "age at least 65 years"})
    with pytest.raises(engine.EngineError, match="as_of"):
        program.evaluate(build_record({}), as_of=None)


def test_the_error_does_not_depend_on_the_patient_data():
    # `and` stops at a false left side; the error must not depend on that.
    program = compile_case({"protocol": "criterion frequent: count gp_consultations in the last 12 months "
                                        "is in the top 3% of practice\n"
                                        "define value: age at least 65 years and frequent"})
    for born in ("1940-01-01", "1970-01-01"):
        with pytest.raises(engine.PopulationRequired, match="top 3% of practice` ranks a patient"):
            program.evaluate(build_record({"birth_date": born, "practice": "P1"}), as_of="2021-04-01")


def test_an_imported_ranking_needs_a_population_too():
    program = compile_case({"protocol": 'uses "castlefields.pw" as castlefields\n'
                                        "define value: castlefields.eligible"})
    with pytest.raises(engine.PopulationRequired, match="top 3% of practice"):
        program.evaluate(build_record({"birth_date": "1970-01-01"}), as_of="2021-04-01")


def test_declarations_without_rankings_need_no_population():
    program = compile_case({"protocol": 'uses "castlefields.pw" as castlefields\n'
                                        "define value: count castlefields.long_term_medicines"})
    assert program.evaluate(build_record({}), as_of="2021-04-01").values()["value"] == 0


def test_the_explanation_shows_a_default_was_used():
    # docs/semantics.md, "Absence": the rule as written and the missing fact are both shown.
    program = compile_case({"expr": "lives_alone is true"})
    result = program.evaluate(build_record({}), as_of="2021-04-01", explain=True)
    assert result.values()["value"] is False
    text = result.explain_text()
    assert "lives_alone is true" in text and "not recorded" in text
