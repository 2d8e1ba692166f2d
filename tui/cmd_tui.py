"""`pathways tui [PATH]`: the authoring workbench (textual is imported only when it runs)."""

from __future__ import annotations

import click

DEFAULT_AS_OF = "2024-04-01"  # a fixed date, never the clock (as `pathways generate`)


def _as_of(ctx, param, value: str) -> str:
    import datetime as dt

    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date: write it as YYYY-MM-DD, e.g. 2024-04-01") from None


@click.command()
@click.argument("path", required=False, default=".", type=click.Path(exists=True))
@click.option("--as-of", "as_of", default=DEFAULT_AS_OF, show_default=True, callback=_as_of,
              help="The date every evaluation is made on (YYYY-MM-DD); there is no hidden clock.")
@click.option("--data", type=click.Path(exists=True), default=None,
              help="Patients to load at the start: FHIR R4, a folder of tables, or a .jsonl file.")
@click.option("--patients", type=click.IntRange(1, 1_000_000), default=None,
              help="Generate this many synthetic patients at the start (instead of --data).")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed for generated patients.")
def tui(path: str, as_of: str, data: str | None, patients: int | None, seed: int) -> None:
    """Open the workbench on a protocol file or a folder of them (default: this folder)."""
    from pathlib import Path

    target = Path(path)
    if target.is_file() and target.suffix != ".pw":
        raise click.BadParameter(f"{path} is not a protocol file (a protocol's name ends in .pw)",
                                 param_hint="PATH")
    try:
        from tui.workbench.workbench_app import WorkbenchApp
    except ImportError as exc:
        raise click.ClickException(f"the workbench needs the textual package, which could not be loaded ({exc}); "
                                   "install it with `pip install textual`") from None
    WorkbenchApp(target, as_of, data=data, patients=patients, seed=seed).run()
