"""Load the service on loopback: POST /evaluate and the CDS Hooks patient-view service.

Run: .venv/bin/python benchmarks/load_service.py [--seconds 60] [--concurrency 8] [--max-requests 100000]
                                                 [--workers CORES] [--library library] [--config FILE] [--explain]

Starts `pathways serve` in a subprocess on a free loopback port, sends a
realistic patient (a generated person on level 3: conditions, medicines,
admissions, A&E, GP visits, assessments) alternately to ``POST /evaluate``
and ``POST /cds-services/ltc-pyramid`` from ``--concurrency`` keep-alive
connections, for ``--seconds`` or ``--max-requests``, whichever comes first,
then stops the service. Prints throughput, p50/p99 latency per endpoint and
overall, the errors, the CPU the service and this client spent per request
(read from /proc, so other work on the machine inflates it far less than
the latencies) and the load average (other work on the machine skews the
figures). The service runs one worker process per core unless
``--workers`` says otherwise. The target is 500 requests/s with p99 < 50 ms
and no errors.

The client is a few lines of asyncio speaking HTTP/1.1 directly: a
general-purpose client library spends more CPU per request than the service
does, and on a 2-core machine that would measure the client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

TOKEN = "load-test-token-0123456789abcdef"
AS_OF = "2024-04-01"


def patient() -> list[dict]:
    """A level-3 generated patient with a realistically full record."""
    import engine
    from engine.fhir_write import record_to_resources
    from engine.generate import generate

    program = engine.load(ROOT / "library" / "ltc_pyramid.pw")
    population = {t.id: {} for _, _, t in program.population_terms()}
    best = None
    for record in generate(300, seed=21, as_of=AS_OF, min_age=70):
        if program.evaluate(record, AS_OF, population=population).values().get("level") == 3:
            size = len(record_to_resources(record))
            if best is None or abs(size - 80) < abs(best[0] - 80):
                best = (size, record)
    return record_to_resources(best[1])


def requests_for(resources: list[dict], host: str, explain: bool) -> dict[str, bytes]:
    bundle = orjson.dumps({"resourceType": "Bundle", "type": "collection",
                           "entry": [{"resource": r} for r in resources]})
    pat = next(r for r in resources if r["resourceType"] == "Patient")

    def search(kind):
        return {"resourceType": "Bundle", "type": "searchset",
                "entry": [{"resource": r} for r in resources if r["resourceType"] == kind]}
    hook = orjson.dumps({
        "hook": "patient-view", "hookInstance": "load-test", "context": {"patientId": pat["id"]},
        "prefetch": {"patient": pat, "conditions": search("Condition"), "encounters": search("Encounter"),
                     "medications": search("MedicationRequest"), "observations": search("Observation")},
        "extension": {"ltc-pathways.as_of": AS_OF}})

    def post(path: str, body: bytes) -> bytes:
        return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    return {"POST /evaluate": post(f"/evaluate?protocol=ltc_pyramid&as_of={AS_OF}&explain={str(explain).lower()}",
                                   bundle),
            "POST /cds-services/ltc-pyramid": post("/cds-services/ltc-pyramid", hook)}


async def _exchange(reader, writer, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def drive(port: int, requests: dict[str, bytes], seconds: float, limit: int, concurrency: int) -> dict:
    names = list(requests)
    latencies: dict[str, list[float]] = {n: [] for n in names}
    errors: dict[str, int] = {}
    state = {"sent": 0}
    deadline = time.perf_counter() + seconds

    async def worker(k: int):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        turn = k
        while time.perf_counter() < deadline and state["sent"] < limit:
            state["sent"] += 1
            name = names[turn % len(names)]
            turn += 1
            start = time.perf_counter()
            try:
                status = await _exchange(reader, writer, requests[name])
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                errors[f"{name}: {type(exc).__name__}"] = errors.get(f"{name}: {type(exc).__name__}", 0) + 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            latencies[name].append(time.perf_counter() - start)
            if status != 200:
                errors[f"{name}: HTTP {status}"] = errors.get(f"{name}: HTTP {status}", 0) + 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return {"elapsed": time.perf_counter() - start, "latencies": latencies, "errors": errors}


def _runner():
    """asyncio.run, on uvloop when it is installed: the client shares the 2 cores with the
    service, so every microsecond it spends is one the service does not get."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def _cpu_seconds(root: int) -> float:
    """User + system CPU seconds of process ``root`` and its descendants (Linux /proc).
    CPU per request measures the service's cost even when others compete for the cores."""
    parents, times = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid, t in times.items():
        p = pid
        while p in parents and p != root and p > 1:
            p = parents[p]
        if p == root:
            total += t
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(port: int, proc: subprocess.Popen, log_path: str, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"the service stopped before it was ready (its log: {log_path})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the service did not answer /health in time")


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    values = sorted(values)
    return f"{values[min(len(values) - 1, int(q * len(values)))] * 1000:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--max-requests", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--library", default=str(ROOT / "library"))
    ap.add_argument("--explain", action="store_true", help="ask /evaluate for explanations too")
    ap.add_argument("--config", help="a service configuration (TOML) to pass to `pathways serve`")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="service worker processes (default: one per core)")
    args = ap.parse_args()

    port = _free_port()
    env = {**os.environ, "PATHWAYS_TOKENS": f"load:{TOKEN}"}
    cmd = [sys.executable, "-c", "from tui.cli import main; main()", "serve", "--library", args.library,
           "--port", str(port), "--workers", str(args.workers)] + (["--config", args.config] if args.config else [])
    log = tempfile.NamedTemporaryFile(prefix="pathways-load-", suffix=".log", delete=False)  # the service's JSON logs
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        _wait_until_up(port, proc, log.name)
        requests = requests_for(patient(), f"127.0.0.1:{port}", args.explain)
        load_before = os.getloadavg()
        run = _runner()
        run(drive(port, requests, 2, 200, args.concurrency))  # warm up: threads, caches, connections
        cpu_before, client_before = _cpu_seconds(proc.pid), time.process_time()
        result = run(drive(port, requests, args.seconds, args.max_requests, args.concurrency))
        cpu_after, client_after = _cpu_seconds(proc.pid), time.process_time()
        load_after = os.getloadavg()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    every = [x for v in result["latencies"].values() for x in v]
    total = len(every) + sum(result["errors"].values())
    rate = total / result["elapsed"]
    print(f"{total:,} requests in {result['elapsed']:.1f} s: {rate:,.0f} requests/s, "
          f"{args.concurrency} connections, {args.workers} service process(es); "
          f"/evaluate explanations {'on' if args.explain else 'off'}")
    for name, values in result["latencies"].items():
        print(f"  {name:<32} {len(values):>7,}  p50 {_ms(values, 0.5):>6} ms  p99 {_ms(values, 0.99):>6} ms"
              f"  mean {statistics.fmean(values) * 1000 if values else 0:.1f} ms")
    print(f"  {'all':<32} {len(every):>7,}  p50 {_ms(every, 0.5):>6} ms  p99 {_ms(every, 0.99):>6} ms")
    errors = sum(result["errors"].values())
    print(f"errors: {errors}" + "".join(f"\n  {k}: {n}" for k, n in sorted(result["errors"].items())))
    service_ms = (cpu_after - cpu_before) / max(total, 1) * 1000
    client_ms = (client_after - client_before) / max(total, 1) * 1000
    print(f"CPU per request: service {service_ms:.2f} ms ({cpu_after - cpu_before:.1f} s in {result['elapsed']:.0f} s "
          f"on {os.cpu_count()} cores), this client {client_ms:.2f} ms; the machine's cores could carry at most "
          f"~{(os.cpu_count() or 1) * 1000 / (service_ms + client_ms):,.0f} requests/s if nothing else ran")
    print(f"service log: {log.name}")
    print(f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} cores")
    target = rate >= 500 and every and float(_ms(every, 0.99)) < 50 and errors == 0
    print("target (500 requests/s, p99 < 50 ms, no errors): " + ("met" if target else "NOT met"))


if __name__ == "__main__":
    main()
