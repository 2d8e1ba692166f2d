"""How fast `pathways check` is on the library and on a large generated protocol.

Run: .venv/bin/python benchmarks/check_speed.py
Targets (issue 2): the whole library < 200 ms; a generated 2,000-line protocol < 500 ms.
Prints the median of several runs after one warm-up (the warm-up builds the parser once,
as a long-running workbench or service would); the cold figure includes building it.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dsl.compiler import Session, protocol_files  # noqa: E402


def generated_protocol(lines: int) -> str:
    """A realistic protocol of about ``lines`` lines: parameters, code lists,
    definitions with windows and filters, item lists, levels and a pathway."""
    out = ['protocol generated:', '  version "1.0.0"', '  title "Generated for the benchmark"',
           '  status draft', '']
    out.append("outcomes level")
    out.append("")
    out.append('codes watch_list "Conditions to watch":')
    for k in range(20):
        out.append(f'  snomed {100000 + k} "Condition {k}"')
    out.append("")
    i = 0
    names = []
    while len(out) < lines - 40:
        out.append(f'parameter threshold_{i} "Threshold {i}" = {i % 9 + 1} months')
        out.append(f'define recent_{i} "Recent events {i}":')
        out.append(f'  count admissions where method is emergency in the last threshold_{i}')
        out.append(f'criterion rule_{i} "Rule {i}":')
        out.append(f'  at least 2 of:')
        out.append(f'    "recent admissions": recent_{i} at least {i % 3 + 1}')
        out.append(f'    "watched conditions": any conditions where code in watch_list and status is active')
        out.append(f'    "older": age at least {60 + i % 20} years')
        out.append(f'    "costly": sum monthly_cost of medications where status is active more than £{50 + i}')
        out.append("")
        names.append(f"rule_{i}")
        i += 1
    out.append('levels level "Level":')
    out.append(f'  level 2 "High": {" or ".join(names[: len(names) // 2])}')
    out.append(f'  level 1 "Some": {" or ".join(names[len(names) // 2:])}')
    out.append('  otherwise level 0 "None"')
    return "\n".join(out) + "\n"


def timed(fn, repeat: int = 7) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs) * 1000


def check_all(files: list[Path]) -> None:
    session = Session()
    for f in files:
        result = session.result(session.compile_path(f, display=str(f)))
        assert result.ok, [d.message for d in result.diagnostics]


def main() -> None:
    library = protocol_files([ROOT / "library"])
    lines = sum(len(p.read_text().splitlines()) for p in library)
    start = time.perf_counter()
    check_all(library)
    cold = (time.perf_counter() - start) * 1000
    warm = timed(lambda: check_all(library))
    print(f"library: {len(library)} files, {lines} lines: cold {cold:.0f} ms, warm median {warm:.1f} ms (target < 200 ms)")
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "generated.pw"
        text = generated_protocol(2000)
        big.write_text(text)
        n = len(text.splitlines())
        ms = timed(lambda: check_all([big]), repeat=5)
        print(f"generated protocol: {n} lines: warm median {ms:.0f} ms (target < 500 ms)")


if __name__ == "__main__":
    main()
