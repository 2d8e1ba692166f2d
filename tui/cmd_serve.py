"""`pathways serve`: the CDS Hooks and REST service (engine.service) under uvicorn."""

from __future__ import annotations

import click


@click.command()
@click.option("--library", "library", required=True, type=click.Path(exists=True, file_okay=False),
              help="The folder of protocols to serve (every .pw file in it).")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="A TOML configuration: [tokens], [service], [limits] (see docs/service.md).")
@click.option("--audit", "audit_log", type=click.Path(dir_okay=False), metavar="LOG",
              help="Append every evaluation to this hash-chained audit log.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes. With more than one, reload with POST /admin/reload (not SIGHUP).")
def serve(library: str, host: str, port: int, config_file: str | None, audit_log: str | None,
          workers: int) -> None:
    """Serve the protocols in a folder over CDS Hooks and REST.

    Tokens come from the configuration file or PATHWAYS_TOKENS=name:token,...;
    the service does not start without one. SIGHUP or POST /admin/reload
    compiles the library again; a broken protocol is refused and the previous
    version keeps serving.
    """
    import dataclasses
    import signal
    import threading

    import uvicorn

    from engine.service import ConfigError, LibraryError, create_app, load_config
    from engine.service.logs import setup_logging
    from engine.service.rest import report_reload

    setup_logging()
    try:
        config = load_config(config_file)
        if audit_log:
            config = dataclasses.replace(config, audit=audit_log)
        app = create_app(library, config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except LibraryError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
            click.echo(err=True)
        raise click.ClickException(f"{exc}; the service did not start") from None

    if workers > 1:
        _serve_workers(library, host, port, config_file, audit_log, workers, len(app.state.library.current.programs))
        return

    def on_hangup(signum, frame):  # compile off the event loop, so requests keep being answered
        def reload():
            ok, snapshot, problems = app.state.library.reload()
            report_reload(ok, snapshot, problems, "SIGHUP")
        threading.Thread(target=reload, name="reload", daemon=True).start()

    signal.signal(signal.SIGHUP, on_hangup)
    click.echo(f"Serving {len(app.state.library.current.programs)} protocols from {library} "
               f"on http://{host}:{port} (OpenAPI at /docs)", err=True)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")


def _serve_workers(library, host, port, config_file, audit_log, workers: int, count: int) -> None:
    """Several processes: uvicorn starts each from engine.service.app.from_environment.
    The library was compiled once above, so a broken one stops here, before any worker."""
    import os
    import tempfile
    from pathlib import Path

    import uvicorn

    signal_file = Path(tempfile.mkdtemp(prefix="pathways-serve-")) / "reload"
    os.environ.update({"PATHWAYS_SERVE_LIBRARY": str(Path(library).resolve()),
                       "PATHWAYS_SERVE_CONFIG": str(Path(config_file).resolve()) if config_file else "",
                       "PATHWAYS_SERVE_AUDIT": str(Path(audit_log).resolve()) if audit_log else "",
                       "PATHWAYS_SERVE_SIGNAL": str(signal_file)})
    click.echo(f"Serving {count} protocols from {library} on http://{host}:{port} with {workers} workers "
               "(OpenAPI at /docs)", err=True)
    uvicorn.run("engine.service.app:from_environment", factory=True, host=host, port=port, workers=workers,
                access_log=False, log_level="warning")
