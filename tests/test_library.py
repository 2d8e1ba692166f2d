"""The protocol library: it checks clean, its own tests pass, and its value sets keep their promises."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from dsl.compiler import compile_file

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "library"


def pathways(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_pathways_check_library_is_clean():
    done = pathways("check", "library/")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith(": 0 errors, 0 warnings")


def test_pathways_test_library_passes_and_covers_everything():
    done = pathways("test", "--coverage", "library/")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    lines = done.stdout.rstrip().splitlines()
    passed, failed = (int(part.split()[0]) for part in lines[-1].split(", ")[:2])
    assert failed == 0 and passed >= 100
    # every criterion item, level, band and pathway transition seen both ways
    (summary,) = [line for line in lines if line.startswith("coverage: ")]
    assert summary.endswith("(100%)"), "\n".join(line for line in lines if "<- not seen" in line)


def _value_sets(name: str) -> dict[str, set[str]]:
    protocol = compile_file(LIBRARY / name).protocol
    return {v.name: {c.code for c in v.codes if c.system == "snomed"} for v in protocol.of_kind("value_set")}


def test_every_condition_list_is_inside_the_long_term_conditions_value_set():
    sets = _value_sets("conditions.pw")
    everything = sets.pop("long_term_conditions")
    for name, codes in sets.items():
        assert codes and codes <= everything, (name, codes - everything)


def test_the_value_set_has_no_findings_or_situations_and_names_its_register():
    with (LIBRARY / "codes" / "long_term_conditions.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len({r["code"] for r in rows}) == len(rows)
    for r in rows:
        assert r["system"] == "snomed" and r["code"].isdigit(), r
        assert "(finding)" not in r["display"] and "(situation)" not in r["display"], r
        assert not r["display"].lower().startswith(("history of", "suspected")), r
        assert r["register"], r


def test_the_registers_of_the_issue_are_all_covered():
    sets = _value_sets("conditions.pw")
    for name in ("asthma", "copd", "coronary_heart_disease", "heart_failure", "hypertension", "stroke_tia",
                 "diabetes", "chronic_kidney_disease", "atrial_fibrillation", "dementia", "epilepsy", "cancer",
                 "rheumatoid_arthritis", "osteoporosis", "multiple_sclerosis", "parkinsons",
                 "serious_mental_illness"):
        assert sets[name], name


def test_the_efi_has_the_36_published_deficits():
    protocol = compile_file(LIBRARY / "efi.pw").protocol
    (score,) = protocol.of_kind("score")
    assert len(score.items) == 36
    labels = [protocol.get(item.expr.name).label for item in score.items]
    assert labels[0] == "Activity limitation" and labels[-1] == "Weight loss and anorexia"
    assert len(set(labels)) == 36
    (bands,) = protocol.of_kind("bands")
    assert [b.name for b in bands.bands] == ["fit", "mild", "moderate", "severe"]


def test_the_case_management_pathway_left_the_pyramid_without_a_cycle():
    pyramid = compile_file(LIBRARY / "ltc_pyramid.pw").protocol
    assert not pyramid.of_kind("pathway") and not pyramid.of_kind("care_plan")
    assert [o for o in pyramid.outcomes] == ["level", "might_reach"]
    pathway = compile_file(LIBRARY / "case_management.pw").protocol.get("case_management")
    steps = [s.name for s in pathway.steps]
    assert steps[:5] == ["identified", "approached", "assessment", "care_planning", "monitoring"]
    assert {e.name for e in pathway.exits} >= {"declined", "stable", "died", "moved_away"}


# --- language features the library relies on ---------------------------------------------------

from dsl.compiler import compile_text  # noqa: E402
from dsl.formatter import format_source  # noqa: E402
from pathways import model as m  # noqa: E402

TIMED = '''protocol review:
  version "1.0.0"

parameter review_interval "Review interval" = 3 months
parameter response_period "Wait for an answer" = 28 days
parameter window "Recent falls" = 6 months

criterion fell "Fallen since the window began": any falls after window ago

pathway review "Review":
  entry when fell
  step waiting "Waiting":
    due "Review" every review_interval
    on reviewed go to waiting
    after response_period go to exit lapsed
  exit lapsed "Lapsed"
  exit died "Died": on died
'''


def _compiled(text: str, tmp_path: Path | None = None, name: str = "main.pw") -> m.Protocol:
    if tmp_path is None:
        result = compile_text(text)
    else:
        (tmp_path / name).write_text(text, encoding="utf-8")
        result = compile_file(tmp_path / name)
    assert result.ok, [d.message for d in result.diagnostics]
    return result.protocol


def test_a_pathway_time_may_be_a_parameter_and_compiles_to_its_value():
    pathway = _compiled(TIMED).get("review")
    (action,), (_, timer) = pathway.steps[0].actions, pathway.steps[0].transitions
    assert (action.interval.value, action.interval.unit, action.interval.parameter) == (3, "months", "review_interval")
    assert (timer.delay.value, timer.delay.unit, timer.delay.parameter) == (28, "days", "response_period")
    written = _compiled(TIMED.replace("every review_interval", "every 3 months")).get("review")
    assert written.steps[0].actions[0].interval.parameter is None


def test_the_formatter_keeps_parameter_names_in_pathway_times_and_ago():
    formatted, problems = format_source(TIMED, "main.pw")
    assert not problems and formatted == TIMED
    assert "every review_interval" in formatted and "after response_period go to" in formatted
    assert "after window ago" in formatted


def test_the_graph_shows_a_parameter_time_as_its_value():
    from pathways.graphs import state_graph
    graph = state_graph(_compiled(TIMED).get("review"))
    labels = {d["label"] for _, _, d in graph.edges(data=True)}
    assert "after 28 days" in labels


def test_overrides_reach_pathway_times_through_engine_timings():
    import engine
    from engine.evaluate import EngineError
    from engine.timings import duration, pathway_times
    program = engine.Program(_compiled(TIMED))
    pathway = program.protocol.get("review")
    assert pathway_times(program, pathway) is pathway
    changed = pathway_times(program, pathway, {"review_interval": "6 weeks", "response_period": "2 months"})
    assert (changed.steps[0].actions[0].interval.value, changed.steps[0].actions[0].interval.unit) == (6, "weeks")
    assert (changed.steps[0].transitions[1].delay.value, changed.steps[0].transitions[1].delay.unit) == (2, "months")
    written = m.Quantity(value=14, unit="days")
    assert duration(program, written, {"review_interval": "6 weeks"}) is written
    with pytest.raises(EngineError, match="duration"):
        duration(program, pathway.steps[0].actions[0].interval, {"review_interval": "6"})


def test_ago_with_a_parameter_follows_overrides_in_both_engines(tmp_path):
    import engine
    from engine.columnar import compile_plan, duckdb_backend
    from engine.columnar.output import columns_json
    from engine.generate import generate
    from engine.tables import write_tables
    program = engine.Program(_compiled(TIMED))
    records = list(generate(300, seed=3, as_of="2024-04-01"))
    write_tables(records, tmp_path, "parquet")
    seen = {}
    for params in (None, {"window": "1 month"}):
        rows = {r.patient_id: r.values()["fell"]
                for r in program.evaluate_population(records, as_of="2024-04-01", parameters=params)}
        plan = compile_plan(program, "2024-04-01", params)
        ids, values = columns_json(duckdb_backend.run(plan, tmp_path), plan.outputs)
        assert dict(zip(ids, values["fell"])) == rows
        seen[str(params)] = rows
    default, short = seen.values()
    assert sum(v is True for v in short.values()) < sum(v is True for v in default.values())


def _record_with_fall(day: str):
    from pathways.records import Observation, PartialDate, Patient, PatientRecord
    return PatientRecord(patient=Patient(id="p1", birth_date=PartialDate.parse("1940-01-01")),
                         observations=(Observation(kind="fall", date=PartialDate.parse(day)),))


def test_ago_with_a_parameter_is_explained_with_its_value():
    import engine
    program = engine.Program(_compiled(TIMED))
    record = _record_with_fall("2023-08-01")
    result = program.evaluate(record, "2024-01-01", explain=True)
    assert result.values()["fell"] is True and "6 months ago" in result.explain_text()
    shorter = program.evaluate(record, "2024-01-01", parameters={"window": "3 months"}, explain=True)
    assert shorter.values()["fell"] is False and "3 months ago" in shorter.explain_text()


def test_the_library_plans_are_linked_to_their_pathways():
    linked = {}
    for name in ("case_management_plan.pw", "disease_management_plans.pw"):
        protocol = compile_file(LIBRARY / name).protocol
        for plan in protocol.of_kind("care_plan"):
            assert isinstance(protocol.find(plan.pathway), m.Pathway), (name, plan.name, plan.pathway)
            linked[plan.pathway.rpartition(".")[2]] = plan.name
    assert linked == {"case_management": "case_management_plan", "copd_management": "copd_plan",
                      "diabetes_management": "diabetes_plan", "heart_failure_management": "heart_failure_plan",
                      "chd_management": "chd_plan"}


def test_the_library_pathway_times_clinical_leads_change_are_parameters():
    case = compile_file(LIBRARY / "case_management.pw").protocol.get("case_management")
    monitoring = next(s for s in case.steps if s.name == "monitoring")
    assert monitoring.actions[0].interval.parameter == "review_interval"
    assert next(s for s in case.steps if s.name == "assessment").actions[0].interval.parameter == \
        "assessment_deadline"
    disease = compile_file(LIBRARY / "disease_management.pw").protocol
    for pathway in disease.of_kind("pathway"):
        times = [a.interval.parameter for s in pathway.steps for a in s.actions] + \
            [t.delay.parameter for s in pathway.steps for t in s.transitions if t.delay is not None]
        assert {"review_interval", "diagnosis_deadline"} <= set(times), pathway.name


def test_a_test_expects_bands_by_name_own_and_imported(tmp_path):
    (tmp_path / "frailty.pw").write_text(
        (ROOT / "tests" / "golden" / "diagnostics" / "imported_band_by_name" / "frailty.pw").read_text())
    (tmp_path / "main.pw").write_text('''protocol support:
  version "1.0.0"

uses "frailty.pw" as frailty

outcomes home_support, own

criterion home_support "Frail enough for support at home": frailty.frailty_band is mild or frailty.frailty_band is severe

define falls_in_year "Falls in the last 12 months": count falls in the last 12 months

bands own "Falls risk" of falls_in_year:
  low "Low": at most 0
  high "High": otherwise

test "one fall, living with others: mild, support at home, high falls risk":
  as of 2024-01-01
  patient:
    fall on 2023-06-01
    lives with others
  expect frailty.frailty_band is mild
  expect home_support is true
  expect own is high

test "deliberately wrong: no falls is not a high falls risk":
  as of 2024-01-01
  patient:
    lives with others
  expect frailty.frailty_band is fit
  expect own is high
''')
    done = pathways("test", str(tmp_path / "main.pw"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.rstrip().splitlines()[-1] == "1 passed, 1 failed"
    assert "high" in done.stdout and "low" in done.stdout


def test_the_language_guide_quotes_the_case_management_pathway_word_for_word():
    guide = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    section = guide[guide.index("## 20. Pathways"):guide.index("## 21. Care-plan templates")]
    quoted = section.split("```pw-fragment\n", 1)[1].split("```", 1)[0]
    library = (LIBRARY / "case_management.pw").read_text(encoding="utf-8").replace("outcomes identified, stable\n\n", "")
    assert quoted.startswith('uses "ltc_pyramid.pw"') and quoted in library
