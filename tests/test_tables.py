"""The tabular layout (engine.tables): round trips, `pathways convert`, and bad rows."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.generate import generate
from engine.tables import COLUMNS, TABLES, TablesError, read_tables, write_tables

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NDJSON = SHARED / "synthea-r4-ndjson"
AS_OF = "2021-04-01"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def population():
    return list(generate(400, seed=21, as_of="2024-04-01"))


# -- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_round_trip_gives_the_generated_records(population, tmp_path, fmt):
    counts = write_tables(iter(population), tmp_path, fmt, chunk_rows=997)  # several row groups
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{t}.{fmt}" for t in TABLES)
    assert counts["patients"] == 400
    assert counts["encounters"] == sum(len(r.encounters) for r in population)
    records, report = read_tables(tmp_path)
    assert records == population
    assert report.problem_count == 0 and not report.skipped and not report.unbalanced()
    assert report.patients_read == 400 and report.format == fmt
    for t in TABLES:
        assert report.read[t] == report.loaded[t] == counts[t]
    assert "Problems: none" in report.summary()


def test_csv_columns_and_cells(population, tmp_path):
    write_tables(population, tmp_path, "csv")
    for table in TABLES:
        with open(tmp_path / f"{table}.csv", newline="") as f:
            header = next(csv.reader(f))
        assert header == [c.name for c in COLUMNS[table]]
        assert header[0] == "patient_id" and (table == "patients" or header[1] == "source_id")
    rows = list(csv.DictReader(open(tmp_path / "patients.csv", newline="")))
    assert {r["lives_alone"] for r in rows} <= {"true", "false", ""}
    births = {r["birth_date"] for r in rows}
    assert any(len(b) == 4 for b in births) or any(len(b) == 7 for b in births)  # partial dates kept as text
    costs = [r["monthly_cost"] for r in csv.DictReader(open(tmp_path / "medications.csv", newline=""))]
    assert all(c == "" or float(c) >= 0 for c in costs)


def test_generate_writes_tables(tmp_path):
    for fmt in ("csv", "parquet"):
        out = tmp_path / fmt
        done = cli("generate", "-n", "25", "--seed", "4", "--format", fmt, "--out", str(out))
        assert done.returncode == 0, done.stderr
        records, report = read_tables(out)
        assert records == list(generate(25, seed=4, as_of="2024-04-01"))
    jsonl = tmp_path / "x.jsonl"
    assert cli("generate", "-n", "3", "--out", str(jsonl)).returncode == 0
    assert len(jsonl.read_text().splitlines()) == 3
    wrong = cli("generate", "-n", "3", "--format", "csv", "--out", str(jsonl))
    assert wrong.returncode == 2 and "folder" in wrong.stderr


# -- convert ------------------------------------------------------------------------------


def _levels(stdout: str) -> dict:
    return {r["patient_id"]: r["outcomes"]["level"] for r in map(json.loads, stdout.splitlines())}


@pytest.mark.skipif(not NDJSON.exists(), reason="the shared Synthea data is not here")
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_convert_synthea_then_run_gives_the_same_levels(tmp_path, fmt):
    from engine.readers import read_fhir

    out = tmp_path / "tables"
    done = cli("convert", str(NDJSON), "--out", str(out), "--format", fmt)
    assert done.returncode == 0, done.stderr
    assert "Patients:" in done.stderr and "Problems: none" in done.stderr  # the FHIR load summary
    fhir_records, _ = read_fhir(NDJSON)
    records, report = read_tables(out)
    assert records == fhir_records and report.problem_count == 0
    if fmt == "csv":  # running is the same code for both formats; once is enough
        direct = cli("run", "library/ltc_pyramid.pw", "--data", str(NDJSON), "--as-of", AS_OF)
        tables = cli("run", "library/ltc_pyramid.pw", "--data", str(out), "--as-of", AS_OF)
        assert direct.returncode == tables.returncode == 0, tables.stderr
        assert _levels(tables.stdout) == _levels(direct.stdout) and len(_levels(direct.stdout)) > 0
        assert "Read tables from" in tables.stderr and "Problems: none" in tables.stderr


def test_convert_reports_a_missing_path(tmp_path):
    done = cli("convert", str(tmp_path / "nothing"), "--out", str(tmp_path / "t"))
    assert done.returncode == 2


# -- bad rows -----------------------------------------------------------------------------


@pytest.fixture()
def folder(population, tmp_path) -> Path:
    write_tables(population[:30], tmp_path, "csv")
    return tmp_path


def _edit(folder: Path, table: str, change) -> None:
    """Apply change(rows) to a table's rows (header first) and write it back."""
    path = folder / f"{table}.csv"
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    change(rows)
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def _set(rows: list[list[str]], line: int, column: str, value: str) -> str:
    """Set a cell on a CSV line (header = line 1); return that row's patient id."""
    rows[line - 1][rows[0].index(column)] = value
    return rows[line - 1][0]


def _messages(report) -> list[str]:
    return [str(p) for p in report.problems]


def test_bad_date(folder):
    _edit(folder, "conditions", lambda rows: _set(rows, 3, "onset", "2020-02-30"))
    records, report = read_tables(folder)
    (message,) = _messages(report)
    assert message.startswith("conditions.csv, line 3: onset: '2020-02-30' is not a date")
    assert len(records) == 30  # the patient stays; only the condition row is skipped
    assert report.skipped == {("conditions", "invalid date"): 1}
    assert not report.unbalanced()


def test_unknown_enum_value(folder, population):
    pid = []
    _edit(folder, "patients", lambda rows: pid.append(_set(rows, 4, "sex", "femme")))
    records, report = read_tables(folder)
    messages = _messages(report)
    assert messages[0].startswith("patients.csv, line 4: sex: 'femme' is not one of female, male")
    assert len(records) == 29 and pid[0] not in {r.id for r in records}
    assert report.skipped[("patients", "unknown value")] == 1
    # the patient's items are accounted for, not dropped silently
    own = sum(len(getattr(r, t)) for r in population if r.id == pid[0] for t in TABLES[1:])
    assert sum(n for (t, reason), n in report.skipped.items() if reason == "patient's row skipped") == own
    assert not report.unbalanced()


def test_row_for_a_missing_patient(folder):
    _edit(folder, "encounters", lambda rows: _set(rows, 2, "patient_id", "nobody"))
    records, report = read_tables(folder)
    (message,) = _messages(report)
    assert message.startswith("encounters.csv, line 2: patient_id: no patient nobody in patients.csv")
    assert len(records) == 30 and report.skipped == {("encounters", "no patients row"): 1}


def test_duplicate_patient_id(folder):
    _edit(folder, "patients", lambda rows: rows.append(list(rows[5])))
    records, report = read_tables(folder)
    (message,) = _messages(report)
    assert message.startswith("patients.csv, line 32: patient_id: patient ") and "another row" in message
    assert len(records) == 30 and report.patients_read == 31
    assert report.skipped == {("patients", "duplicate patient id"): 1}


def test_non_numeric_cost(folder):
    _edit(folder, "medications", lambda rows: _set(rows, 2, "monthly_cost", "twelve pounds"))
    records, report = read_tables(folder)
    (message,) = _messages(report)
    assert message.startswith("medications.csv, line 2: monthly_cost: 'twelve pounds' is not a number")
    assert len(records) == 30 and report.skipped == {("medications", "not a number"): 1}


def test_missing_required_column(folder, population):
    def drop_date(rows):
        i = rows[0].index("date")
        for row in rows:
            del row[i]
    _edit(folder, "procedures", drop_date)
    records, report = read_tables(folder)
    (message,) = _messages(report)
    n = sum(len(r.procedures) for r in population[:30])
    assert message == f"procedures.csv, line 1: date: required column missing; all {n} row(s) of the table are skipped"
    assert len(records) == 30 and all(not r.procedures for r in records)
    assert report.skipped == {("procedures", "required column missing"): n} and not report.unbalanced()


def test_bad_boolean_empty_required_value_and_ragged_row(folder):
    _edit(folder, "patients", lambda rows: _set(rows, 31, "lives_alone", "sometimes"))
    _edit(folder, "encounters", lambda rows: (_set(rows, 2, "start", ""), rows[3].pop()))
    records, report = read_tables(folder)
    messages = _messages(report)
    assert messages[0].startswith("patients.csv, line 31: lives_alone: 'sometimes' is not true or false")
    assert any(m.startswith("encounters.csv, line 2: start: required, and empty") for m in messages)
    assert any(m.startswith("encounters.csv, line 4: ") and "cells where the header has" in m for m in messages)
    assert len(records) == 29 and not report.unbalanced()
    assert "Problems: " in report.summary() and "encounters: 1 required value missing" in report.summary()


def test_unknown_column_is_reported_and_ignored(folder, population):
    _edit(folder, "conditions", lambda rows: [row.append("x") for row in rows])  # header gets "x" too
    records, report = read_tables(folder)
    assert _messages(report) == ["conditions.csv, line 1: x: not a column of the layout; ignored"]
    assert records == population[:30]


def test_parquet_bad_row_names_the_row(population, tmp_path):
    import pyarrow.parquet as pq

    write_tables(population[:30], tmp_path, "parquet")
    table = pq.read_table(tmp_path / "life_events.parquet").to_pylist()
    table[0]["event"] = "won the lottery"
    import pyarrow as pa
    pq.write_table(pa.Table.from_pylist(table), tmp_path / "life_events.parquet")
    records, report = read_tables(tmp_path)
    (message,) = _messages(report)
    assert message.startswith("life_events.parquet, row 1: event: 'won the lottery' is not one of bereavement")
    assert len(records) == 30


def test_strict_stops_at_the_first_problem_and_run_reports(folder):
    _edit(folder, "conditions", lambda rows: _set(rows, 3, "onset", "2020-13"))
    with pytest.raises(TablesError, match=r"conditions.csv, line 3: onset: "):
        read_tables(folder, strict=True)
    done = cli("run", "library/ltc_pyramid.pw", "--data", str(folder), "--as-of", AS_OF)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 30
    assert "conditions.csv, line 3: onset: " in done.stderr and "conditions: 1 invalid date" in done.stderr
    strict = cli("run", "library/ltc_pyramid.pw", "--data", str(folder), "--as-of", AS_OF, "--strict")
    assert strict.returncode == 1 and "conditions.csv, line 3: onset:" in strict.stderr


def test_a_folder_with_both_formats_is_refused(population, tmp_path):
    write_tables(population[:3], tmp_path, "csv")
    write_tables(population[:3], tmp_path, "parquet")
    with pytest.raises(TablesError, match="both patients.csv and patients.parquet"):
        read_tables(tmp_path)


def test_docs_list_every_column_of_every_table():
    text = (ROOT / "docs" / "data.md").read_text(encoding="utf-8")
    section = text.split("## 11. Tabular layout")[1]
    for table in TABLES:
        part = section.split(f"### `{table}`")[1].split("###")[0]
        documented = [line.split("|")[1].strip().strip("`") for line in part.splitlines()
                      if line.startswith("| `")]
        assert documented == [c.name for c in COLUMNS[table]], table


def test_bad_cells_say_how_to_write_them(tmp_path):
    """A cost written with £ or a thousands comma, a value with a capital, and a row with a comma
    too many each say how to write them, not only that they are wrong."""
    (tmp_path / "patients.csv").write_text(
        "patient_id,birth_date,sex\np1,1940-01-01,Female\np2,1940-01-01,female,extra\np3,1940-01-01,female\n")
    (tmp_path / "medications.csv").write_text(
        "patient_id,source_id,code,monthly_cost\np3,m1,d1,£12.40\np3,m2,d2,\"1,200\"\np3,m3,d3,twelve\n")
    records, report = read_tables(tmp_path)
    messages = [str(p) for p in report.problems]
    assert [r.id for r in records] == ["p3"]
    assert "patients.csv, line 2: sex: 'Female' is not one of female, male, other, unknown " \
           "(write it as female: the values are in lower case); the row is skipped (patient p1)" in messages
    assert "patients.csv, line 3: 4 cells where the header has 3; the row is skipped " \
           "(a value with a comma in it needs double quotes around it)" in messages
    assert "medications.csv, line 2: monthly_cost: '£12.40' is not a number (write it as 12.40: numbers are " \
           "plain, without £ or thousands commas); the row is skipped (patient p3)" in messages
    assert any(m.startswith("medications.csv, line 3: monthly_cost: '1,200' is not a number (write it as 1200")
               for m in messages)
    assert "medications.csv, line 4: monthly_cost: 'twelve' is not a number; the row is skipped (patient p3)" \
        in messages
