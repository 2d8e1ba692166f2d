"""The FastAPI application: :func:`create_app`.

>>> from engine.service import create_app, load_config       # doctest: +SKIP
>>> app = create_app("library", load_config("service.toml"))  # doctest: +SKIP

Protocols are compiled once, here; ``POST /admin/reload`` (or SIGHUP under
``pathways serve``) compiles them again and swaps them in atomically.
"""

from __future__ import annotations

from pathlib import Path

import anyio
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .config import ConfigError, ServiceConfig
from .evaluation import Explanations, ServiceError
from .logs import LimitAndLog, log
from .reload import Library


def create_app(library_dir: str | Path, config: ServiceConfig | None = None,
               signal_file: str | Path | None = None) -> FastAPI:
    """The service for the protocols in ``library_dir``.

    Raises ConfigError when no token is configured (the service never runs open)
    and reload.LibraryError when a protocol does not compile. ``signal_file``
    joins the reloads of several worker processes (see reload.Library).
    """
    from ..program import engine_version
    from ..audit import AuditLog
    from ..readers import load_mapping

    config = config or ServiceConfig()
    if not config.tokens and not config.jwt.issuers:
        raise ConfigError("no tokens are configured: set PATHWAYS_TOKENS=name:token or add a [tokens] table "
                          "(or [jwt.issuers]) to the configuration file; the service does not run without "
                          "authentication")
    from .reference import ReferenceFileError, load as load_reference
    try:
        references = tuple(load_reference(f) for f in config.reference)
    except ReferenceFileError as exc:
        raise ConfigError(str(exc)) from None
    library = Library(library_dir, config.limits, signal_file, references)
    _check_references(references, library.current)
    if config.card_protocol not in library.current.programs:
        raise ConfigError(f"the card protocol {config.card_protocol!r} is not in {library_dir}; "
                          f"the protocols are {', '.join(sorted(library.current.programs))}")
    app = FastAPI(title="ltc-pathways service", version=engine_version(),
                  description="CDS Hooks and REST access to care-pathway protocols for long term conditions. "
                              "See docs/service.md.")
    from .auth import Tokens
    from .cds_hooks import router as cds
    from .rest import router as rest

    app.state.config = config
    app.state.tokens = Tokens(config.tokens)
    app.state.jwt = None
    if config.jwt.issuers:
        from .jwt_auth import JwtVerifier, SeenIds
        # several workers share one record of used JWT ids, next to their reload signal
        shared = Path(signal_file).parent / "jwt-ids.sqlite" if signal_file else None
        app.state.jwt = JwtVerifier(config.jwt, SeenIds(shared))
    app.state.library = library
    app.state.mapping = load_mapping(None)  # loaded once: every request reads with the same mapping
    app.state.explanations = Explanations()
    app.state.audit = AuditLog(config.audit, fsync=config.audit_fsync) if config.audit else None
    app.include_router(rest)
    app.include_router(cds)
    _handlers(app)
    app.add_middleware(LimitAndLog, max_bytes=config.max_request_bytes)
    log("service ready", protocols=sorted(library.current.programs), generation=1)
    return app


def _check_references(references, snapshot) -> None:
    """A reference that ranks nothing served is a mistake worth stopping for."""
    used = {id(r) for r in snapshot.references.values() if r is not None}
    for ref in references:
        if id(ref) not in used:
            raise ConfigError(f"the reference {ref.file} (made for protocol {ref.protocol!r}) ranks no term of "
                              "the protocols served: the protocol has changed since, or is not in the library; "
                              "make the reference again with `pathways reference`")
        log("reference population loaded", file=Path(ref.file).name, protocol=ref.protocol, as_of=ref.as_of,
            patients=ref.patients)


def from_environment() -> FastAPI:
    """The app for `pathways serve --workers N`: uvicorn starts each worker from
    this factory, with the options passed in PATHWAYS_SERVE_* variables."""
    import dataclasses
    import os

    from .config import load_config
    from .logs import setup_logging

    setup_logging()
    config = load_config(os.environ.get("PATHWAYS_SERVE_CONFIG") or None)
    if os.environ.get("PATHWAYS_SERVE_AUDIT"):
        config = dataclasses.replace(config, audit=os.environ["PATHWAYS_SERVE_AUDIT"])
    if os.environ.get("PATHWAYS_SERVE_REFERENCE"):
        config = dataclasses.replace(config, reference=tuple(os.environ["PATHWAYS_SERVE_REFERENCE"].split(os.pathsep)))
    app = create_app(os.environ["PATHWAYS_SERVE_LIBRARY"], config,
                     os.environ.get("PATHWAYS_SERVE_SIGNAL") or None)
    settle()
    return app


def settle() -> None:
    """Move everything built so far (the compiled library) out of the garbage collector's way.

    The compiled protocols are ~150,000 long-lived objects that every full
    collection would walk again; frozen, the collector only looks at what
    requests allocate (measured: 0.38 -> 0.12 ms of collection per request)."""
    import gc

    gc.collect()
    gc.freeze()


async def run_limited(request: Request, fn, *args, size: int | None = None):
    """Run blocking work under the request time limit (503 when over).

    A body of at most ``[service] inline_bytes`` (one patient's record, which
    the item limit keeps to milliseconds of work) is evaluated right here, on
    the event loop: handing it to a thread and back cost about a tenth of the
    request. Its time is checked when it ends. Anything larger runs in a worker
    thread that is abandoned at the limit, so a long request cannot hold up
    the others beyond it."""
    import time

    seconds = request.app.state.config.request_seconds
    if size is not None and size <= request.app.state.config.inline_bytes:
        start = time.perf_counter()
        answer = fn(*args)
        if time.perf_counter() - start > seconds:
            raise ServiceError(503, f"the request took longer than the limit of {seconds:g} seconds")
        return answer
    try:
        with anyio.fail_after(seconds):
            return await anyio.to_thread.run_sync(lambda: fn(*args), abandon_on_cancel=True)
    except TimeoutError:
        raise ServiceError(503, f"the request took longer than the limit of {seconds:g} seconds") from None


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError):
        body = {"error": exc.message}
        if exc.details:
            body["details"] = exc.details
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        problems = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()))
            problems.append(f"{where}: {e.get('msg')}")
        return JSONResponse({"error": "the request is not valid: " + "; ".join(problems)}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        # The message may quote a record; the log keeps only the kind of failure and where.
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
        log("internal error", 40, kind=type(exc).__name__, at=where)
        return JSONResponse({"error": "the service met an internal error; it has been logged "
                                      "(without patient data)"}, status_code=500)
