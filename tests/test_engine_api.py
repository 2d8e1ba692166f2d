"""The embedding API's promises beyond single evaluations."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import engine
from synthetic import generate, iter_generate

LIBRARY = Path(__file__).resolve().parent.parent / "library"
AS_OF = dt.date(2021, 4, 1)


def test_a_re_readable_source_streams_both_passes_and_gives_the_same_results():
    program = engine.load(LIBRARY / "castlefields.pw")
    reads = []

    def source():
        reads.append(1)
        return iter_generate(60, seed=7, as_of=AS_OF)

    streamed = [r.values() for r in program.evaluate_population(source, as_of=AS_OF)]
    held = [r.values() for r in program.evaluate_population(generate(60, seed=7, as_of=AS_OF), as_of=AS_OF)]
    assert len(reads) == 2  # one pass for the group distributions, one for the results
    assert streamed == held


def test_items_met_agrees_with_the_list_it_counts():
    program = engine.load(LIBRARY / "castlefields.pw")
    for result in program.evaluate_population(generate(200, seed=3, as_of=AS_OF), as_of=AS_OF, explain=True):
        met = result.values()["criteria_met"]
        items = program.protocol.get("published_criteria").expr.items
        values = [result.trace[item.id] for item in items]
        true, unknown = values.count(True), values.count(None)
        assert met == (true if not unknown else {"between": [true, true + unknown]})


import pytest  # noqa: E402


@pytest.mark.parametrize("call, words", [
    (lambda p, r: p.evaluate(r, 20240401), "as_of must be a datetime.date or text YYYY-MM-DD; got int"),
    (lambda p, r: p.evaluate(r, None), "explicit as_of date"),
    (lambda p, r: p.evaluate(r, AS_OF, parameters=["lookback=24 months"]), "parameters must map"),
    (lambda p, r: p.evaluate(r, AS_OF, parameters="lookback=24 months"), "got str"),
    (lambda p, r: p.evaluate(r.model_dump(mode="json"), AS_OF), "PatientRecord.model_validate"),
    (lambda p, r: p.evaluate(None, AS_OF), "got NoneType"),
    (lambda p, r: list(p.evaluate_population(r, AS_OF)), "for one record, use evaluate"),
    (lambda p, r: list(p.evaluate_population([r, {"patient": {}}], AS_OF)), "got dict"),
])
def test_a_wrong_argument_gets_an_engine_error_naming_it(call, words):
    """An embedding system's mistake (a wrong type of argument) is an EngineError that says what
    was expected, not an AttributeError from inside the engine."""
    program = engine.load(LIBRARY / "evercare.pw")
    record = generate(1, 3, "2021-04-01")[0]
    with pytest.raises(engine.EngineError) as caught:
        call(program, record)
    assert words in str(caught.value)
