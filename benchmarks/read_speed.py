"""How fast the FHIR reader reads the shared Synthea data.

Run: .venv/bin/python benchmarks/read_speed.py [--repeat N]
Targets (issue 4): >= 100 Synthea-size bundles per second and >= 50,000 NDJSON
resources per second.

Measures, each as the median of several runs after one warm-up, the whole of
`read_fhir` (decompress, parse, map, build the records, the load report):

1. the 181 gzipped transaction Bundles of ../shared/data/synthea-r4-bundles/
   (179 patients and the two shared Organization/Practitioner files);
2. the 10-patient Bulk Data NDJSON set of ../shared/data/synthea-r4-ndjson/
   (about 7,000 resources; small, so fixed costs weigh on it);
3. the same bundles' resources re-written as gzipped Bulk Data NDJSON (one
   file per resource type, about 75,000 resources, Observations included), a
   larger NDJSON read.

Skips what is absent (a fresh clone has no ../shared).
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.readers import read_fhir  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
BUNDLES = DATA / "synthea-r4-bundles"
NDJSON = DATA / "synthea-r4-ndjson"
BUNDLE_TARGET = 100  # bundles per second
NDJSON_TARGET = 50_000  # resources per second


def timed(path: Path, repeat: int) -> tuple[float, object]:
    read_fhir(path)  # warm-up
    runs = []
    report = None
    for _ in range(repeat):
        start = time.perf_counter()
        _, report = read_fhir(path)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), report


def as_ndjson(bundles: Path, out: Path) -> None:
    by_type: dict[str, list[bytes]] = defaultdict(list)
    for path in sorted(bundles.glob("*.json.gz")):
        for entry in orjson.loads(gzip.decompress(path.read_bytes()))["entry"]:
            res = entry["resource"]
            by_type[res["resourceType"]].append(orjson.dumps(res))
    for rtype, lines in by_type.items():
        (out / f"{rtype}.000.ndjson.gz").write_bytes(gzip.compress(b"\n".join(lines) + b"\n", compresslevel=6))


def verdict(value: float, target: float) -> str:
    return "met" if value >= target else "NOT met"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"targets: >= {BUNDLE_TARGET} bundles/s, >= {NDJSON_TARGET:,} NDJSON resources/s")
    failed = False
    if BUNDLES.is_dir():
        seconds, report = timed(BUNDLES, args.repeat)
        files = len(report.files)
        rate = files / seconds
        failed |= rate < BUNDLE_TARGET
        print(f"bundles: {files} files, {report.resources_read:,} resources, {report.patients_loaded} patients"
              f" in {seconds:.2f} s = {rate:,.0f} bundles/s ({report.resources_read / seconds:,.0f} resources/s)"
              f" - target {verdict(rate, BUNDLE_TARGET)}")
    else:
        print(f"bundles: {BUNDLES} is absent, skipped")
    if NDJSON.is_dir():
        seconds, report = timed(NDJSON, args.repeat)
        rate = report.resources_read / seconds
        failed |= rate < NDJSON_TARGET
        print(f"ndjson (10-patient set): {report.resources_read:,} resources in {seconds * 1000:.0f} ms"
              f" = {rate:,.0f} resources/s - target {verdict(rate, NDJSON_TARGET)}")
    else:
        print(f"ndjson: {NDJSON} is absent, skipped")
    if BUNDLES.is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            as_ndjson(BUNDLES, Path(tmp))
            seconds, report = timed(Path(tmp), args.repeat)
        rate = report.resources_read / seconds
        failed |= rate < NDJSON_TARGET
        print(f"ndjson (the bundles re-written): {report.resources_read:,} resources in {seconds:.2f} s"
              f" = {rate:,.0f} resources/s - target {verdict(rate, NDJSON_TARGET)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
