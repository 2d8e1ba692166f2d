"""Fuzz the FHIR readers with malformed resources and bundles.

Run: .venv/bin/python benchmarks/fuzz_fhir.py [N] [--processes P]   (default 100,000 inputs, 2 processes)

Each input is a mutation of a realistic synthetic patient's resources (keys
removed, values of the wrong type, broken references and dates, impossible
resource types, truncated or corrupted JSON text, deep nesting...), read in
memory by ``engine.readers.read_fhir_json``; every 50th batch is also written
as an NDJSON file and read by ``read_fhir``. The promises checked:

* no exception escapes (a traceback is a finding);
* no input takes longer than 2 s (a hang is a finding);
* every input gets a record or a problem, or each resource it holds is
  counted as skipped with a reason (mapped + skipped == read for every type).

Prints the inputs per second and the findings (saved under /tmp/pathways-fuzz-fhir/).
"""

from __future__ import annotations

import copy
import multiprocessing as mp
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

SLOW_SECONDS = 2.0
_WEIRD = [None, 0, -1, 1e308, True, "", " ", "\x00", "é" * 3, "9" * 400, [], {}, [None], {"x": None},
          "2024-13-45", "2024-02-30", "0000", "2024-01-01T25:00:00Z", "urn:uuid:", "Patient/", "Patient/../x",
          "#", {"reference": None}, {"reference": 7}, {"coding": "x"}, {"coding": [None, 1, {"code": {}}]},
          [{"system": None, "code": None}], "x" * 20_000]
_TYPES = ["Patient", "Condition", "Encounter", "MedicationRequest", "Observation", "Bundle", "Organization",
          "Practitioner", "NotAType", "", None, 5, ["Patient"], "patient", "Medication", "MedicationStatement"]


def seeds() -> list[list[dict]]:
    """A few realistic patients' resources to mutate."""
    from engine.fhir_write import record_to_resources
    from engine.generate import generate

    return [record_to_resources(r) for r in generate(6, seed=11, as_of="2024-04-01", min_age=60)]


def _paths(obj, prefix=()):
    """Every (container, key) in a JSON value, to pick one to mutate."""
    out = []
    stack = [obj]
    while stack and len(out) < 400:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                out.append((node, k))
                stack.append(v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                out.append((node, i))
                stack.append(v)
    return out


def mutate_resource(res: dict, rng: random.Random) -> object:
    res = copy.deepcopy(res)
    for _ in range(rng.randint(1, 4)):
        spots = _paths(res)
        if not spots:
            break
        container, key = rng.choice(spots)
        choice = rng.random()
        if choice < 0.3 and isinstance(container, dict):
            del container[key]
        elif choice < 0.75:
            container[key] = copy.deepcopy(rng.choice(_WEIRD))
        elif choice < 0.85 and isinstance(container, dict):
            container["resourceType"] = rng.choice(_TYPES)
        elif choice < 0.92:
            deep: object = "x"
            for _ in range(rng.choice([10, 100, 1200])):
                deep = [deep] if rng.random() < 0.5 else {"a": deep}
            container[key] = deep
        else:
            return rng.choice(_WEIRD + [res])
    return res


def make_input(resources: list[dict], rng: random.Random) -> bytes | object:
    """One malformed input: a Bundle, a resource, an array, or corrupted JSON text."""
    picked = [mutate_resource(r, rng) if rng.random() < 0.5 else r
              for r in rng.sample(resources, k=rng.randint(1, len(resources)))]
    shape = rng.random()
    if shape < 0.55:
        entries = [{"resource": r, "fullUrl": rng.choice([None, "urn:uuid:1", 7, f"urn:uuid:{i}"])}
                   if rng.random() < 0.95 else rng.choice(_WEIRD) for i, r in enumerate(picked)]
        doc: object = {"resourceType": "Bundle", "type": rng.choice(["collection", "searchset", 3]),
                       "entry": entries if rng.random() < 0.95 else rng.choice(_WEIRD)}
    elif shape < 0.7:
        doc = picked[0]
    elif shape < 0.8:
        doc = picked
    else:
        doc = rng.choice(_WEIRD)
    if rng.random() < 0.5:
        return doc
    try:
        text = orjson.dumps(doc)
    except TypeError:  # nested deeper than JSON text can be written: read as an object instead
        return doc
    cut = rng.random()
    if cut < 0.3 and text:
        text = text[:rng.randrange(len(text))]
    elif cut < 0.5 and text:
        i = rng.randrange(len(text))
        text = text[:i] + bytes([rng.randrange(256)]) + text[i + 1:]
    elif cut < 0.55:
        text = b"[" * 5000 + b"]" * 5000
    return text


def check(data, read, outcomes: Counter | None = None) -> str | None:
    """None if the reader kept its promises for ``data``, else what went wrong.

    ``outcomes`` counts what each input got: "record(s)", "problem(s) only", or
    "accounted": no patient and no problem, each resource counted as mapped
    (e.g. an Organization, indexed for references) or skipped with a reason.
    """
    start = time.perf_counter()
    records, report = read(data)
    took = time.perf_counter() - start
    if took > SLOW_SECONDS:
        return f"took {took:.1f} s"
    if report.unbalanced():
        return f"counts do not balance: {report.unbalanced()}"
    if outcomes is not None:
        outcomes["record(s)" if records else "problem(s) only" if report.problem_count else "accounted"] += 1
    return None


def work(args: tuple[int, int]) -> tuple[Counter, list[tuple[str, str]]]:
    from engine.readers import load_mapping, read_fhir, read_fhir_json

    seed, count = args
    rng = random.Random(seed)
    pool = seeds()
    mapping = load_mapping(None)
    findings, outcomes = [], Counter()
    batch: list = []
    for k in range(count):
        data = make_input(rng.choice(pool), rng)
        try:
            problem = check(data, lambda d: read_fhir_json(d, source="fuzz", mapping=mapping), outcomes)
        except Exception:  # noqa: BLE001 - every escape is a finding
            problem = traceback.format_exc()
        if problem:
            findings.append((_show(data), problem))
        batch.append(data)
        if len(batch) == 50:
            if (k // 50) % 50 == 0:  # now and then, the same inputs as an NDJSON file through read_fhir
                findings.extend(_ndjson(batch, read_fhir))
            batch = []
    return outcomes, findings


def _show(data) -> str:
    try:
        return (data if isinstance(data, bytes) else orjson.dumps(data))[:5000].decode("utf-8", "replace")
    except TypeError:
        return "(a value nested too deeply to show)"


def _ndjson(batch: list, read_fhir) -> list[tuple[str, str]]:
    lines = []
    for d in batch:
        try:
            lines.append(d if isinstance(d, bytes) else orjson.dumps(d))
        except TypeError:
            lines.append(b"[" * 2000)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.ndjson"
        path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
        try:
            problem = check(path, lambda p: read_fhir(p))
        except Exception:  # noqa: BLE001
            problem = traceback.format_exc()
    return [("(an NDJSON file of 50 inputs)", problem)] if problem else []


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=(__doc__ or "Fuzz the FHIR readers.").splitlines()[0])
    parser.add_argument("inputs", nargs="?", type=int, default=100_000, help="how many inputs (default 100,000)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (default 2)")
    options = parser.parse_args()
    total, processes = options.inputs, options.processes
    chunks = max(processes * 10, 1)
    jobs = [(seed, total // chunks) for seed in range(chunks)]
    start = time.perf_counter()
    with mp.Pool(processes) as pool:
        results = pool.map(work, jobs)
    elapsed = time.perf_counter() - start
    outcomes = sum((o for o, _ in results), Counter())
    done = total // chunks * chunks
    findings = [f for _, fs in results for f in fs]
    print(f"{done:,} malformed FHIR inputs in {elapsed:.0f} s ({done / elapsed:,.0f}/s on {processes} "
          f"process{'es' if processes > 1 else ''}): {len(findings)} findings")
    print("  each input got: " + ", ".join(f"{k} {n:,}" for k, n in sorted(outcomes.items())))
    if findings:
        out = Path("/tmp/pathways-fuzz-fhir")
        out.mkdir(exist_ok=True)
        for k, (data, problem) in enumerate(findings[:50]):
            (out / f"case{k}.txt").write_text(f"{problem}\n\n{data}")
        print(findings[0][1])
        print(f"inputs saved in {out}")
        sys.exit(1)


if __name__ == "__main__":
    main()
