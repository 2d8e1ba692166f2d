"""The hand-written Castlefields of the engine benchmark (benchmarks/castlefields_by_hand.py)
gives the engine's values: it is a fair ceiling only while it computes the same thing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import engine
from engine.generate import generate

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from castlefields_by_hand import disagreements, exact, prepared  # noqa: E402

AS_OF = "2024-04-01"


@pytest.fixture(scope="module")
def castlefields():
    return engine.load(ROOT / "library" / "castlefields.pw")


def test_the_hand_written_criteria_give_the_engines_values(castlefields):
    records = list(generate(800, seed=7, as_of=AS_OF))
    subset, population, criteria = prepared(castlefields, records, AS_OF)
    assert len(subset) > 400  # most generated records date everything to the day
    assert disagreements(castlefields, subset, population, criteria, AS_OF) == []
    # the criteria are not all one value on these records: the check has something to compare
    values = [criteria(r) for r in subset]
    assert {v[0] for v in values} >= {True, False}
    assert len({v[1] for v in values}) > 3


def test_a_record_with_a_date_known_to_the_month_is_left_to_the_engine():
    record = next(generate(1, seed=3, as_of=AS_OF))
    assert exact(record)
    born = record.patient.model_copy(update={"birth_date": record.patient.birth_date.model_copy(
        update={"text": record.patient.birth_date.text[:7]})})
    assert not exact(record.model_copy(update={"patient": born}))


def test_a_wrong_hand_written_criterion_is_found(castlefields):
    records = list(generate(300, seed=11, as_of=AS_OF))
    subset, population, criteria = prepared(castlefields, records, AS_OF)

    def off_by_one(record):
        eligible, met, items = criteria(record)
        return eligible, (met[0] + 1, met[1] + 1), items
    assert len(disagreements(castlefields, subset, population, off_by_one, AS_OF)) == len(subset)
