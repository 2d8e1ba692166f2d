"""Bad lines of a record file (.jsonl) are reported in the record format's words, with the
field, the patient and the line, never in pydantic's ("Input should be a valid dictionary...")."""

from __future__ import annotations

import json

import click
import pytest

from tui.run import read_records_jsonl

GOOD = {"patient": {"id": "ok", "birth_date": {"text": "1940-01-01"}}}


def _problems(tmp_path, *lines: str) -> list[str]:
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join([json.dumps(GOOD), *lines]) + "\n")
    loaded = read_records_jsonl(path, strict=False)
    assert [r.id for r in loaded.records] == ["ok"]
    assert loaded.read == len(lines) + 1 and sum(loaded.skipped.values()) == len(lines)  # none dropped silently
    return [p.split(": ", 1)[1] for p in loaded.problems]


def test_each_bad_line_names_its_field_and_patient_in_plain_words(tmp_path):
    problems = _problems(
        tmp_path,
        '{"patient": {"id": "p2", "birth_date": "1945-02-01"}}',
        '{"patient": {"id": "p3"}, "conditions": [{"source_id": "c", "code": "1", "onset": {"text": "2020-02-30"}}]}',
        '{"patient": {"id": "p4", "sex": "F"}}',
        '{"patient": {"id": "p5"}, "falls": []}',
        "[1, 2]",
    )
    assert problems == [
        'field patient.birth_date: a date is written as {"text": "YYYY-MM-DD"} (or "YYYY-MM", "YYYY") (patient p2)',
        "field conditions[0].onset: day is out of range for month (patient p3)",
        "field patient.sex: should be 'female', 'male', 'other' or 'unknown' (patient p4)",
        "field falls: not a field of the record format; check its spelling (patient p5)",
        'each line must be one patient record: a JSON object with a "patient"',
    ]


def test_a_line_with_several_problems_says_how_many_more(tmp_path):
    line = '{"patient": {"id": "p6", "sex": "F", "lives_alone": "perhaps"}}'
    (problem,) = _problems(tmp_path, line)
    assert problem.startswith("field patient.sex: ") and problem.endswith("(patient p6); and 1 more problem in "
                                                                          "this record")


def test_strict_stops_at_the_first_bad_line_with_the_same_words(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(GOOD) + '\n{"patient": {"id": "p4", "sex": "F"}}\n')
    with pytest.raises(click.ClickException, match=r"records.jsonl:2: field patient.sex: should be 'female'"):
        read_records_jsonl(path, strict=True)
