"""The columnar backend (engine/columnar) against the per-patient engine, its reference.

* the conformance corpus (tests/conformance/*.toml) run through DuckDB;
* a differential property test: generated populations and the library
  protocols give the same outcomes and the same value for every criterion
  item, definition and level condition (the audit columns), unknowns included;
* what does not compile is refused naming the construct and its line;
* ``pathways run --engine duckdb|auto``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.columnar import Unsupported, compile_plan
from engine.columnar import duckdb_backend
from engine.columnar.output import columns_json
from engine.generate import generate
from engine.tables import write_tables
from engine.values import to_json

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "library"
PROGRAMS = {name: engine.load(LIBRARY / f"{name}.pw") for name in ("castlefields", "evercare", "ltc_pyramid")}


def _close(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-6 * max(1.0, abs(a))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b


def columnar_values(program, records, as_of, folder: Path, parameters=None, con=None, fmt="parquet", check=True):
    """patient id -> {column: JSON value} from DuckDB, and the plan."""
    plan = compile_plan(program, as_of, parameters)
    write_tables(records, folder, fmt)
    table = duckdb_backend.run(plan, folder, con=con, check_data=check)
    ids, values = columns_json(table, plan.outputs)
    return {pid: {o.name: values[o.name][i] for o in plan.outputs} for i, pid in enumerate(ids)}, plan


def differences(program, records, as_of, folder: Path) -> list[str]:
    """Every outcome and audit column that differs between the two engines."""
    got, plan = columnar_values(program, records, as_of, folder)
    problems = []
    assert set(got) == {r.patient.id for r in records}
    for result in program.evaluate_population(records, as_of=as_of, explain=True):
        row, values = got[result.patient_id], result.values()
        for out in plan.outputs:
            if out.outcome:
                expected = values[out.name]
            else:
                node = out.name.split("#")[0]
                if node not in result.trace:
                    continue  # not reached: `and` stopped early in the per-patient engine
                expected = to_json(result.trace[node])
            if not _close(expected, row[out.name]):
                problems.append(f"{result.patient_id} {out.name}: python {expected!r}, columnar {row[out.name]!r}")
    return problems


# --- the conformance corpus ---------------------------------------------------------------------

def _case_records(case) -> tuple[list, str]:
    from test_conformance import build_record
    if "population" in case:
        records = [build_record(p, default_id=f"member-{i + 1}") for i, p in enumerate(case["population"])]
        if "record" in case:
            records.append(build_record(case["record"]))
        return records, case.get("patient", "patient")
    record = build_record(case.get("record", {}))
    return [record], record.patient.id


def _renamed(record, prefix: str):
    patient = record.patient.model_copy(update={"id": prefix + record.patient.id})
    return record.model_copy(update={"patient": patient})


def test_the_conformance_corpus_through_duckdb(tmp_path):
    """Every case's records in one set of CSV tables (ids prefixed by the case), read and
    normalised once; each case's plan then runs over its own rows only (a population case
    ranks within its own population), on one connection."""
    from test_conformance import ALL_CASES, _matches, _plain, compile_case

    cases = [param.values[0] for param in ALL_CASES]
    everyone = [_renamed(rec, f"c{n}~") for n, case in enumerate(cases) for rec in _case_records(case)[0]]
    write_tables(everyone, tmp_path, "csv")
    con = duckdb_backend.connect(threads=1)
    duckdb_backend.register_tables(con, tmp_path)
    from engine.tables import TABLES
    for table in TABLES:
        con.execute(f"CREATE TEMP TABLE all_{table} AS SELECT * FROM t_{table}").fetchall()
    passed, unsupported, wrong = 0, [], []
    for n, (param, case) in enumerate(zip(ALL_CASES, cases)):
        program = compile_case(case)
        _, wanted = _case_records(case)
        try:
            plan = compile_plan(program, _plain(case["as_of"]), case.get("parameters"))
        except Unsupported as exc:
            unsupported.append(f"{param.id}: {exc}")
            continue
        except engine.EngineError:
            continue  # the per-patient engine refuses these too (tested in test_conformance)
        for table in TABLES:
            con.execute(f"CREATE OR REPLACE TEMP VIEW t_{table} AS SELECT * FROM all_{table} "
                        f"WHERE starts_with(patient_id, 'c{n}~')").fetchall()
        ids, values = columns_json(con.sql(plan.sql).to_arrow_table(), plan.outputs)
        actual = values["value"][ids.index(f"c{n}~{wanted}")]
        if _matches(actual, case["expected"]):
            passed += 1
        else:
            wrong.append(f"{param.id}: expected {case['expected']!r}, columnar {actual!r}")
    assert not wrong, "\n".join(wrong)
    # what is not compiled is named; the corpus must be almost wholly compiled
    assert passed >= 0.85 * len(ALL_CASES), "\n".join(unsupported)
    print(f"\nconformance through DuckDB: {passed} passed, {len(unsupported)} not compiled")


# --- differential property test ------------------------------------------------------------------

@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 100_000), size=st.integers(1, 150),
       as_of=st.sampled_from(["2024-04-01", "2024-02-29", "2023-12-31", "2024-03-31"]),
       name=st.sampled_from(sorted(PROGRAMS)))
def test_columnar_and_per_patient_engines_agree(tmp_path_factory, seed, size, as_of, name):
    records = list(generate(size, seed=seed, as_of="2024-04-01"))
    folder = tmp_path_factory.mktemp("pop")
    problems = differences(PROGRAMS[name], records, as_of, folder)
    assert not problems, "\n".join(problems[:20])


def test_a_larger_population_agrees_on_every_column(tmp_path):
    records = list(generate(1000, seed=11, as_of="2024-04-01"))
    assert differences(PROGRAMS["ltc_pyramid"], records, "2024-04-01", tmp_path) == []


def test_parameters_are_constants_of_the_query(tmp_path):
    program = PROGRAMS["ltc_pyramid"]
    records = list(generate(400, seed=5, as_of="2024-04-01"))
    params = {"castlefields.minimum_criteria": "2", "castlefields.lookback": "24 months"}
    got, _ = columnar_values(program, records, "2024-04-01", tmp_path, params)
    expected = {r.patient_id: r.values() for r in program.evaluate_population(records, as_of="2024-04-01",
                                                                              parameters=params)}
    assert all(got[pid]["level"] == expected[pid]["level"] for pid in expected)
    default, _ = columnar_values(program, records, "2024-04-01", tmp_path / "d")
    assert any(default[pid]["level"] != got[pid]["level"] for pid in got)  # the override mattered


# --- what does not compile ----------------------------------------------------------------------

def test_unsupported_constructs_are_named_with_their_line():
    from dsl.compiler import compile_text
    text = ('protocol odd:\n  version "1"\n\noutcomes long_stays\n\n'
            'criterion long_stays "Long stays": sum length of admissions more than 4 weeks\n')
    program = engine.compile(compile_text(text, file="odd.pw").protocol)
    with pytest.raises(Unsupported) as caught:
        compile_plan(program, "2024-04-01")
    message = str(caught.value)
    assert "odd.pw:6:" in message and "`sum` of length" in message and "--engine python" in message
    assert caught.value.line == 6


# --- the command line -------------------------------------------------------------------------

def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], capture_output=True, text=True, cwd=ROOT)


def test_run_engine_duckdb_gives_the_per_patient_results(tmp_path):
    write_tables(generate(300, seed=3, as_of="2024-04-01"), tmp_path / "t", "csv")
    common = ("run", "library/ltc_pyramid.pw", "--data", str(tmp_path / "t"), "--as-of", "2024-04-01",
              "--format", "csv")
    python = _cli(*common, "--engine", "python")
    duck = _cli(*common, "--engine", "duckdb")
    assert python.returncode == duck.returncode == 0, duck.stderr
    assert python.stdout == duck.stdout  # the same rows in the same (file) order, byte for byte
    assert "300 patients evaluated" in duck.stderr and "Patients: 300 loaded, 0 skipped" in duck.stderr
    assert duck.stderr == python.stderr  # the same summary and load report
    default = _cli(*common)  # --engine auto, the default: DuckDB for tables
    assert default.stdout == python.stdout and default.stderr == python.stderr
    again = _cli(*common, "--engine", "duckdb")
    assert again.stdout == duck.stdout  # deterministic, byte for byte
    explained = _cli("run", "library/castlefields.pw", "--data", str(tmp_path / "t"), "--as-of", "2024-04-01",
                     "--engine", "duckdb", "--explain")
    import orjson
    first = orjson.loads(explained.stdout.splitlines()[0])
    assert first["explanation"]["engine"] == "columnar"
    assert "castlefields.published_criteria/expr/items.6" in first["explanation"]["values"]


def test_auto_falls_back_with_a_warning_and_duckdb_refuses(tmp_path):
    write_tables(generate(20, seed=3, as_of="2024-04-01"), tmp_path / "t", "csv")
    protocol = tmp_path / "odd.pw"
    protocol.write_text('protocol odd:\n  version "1"\n\noutcomes long_stays\n\n'
                        'criterion long_stays "Long stays": sum length of admissions more than 4 weeks\n')
    common = ("run", str(protocol), "--data", str(tmp_path / "t"), "--as-of", "2024-04-01")
    auto = _cli(*common, "--engine", "auto")
    assert auto.returncode == 0 and "warning:" in auto.stderr and "`sum` of length" in auto.stderr
    assert "running the per-patient engine instead" in auto.stderr and len(auto.stdout.splitlines()) == 20
    duck = _cli(*common, "--engine", "duckdb")
    assert duck.returncode == 1 and "odd.pw:6:" in duck.stderr and "Traceback" not in duck.stderr


def test_bad_rows_are_never_read_silently(tmp_path):
    folder = tmp_path / "t"
    write_tables(generate(10, seed=3, as_of="2024-04-01"), folder, "csv")
    lines = (folder / "patients.csv").read_text().splitlines()
    cells = lines[1].split(",")
    cells[1] = "1950-13"  # birth_date: no month 13
    lines[1] = ",".join(cells)
    (folder / "patients.csv").write_text("\n".join(lines) + "\n")
    common = ("run", "library/evercare.pw", "--data", str(folder), "--as-of", "2024-04-01")
    duck = _cli(*common, "--engine", "duckdb")
    assert duck.returncode == 1 and "patients: 1" in duck.stderr and "Traceback" not in duck.stderr
    auto = _cli(*common, "--engine", "auto")
    assert auto.returncode == 0 and "warning:" in auto.stderr and "patients.csv, line 2" in auto.stderr


def test_auto_uses_duckdb_for_clean_tables_and_the_reader_otherwise(tmp_path, capsys):
    """`--engine auto` (the default) runs DuckDB only when the per-patient engine would give the
    same output: clean tables, no --mapping or --explain, no record over the items limit."""
    from engine.columnar.runner import ColumnarResult
    from tui.run_columnar import run_columnar
    folder = tmp_path / "t"
    write_tables(generate(30, seed=5, as_of="2024-04-01"), folder, "csv")
    program = PROGRAMS["castlefields"]

    def auto(**kw):
        return run_columnar(program, str(folder), "2024-04-01", {}, "jsonl", "auto", False, None, **kw)

    results, loaded = auto(max_items=50_000)
    assert len(results) == 30 and isinstance(results[0], ColumnarResult)
    assert loaded.report.loaded["patients"] == 30 and loaded.report.problem_count == 0
    assert auto(explain=True) is None and auto(mapping="local.toml") is None
    assert auto(max_items=1) is None  # some patient has more than one item: the reader refuses it
    assert "more than 1 items" in capsys.readouterr().err
    lines = (folder / "patients.csv").read_text().splitlines()
    (folder / "patients.csv").write_text("\n".join([lines[0] + ",nickname"] + [x + ",x" for x in lines[1:]]) + "\n")
    assert auto() is None  # the reader would remark on the column; its report is the one to show
    assert "nickname" in capsys.readouterr().err


def test_json_lines_are_written_in_file_order_the_same_with_or_without_polars(tmp_path, monkeypatch):
    import orjson
    folder = tmp_path / "t"
    records = list(generate(40, seed=8, as_of="2024-04-01"))
    write_tables(records, folder, "parquet")
    plan = compile_plan(PROGRAMS["ltc_pyramid"], "2024-04-01")
    written = {}
    for how in ("polars", "duckdb"):
        if how == "duckdb":
            monkeypatch.setitem(sys.modules, "polars", None)  # `import polars` fails: DuckDB writes
        con = duckdb_backend.connect()
        duckdb_backend.register_tables(con, folder)
        duckdb_backend.write(con, plan, tmp_path / f"{how}.jsonl", "json")
        con.close()
        written[how] = (tmp_path / f"{how}.jsonl").read_bytes()
        assert not list(tmp_path.glob("*.part.parquet"))  # the intermediate file is removed
    assert written["polars"] == written["duckdb"]
    lines = [orjson.loads(x) for x in written["polars"].splitlines()]
    assert [x["patient_id"] for x in lines] == [r.patient.id for r in records]  # the patients table's order
    table = duckdb_backend.run(plan, folder)
    assert [x["level"] for x in lines] == table.column("level").to_pylist()
    assert set(lines[0]) == set(table.column_names)
