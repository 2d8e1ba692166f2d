"""Fuzz the parser and checker with random mutations of the library files.

Run: .venv/bin/python benchmarks/fuzz_protocols.py [N] [--seconds S]   (default 100,000 inputs, both cores)
``1000000`` runs the million inputs of the hardening issue; ``--seconds S`` stops after
about S seconds and prints how long the full N would take at the rate measured.
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
    import fuzzing

    if not getattr(fuzzing, "cached", False):  # this process only: check_one's promises are unchanged
        fuzzing.compile_text, fuzzing.cached = fuzzing.compile_with_cached_imports(LIBRARY), True
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


def _counted(args: tuple[int, int]) -> tuple[int, list[tuple[str, str]]]:
    return args[1], work(args)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="?", type=int, default=100_000, help="how many inputs (default 100,000)")
    parser.add_argument("--seconds", type=float, help="stop after about this many seconds")
    options = parser.parse_args()
    total, budget = options.inputs, options.seconds
    size = 500  # inputs per job: small enough to stop soon after the time budget runs out
    jobs = [(seed, min(size, total - seed * size)) for seed in range((total + size - 1) // size)]
    start = time.perf_counter()
    done, failures = 0, []
    with mp.Pool(2) as pool:
        for count, found in pool.imap_unordered(_counted, jobs):
            done += count
            failures.extend(found)
            if budget is not None and time.perf_counter() - start > budget:
                pool.terminate()
                break
    elapsed = time.perf_counter() - start
    print(f"{done:,} inputs in {elapsed:.0f} s ({done / elapsed:,.0f}/s on 2 processes): {len(failures)} tracebacks")
    if done < total:
        print(f"stopped at the time budget; {total:,} inputs would take about {total / (done / elapsed) / 60:,.0f} "
              "minutes at this rate")
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
