"""Fuzz the parser and checker with random mutations of the library files.

Run: .venv/bin/python benchmarks/fuzz_protocols.py [N]   (default 100,000 inputs, both cores)
Prints the inputs per second and every input that raised (saved under /tmp/pathways-fuzz/).
"""

from __future__ import annotations

import multiprocessing as mp
import random
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fuzzing import check_one, mutate  # noqa: E402

LIBRARY = ROOT / "library"


def work(args: tuple[int, int]) -> list[tuple[str, str]]:
    seed, count = args
    sources = [p.read_text(encoding="utf-8") for p in sorted(LIBRARY.glob("*.pw"))]
    rng = random.Random(seed)
    failures = []
    for _ in range(count):
        text = mutate(rng.choice(sources), rng)
        try:
            check_one(text, LIBRARY)
        except Exception:  # noqa: BLE001 - every escape is a finding
            failures.append((text, traceback.format_exc()))
    return failures


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    chunks = 40
    jobs = [(seed, total // chunks) for seed in range(chunks)]
    start = time.perf_counter()
    with mp.Pool(2) as pool:
        results = pool.map(work, jobs)
    elapsed = time.perf_counter() - start
    failures = [f for r in results for f in r]
    done = (total // chunks) * chunks
    print(f"{done:,} inputs in {elapsed:.0f} s ({done / elapsed:,.0f}/s on 2 processes): {len(failures)} tracebacks")
    if failures:
        out = Path("/tmp/pathways-fuzz")
        out.mkdir(exist_ok=True)
        for k, (text, tb) in enumerate(failures[:50]):
            (out / f"case{k}.pw").write_text(text)
            (out / f"case{k}.txt").write_text(tb)
        print(failures[0][1])
        print(f"inputs saved in {out}")
        sys.exit(1)


if __name__ == "__main__":
    main()
