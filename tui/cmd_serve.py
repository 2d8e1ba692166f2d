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
@click.option("--reference", "references", multiple=True, type=click.Path(exists=True, dir_okay=False),
              metavar="FILE", help="A reference population (from `pathways reference`) to rank patients against "
              "for terms such as 'in the top 3% of the practice' (repeatable); without one they are unknown.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes, each with its own socket on the port (the kernel balances connections); "
                   "use one per core.")
def serve(library: str, host: str, port: int, config_file: str | None, audit_log: str | None,
          references: tuple[str, ...], workers: int) -> None:
    """Serve the protocols in a folder over CDS Hooks and REST.

    Tokens come from the configuration file or PATHWAYS_TOKENS=name:token,...;
    the service does not start without one. SIGHUP or POST /admin/reload
    compiles the library again; a broken protocol is refused and the previous
    version keeps serving.
    """
    import dataclasses
    import signal
    import threading
    from pathlib import Path

    import uvicorn

    from engine.service import ConfigError, LibraryError, create_app, load_config
    from engine.service.logs import setup_logging
    from engine.service.rest import report_reload

    setup_logging()
    try:
        config = load_config(config_file)
        if audit_log:
            config = dataclasses.replace(config, audit=audit_log)
        if references:
            config = dataclasses.replace(config, reference=tuple(str(Path(f).resolve()) for f in references))
        app = create_app(library, config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except LibraryError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
            click.echo(err=True)
        raise click.ClickException(f"{exc}; the service did not start") from None

    if workers > 1:
        _serve_workers(library, host, port, config_file, audit_log, workers, len(app.state.library.current.programs),
                       config.reference)
        return

    def on_hangup(signum, frame):  # compile off the event loop, so requests keep being answered
        def reload():
            ok, snapshot, problems = app.state.library.reload()
            report_reload(ok, snapshot, problems, "SIGHUP")
        threading.Thread(target=reload, name="reload", daemon=True).start()

    from engine.service.app import settle

    settle()
    signal.signal(signal.SIGHUP, on_hangup)
    click.echo(f"Serving {len(app.state.library.current.programs)} protocols from {library} "
               f"on http://{host}:{port} (OpenAPI at /docs)", err=True)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")


def _serve_workers(library, host, port, config_file, audit_log, workers: int, count: int,
                   references: tuple[str, ...] = ()) -> None:
    """Several processes, each with its own socket on the port (engine.service.workers).
    The library was compiled once above, so a broken one stops here, before any worker."""
    import sys
    import tempfile
    from pathlib import Path

    from engine.service.workers import environment, serve_workers

    signal_file = Path(tempfile.mkdtemp(prefix="pathways-serve-")) / "reload"
    environment(library, config_file, audit_log, signal_file, references)
    click.echo(f"Serving {count} protocols from {library} on http://{host}:{port} with {workers} workers "
               "(OpenAPI at /docs)", err=True)
    try:
        status = serve_workers(host, port, workers, signal_file)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    if status:
        raise click.ClickException("the workers could not start; see the log above")
    sys.exit(0)
