"""`pathways check-data`: read a dataset and list every problem in it, before a protocol is run.

`pathways run` prints the first problems of a load; this prints them all (up to the
readers' cap of 10,000 kept in full), so a data manager can fix a whole extract at once.
"""

from __future__ import annotations

import sys

import click

#: Problems listed in full; the readers keep the first 10,000 (engine.tables, engine.readers.report).
ALL = 10_000


@click.command("check-data")
@click.argument("data", type=click.Path(exists=True))
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False), help="A local code mapping (TOML).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: the load report as one JSON object (docs/data.md, The load report).")
def check_data(data: str, mapping: str | None, fmt: str) -> None:
    """Read patient data and list every problem in it: what was read, loaded and skipped, and why.

    DATA is a record file (.jsonl), a folder of tables (CSV or Parquet) or FHIR R4 (bundles or
    bulk NDJSON), as for `pathways run --data`. Exit 0 when everything loaded cleanly, 1 when
    something was skipped or has a problem."""
    import orjson

    from .run import load_data

    loaded = load_data(data, strict=False, mapping=mapping)
    report = loaded.report
    if report is not None:
        problems = report.problem_count
        if fmt == "json":
            click.echo(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode())
        else:
            click.echo(report.summary(problems=ALL))
    else:  # record files: the per-line account of tui.run.read_records_jsonl
        problems = len(loaded.problems)
        skipped = sum(loaded.skipped.values())
        if fmt == "json":
            click.echo(orjson.dumps({"source": data, "read": loaded.read, "loaded": len(loaded.records),
                                     "skipped": skipped, "skipped_by_reason": dict(sorted(loaded.skipped.items())),
                                     "problems": loaded.problems}, option=orjson.OPT_INDENT_2).decode())
        else:
            click.echo(f"records: {loaded.read} read, {len(loaded.records)} loaded, {skipped} skipped"
                       + "".join(f"; {n} {r}" for r, n in sorted(loaded.skipped.items())))
            click.echo(f"Problems: {problems or 'none'}")
            for problem in loaded.problems:
                click.echo(f"  {problem}")
    sys.exit(1 if problems else 0)
