"""Limits: protocol size and nesting (compiler), record size and items per
record (readers), time per patient (engine); each a clear, configurable error."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from dsl.compiler import Session, compile_file, compile_text
from engine.fhir_write import record_to_resources
from engine.generate import generate
from engine.limits import EvaluationTimeout, LimitError, Limits, check_record, evaluate_within, load_protocol
from engine.readers import read_fhir, read_fhir_json
from engine.service.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_a_protocol_over_the_size_limit_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "big.pw"
    path.write_text('protocol big:\n  version "1"\n' + "# padding\n" * 200, encoding="utf-8")
    result = compile_file(path, Session(max_file_bytes=500))
    (d,) = [d for d in result.diagnostics if d.severity == "error"]
    assert d.code == "PW109" and str(path) in d.message and "the limit is 500" in d.message


def test_nesting_beyond_the_configured_depth_names_the_declaration():
    text = ('protocol p:\n  version "1"\n\ndefine deep: ' + "not " * 12 + "true\n"
            "define shallow: not true\n")
    assert compile_text(text, "p.pw").protocol is not None  # the default limit allows it
    result = compile_text(text, "p.pw", max_depth=5)
    errors = [d for d in result.diagnostics if d.severity == "error"]
    assert [d.code for d in errors] == ["PW108"]
    assert errors[0].message.startswith("`deep` nests") and "the limit is 5" in errors[0].message
    assert errors[0].span.line == 4


def test_load_protocol_applies_the_limits():
    assert load_protocol(ROOT / "library" / "castlefields.pw").protocol.header.name == "castlefields"
    with pytest.raises(Exception, match="the limit is 3"):
        load_protocol(ROOT / "library" / "castlefields.pw", Limits(max_nesting_depth=3))


def test_limits_from_configuration_reject_mistakes(tmp_path):
    assert Limits.from_dict({"max_items_per_record": 10}).max_items_per_record == 10
    with pytest.raises(LimitError, match="did you mean max_items_per_record"):
        Limits.from_dict({"max_item_per_record": 10})
    with pytest.raises(LimitError, match="positive number"):
        Limits.from_dict({"max_record_bytes": -1})
    config = tmp_path / "service.toml"
    config.write_text('[tokens]\ngp = "0123456789abcdef0"\n[limits]\nmax_seconds_per_patient = 0.5\n')
    assert load_config(config, environ={}).limits.max_seconds_per_patient == 0.5
    config.write_text('[tokens]\ngp = "short"\n')
    with pytest.raises(ConfigError, match="shorter than 16"):
        load_config(config, environ={})
    with pytest.raises(ConfigError, match="item 2 is not written name:token"):
        load_config(None, environ={"PATHWAYS_TOKENS": "a:0123456789abcdef0,nocolon"})


def _bundle(record) -> dict:
    return {"resourceType": "Bundle", "entry": [{"resource": r} for r in record_to_resources(record)]}


def test_a_record_over_the_item_limit_is_not_loaded_and_every_resource_is_accounted_for():
    a, b = list(generate(2, seed=5, as_of="2024-04-01", min_age=70))
    small = min((a, b), key=lambda r: len(record_to_resources(r)))
    large = max((a, b), key=lambda r: len(record_to_resources(r)))
    limit = len(record_to_resources(small))  # the small record fits; the large does not
    bundle = {"resourceType": "Bundle", "entry": _bundle(a)["entry"] + _bundle(b)["entry"]}
    records, report = read_fhir_json(orjson.dumps(bundle), max_items_per_record=limit)
    assert [r.patient.id for r in records] == [small.patient.id]
    (problem,) = [p for p in report.problems if "limit" in p.message]
    assert problem.resource_id == large.patient.id and f"the limit is {limit:,} per record" in problem.message
    assert report.unbalanced() == {}
    assert report.patients_skipped["the record has more items than the limit"] == 1


def test_an_ndjson_line_over_the_size_limit_is_reported_with_its_line(tmp_path):
    (record,) = generate(1, seed=5, as_of="2024-04-01", min_age=70)
    lines = [orjson.dumps(r) for r in record_to_resources(record)]
    lines.append(orjson.dumps({"resourceType": "Observation", "id": "huge", "note": "x" * 5000}))
    path = tmp_path / "data.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    records, report = read_fhir(path, max_record_bytes=4000)
    assert len(records) == 1
    (problem,) = [p for p in report.problems if "limit" in p.message]
    assert problem.line == len(lines) and "the limit is 4,000 per resource" in problem.message
    assert report.unbalanced() == {}


def test_in_memory_data_over_the_size_limit_is_refused():
    records, report = read_fhir_json(b"{" + b" " * 100 + b"}", source="request", max_record_bytes=50)
    assert records == [] and "the limit is 50" in report.problems[0].message


def test_check_record_names_the_patient():
    (record,) = generate(1, seed=5, as_of="2024-04-01", min_age=70)
    check_record(record)
    with pytest.raises(LimitError, match=f"patient {record.patient.id}: the record has"):
        check_record(record, Limits(max_items_per_record=1))


def test_evaluation_time_limit():
    assert evaluate_within(lambda: 42, 1.0, "p1") == 42
    start = time.perf_counter()
    with pytest.raises(EvaluationTimeout, match="patient p2: the evaluation took longer than the limit of 0.05"):
        evaluate_within(lambda: time.sleep(1), 0.05, "p2")
    assert time.perf_counter() - start < 0.5  # the caller is not kept waiting
    with pytest.raises(ZeroDivisionError):
        evaluate_within(lambda: 1 / 0, 1.0, "p3")  # the evaluation's own errors come through


# --- the limits on `pathways run` ----------------------------------------------------------------

@pytest.fixture(scope="module")
def records_file(tmp_path_factory):
    """Generated records as JSON lines, with how many items each holds."""
    from engine.limits import record_items

    records = list(generate(30, seed=4, as_of="2024-04-01", min_age=70))
    path = tmp_path_factory.mktemp("run") / "people.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r.model_dump(mode="json")) + b"\n" for r in records))
    return path, [(r.id, record_items(r)) for r in records]


def _run(*args):
    from click.testing import CliRunner

    from tui.cli import cli
    return CliRunner().invoke(cli, ["run", str(ROOT / "library" / "castlefields.pw"), "--as-of", "2024-04-01",
                                    *args])


def test_run_skips_records_over_the_item_and_size_limits_naming_their_lines(records_file, tmp_path):
    path, items = records_file
    limit = sorted(n for _, n in items)[len(items) // 2]
    over = [(line, pid) for line, (pid, n) in enumerate(items, start=1) if n > limit]
    r = _run("--data", str(path), "--limit", f"max_items_per_record={limit}", "--output", str(tmp_path / "o.jsonl"))
    assert r.exit_code == 0, r.output
    assert f"{len(items)} read, {len(items) - len(over)} loaded, {len(over)} skipped " \
           f"(record over the item limit: {len(over)})" in r.output
    line, pid = over[0]
    assert f"people.jsonl:{line}: patient {pid}: the record has" in r.output and f"the limit is {limit:,}" in r.output
    assert len((tmp_path / "o.jsonl").read_bytes().splitlines()) == len(items) - len(over)
    sizes = [len(x) for x in path.read_bytes().splitlines()]
    r = _run("--data", str(path), "--limit", f"max_record_bytes={max(sizes) - 1}", "--output", str(tmp_path / "p"))
    assert r.exit_code == 0 and "(record over the size limit: 1)" in r.output
    assert f"people.jsonl:{sizes.index(max(sizes)) + 1}: the record is {max(sizes):,} bytes" in r.output
    r = _run("--data", str(path), "--limit", f"max_items_per_record={limit}", "--strict")
    assert r.exit_code == 1 and f"people.jsonl:{line}: patient {pid}" in r.output


def test_run_stops_with_the_patient_named_when_one_takes_too_long(records_file, tmp_path):
    path, items = records_file
    out = tmp_path / "out.jsonl"
    r = _run("--data", str(path), "--limit", "max_seconds_per_patient=0.000001", "--output", str(out))
    assert r.exit_code == 1 and f"patient {items[0][0]}: the evaluation took" in r.output
    assert "longer than the limit of 1e-06 seconds" in r.output and "Traceback" not in r.output
    assert not out.exists() or out.read_bytes() == b""


def test_run_reads_limits_from_a_file_and_refuses_mistakes(records_file, tmp_path):
    path, _ = records_file
    config = tmp_path / "limits.toml"
    config.write_text("[limits]\nmax_protocol_bytes = 100\n", encoding="utf-8")
    r = _run("--data", str(path), "--limits", str(config))
    assert r.exit_code == 1 and "PW109" in r.output and "the limit is 100" in r.output
    r = _run("--data", str(path), "--limit", "max_items=3")
    assert r.exit_code == 2 and "did you mean max_items_per_record?" in r.output
    config.write_text("[limits]\nmax_record_bytes = -1\n", encoding="utf-8")
    r = _run("--data", str(path), "--limits", str(config))
    assert r.exit_code == 2 and "limits.toml [limits]: max_record_bytes must be a positive number" in r.output
    config.write_text("[service]\n", encoding="utf-8")
    r = _run("--data", str(path), "--limits", str(config))
    assert r.exit_code == 2 and "there is no [limits] table" in r.output
