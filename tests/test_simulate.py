"""`simulate`: re-stratification over time, entries and exits hand-checked on three patients."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

import engine
from engine.simulate import dates, simulate
from pathways.records import Condition, Encounter, PartialDate, Patient, PathwayEventRecord, PatientRecord

FIXTURE = Path(__file__).parent / "fixtures" / "pathways" / "case_management.pw"
D = dt.date.fromisoformat


def person(pid, admissions=(), copd=False):
    return PatientRecord(
        patient=Patient(id=pid, birth_date=PartialDate.parse("1940-01-01"), practice="A"),
        encounters=tuple(Encounter(kind="admission", method="emergency", start=PartialDate.parse(d),
                                   source_id=f"{pid}-adm{i}") for i, d in enumerate(admissions)),
        conditions=(Condition(code="13645005", source_id=f"{pid}-copd"),) if copd else ())


# Level 3 needs two unplanned admissions in the last 12 months.
# x: admitted 2023-01-10 and 2023-03-05: level 3 on 1 Jan 2024, not from 1 Feb (one left in the window).
# y: COPD: level 2 throughout, and on the COPD register.
# z: admitted 2023-12-20 and 2024-01-15: level 0 on 1 Jan, level 3 from 1 Feb.
PEOPLE = [person("x", ("2023-01-10", "2023-03-05")), person("y", copd=True), person("z", ("2023-12-20", "2024-01-15"))]
EXPECTED = [
    ["2024-01-01", "level", "3", 1, "", ""], ["2024-01-01", "level", "2", 1, "", ""],
    ["2024-01-01", "level", "0", 1, "", ""], ["2024-01-01", "case_management", "on pathway", 1, "", ""],
    ["2024-01-01", "copd_register", "on pathway", 1, "", ""],
    ["2024-02-01", "level", "3", 1, 1, 1], ["2024-02-01", "level", "2", 1, 0, 0],
    ["2024-02-01", "level", "0", 1, 1, 1], ["2024-02-01", "case_management", "on pathway", 1, 1, 1],
    ["2024-02-01", "copd_register", "on pathway", 1, 0, 0],
    ["2024-03-01", "level", "3", 1, 0, 0], ["2024-03-01", "level", "2", 1, 0, 0],
    ["2024-03-01", "level", "0", 1, 0, 0], ["2024-03-01", "case_management", "on pathway", 1, 0, 0],
    ["2024-03-01", "copd_register", "on pathway", 1, 0, 0],
]


@pytest.fixture(scope="module")
def program():
    return engine.load(FIXTURE)


def test_entries_and_exits_between_dates(program):
    rows = simulate(program, PEOPLE, dates(D("2024-01-01"), D("2024-03-01"), 1, "months"))
    assert [r.as_list() for r in rows] == EXPECTED


def test_dates_count_from_the_start_and_include_the_end():
    assert dates(D("2024-01-31"), D("2024-03-31"), 1, "months") == [D("2024-01-31"), D("2024-02-29"),
                                                                     D("2024-03-31")]
    assert dates(D("2024-01-01"), D("2024-01-20"), 2, "weeks") == [D("2024-01-01"), D("2024-01-15")]
    with pytest.raises(ValueError):
        dates(D("2024-01-01"), D("2024-02-01"), 0, "months")


def test_simulate_command_writes_the_plot_ready_csv(tmp_path):
    from tui.cli import cli

    data = tmp_path / "people.jsonl"
    data.write_bytes(b"".join(orjson.dumps(r.model_dump(mode="json")) + b"\n" for r in PEOPLE))
    out = tmp_path / "sim.csv"
    args = ["simulate", str(FIXTURE), "--data", str(data), "--from", "2024-01-01", "--to", "2024-03-01",
            "--every", "1 month", "--csv", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    with out.open(newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["date", "outcome", "value", "count", "entered", "left"]
    assert table[1:] == [[str(v) for v in row] for row in EXPECTED]
    first = out.read_bytes()
    assert CliRunner().invoke(cli, args).exit_code == 0 and out.read_bytes() == first  # deterministic
    assert "2024-02-01" in result.stdout and "on pathway" in result.stdout


def test_simulate_takes_timing_overrides(tmp_path):
    """An approach never answered: off the pathway at 28 days (the default), still on it at 60."""
    from tui.cli import cli

    timed = Path(__file__).parent / "fixtures" / "pathways" / "timed.pw"
    waiting = person("w").model_copy(update={"pathway_events": (
        PathwayEventRecord(event="approached", date=PartialDate.parse("2023-03-20"), source_id="w1"),)})
    data = tmp_path / "people.jsonl"
    data.write_bytes(orjson.dumps(waiting.model_dump(mode="json")) + b"\n")
    args = ["simulate", str(timed), "--data", str(data), "--from", "2023-04-01", "--to", "2023-05-01",
            "--csv", str(tmp_path / "sim.csv")]
    for extra, rows in (([], [["2023-04-01", "case_management", "on pathway", "1", "", ""],
                              ["2023-05-01", "case_management", "on pathway", "0", "0", "1"]]),
                        (["--param", "response_period=60 days"],
                         [["2023-04-01", "case_management", "on pathway", "1", "", ""],
                          ["2023-05-01", "case_management", "on pathway", "1", "0", "0"]])):
        result = CliRunner().invoke(cli, [*args, *extra])
        assert result.exit_code == 0, result.output
        with (tmp_path / "sim.csv").open(newline="") as f:
            assert list(csv.reader(f))[1:] == rows
