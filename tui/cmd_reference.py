"""`pathways reference`: a reference population for protocols that rank patients among others.

"In the top 3% of the practice" needs every patient of the practice. A
service sees one patient at a time, so it ranks them against a reference
made here, over a whole population, and loaded with `pathways serve
--reference FILE` (see docs/service.md and engine/service/reference.py).
"""

from __future__ import annotations

import click


@click.command()
@click.argument("protocol", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", required=True, type=click.Path(exists=True),
              help="The population: record file (.jsonl), a folder of tables, or FHIR R4 bundles / bulk NDJSON.")
@click.option("--as-of", "as_of", required=True, metavar="YYYY-MM-DD",
              help="The date the values are worked out on; there is no hidden clock.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Override a parameter (repeatable); the service ranks only requests with the same overrides.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, writable=True),
              help="The reference file to write (JSON).")
@click.option("--strict", is_flag=True, help="Stop at the first problem in the data (exit 1).")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False), help="A local code mapping (TOML).")
def reference(protocol: str, data: str, as_of: str, params: tuple[str, ...], out: str, strict: bool,
              mapping: str | None) -> None:
    """Work out the distributions PROTOCOL ranks patients against, over the population in --data."""
    from pathlib import Path

    import engine
    from engine.service.reference import build, dumps

    from .run import AsOfDate, _summary, load_data, load_program, parse_params

    try:
        day = AsOfDate().convert(as_of, None, None)
    except click.BadParameter as exc:
        raise click.BadParameter(exc.message, param_hint="--as-of") from None
    program = load_program(protocol)
    terms = program.population_terms()
    if not terms:
        raise click.ClickException(f"{protocol}: the protocol ranks no patient among others (no `in the top` "
                                   "or `percentile` term), so it needs no reference population")
    parameters = parse_params(params)
    loaded = load_data(data, strict, mapping)
    if not loaded.records:
        click.echo(_summary(program, [], loaded), err=True)
        raise click.ClickException(f"no patients were loaded from {data}; a reference needs a population")
    try:
        program.parameters(parameters)
        doc = build(program, loaded.records, day, parameters)
    except engine.EngineError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        Path(out).write_bytes(dumps(doc))
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"Reference for {doc['protocol']['name']} {doc['protocol']['version']} as of {doc['as_of']}: "
               f"{len(loaded.records):,} patients; {len(doc['terms'])} ranked term(s) -> {out}", err=True)
    for line in _summary(program, [], loaded).splitlines()[1:]:  # what was read, loaded and skipped
        click.echo(line, err=True)
    for term in doc["terms"].values():
        sizes = [len(v) for v in term["groups"].values()]
        click.echo(f"  {term['expression']}: {len(sizes):,} group(s) by {term['group']}, "
                   f"{sum(sizes):,} values", err=True)
