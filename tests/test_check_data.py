"""`pathways check-data`: every problem of a dataset listed, not only the first ten."""

from __future__ import annotations

import json

from click.testing import CliRunner

from tui.cli import cli


def _run(*args: str):
    return CliRunner().invoke(cli, ["check-data", *args], catch_exceptions=False)


def test_every_bad_row_is_listed_with_file_line_and_field(tmp_path):
    rows = "".join(f"p{i},1940-01-{i:02d},femme\n" for i in range(1, 13))  # twelve bad rows
    (tmp_path / "patients.csv").write_text("patient_id,birth_date,sex\n" + rows + "ok,1940-01-01,female\n")
    done = _run(str(tmp_path))
    assert done.exit_code == 1
    listed = [line for line in done.output.splitlines() if line.startswith("  patients.csv, line ")]
    assert len(listed) == 12  # `pathways run` shows ten and "... and 2 more"
    assert listed[-1] == ("  patients.csv, line 13: sex: 'femme' is not one of female, male, other, unknown; "
                          "the row is skipped (patient p12)")
    assert "Patients: 1 loaded, 12 skipped" in done.output


def test_a_clean_record_file_exits_0_and_json_gives_the_counts(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"patient": {"id": "a"}}) + "\n" + "{broken\n")
    done = _run(str(path), "--format", "json")
    assert done.exit_code == 1
    report = json.loads(done.output)
    assert (report["read"], report["loaded"], report["skipped"]) == (2, 1, 1)
    assert report["problems"][0].startswith(f"{path}:2: not JSON")
    path.write_text(json.dumps({"patient": {"id": "a"}}) + "\n")
    clean = _run(str(path))
    assert clean.exit_code == 0 and "records: 1 read, 1 loaded, 0 skipped" in clean.output
    assert "Problems: none" in clean.output
