"""Overriding parameters from a caller, a test or the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.compiler import compile_file
from dsl.params import override, parse_value

LIBRARY = Path(__file__).resolve().parent.parent / "library"


@pytest.fixture(scope="module")
def pyramid():
    return compile_file(LIBRARY / "ltc_pyramid.pw").protocol


def test_override_an_imported_threshold_keeps_ids(pyramid):
    new, problems = override(pyramid, {"castlefields.minimum_criteria": "2", "evercare.admission_window": "12 months"})
    assert problems == []
    castlefields = new.uses[1].protocol
    param = castlefields.get("minimum_criteria")
    assert (param.default.value, param.default.id) == (2.0, "castlefields.minimum_criteria/default")
    window = new.uses[2].protocol.get("admission_window").default
    assert (window.value, window.unit) == (12.0, "months")
    # the original is untouched
    assert pyramid.uses[1].protocol.get("minimum_criteria").default.value == 3.0


@pytest.mark.parametrize("values, code, fragment", [
    ({"castlefields.minimum_age": "65"}, "PW702", "is a duration; 65 is a number"),
    ({"castlefields.cost_limit": "100"}, "PW702", "is an amount of money (GBP)"),
    ({"castlefields.minimum_criterion": "2"}, "PW701", "did you mean `minimum_criteria`?"),
    ({"castlefield.minimum_criteria": "2"}, "PW703", "did you mean `castlefields`?"),
    ({"castlefields.lookback": "12 monts"}, "PW700", "is not a value"),
    ({"castlefields.lookback": "12 monts"}, "PW700", "did you mean `months`?"),
    ({"castlefields.cost_limit": "100 pounds"}, "PW700", "`£100`"),
])
def test_bad_overrides_are_explained(pyramid, values, code, fragment):
    new, problems = override(pyramid, values)
    assert new is None
    assert [p.code for p in problems] == [code]
    assert fragment in problems[0].message + " " + (problems[0].help or "")


def test_a_date_written_day_first_gets_the_date_as_the_language_writes_it():
    _, problems = parse_value("01/05/2024", "parameter start")
    assert [p.code for p in problems] == ["PW700"] and problems[0].help == "write it as `2024-05-01`"


def test_values_are_read_as_in_the_language():
    assert parse_value("£150", "x")[0].unit == "gbp"
    assert parse_value("2021-04-01", "x")[0].value == "2021-04-01"
    assert parse_value("true", "x")[0].value is True
    assert parse_value("age", "x")[0] is None


def test_an_override_reaches_the_protocol_wherever_it_is_imported_under_that_alias():
    """case_management imports Castlefields directly and through the pyramid, both as
    `castlefields`: `castlefields.minimum_criteria` sets both (one evaluation serves both
    routes); a path through another import is refused, naming what can be set."""
    import engine
    from engine.evaluate import Ctx
    from engine.record_index import RecordIndex
    from synthetic import generate

    program = engine.load(Path(__file__).resolve().parent.parent / "library" / "case_management.pw")
    records = generate(60, 11, "2024-04-01")
    population = program.distributions(records, "2024-04-01")
    overrides = program.parameters({"castlefields.minimum_criteria": "1"})
    compiled = program._compiled(False)
    changed = 0
    for record in records:
        ctx = Ctx(compiled, RecordIndex(record), engine.program._as_date("2024-04-01"), overrides, None, population)
        direct = ctx.sub("castlefields")
        nested = ctx.sub("pyramid").sub("castlefields")
        assert nested is direct  # the same inputs: one context, one evaluation
        assert direct.params == {"minimum_criteria": 1}
        plain = program.evaluate(record, "2024-04-01", population=population).values()
        moved = program.evaluate(record, "2024-04-01", parameters={"castlefields.minimum_criteria": "1"},
                                 population=population).values()
        changed += plain != moved
    assert changed > 0
    only_pyramid = engine.load(Path(__file__).resolve().parent.parent / "library" / "ltc_pyramid.pw")
    with pytest.raises(engine.EngineError, match="imports nothing called `pyramid.castlefields`|PW703"):
        program.parameters({"pyramid.castlefields.minimum_criteria": "1"})
    assert only_pyramid.parameters({"castlefields.minimum_criteria": "1"})  # the pyramid imports it directly
