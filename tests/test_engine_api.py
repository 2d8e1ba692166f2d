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
