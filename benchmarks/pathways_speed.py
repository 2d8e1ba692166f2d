"""Speed of the pathway commands' engines on a generated population: worklist
(pathway state for every patient), caseload, simulate. Prints its figures.

    .venv/bin/python benchmarks/pathways_speed.py [--patients 100000] [--dates 4]

The protocol is library/case_management.pw (the pyramid's levels, the case
management pathway, Castlefields' practice-relative ranking, so each date
also needs the population pass). Figures are wall-clock seconds on this
machine, with the process's CPU seconds beside them (on a shared machine the
CPU figure is the steadier one to compare); they are recorded in
docs/performance.md by hand, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dates", type=int, default=4, help="simulate: how many quarterly dates")
    parser.add_argument("--protocol", default=str(ROOT / "library" / "case_management.pw"))
    args = parser.parse_args()

    import engine
    from engine.caseload import caseload
    from engine.generate import generate
    from engine.pathway_state import find_pathway
    from engine.simulate import dates, simulate
    from engine.worklist import population_for, states, worklist

    as_of = dt.date(2024, 4, 1)
    t = time.perf_counter()
    records = list(generate(args.patients, args.seed, as_of))
    print(f"generated {len(records):,} patients in {time.perf_counter() - t:.1f} s")
    program = engine.load(args.protocol)
    pathway = find_pathway(program.protocol, None)

    t, c = time.perf_counter(), time.process_time()
    population = population_for(program, records, as_of)
    all_states = states(program, pathway, records, as_of, population=population)
    listed = worklist(all_states)
    took, cpu = time.perf_counter() - t, time.process_time() - c
    print(f"worklist ({pathway.name}): {len(listed):,} patients on it; {took:.1f} s, cpu {cpu:.1f} s "
          f"({len(records) / took:,.0f} patients/s, population pass included)")

    t, c = time.perf_counter(), time.process_time()
    plan = caseload(program, records, as_of)
    took, cpu = time.perf_counter() - t, time.process_time() - c
    top = plan.per_level.get(plan.top_level, 0)
    print(f"caseload: {top:,} on level {plan.top_level}, {plan.managers()[0]['at_50']:,} case managers at 50, "
          f"{plan.managers()[0]['at_80']:,} at 80; {took:.1f} s, cpu {cpu:.1f} s")

    when = dates(as_of - dt.timedelta(days=92 * (args.dates - 1)), as_of, 3, "months")[-args.dates:]
    t, c = time.perf_counter(), time.process_time()
    rows = simulate(program, records, when)
    took, cpu = time.perf_counter() - t, time.process_time() - c
    print(f"simulate: {len(when)} dates, {len(rows)} rows; {took:.1f} s ({took / len(when):.1f} s per date), "
          f"cpu {cpu:.1f} s ({cpu / len(when):.1f} s per date)")


if __name__ == "__main__":
    main()
