"""How fast the engine evaluates protocols, and how much memory a population run takes.

Run: .venv/bin/python benchmarks/engine_speed.py
     (options: --sizes 10000,100000  --json-sample 2000  --no-memory  --profile  --pin CPU  --quick
      --by-hand)

Targets (issue 3): Castlefields, one core, not counting input parsing:
  >= 100,000 patients/s without explanations, >= 20,000/s with full explanations;
  memory stays flat while streaming a population.

What is measured:
* speed: records are generated first (tests/synthetic.py: engine/generate.py's
  synthetic population, patients aged 40 and over) and not timed; then
  ``program.evaluate(record, as_of, population=...)`` for every record, in one
  thread, without and with ``explain=True``. Rates are per second of the
  process's CPU time (one core's work; a busy machine does not distort it),
  with wall-clock beside them; ``--pin CPU`` pins the process to one core.
  Castlefields (and the pyramid, which imports it) rank GP visits within the
  practice, so the population's distributions are computed first (phase one,
  timed on its own line) and passed in. If ``engine/explain.py`` exists,
  building the explanation JSON (``explain_json``, then orjson) is timed too,
  on the first ``--json-sample`` patients (2,000 by default: all 100,000 would
  take minutes), and the per-patient rate of trace + JSON is derived from the two.
* ``--by-hand``: the Castlefields criteria written by hand for this one protocol
  (benchmarks/castlefields_by_hand.py), a ceiling for what per-patient Python
  does on this machine. It is first checked to give the engine's eligible,
  criteria_met and eleven criterion values on every record whose dates are all
  known to the day; then it and the engine are timed, alternately, on those
  same records, and the engine's rate over the hand-written one is printed.
* memory (run first, while the timing records are generated, and finished
  before any timing starts): each run is a fresh child process that streams ``n`` generated
  records through ``evaluate_population`` and discards the results; printed
  is the growth of its resident memory (peak RSS over the RSS after a
  warm-up), with the RSS sampled at tenths of the run. Evercare streams;
  Castlefields has a population term, so ``evaluate_population`` holds every
  record between its two phases and grows with n; the third row shows the
  same two phases done by the caller over a re-readable source (generate
  twice), which stays flat.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import engine  # noqa: E402
from synthetic import generate, iter_generate  # noqa: E402

LIBRARY = ROOT / "library"
AS_OF = "2024-04-01"
SEED = 20240401
TARGETS = {("castlefields", False): 100_000, ("castlefields", True): 20_000}


# --- speed ------------------------------------------------------------------------------------

def explanation_builder():
    """The function of engine/explain.py that turns a result into its JSON, if there is one."""
    try:
        from engine import explain as ex  # type: ignore[attr-defined]
    except ImportError:
        return None, "engine/explain.py not present: explanation JSON not timed"
    for name in ("explain_json", "explanation_json", "render_json", "as_json", "json_explanation"):
        fn = getattr(ex, name, None)
        if callable(fn):
            return fn, f"engine.explain.{name}"
    return None, "engine/explain.py has no explain_json: explanation JSON not timed"


def _json_bytes(fn, result) -> bytes:
    import orjson
    out = fn(result)
    if isinstance(out, (bytes, str)):
        return out if isinstance(out, bytes) else out.encode()
    return orjson.dumps(out)


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>10,.0f}/s" if seconds > 0 else "         -"


def verdict(name: str, explain: bool, per_second: float) -> str:
    target = TARGETS.get((name, explain))
    if target is None:
        return "(no target)"
    return f"target {target:>7,}/s: {'met' if per_second >= target else 'NOT met'}"


def time_protocol(name: str, records: list, sizes: list[int], builder, json_sample: int) -> None:
    program = engine.load(LIBRARY / f"{name}.pw")
    ranks = bool(program.population_terms())
    # warm up both compilations (the traced one is built on first use)
    for explain in (False, True):
        warm = records[:200]
        pop = program.distributions(warm, AS_OF) if ranks else None
        for r in warm:
            program.evaluate(r, AS_OF, explain=explain, population=pop)
    for n in sizes:
        subset = records[:n]
        population = None
        if ranks:
            cpu = time.process_time()
            population = program.distributions(subset, AS_OF)
            cpu = time.process_time() - cpu
            print(f"  {name:<13} {n:>7,}  phase one (distributions)     {rate(n, cpu)}  {cpu:6.2f} s cpu")
        traced_rate = 0.0
        for explain in (False, True):
            gc.collect()
            wall = time.perf_counter()
            cpu = time.process_time()
            for r in subset:
                program.evaluate(r, AS_OF, explain=explain, population=population)
            wall = time.perf_counter() - wall
            cpu = time.process_time() - cpu
            if explain:
                traced_rate = n / cpu
            label = "with explanations (trace)  " if explain else "without explanations       "
            print(f"  {name:<13} {n:>7,}  {label}  {rate(n, cpu)}  {cpu:6.2f} s cpu "
                  f"(wall {wall:6.2f} s = {n / wall:>6,.0f}/s)  {verdict(name, explain, n / cpu)}")
        # a prepared record (engine.prepare: collections picked, dates read as day
        # numbers) is what a caller evaluating several protocols or dates keeps
        gc.collect()
        gc.freeze()  # the records and the prepared records are long-lived: keep the collector off them
        cpu = time.process_time()
        prepared = [engine.prepare(r) for r in subset]
        cpu = time.process_time() - cpu
        print(f"  {name:<13} {n:>7,}  engine.prepare (records)     {rate(n, cpu)}  {cpu:6.2f} s cpu")
        cpu = time.process_time()
        for r in prepared:
            program.evaluate(r, AS_OF, population=population)
        cpu = time.process_time() - cpu
        gc.unfreeze()
        del prepared
        print(f"  {name:<13} {n:>7,}  without explanations, prepared {rate(n, cpu)}  {cpu:6.2f} s cpu"
              f"{'':<33}{verdict(name, False, n / cpu)}")
        if builder is None or n != sizes[0]:
            continue  # the JSON sample is the same first patients at every size: time it once
        sample = subset[:json_sample] if json_sample > 0 else subset
        results = [program.evaluate(r, AS_OF, explain=True, population=population) for r in sample]
        try:
            gc.collect()
            cpu = time.process_time()
            size = sum(len(_json_bytes(builder, res)) for res in results)
            cpu = time.process_time() - cpu
        except Exception as exc:  # noqa: BLE001 - explain.py is being written alongside
            print(f"  {name:<13} {n:>7,}  explanation JSON failed: {type(exc).__name__}: {exc}")
            continue
        per_json = cpu / len(sample)
        print(f"  {name:<13} {n:>7,}  explanation JSON (first {len(sample):,})  {rate(len(sample), cpu)}  "
              f"{cpu:6.2f} s cpu ({size / len(sample) / 1024:.1f} KiB each)")
        both = 1 / (1 / traced_rate + per_json)
        print(f"  {name:<13} {n:>7,}  trace + JSON, per patient    {rate(1, 1 / both)}  "
              f"{'':<42}{verdict(name, True, both)}")


# --- the hand-written ceiling -----------------------------------------------------------------

def by_hand(records: list, rounds: int = 3) -> None:
    """Check the hand-written Castlefields against the engine, then time both on the same records."""
    from castlefields_by_hand import disagreements, prepared

    program = engine.load(LIBRARY / "castlefields.pw")
    subset, population, criteria = prepared(program, records, AS_OF)
    wrong = disagreements(program, subset, population, criteria, AS_OF)
    for line in wrong[:3]:
        print("  " + line)
    print(f"  checked: the hand-written criteria give the engine's values for {len(subset) - len(wrong):,} of "
          f"{len(subset):,} records (those with every date known to the day, of {len(records):,})")
    if wrong:
        print("  NOT timed: the hand-written criteria disagree with the engine")
        return
    engine_cpu, hand_cpu = [], []
    gc.collect()
    gc.freeze()
    for _ in range(rounds):  # alternate, so that a change in the machine's load touches both
        cpu = time.process_time()
        for r in subset:
            program.evaluate(r, AS_OF, population=population)
        engine_cpu.append(time.process_time() - cpu)
        cpu = time.process_time()
        for r in subset:
            criteria(r)
        hand_cpu.append(time.process_time() - cpu)
    gc.unfreeze()
    n = len(subset)
    best_engine, best_hand = min(engine_cpu), min(hand_cpu)
    print(f"  castlefields  {n:>7,}  engine, without explanations   {rate(n, best_engine)}  "
          f"{best_engine:6.2f} s cpu (best of {rounds})")
    print(f"  castlefields  {n:>7,}  written by hand in Python      {rate(n, best_hand)}  "
          f"{best_hand:6.2f} s cpu (best of {rounds})")
    print(f"  the engine takes {best_engine / best_hand:.1f}x the hand-written criteria's CPU time; "
          f"the target of {TARGETS['castlefields', False]:,}/s is "
          f"{TARGETS['castlefields', False] * best_hand / n:.2f}x the hand-written rate")


# --- memory -----------------------------------------------------------------------------------

def _status(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM (Linux >= 4.0)
        return True
    except OSError:
        return False


def memory_child(mode: str, n: int) -> dict:
    """Stream ``n`` patients; report resident memory before, during and after."""
    name = "evercare" if mode == "evercare" else "castlefields"
    program = engine.load(LIBRARY / f"{name}.pw")
    # warm-up: fill the fixture's bounded cache of dates (so it does not count as growth)
    # without holding records, then run the engine on a few
    for _ in iter_generate(2000, SEED + 1, AS_OF):
        pass
    for _ in program.evaluate_population(iter_generate(50, SEED + 1, AS_OF), AS_OF):
        pass
    gc.collect()
    reset = _reset_peak()
    base = _status("VmRSS")
    samples = []
    step = max(n // 10, 1)
    start = time.perf_counter()
    count = 0
    if mode == "castlefields-reread":
        population = program.distributions(iter_generate(n, SEED, AS_OF), AS_OF)
        results = (program.evaluate(r, AS_OF, population=population) for r in iter_generate(n, SEED, AS_OF))
    else:
        results = program.evaluate_population(iter_generate(n, SEED, AS_OF), AS_OF)
    for result in results:
        count += 1
        if count % step == 0:
            samples.append(_status("VmRSS") - base)
        del result
    took = time.perf_counter() - start
    peak = _status("VmHWM")
    return {"mode": mode, "n": count, "base_kib": base, "peak_growth_kib": peak - base if reset else None,
            "samples_kib": samples, "seconds": took, "rss_end_kib": _status("VmRSS")}


MEMORY_MODES = {
    "evercare": "evercare, evaluate_population (streams)",
    "castlefields": "castlefields, evaluate_population (holds records)",
    "castlefields-reread": "castlefields, two passes over a re-read source",
}


def start_memory(sizes: list[int], workers: int):
    """Start the memory runs (child processes) in the background; returns a way to wait for them."""
    cost = {"castlefields": 3, "castlefields-reread": 2, "evercare": 1}
    jobs = [(mode, n) for mode in MEMORY_MODES for n in sizes]
    order = sorted(jobs, key=lambda job: -job[1] * cost[job[0]])  # longest first, to finish sooner

    def one(job):
        mode, n = job
        out = subprocess.run([sys.executable, __file__, "--memory-child", mode, str(n)],
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            return {"mode": mode, "n": n, "error": out.stderr.strip().splitlines()[-1:]}
        return json.loads(out.stdout.strip().splitlines()[-1])

    pool = ThreadPoolExecutor(max_workers=workers)
    futures = {job: pool.submit(one, job) for job in order}

    def wait() -> list[dict]:
        reports = [futures[job].result() for job in jobs]
        pool.shutdown()
        return reports
    return wait


def print_memory(reports: list[dict]) -> None:
    print(f"  {'':<52} {'n':>8}  {'peak growth':>11}  RSS growth at each tenth of the run (MiB)")
    for rep in reports:
        label = MEMORY_MODES[rep["mode"]]
        if "error" in rep:
            print(f"  {label:<52} {rep['n']:>8,}  failed: {rep['error']}")
            continue
        peak = rep["peak_growth_kib"]
        peak_text = f"{peak / 1024:8.1f} MiB" if peak is not None else "   n/a     "
        tenths = " ".join(f"{s / 1024:.0f}" for s in rep["samples_kib"])
        print(f"  {label:<52} {rep['n']:>8,}  {peak_text}  [{tenths}]  ({rep['seconds']:.0f} s incl. generation)")


# --- profile ----------------------------------------------------------------------------------

def profile(name: str, records: list, explain: bool, top: int = 25) -> None:
    program = engine.load(LIBRARY / f"{name}.pw")
    population = program.distributions(records, AS_OF) if program.population_terms() else None
    for r in records[:200]:
        program.evaluate(r, AS_OF, explain=explain, population=population)
    prof = cProfile.Profile()
    prof.enable()
    for r in records:
        program.evaluate(r, AS_OF, explain=explain, population=population)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    print(f"--- cProfile: {name}, {len(records):,} patients, explain={explain}, top {top} by tottime")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:12000])


def profile_json(name: str, records: list, builder, top: int = 15) -> None:
    program = engine.load(LIBRARY / f"{name}.pw")
    population = program.distributions(records, AS_OF) if program.population_terms() else None
    results = [program.evaluate(r, AS_OF, explain=True, population=population) for r in records]
    prof = cProfile.Profile()
    prof.enable()
    for res in results:
        _json_bytes(builder, res)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).strip_dirs().sort_stats("tottime").print_stats(top)
    print(f"--- cProfile: explanation JSON, {name}, {len(records):,} patients, top {top} by tottime")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))


# --- main -------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="population sizes, comma-separated")
    parser.add_argument("--quick", action="store_true", help="small sizes (1,000 and 5,000), for a smoke run")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory runs")
    parser.add_argument("--json-sample", type=int, default=2000,
                        help="explanation JSON is timed on the first N patients of each size (0: all of them)")
    parser.add_argument("--pin", type=int, metavar="CPU", help="pin the timings to this cpu")
    parser.add_argument("--profile", action="store_true", help="also print cProfile (top 25 by tottime)")
    parser.add_argument("--by-hand", action="store_true",
                        help="also time the Castlefields criteria written by hand (a ceiling for Python)")
    parser.add_argument("--memory-workers", type=int, default=2,
                        help="memory child processes run at once (before the timings, so they do not disturb them)")
    parser.add_argument("--memory-child", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child[0], int(args.memory_child[1]))))
        return

    sizes = [1000, 5000] if args.quick else sorted(int(s) for s in args.sizes.split(","))
    wall = time.perf_counter()
    print(f"engine speed: Python {sys.version.split()[0]}, pid {os.getpid()}, as of {AS_OF}, seed {SEED}")
    print(f"evaluator: {engine.EVALUATOR} (PATHWAYS_PURE_PYTHON=1 for the pure modules; engine/_compiled.py)")
    # The memory runs go first, in child processes, while this one generates the
    # records for the timings (generation is not timed); the timings wait for them.
    wait_memory = None if args.no_memory else start_memory(sizes, args.memory_workers)
    start = time.perf_counter()
    records = generate(max(sizes), SEED, AS_OF)
    took = time.perf_counter() - start
    items = sum(len(r.conditions) + len(r.medications) + len(r.encounters) + len(r.observations)
                + len(r.life_events) for r in records) / len(records)
    print(f"generated {len(records):,} records in {took:.1f} s (not timed below), "
          f"{items:.1f} items per record on average")
    memory_reports = None
    if wait_memory is not None:
        start = time.perf_counter()
        memory_reports = wait_memory()
        print(f"memory runs finished {time.perf_counter() - start:.0f} s later; timings start now, alone")

    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if cpus and args.pin is not None:
        os.sched_setaffinity(0, {args.pin})
        print(f"timings pinned to cpu {args.pin} of {sorted(cpus)}")
    builder, about = explanation_builder()
    print(f"explanations: {about}")
    print()
    print("speed (one thread; rates are patients per second of this process's CPU time, which other load\n"
          "on the machine does not inflate, wall-clock beside them; records in memory, results discarded):")
    for name in ("castlefields", "ltc_pyramid"):
        time_protocol(name, records, sizes, builder, args.json_sample)
    print()
    if args.by_hand:
        print("the Castlefields criteria written by hand (benchmarks/castlefields_by_hand.py), on the first "
              f"{min(sizes):,} records:")
        by_hand(records[: min(sizes)])
        print()
    if args.profile:
        profile("castlefields", records[: min(sizes)], explain=False)
        print()
        profile("castlefields", records[: min(sizes)], explain=True, top=10)
        print()
        if builder is not None:
            profile_json("castlefields", records[:1000], builder)
            print()
    if memory_reports is not None:
        print("memory while streaming (each row a fresh process; growth over the RSS after a warm-up):")
        print_memory(memory_reports)
        print()
    print(f"total {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
