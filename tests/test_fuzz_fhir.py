"""Fuzzing the FHIR readers: malformed resources and bundles never raise, never
hang, and every resource is accounted for. A few thousand inputs here;
`benchmarks/fuzz_fhir.py` runs 100,000."""

from __future__ import annotations

import importlib.util
import random
from collections import Counter
from pathlib import Path

import orjson
import pytest

from engine.readers import load_mapping, read_fhir, read_fhir_json

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("fuzz_fhir", ROOT / "benchmarks" / "fuzz_fhir.py")
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)


@pytest.fixture(scope="module")
def pool():
    return fuzz.seeds()


@pytest.mark.parametrize("seed", range(4))
def test_malformed_inputs_in_memory(pool, seed):
    rng = random.Random(f"fuzz-fhir-{seed}")
    mapping = load_mapping(None)
    outcomes = Counter()
    for _ in range(600):
        data = fuzz.make_input(rng.choice(pool), rng)
        problem = fuzz.check(data, lambda d: read_fhir_json(d, source="fuzz", mapping=mapping), outcomes)
        assert problem is None, (problem, fuzz._show(data)[:500])
    assert outcomes["record(s)"] and outcomes["problem(s) only"]  # the mutations reach both kinds of answer


def test_malformed_inputs_as_ndjson_files(pool, tmp_path):
    rng = random.Random("fuzz-fhir-ndjson")
    for k in range(10):
        lines = []
        for _ in range(50):
            data = fuzz.make_input(rng.choice(pool), rng)
            try:
                lines.append(data if isinstance(data, bytes) else orjson.dumps(data))
            except TypeError:
                lines.append(b"[" * 2000)
        path = tmp_path / f"f{k}.ndjson"
        path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
        assert fuzz.check(path, lambda p: read_fhir(p)) is None


@pytest.mark.parametrize("data", [
    b"", b"null", b"[]", b"{}", b'{"resourceType": "Bundle"}', b'{"resourceType": "Bundle", "entry": 7}',
    b'{"resourceType": ["Patient"], "id": "x"}', b'{"resourceType": "Patient", "id": "p", "birthDate": '
    + b"[" * 1000 + b"]" * 1000 + b"}", b'{"resourceType": "Patient", "id": "p", "extension": 5, "gender": {}}',
    b'{"resourceType": "Condition", "id": "c", "subject": {"reference": ["Patient/p"]}}',
    b"\xff\xfe garbage", b'{"resourceType": "Patient", "id": "' + b"x" * 100_000 + b'"}',
])
def test_hostile_inputs_get_a_record_or_a_problem(data):
    records, report = read_fhir_json(data)
    assert report.unbalanced() == {}
    assert records or report.problem_count or report.resources_read == 0
    for problem in report.problems:
        assert len(problem.message) < 400  # a value quoted in a message is cut short


def test_a_deeply_nested_value_is_reported_not_raised():
    deep: object = "x"
    for _ in range(5000):
        deep = [deep]
    records, report = read_fhir_json({"resourceType": "Patient", "id": "p", "birthDate": deep, "gender": deep})
    assert [r.patient.id for r in records] == ["p"]
    assert any("nested too deeply" in p.message for p in report.problems)
