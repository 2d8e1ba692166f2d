"""The fast roads (engine/fast_roads.py and the shortcuts of the untraced evaluator)
give exactly what the general road gives.

The traced evaluator (``explain=True``) never takes a fast road, so it is the
reference: every declaration of every library protocol, and of the protocols
it imports, is evaluated both ways on generated patients whose dates are
partly blurred to the month or the year (so that both the roads and their
hand-overs to the general road are exercised), at several as-of dates, as
plain records and as prepared ones (``engine.prepare``). The conformance
cases run through both roads as well (tests/test_conformance.py).
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.evaluate import Ctx
from engine.fast_roads import fast_road
from engine.record_index import RecordIndex
from pathways import model as m
from pathways.records import PartialDate
from pathways.walk import walk
from synthetic import generate

LIBRARY = Path(__file__).resolve().parent.parent / "library"
PROTOCOLS = sorted(p.name for p in LIBRARY.glob("*.pw") if not p.stem.endswith("_tests"))
PROGRAMS = {name: engine.load(LIBRARY / name) for name in PROTOCOLS}

#: Shapes of window the library does not use, so that every road is compared: windows that
#: are not under a count (a sum, a latest date, a list, a filter after the window), windows
#: before, after and between dates (strict and inclusive ends), assessments in a window,
#: and counts per period and durations in other units.
SHAPES = """protocol shapes:
  version "1"

define recent_falls "Falls in the last year": falls in the last 12 months
define last_fall "Latest fall in the last year": latest date of falls in the last 12 months
define recent_cost "Cost of medicines started in the last 6 months": sum monthly_cost of medications in the last 6 months
define unplanned_recent "Emergency admissions in the last year": count (admissions in the last 12 months) where method is emergency
define old_admissions "Admissions before 2022": count admissions before 2022-01-01
define since "GP consultations after mid-2023": count gp_consultations after 2023-06-30
define winter "A&E attendances last winter": count ae_attendances between 2023-11-01 and 2024-02-29
define ago "GP consultations between 6 and 3 months ago": count gp_consultations between 6 months ago and 3 months ago
define impaired "ADL impairments in the last year": adl_impairments in the last 12 months
define no_impairment "No IADL impairment in the last 2 years": no iadl_impairments in the last 2 years
define busiest "Most GP consultations in a month, last 6 months": highest count per 1 month of gp_consultations in the last 6 months
define average_ae "A&E attendances per 4 weeks": average count per 4 weeks of ae_attendances in the last 24 weeks
define long_medicines "Medicines for a year or more": count medications where duration at least 1 year
define long_conditions "Conditions for 400 days or more": count conditions where duration at least 400 days
define older "Aged 80 or more": age at least 80 years
define total "Days in hospital in the last 2 years": total stay of admissions in the last 2 years
"""


def blur(record, rng: random.Random, share: float):
    """The record with about ``share`` of its dates cut to the month or the year."""
    def cut(date):
        if date is None or rng.random() >= share:
            return date
        return PartialDate.parse(date.text[:7] if rng.random() < 0.6 else date.text[:4])

    def item(it):
        fields = {f: cut(getattr(it, f)) for f in ("onset", "abatement", "start", "end", "date")
                  if f in type(it).model_fields}
        if "start" in fields and fields["start"] is None:
            fields.pop("start")  # an encounter always has a start
        return it.model_copy(update=fields)

    lists = {name: tuple(item(it) for it in getattr(record, name))
             for name in ("conditions", "medications", "encounters", "observations", "procedures", "life_events",
                          "pathway_events")}
    patient = record.patient.model_copy(update={"birth_date": cut(record.patient.birth_date)})
    return record.model_copy(update={"patient": patient, **lists})


def every_declaration(compiled, ctx, prefix=""):
    """name -> value of every evaluable declaration of a compiled protocol and its imports."""
    out = {}
    for name, fn in compiled.fns.items():
        out[prefix + name] = fn(ctx)
    for alias, sub in compiled.imports.items():
        out.update(every_declaration(sub, ctx.sub(alias), f"{prefix}{alias}."))
    return out


def both_roads(program: engine.Program, records, as_of: dt.date):
    population = program.distributions(records, as_of) if program.population_terms() else None
    fast, traced = program._compiled(False), program._compiled(True)
    for record in records:
        for index in (RecordIndex(record), engine.prepare(record)):
            quick = every_declaration(fast, Ctx(fast, index, as_of, {}, None, population))
            slow = every_declaration(traced, Ctx(traced, RecordIndex(record), as_of, {}, {}, population))
            yield record.id, quick, slow


def _shapes() -> engine.Program:
    from dsl.compiler import compile_text
    result = compile_text(SHAPES, "shapes.pw", LIBRARY)
    assert result.protocol is not None, [d.message for d in result.diagnostics]
    return engine.compile(result.protocol)


PROGRAMS["shapes"] = _shapes()


@pytest.mark.parametrize("name", [*PROTOCOLS, "shapes"])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), share=st.sampled_from([0.0, 0.05, 0.3]),
       day=st.sampled_from(["2024-04-01", "2023-02-28", "2021-03-31"]))
def test_fast_and_traced_roads_agree_on_every_declaration(name, seed, share, day):
    rng = random.Random(seed)
    records = [blur(r, rng, share) for r in generate(40, seed, "2024-04-01")]
    for patient, quick, slow in both_roads(PROGRAMS[name], records, dt.date.fromisoformat(day)):
        assert quick == slow, f"{name}, patient {patient}, as of {day}: " + ", ".join(
            f"{k}: fast {quick[k]!r} vs traced {slow[k]!r}" for k in quick if quick[k] != slow[k])


def test_castlefields_takes_the_fast_roads():
    """The roads this file checks are the ones Castlefields' criteria use: a windowed
    count, a count per period and an age (if a change to the model stopped them
    matching, the comparison above would pass without testing them)."""
    protocol = PROGRAMS["castlefields.pw"].protocol
    compiled = PROGRAMS["castlefields.pw"]._compiled(False)
    taken = {node.kind for decl in protocol.declarations for node in walk(decl)
             if isinstance(node, (m.Aggregate, m.PerPeriod, m.Compare))
             and fast_road(compiled, node, lambda ctx: None) is not None}
    assert taken == {"aggregate", "per_period", "compare"}


def test_a_prepared_record_is_evaluated_as_the_record_is():
    program = PROGRAMS["ltc_pyramid.pw"]
    records = generate(30, 7, "2024-04-01")
    plain = [r.values() for r in program.evaluate_population(records, as_of="2024-04-01")]
    prepared = [r.values() for r in program.evaluate_population([engine.prepare(r) for r in records],
                                                                as_of="2024-04-01")]
    assert plain == prepared
    # and one prepared record serves several dates and protocols
    index = engine.prepare(records[0])
    population = program.distributions(records, "2023-01-01")
    again = program.evaluate(index, as_of="2023-01-01", population=population).values()
    assert again == program.evaluate(records[0], as_of="2023-01-01", population=population).values()


def test_every_window_shape_agrees_on_its_edges():
    """Items on each edge of each window of SHAPES (and a day either side), dated to the day:
    the fast roads take them all, and must keep exactly what the traced road keeps."""
    from pathways.records import Encounter, Medication, Observation, Patient, PatientRecord

    as_of = dt.date(2024, 4, 1)
    edges = [dt.date(2023, 4, 1), dt.date(2022, 4, 1), dt.date(2023, 10, 1), dt.date(2024, 1, 1),
             dt.date(2022, 1, 1), dt.date(2023, 6, 30), dt.date(2023, 11, 1), dt.date(2024, 2, 29), as_of]
    days = sorted({d + dt.timedelta(k) for d in edges for k in (-1, 0, 1)})

    def on(day):
        return PartialDate.of(day)

    record = PatientRecord(
        patient=Patient(id="edges", birth_date=PartialDate.parse("1944-04-01")),
        encounters=tuple(Encounter(kind=kind, method="emergency" if i % 2 else "elective", start=on(d),
                                   end=on(d + dt.timedelta(3)), source_id=f"{kind}-{i}")
                         for kind in ("admission", "ae", "gp") for i, d in enumerate(days)),
        observations=tuple(Observation(kind=kind, impaired=bool(i % 3), date=on(d), source_id=f"{kind}-{i}")
                           for kind in ("fall", "adl", "iadl") for i, d in enumerate(days)),
        medications=tuple(Medication(code=f"m{i}", start=on(d), monthly_cost=12.5 + i, source_id=f"m-{i}")
                          for i, d in enumerate(days)))
    program = PROGRAMS["shapes"]
    for day in (as_of, dt.date(2024, 2, 29), dt.date(2023, 6, 30)):
        for _patient, quick, slow in both_roads(program, [record], day):
            assert quick == slow, f"as of {day}: " + ", ".join(
                f"{k}: fast {quick[k]!r} vs traced {slow[k]!r}" for k in quick if quick[k] != slow[k])
