"""Several service processes on one port, balanced by the kernel (``pathways serve --workers N``).

uvicorn's own ``--workers`` shares one listening socket between processes.
The first process to wake accepts every connection waiting, so a handful of
keep-alive connections (an EHR's connection pool, the load script) can all
land on one process while the other core idles: measured, half the
throughput in about one run in three. Here each process binds its own socket
with ``SO_REUSEPORT`` and the kernel spreads new connections across them.

The parent only supervises: it starts the workers (each builds the app with
``engine.service.app.from_environment``), restarts one that dies, passes
SIGTERM/SIGINT on, and answers SIGHUP by touching the reload signal file, so
every worker compiles the library again (a broken protocol is refused, as
with ``POST /admin/reload``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import time
from pathlib import Path

from .logs import log

#: a worker that dies sooner than this after starting is failing to start, not crashing
STARTUP_SECONDS = 20


def bind(host: str, port: int) -> socket.socket:
    """A listening socket that other processes of this user can bind too (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _worker(host: str, port: int) -> None:
    import uvicorn

    sock = bind(host, port)
    config = uvicorn.Config("engine.service.app:from_environment", factory=True, access_log=False,
                            log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


def serve_workers(host: str, port: int, workers: int, signal_file: Path) -> int:
    """Run ``workers`` processes until SIGTERM or SIGINT; the exit status (0, or 1 if they cannot start)."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise OSError("this system cannot share a port between processes (SO_REUSEPORT); use --workers 1")
    bind(host, port).close()  # a port held by another program fails here, with one message
    spawn = multiprocessing.get_context("spawn")
    stopping = {"now": False}

    def start():
        proc = spawn.Process(target=_worker, args=(host, port), name="pathways-worker", daemon=False)
        proc.start()
        return proc, time.monotonic()

    def stop(signum, frame):
        stopping["now"] = True

    def hangup(signum, frame):
        signal_file.write_text(str(time.time_ns()))  # every worker notices and reloads
        log("library reload requested (SIGHUP): every worker compiles the library again")

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGHUP, hangup)
    procs = [start() for _ in range(workers)]
    status = 0
    try:
        while not stopping["now"]:
            time.sleep(0.2)
            for i, (proc, started) in enumerate(procs):
                if proc.is_alive() or stopping["now"]:
                    continue
                if time.monotonic() - started < STARTUP_SECONDS:
                    log("a worker could not start; stopping the service", 40, exitcode=proc.exitcode)
                    stopping["now"], status = True, 1
                    break
                log("a worker stopped unexpectedly and was restarted", 30, exitcode=proc.exitcode)
                procs[i] = start()
    finally:
        for proc, _ in procs:
            if proc.is_alive():
                proc.terminate()  # uvicorn finishes the requests under way
        for proc, _ in procs:
            proc.join(15)
            if proc.is_alive():
                proc.kill()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return status


def environment(library: str, config_file: str | None, audit_log: str | None, signal_file: Path,
                references: tuple[str, ...]) -> None:
    """Pass the options to the workers (engine.service.app.from_environment reads them)."""
    os.environ.update({"PATHWAYS_SERVE_LIBRARY": str(Path(library).resolve()),
                       "PATHWAYS_SERVE_CONFIG": str(Path(config_file).resolve()) if config_file else "",
                       "PATHWAYS_SERVE_AUDIT": str(Path(audit_log).resolve()) if audit_log else "",
                       "PATHWAYS_SERVE_SIGNAL": str(signal_file),
                       "PATHWAYS_SERVE_REFERENCE": os.pathsep.join(references)})
