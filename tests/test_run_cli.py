"""`pathways run` and `pathways explain` over record files."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from synthetic import generate

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2021-04-01"


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def records_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "records.jsonl"
    with open(path, "wb") as out:
        for record in generate(300, seed=11, as_of=dt.date(2021, 4, 1)):
            out.write(orjson.dumps(record.model_dump(mode="json")) + b"\n")
    return path


def test_run_writes_one_object_per_patient_and_a_summary(records_file, tmp_path):
    out = tmp_path / "results.jsonl"
    done = cli("run", "library/ltc_pyramid.pw", "--data", str(records_file), "--as-of", AS_OF,
               "--output", str(out))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 300
    first = lines[0]
    assert set(first) >= {"patient_id", "as_of", "protocol", "outcomes"}
    assert first["protocol"]["name"] == "ltc_pyramid" and len(first["protocol"]["sha256"]) == 64
    assert first["as_of"] == AS_OF and set(first["outcomes"]) == {"level", "might_reach"}
    levels = {line["outcomes"]["level"] for line in lines}
    assert levels <= {0, 1, 2, 3} and len(levels) >= 3
    assert "300 patients evaluated" in done.stderr
    assert "300 read, 300 loaded, 0 skipped" in done.stderr


def test_run_is_byte_identical_twice(records_file, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path in (a, b):
        assert cli("run", "library/castlefields.pw", "--data", str(records_file), "--as-of", AS_OF,
                   "--output", str(path)).returncode == 0
    assert a.read_bytes() == b.read_bytes()


def test_run_csv_and_parameters(records_file):
    done = cli("run", "library/castlefields.pw", "--data", str(records_file), "--as-of", AS_OF,
               "--format", "csv", "--param", "minimum_criteria=2")
    assert done.returncode == 0, done.stderr
    table = list(csv.DictReader(io.StringIO(done.stdout)))
    assert len(table) == 300 and set(table[0]) == {"patient_id", "as_of", "protocol", "version", "eligible",
                                                   "criteria_met"}
    assert {row["eligible"] for row in table} <= {"true", "false", ""}
    stricter = cli("run", "library/castlefields.pw", "--data", str(records_file), "--as-of", AS_OF, "--format", "csv")
    eligible = lambda text: sum(row["eligible"] == "true" for row in csv.DictReader(io.StringIO(text)))  # noqa: E731
    assert eligible(done.stdout) >= eligible(stricter.stdout)


def test_bad_lines_are_named_and_the_rest_still_run(records_file, tmp_path):
    lines = records_file.read_text().splitlines()[:5]
    broken = tmp_path / "broken.jsonl"
    bad_date = json.loads(lines[1])
    bad_date["patient"]["birth_date"] = {"text": "2023-02-30"}
    broken.write_text("\n".join([lines[0], "{not json", json.dumps(bad_date), lines[0], *lines[2:]]) + "\n")
    done = cli("run", "library/evercare.pw", "--data", str(broken), "--as-of", AS_OF)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 4  # lines 1, 5, 6, 7 (line 4 repeats line 1's patient)
    assert f"{broken}:2: not JSON" in done.stderr
    assert f"{broken}:3: field patient.birth_date" in done.stderr
    assert f"{broken}:4: patient" in done.stderr and "appears twice" in done.stderr
    assert "7 read, 4 loaded, 3 skipped" in done.stderr
    strict = cli("run", "library/evercare.pw", "--data", str(broken), "--as-of", AS_OF, "--strict")
    assert strict.returncode == 1 and f"{broken}:2: not JSON" in strict.stderr
    assert "Traceback" not in done.stderr + strict.stderr


@pytest.mark.parametrize("args, fragment", [
    (["--as-of", "2021-02-30"], "is not a date"),
    (["--as-of", AS_OF, "--param", "nonsense"], "NAME=VALUE"),
    (["--as-of", AS_OF, "--param", "minimum_age=65"], "write the unit"),
    (["--as-of", AS_OF, "--param", "lookback=12 monts"], "did you mean `months`? [PW700]"),
])
def test_usage_mistakes_are_explained(records_file, args, fragment):
    done = cli("run", "library/castlefields.pw", "--data", str(records_file), *args)
    assert done.returncode in (1, 2) and fragment in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert "Error: error" not in done.stderr  # one "Error:", not two


def test_explain_one_patient_in_text_and_json(records_file):
    patient = json.loads(records_file.read_text().splitlines()[0])["patient"]["id"]
    text = cli("explain", "library/castlefields.pw", "--data", str(records_file), "--patient", patient,
               "--as-of", AS_OF)
    assert text.returncode == 0, text.stderr
    assert f"Explanation for patient {patient}" in text.stdout and "four or more active long term conditions" in text.stdout
    data = cli("explain", "library/castlefields.pw", "--data", str(records_file), "--patient", patient,
               "--as-of", AS_OF, "--format", "json")
    assert json.loads(data.stdout)["schema"] == "ltc-pathways/explanation/1"
    missing = cli("explain", "library/castlefields.pw", "--data", str(records_file), "--patient", patient + "x",
                  "--as-of", AS_OF)
    assert missing.returncode == 1 and f"Did you mean {patient}?" in missing.stderr


SHARED = ROOT.parent / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "synthea-r4-ndjson").exists(), reason="the shared Synthea data is not here")
def test_run_over_real_bulk_fhir_accounts_for_every_resource():
    done = cli("run", "library/ltc_pyramid.pw", "--data", str(SHARED / "synthea-r4-ndjson"), "--as-of", AS_OF)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    loaded = int(done.stderr.split("Patients: ")[1].split(" loaded")[0])
    assert len(results) == loaded > 0
    assert {r["outcomes"]["level"] for r in results} <= {0, 1, 2, 3}
    assert "Problems: none" in done.stderr


def test_run_as_fhir_risk_assessments(records_file, tmp_path):
    out = tmp_path / "ra.json"
    done = cli("run", "library/ltc_pyramid.pw", "--data", str(records_file), "--as-of", AS_OF, "--format", "fhir",
               "--output", str(out))
    assert done.returncode == 0, done.stderr
    bundle = json.loads(out.read_text())
    assert bundle["resourceType"] == "Bundle" and len(bundle["entry"]) == 300
    resources = [e["resource"] for e in bundle["entry"]]
    first = resources[0]
    assert first["resourceType"] == "RiskAssessment" and first["status"] == "final"
    assert first["subject"]["reference"].startswith("Patient/") and first["occurrenceDateTime"] == AS_OF
    assert first["method"]["coding"][0]["code"] == "ltc_pyramid|1.1.0"
    assert first["prediction"][0]["outcome"]["text"].startswith("Level of the long term conditions pyramid (level): ")
    assert "sha256" in first["note"][0]["text"]
    with_basis = [r for r in resources if r.get("basis")]
    assert with_basis and all(b["reference"].split("/")[0] in {"Condition", "MedicationRequest", "Encounter",
                                                                "Observation", "Procedure"}
                              for r in with_basis for b in r["basis"])
    assert len({r["id"] for r in resources}) == 300
    again = cli("run", "library/ltc_pyramid.pw", "--data", str(records_file), "--as-of", AS_OF,
                "--format", "fhir-ndjson")
    assert [json.loads(line) for line in again.stdout.splitlines()] == resources


def test_a_dataset_with_no_patients_is_an_error_not_an_empty_success(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("{not json\n")
    done = cli("run", "library/evercare.pw", "--data", str(empty), "--as-of", AS_OF)
    assert done.returncode == 1
    assert "no patients were loaded" in done.stderr and f"{empty}:1: not JSON" in done.stderr


def test_run_as_parquet_with_typed_outcome_columns(records_file, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "results.parquet"
    done = cli("run", "library/castlefields.pw", "--data", str(records_file), "--as-of", AS_OF,
               "--format", "parquet", "--output", str(out))
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out)
    assert table.num_rows == 300
    assert table.column_names == ["patient_id", "as_of", "protocol", "version", "sha256", "eligible", "criteria_met"]
    assert str(table.schema.field("eligible").type) == "bool"
    jsonl = cli("run", "library/castlefields.pw", "--data", str(records_file), "--as-of", AS_OF)
    expected = [json.loads(line)["outcomes"]["eligible"] for line in jsonl.stdout.splitlines()]
    assert table.column("eligible").to_pylist() == expected
    no_file = cli("run", "library/castlefields.pw", "--data", str(records_file), "--as-of", AS_OF,
                  "--format", "parquet")
    assert no_file.returncode == 2 and "--format parquet needs --output" in no_file.stderr


def test_a_csv_row_duckdb_cannot_read_is_one_plain_line_never_a_traceback(tmp_path):
    """A row with more cells than its header: DuckDB refuses the whole file with twenty lines of
    its reader's settings. With --engine auto that is one warning line and the per-patient reader
    skips the row and names it; with --engine duckdb it is one error line saying where to look."""
    from engine.tables import write_tables

    folder = tmp_path / "tables"
    write_tables(generate(20, seed=3, as_of=dt.date(2021, 4, 1)), folder, "csv")
    path = folder / "encounters.csv"
    lines = path.read_text().splitlines()
    lines[2] += ",one,too,many"
    path.write_text("\n".join(lines) + "\n")
    auto = cli("run", "library/evercare.pw", "--data", str(folder), "--as-of", AS_OF,
               "--output", str(tmp_path / "a.jsonl"))
    assert auto.returncode == 0, auto.stderr
    warning = [line for line in auto.stderr.splitlines() if line.startswith("warning: --engine auto")]
    assert len(warning) == 1 and "encounters.csv" in warning[0], auto.stderr
    assert "strict_mode" not in auto.stderr and "encounters.csv, line 3:" in auto.stderr
    duck = cli("run", "library/evercare.pw", "--data", str(folder), "--as-of", AS_OF, "--engine", "duckdb",
               "--output", str(tmp_path / "d.jsonl"))
    assert duck.returncode == 1 and "Traceback" not in duck.stderr, duck.stderr
    assert duck.stderr.strip().startswith("Error: --engine duckdb:") and len(duck.stderr.strip().splitlines()) == 1
    assert "--engine python reads the tables row by row" in duck.stderr
