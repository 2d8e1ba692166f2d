"""The synthetic population generator (engine/generate.py), `pathways generate` and `pathways demo`.

Most checks share one streamed 20,000-patient population (``population``
below): two passes of the generator, as a population run makes them, with
Castlefields and Evercare traced (so each published item can be seen true
or not) and the pyramid's levels.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

import engine
from engine import generate as gen
from engine.generate import generate, make_patient
from pathways.records import PatientRecord
from tui.cli import cli

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "library"
AS_OF = dt.date(2024, 4, 1)
SEED = 1
N = 20_000
BANDS = ((0, 18), (18, 45), (45, 65), (65, 75), (75, 85), (85, 200))
ACTIVE = ("active", "recurrence", "relapse")


def _age(record: PatientRecord) -> float:
    return (AS_OF - record.patient.birth_date.earliest).days / 365.25


def _band(age: float) -> tuple[int, int]:
    return next(b for b in BANDS if b[0] <= age < b[1])


def _nights_last_year(record: PatientRecord) -> int:
    """Bed days in the last 12 months (overlaps not merged: a rough figure for the tail)."""
    start = AS_OF - dt.timedelta(days=365)
    nights = 0
    for e in record.encounters:
        if e.kind == "admission":
            end = e.end.latest if e.end else AS_OF
            nights += max(0, (min(end, AS_OF) - max(e.start.earliest, start)).days)
    return nights


@pytest.fixture(scope="module")
def population():
    """One streamed pass over N patients, gathering everything the tests below look at."""
    castlefields = engine.load(LIBRARY / "castlefields.pw")
    evercare = engine.load(LIBRARY / "evercare.pw")
    pyramid = engine.load(LIBRARY / "ltc_pyramid.pw")
    # the pyramid's ranking term is Castlefields' (the same term id), so its distributions serve both
    dist = pyramid.distributions(generate(N, SEED, AS_OF), AS_OF)
    items = {f"castlefields: {i.label}": i.id for i in castlefields.protocol.get("published_criteria").expr.items}
    items.update({f"castlefields: {i.label}": i.id for i in castlefields.protocol.get("eligible").expr.items
                  if i.label})
    for name in ("high_risk_by_admissions", "cognitively_impaired_alone_unstable"):
        items.update({f"evercare: {i.label}": i.id for i in evercare.protocol.get(name).expr.items})
    true_items: Counter = Counter()
    outcomes: Counter = Counter()
    levels: Counter = Counter()
    by_band: dict = {b: Counter() for b in BANDS}
    facts: Counter = Counter()
    nights, gp = [], []
    ltc = set(gen.LTC_CODES)
    for record in generate(N, SEED, AS_OF):
        c = castlefields.evaluate(record, AS_OF, population=dist, explain=True)
        e = evercare.evaluate(record, AS_OF, explain=True)
        for label, node_id in items.items():
            trace = c.trace if label.startswith("castlefields") else e.trace
            true_items[label] += trace.get(node_id) is True
        for prefix, result in (("castlefields", c), ("evercare", e)):
            for name, value in result.values().items():
                if value is True:
                    outcomes[f"{prefix}.{name}"] += 1
        levels[pyramid.evaluate(record, AS_OF, population=dist).outcomes["level"]] += 1
        # the records themselves
        age = _age(record)
        band = by_band[_band(age)]
        active = sum(1 for x in record.conditions if x.code in ltc and x.status in ACTIVE)
        band["patients"] += 1
        band["any ltc"] += active >= 1
        band["multimorbid"] += active >= 2
        p = record.patient
        facts["birth date to the month"] += p.birth_date.precision == "month"
        facts["birth date to the year"] += p.birth_date.precision == "year"
        facts["deceased"] += p.date_of_death is not None
        facts[f"lives alone {p.lives_alone}"] += 1
        facts[f"has carer {p.has_carer}"] += 1
        facts["resolved ltc"] += any(x.code in ltc and x.status == "resolved" for x in record.conditions)
        admissions = sorted((x for x in record.encounters if x.kind == "admission"), key=lambda x: x.start.earliest)
        facts["still in hospital"] += any(x.end is None for x in admissions)
        facts["emergency admission"] += any(x.method == "emergency" for x in admissions)
        facts["elective admission"] += any(x.method == "elective" for x in admissions)
        facts["overlapping stays"] += any(a.end is not None and b.start.earliest < a.end.earliest
                                          for a, b in zip(admissions, admissions[1:]))
        kinds = Counter(x.kind for x in record.encounters)
        for kind in ("ae", "outpatient", "gp", "community", "social_work"):
            facts[kind] += kinds[kind] > 0
        facts["medicine cost unknown"] += any(m.monthly_cost is None for m in record.medications)
        facts["medicine stopped"] += any(m.status == "stopped" and m.end is not None for m in record.medications)
        for kind in ("adl", "iadl", "cognition"):
            found = {o.impaired for o in record.observations if o.kind == kind}
            facts[f"{kind} impaired"] += True in found
            facts[f"{kind} not impaired"] += False in found
        facts["no assessment"] += not any(o.kind in ("adl", "iadl", "cognition") for o in record.observations)
        facts["fall"] += any(o.kind == "fall" for o in record.observations)
        facts["bereavement"] += any(x.event == "bereavement" for x in record.life_events)
        facts["on a pathway"] += bool(record.pathway_events)
        nights.append(_nights_last_year(record))
        gp.append(kinds["gp"])
    return {"items": true_items, "outcomes": outcomes, "levels": levels, "bands": by_band, "facts": facts,
            "nights": nights, "gp": gp, "item_names": sorted(items)}


# --- determinism and streaming ----------------------------------------------------------------------

def test_the_same_seed_gives_the_same_records_and_a_prefix_is_stable():
    a = list(generate(300, 5, AS_OF))
    assert a == list(generate(300, 5, "2024-04-01"))
    assert a[:40] == list(generate(40, 5, AS_OF))
    assert a[123] == make_patient(5, 123, AS_OF)
    assert a != list(generate(300, 6, AS_OF))
    assert len({r.id for r in a}) == 300
    random.seed(0)  # a shared Random elsewhere does not disturb it
    assert a[:40] == list(generate(40, 5, AS_OF))


def test_generation_is_lazy():
    records = generate(10**12, 1, AS_OF)  # nothing is drawn until asked for
    assert next(records).id == "syn-1-000000"


def test_memory_stays_flat_while_streaming_50000_patients():
    """In a fresh process: the peak resident memory over a 50,000-patient stream grows by a
    few MiB at most after a warm-up (bounded caches filling), while holding the same records would take over a GiB
    (measured with tracemalloc on 1,000 held records)."""
    code = textwrap.dedent("""
        import resource, tracemalloc
        from engine.generate import generate
        def peak():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        stream = generate(50_000, 3, "2024-04-01")
        for _ in range(2_000):  # warm-up: imports, caches
            next(stream)
        before = peak()
        for _ in stream:
            pass
        after = peak()
        tracemalloc.start()
        held = list(generate(1_000, 3, "2024-04-01"))
        one_thousand = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        print(after - before, one_thousand * 50)
    """)
    if not sys.platform.startswith("linux"):
        pytest.skip("ru_maxrss is in KiB on Linux only")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    growth, holding = (int(x) for x in out.stdout.split())
    assert holding > 500 * 2**20  # holding 50,000 records: over 500 MiB
    assert growth < 40 * 2**20, f"streaming grew by {growth / 2**20:.1f} MiB"
    assert growth < holding / 20


# --- realism --------------------------------------------------------------------------------------

def test_the_age_structure_is_englands(population):
    bands = population["bands"]
    share = {b: bands[b]["patients"] / N for b in BANDS}
    # ONS mid-2022 England: about 21% under 18, 19% aged 65+, 2.4% aged 85+
    assert 0.19 <= share[(0, 18)] <= 0.23
    assert 0.17 <= share[(65, 75)] + share[(75, 85)] + share[(85, 200)] <= 0.21
    assert 0.018 <= share[(85, 200)] <= 0.03


def test_an_extract_from_a_minimum_age_keeps_only_those_ages():
    records = list(generate(500, 2, AS_OF, min_age=65))
    ages = [_age(r) for r in records]
    assert min(ages) >= 64.9 and max(ages) < 105
    # a practice of about 9,000 registered patients has about 1,700 aged 65+
    assert 0.17 < gen.share_at_least(65) < 0.21
    assert abs(gen.practice_size(2, 0, min_age=65) - gen.practice_size(2, 0) * gen.share_at_least(65)) <= 1


def test_long_term_conditions_and_multimorbidity_rise_with_age(population):
    bands = population["bands"]
    any_ltc = [bands[b]["any ltc"] / bands[b]["patients"] for b in BANDS]
    multi = [bands[b]["multimorbid"] / bands[b]["patients"] for b in BANDS]
    assert any_ltc == sorted(any_ltc) and multi == sorted(multi)
    # overall about a third have a long term condition (DOMAIN.md: 17.5 million in England)
    overall = sum(bands[b]["any ltc"] for b in BANDS) / N
    assert 0.25 <= overall <= 0.40
    assert multi[0] < 0.02 and multi[1] < 0.08  # children, young adults
    assert 0.08 <= multi[2] <= 0.30  # 45-64
    assert 0.25 <= multi[3] <= 0.55  # 65-74
    assert 0.40 <= multi[5] <= 0.80  # 85 and over: most (Barnett et al. 2012)


def test_hospital_use_is_heavy_tailed(population):
    nights = sorted((n for n in population["nights"] if n > 0), reverse=True)
    top = nights[: max(1, len(nights) // 20)]
    # DOMAIN.md: 5% of inpatients account for 42% of acute bed days
    assert 0.30 <= sum(top) / sum(nights) <= 0.55
    gp = sorted(population["gp"], reverse=True)
    assert sum(gp[: N // 10]) / sum(gp) >= 0.3  # frequent attenders: a tenth make a third of the visits
    assert gp.count(0) > N // 10  # and many do not come at all


def test_the_records_hold_every_kind_of_fact_the_protocols_read(population):
    facts = population["facts"]
    for fact in ("birth date to the month", "birth date to the year", "deceased", "lives alone True",
                 "lives alone False", "lives alone None", "has carer True", "has carer False", "has carer None",
                 "resolved ltc", "still in hospital", "emergency admission", "elective admission",
                 "overlapping stays", "ae", "outpatient", "gp", "community", "social_work",
                 "medicine cost unknown", "medicine stopped", "adl impaired", "adl not impaired",
                 "iadl impaired", "iadl not impaired", "cognition impaired", "cognition not impaired",
                 "fall", "bereavement", "on a pathway"):
        assert facts[fact] > 0, fact
    assert facts["no assessment"] > N * 0.8  # most people have never had an ADL/IADL/cognitive assessment


def test_practices_have_realistic_sizes():
    sizes = [gen.practice_size(9, j) for j in range(3000)]
    sizes.sort()
    assert 7_500 <= sizes[len(sizes) // 2] <= 9_500  # median
    assert 8_500 <= sum(sizes) / len(sizes) <= 10_500  # mean (NHS Digital: about 10,000)
    # a small sample is one practice, so it is one meaningful ranking group
    assert {r.patient.practice for r in generate(300, 9, AS_OF)} == {"P0001"}


def test_the_generator_knows_every_code_the_library_lists():
    """Every long term condition code the generator writes is in the library's value set, every
    code list of conditions.pw has codes the generator writes (so every criterion can occur), and
    every exacerbation code of evercare.pw is one the generator writes. (The library lists more
    SNOMED CT concepts than the generator uses: real records carry them.)"""
    conditions = {v.name: {c.code for c in v.codes if c.system == "snomed"}
                  for v in engine.load(LIBRARY / "conditions.pw").protocol.of_kind("value_set")}
    assert set(gen.LTC_CODES) <= conditions["long_term_conditions"]
    for name, codes in conditions.items():
        assert codes & set(gen.LTC_CODES), name
    for value_set in engine.load(LIBRARY / "evercare.pw").protocol.of_kind("value_set"):
        for code in value_set.codes:
            assert code.code in gen.EXACERBATION_CODES, (value_set.name, code.code)
    assert len(set(gen.LTC_CODES)) == len(gen.LTC_CODES)


# --- what the protocols see -------------------------------------------------------------------------

def test_every_castlefields_and_evercare_item_is_true_for_some_patients(population):
    items = population["items"]
    assert len(items) == 11 + 2 + 2 + 4
    missing = [label for label in population["item_names"] if items[label] == 0]
    assert missing == []
    outcomes = population["outcomes"]
    for name in ("castlefields.eligible", "evercare.eligible", "evercare.high_risk_by_admissions",
                 "evercare.nominated", "evercare.recent_exacerbation", "evercare.recent_falls",
                 "evercare.recently_bereaved", "evercare.cognitively_impaired_alone_unstable"):
        assert outcomes[name] > 0, name


def test_every_pyramid_level_occurs(population):
    levels = population["levels"]
    assert set(levels) >= {0, 1, 2, 3}
    assert levels[0] > levels[1] > levels[3] and levels[2] > levels[3]


# --- the command line -------------------------------------------------------------------------------

def test_pathways_generate_writes_records_that_load_back(tmp_path):
    out = tmp_path / "population.jsonl"
    result = CliRunner().invoke(cli, ["generate", "--patients", "150", "--seed", "4", "--as-of", "2023-10-01",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_bytes().splitlines()
    assert len(lines) == 150
    loaded = [PatientRecord.model_validate(orjson.loads(line)) for line in lines]
    assert loaded == list(generate(150, 4, "2023-10-01"))


def test_pathways_generate_rejects_a_bad_date(tmp_path):
    result = CliRunner().invoke(cli, ["generate", "-n", "3", "--as-of", "2023-02-30", "--out",
                                      str(tmp_path / "x.jsonl")])
    assert result.exit_code == 2
    assert "not a date" in result.output


def test_pathways_demo_prints_the_pyramid_caseloads_and_explanations():
    runner = CliRunner()
    result = runner.invoke(cli, ["demo", "--patients", "1500", "--seed", "3"])
    assert result.exit_code == 0, result.output
    text = result.output
    for label in ("Case management", "Disease-specific care management", "Supported self care",
                  "No long term condition"):
        assert label in text
    assert text.index("Case management") < text.index("No long term condition")  # levels 3 to 0
    assert "Hidden population:" in text
    assert "at 50" in text and "at 80" in text and "all practices" in text
    for level in range(4):
        assert f"\u2022 Level of the long term conditions pyramid (level): level {level}" in text
    # the number of level-3 patients and the case managers agree
    level3 = int(next(line for line in text.splitlines() if "\u2502     3 \u2502" in line)
                 .split("\u2502")[3].strip().replace(",", ""))
    row = next(line for line in text.splitlines() if "all practices" in line).split("\u2502")
    assert [int(row[4]), int(row[5])] == [math.ceil(level3 / 50), math.ceil(level3 / 80)]
    # the same seed prints the same text
    assert runner.invoke(cli, ["demo", "--patients", "1500", "--seed", "3"]).output == text


def test_pathways_demo_says_clearly_when_the_library_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "__file__", str(tmp_path / "site-packages" / "engine" / "__init__.py"))
    result = CliRunner().invoke(cli, ["demo", "--patients", "10"])
    assert result.exit_code == 1
    assert "protocol library was not found" in result.output
    assert "pip install -e ." in result.output
