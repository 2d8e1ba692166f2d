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
    if not config.tokens:
        raise ConfigError("no tokens are configured: set PATHWAYS_TOKENS=name:token or add a [tokens] table "
                          "to the configuration file; the service does not run without authentication")
    library = Library(library_dir, config.limits, signal_file)
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
    return create_app(os.environ["PATHWAYS_SERVE_LIBRARY"], config,
                      os.environ.get("PATHWAYS_SERVE_SIGNAL") or None)


async def run_limited(request: Request, fn, *args):
    """Run blocking work in a worker thread under the request time limit (503 when over)."""
    seconds = request.app.state.config.request_seconds
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
