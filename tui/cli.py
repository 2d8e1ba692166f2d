"""The ``pathways`` command line.

Exit codes: 0 success (warnings allowed), 1 the input has errors, 2 the
command was used wrongly. Textual is never imported here; ``pathways tui``
imports the workbench only when it is asked for.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from dsl.compiler import Compiled, Session, compile_file, protocol_files
from dsl.diagnostics import render


def _echo_diagnostics(results: list[Compiled]) -> tuple[int, int]:
    errors = warnings = 0
    seen: set[tuple] = set()
    for result in results:
        for d in result.diagnostics:
            key = (d.file, d.span.line, d.span.column, d.code, d.message)
            if key in seen:
                continue
            seen.add(key)
            errors += d.severity == "error"
            warnings += d.severity == "warning"
            click.echo(render(d, result.sources.get(d.file)))
            click.echo()
    return errors, warnings


def _files(paths: tuple[str, ...]) -> list[Path]:
    files = protocol_files(list(paths))
    if not files:
        raise click.UsageError(f"no .pw files found in {', '.join(paths)}")
    return files


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ltc-pathways")
def cli() -> None:
    """Author, check and run care-pathway protocols for long term conditions."""


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def check(paths: tuple[str, ...], fmt: str) -> None:
    """Check protocol files (or folders of them) and print every problem found."""
    session = Session()
    results = [session.result(session.compile_path(f, display=str(f))) for f in _files(paths)]
    if fmt == "json":
        seen: dict[tuple, dict] = {}
        for result in results:
            for d in result.diagnostics:
                seen.setdefault((d.file, d.span.line, d.span.column, d.code, d.message), d.to_json())
        click.echo(orjson.dumps(list(seen.values()), option=orjson.OPT_INDENT_2).decode())
        failed = any(v["severity"] == "error" for v in seen.values())
    else:
        errors, warnings = _echo_diagnostics(results)
        click.echo(f"checked {len(results)} file{'s' * (len(results) != 1)}: "
                   f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}")
        failed = errors > 0
    sys.exit(1 if failed else 0)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--check", "check_only", is_flag=True, help="Change nothing; exit 1 if a file would change.")
def fmt(paths: tuple[str, ...], check_only: bool) -> None:
    """Rewrite protocol files in the canonical layout, keeping every comment."""
    from dsl.formatter import format_source

    status = 0
    for path in _files(paths):
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            click.echo(f"{path}: cannot read: {exc}", err=True)
            status = 1
            continue
        formatted, diagnostics = format_source(source, str(path))
        if formatted is None:
            for d in diagnostics:
                click.echo(render(d, source), err=True)
            click.echo(f"{path}: not formatted: it has syntax errors", err=True)
            status = 1
        elif formatted != source:
            if check_only:
                click.echo(f"{path}: would be reformatted")
                status = 1
            else:
                path.write_text(formatted, encoding="utf-8")
                click.echo(f"{path}: reformatted")
    sys.exit(status)


def _compile_one(path: str) -> Compiled:
    result = compile_file(path)
    if not result.ok:
        errors, _ = _echo_diagnostics([result])
        click.echo(f"{path}: {errors} error{'s' * (errors != 1)}; nothing exported", err=True)
        sys.exit(1)
    return result


@cli.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def export(path: str) -> None:
    """Print the compiled model of a protocol as JSON."""
    result = _compile_one(path)
    assert result.protocol is not None
    click.echo(orjson.dumps(result.protocol.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())


@cli.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
@click.option("--pathway", help="The pathway to draw (default: the first).")
@click.option("--dependencies", is_flag=True, help="Draw the definition dependency graph instead.")
@click.option("--care-plan", "care_plan", help="Draw a care-plan template.")
@click.option("--data", type=click.Path(exists=True), help="With --patient: the records to read the patient from.")
@click.option("--patient", help="Highlight the steps this patient has passed (needs --data and --as-of).")
@click.option("--as-of", "as_of", type=str, help="With --patient: the date of the patient's state (YYYY-MM-DD).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help='With --patient: override a parameter, pathway times included: review_interval="6 months".')
@click.option("--strict", is_flag=True, help="With --patient: stop at the first problem in the data (exit 1).")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False),
              help="With --patient: a local code mapping (TOML).")
def graph(path: str, fmt: str, pathway: str | None, dependencies: bool, care_plan: str | None,
          data: str | None, patient: str | None, as_of: str | None, params: tuple[str, ...], strict: bool,
          mapping: str | None) -> None:
    """Draw a pathway's state graph, a care plan, or the dependency graph."""
    from pathways import graphs
    from pathways import model as m

    if patient or data or as_of or params or strict or mapping:
        if not (patient and data and as_of) or dependencies or care_plan:
            raise click.UsageError("to draw a patient's path, give --patient, --data and --as-of together "
                                   "(and no --dependencies or --care-plan); --param, --strict and --mapping "
                                   "go with them")
        from tui.cmd_pathways import AS_OF as _day, patient_highlight
        chosen, visited, now = patient_highlight(path, pathway, data, patient,
                                                 _day.convert(as_of, None, click.get_current_context()),
                                                 strict, mapping, params)
        g = graphs.state_graph(chosen)
        trail = graphs.patient_path(g, visited, now)
        drawn = graphs.to_mermaid(g, path=trail) if fmt == "mermaid" else graphs.to_dot(g, path=trail)
        click.echo(drawn, nl=False)
        return
    result = _compile_one(path)
    protocol = result.protocol
    assert protocol is not None
    if dependencies:
        g = graphs.dependency_graph(protocol.declarations)
    elif care_plan:
        plan = protocol.get(care_plan)
        if not isinstance(plan, m.CarePlan):
            raise click.BadParameter(f"{path} has no care plan called {care_plan!r}", param_hint="--care-plan")
        g = graphs.care_plan_graph(plan)
    else:
        pathways_ = protocol.of_kind("pathway")
        chosen = [p for p in pathways_ if pathway is None or p.name == pathway]
        if not chosen:
            names = ", ".join(p.name for p in pathways_) or "none"
            if pathway is None:
                g = graphs.dependency_graph(protocol.declarations)
                click.echo(_draw(g, fmt))
                return
            raise click.BadParameter(f"{path} has no pathway called {pathway!r} (pathways: {names})",
                                     param_hint="--pathway")
        g = graphs.state_graph(chosen[0])
    click.echo(_draw(g, fmt), nl=False)


DEFAULT_AS_OF = "2024-04-01"  # engine.generate.DEFAULT_AS_OF: a fixed date, never the clock


def _as_of(ctx, param, value: str):
    import datetime as dt
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _count(ctx, param, value: int) -> int:
    if value < 0:
        raise click.BadParameter("must be 0 or more")
    return value


@cli.command()
@click.option("--patients", "-n", type=int, required=True, callback=_count, help="How many patients.")
@click.option("--seed", type=int, default=1, show_default=True, help="The same seed gives the same patients.")
@click.option("--as-of", "as_of", default=DEFAULT_AS_OF, show_default=True, callback=_as_of,
              help="The date the extract is taken on (YYYY-MM-DD).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "parquet", "bundles", "ndjson"]),
              default="jsonl", show_default=True,
              help="jsonl: one record a line; csv/parquet: one table per kind of item; bundles: one FHIR R4 "
                   "Bundle per patient; ndjson: FHIR R4 Bulk Data, one file per resource type.")
@click.option("--out", "out", required=True, type=click.Path(allow_dash=True),
              help="jsonl: the file to write ('-' for standard output); csv/parquet/bundles/ndjson: the "
                   "folder to write.")
def generate(patients: int, seed: int, as_of, fmt: str, out: str) -> None:
    """Generate a synthetic population as JSON lines or as tables.

    JSON lines: each line is a PatientRecord (pathways/records.py) as JSON, the
    project's own lossless record format, read back with
    PatientRecord.model_validate_json. csv/parquet: the tabular layout of
    docs/data.md, one table per kind of item, written into the folder --out.
    bundles/ndjson: FHIR R4 that `pathways run --data FOLDER` reads back
    (docs/data.md, "Writing FHIR"), written into the folder --out.
    It streams: memory stays flat whatever --patients is."""
    from engine.generate import generate as gen

    if fmt in ("bundles", "ndjson"):
        from engine.fhir_write import write_bundles, write_ndjson

        if out == "-" or Path(out).is_file():
            raise click.BadParameter(f"{out!r}: --format {fmt} writes FHIR files into a folder", param_hint="--out")
        counts = (write_bundles if fmt == "bundles" else write_ndjson)(gen(patients, seed, as_of), out)
        written = counts.get("Patient", 0)
        click.echo(f"wrote {written:,} patient{'s' * (written != 1)} (seed {seed}, as of {as_of.isoformat()}) "
                   f"as FHIR R4 {fmt} to {out}", err=True)
        return
    if fmt != "jsonl":
        from engine.tables import write_tables

        if out == "-" or Path(out).is_file():
            raise click.BadParameter(f"{out!r}: --format {fmt} writes tables into a folder", param_hint="--out")
        counts = write_tables(gen(patients, seed, as_of), out, fmt)
        written = counts["patients"]
        click.echo(f"wrote {written:,} patient{'s' * (written != 1)} (seed {seed}, as of {as_of.isoformat()}) "
                   f"as {fmt} tables to {out}", err=True)
        return
    if Path(out).is_dir():
        raise click.BadParameter(f"{out!r} is a folder: --format jsonl writes one file", param_hint="--out")
    stream = click.open_file(out, "wb")
    written = 0
    with stream:
        for record in gen(patients, seed, as_of):
            stream.write(orjson.dumps(record.model_dump(mode="json")) + b"\n")
            written += 1
    if out != "-":
        click.echo(f"wrote {written:,} patient record{'s' * (written != 1)} (seed {seed}, as of "
                   f"{as_of.isoformat()}) to {out}", err=True)


@cli.command()
@click.argument("fhir_path", type=click.Path(exists=True))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="The folder to write the tables into (created if need be).")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False), help="A local code mapping (TOML).")
@click.option("--strict", is_flag=True, help="Stop at the first problem in the data (exit 1).")
def convert(fhir_path: str, out: str, fmt: str, mapping: str | None, strict: bool) -> None:
    """Turn FHIR R4 (bundles or bulk NDJSON) into the tabular layout (docs/data.md).

    The FHIR load summary (read / loaded / skipped, problems) goes to stderr."""
    from engine.readers import ReadError, read_fhir
    from engine.tables import write_tables

    try:
        records, report = read_fhir(fhir_path, mapping=mapping, strict=strict)
    except ReadError as exc:
        raise click.ClickException(str(exc)) from None
    counts = write_tables(records, out, fmt)
    click.echo(report.summary(), err=True)
    click.echo(f"wrote {counts['patients']:,} patients as {fmt} tables to {out} ("
               + ", ".join(f"{t}: {n:,}" for t, n in counts.items() if t != "patients") + ")", err=True)


@cli.command()
@click.option("--patients", "-n", type=int, default=20_000, show_default=True, callback=_count,
              help="How many patients to generate.")
@click.option("--seed", type=int, default=1, show_default=True, help="The same seed prints the same demo.")
@click.option("--as-of", "as_of", default=DEFAULT_AS_OF, show_default=True, callback=_as_of,
              help="The date to stratify on (YYYY-MM-DD).")
def demo(patients: int, seed: int, as_of) -> None:
    """Stratify a generated population with the library's pyramid and explain it.

    Generates a synthetic population (England's age structure), runs
    library/ltc_pyramid.pw over it, and prints the pyramid, the hidden
    population, the case managers needed, and one explained patient per level."""
    from rich.console import Console

    from tui.demo import LibraryNotFound, run_demo

    try:
        run_demo(patients, seed, as_of, Console(highlight=False))
    except LibraryNotFound as exc:
        click.echo(f"pathways demo: {exc}", err=True)
        sys.exit(1)


def _draw(g, fmt: str) -> str:
    from pathways import graphs
    return graphs.to_mermaid(g) if fmt == "mermaid" else graphs.to_dot(g)


class _LazyAsOf(click.ParamType):
    """Defers to tui.run.AsOfDate, so the command line loads nothing it does not use."""

    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx):
        from .run import AsOfDate
        return AsOfDate().convert(value, param, ctx)


AS_OF = _LazyAsOf()


@cli.command()
@click.argument("protocol", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", required=True, type=click.Path(exists=True),
              help="Record file (.jsonl from `pathways generate`), a folder of tables (patients.csv or "
                   "patients.parquet...) or FHIR R4 bundles / bulk NDJSON.")
@click.option("--as-of", "as_of", required=True, type=AS_OF,
              help="The date the protocol is evaluated on (YYYY-MM-DD); there is no hidden clock.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Override a parameter (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "parquet", "fhir", "fhir-ndjson"]),
              default="jsonl", show_default=True,
              help="parquet needs --output; fhir: a Bundle of RiskAssessments; fhir-ndjson: one per line.")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), help="Write results here (default stdout).")
@click.option("--explain", is_flag=True, help="Add each patient's explanation (JSONL only).")
@click.option("--strict", is_flag=True, help="Stop at the first problem in the data (exit 1).")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False), help="A local code mapping (TOML).")
@click.option("--audit", "audit_log", type=click.Path(dir_okay=False), metavar="LOG",
              help="Append one hash-chained entry per patient to this audit log (see `pathways audit verify`).")
@click.option("--engine", "engine_name", type=click.Choice(["python", "auto", "duckdb", "spark"]), default="auto",
              show_default=True, help="python: per patient; duckdb/spark: the columnar backend over tables "
              "(docs/backend.md); auto: DuckDB for tables, else (or for what it cannot compile, --explain, "
              "--mapping, --audit, FHIR output) python; the same output either way.")
@click.option("--limits", "limits_file", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="A TOML file whose [limits] table sets the limits (see docs/service.md, Limits).")
@click.option("--limit", "limit_items", multiple=True, metavar="NAME=VALUE",
              help="Set one limit, e.g. max_items_per_record=20000 (repeatable; wins over --limits).")
def run(protocol, data, as_of, params, fmt, output, explain, strict, mapping, audit_log, engine_name,
        limits_file, limit_items) -> None:
    """Evaluate PROTOCOL for every patient in a dataset."""
    from engine.limits import LimitError, Limits

    from .run import run_command

    if explain and fmt != "jsonl":
        raise click.UsageError("--explain needs --format jsonl")
    try:
        limits = (Limits.from_file(limits_file) if limits_file else Limits()).with_overrides(limit_items)
    except LimitError as exc:
        raise click.UsageError(str(exc)) from None
    run_command(protocol, data, as_of, params, fmt, output, explain, strict, mapping, audit=audit_log,
                engine_name=engine_name, limits=limits)


@cli.command()
@click.argument("protocol", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", required=True, type=click.Path(exists=True),
              help="Record file (.jsonl), a folder of tables, or FHIR R4 bundles / bulk NDJSON.")
@click.option("--patient", required=True, help="The patient's id.")
@click.option("--as-of", "as_of", required=True, type=AS_OF,
              help="The date the protocol is evaluated on (YYYY-MM-DD); there is no hidden clock.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Override a parameter (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: the explanation schema of docs/explanation.schema.json.")
@click.option("--strict", is_flag=True, help="Stop at the first problem in the data (exit 1).")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False), help="A local code mapping (TOML).")
def explain(protocol, data, patient, as_of, params, fmt, strict, mapping) -> None:
    """Explain why one patient has the outcomes they have (and why not others)."""
    from .run import explain_command

    explain_command(protocol, data, patient, as_of, params, fmt, strict, mapping)


# Commands that live in their own modules. Each module imports only click at
# the top and loads what it needs inside the command, so `pathways --help`
# stays fast and never loads textual, duckdb or fastapi.
# (one line per module; keep them sorted)
from tui.cmd_audit import audit as _audit; cli.add_command(_audit)  # noqa: E402,E702
from tui.cmd_check_data import check_data as _check_data; cli.add_command(_check_data)  # noqa: E402,E702
from tui.cmd_pathways import add_to as _pathways_commands; _pathways_commands(cli)  # noqa: E402,E702
from tui.cmd_reference import reference as _reference; cli.add_command(_reference)  # noqa: E402,E702
from tui.cmd_serve import serve as _serve; cli.add_command(_serve)  # noqa: E402,E702
from tui.cmd_test import test as _test; cli.add_command(_test)  # noqa: E402,E702
from tui.cmd_tui import tui as _tui; cli.add_command(_tui)  # noqa: E402,E702
# -- end of command modules --


def main() -> None:
    """Console entry point: usage errors exit 2, input errors 1, never a traceback."""
    try:
        cli.main(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
