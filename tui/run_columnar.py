"""`pathways run` on the columnar backend (engine.columnar): the tables evaluated as columns,
and the files and summary written from the columns, byte for byte what tui.run writes from
the per-patient engine's results, without an object per patient."""

from __future__ import annotations

import csv
import io
from collections import Counter

import click
import orjson

from .run import Loaded, _countable, _csv_value, _parquet_type, csv_header, output_sink, protocol_json


def run_columnar(program, data: str, as_of: str, parameters: dict, fmt: str, engine_name: str, strict: bool,
                 audit: str | None, explain: bool = False, mapping: str | None = None,
                 max_items: int | None = None):
    """(results, loaded) from the columnar backend, a ColumnarResult per patient, or None to use
    the per-patient engine: see _columnar."""
    from engine.columnar.runner import results_of

    columnar = _columnar(program, data, as_of, parameters, fmt, engine_name, strict, audit, explain, mapping,
                         max_items)
    if columnar is None:
        return None
    columns, loaded = columnar
    # the audit columns (every criterion item) are turned into Python values only for --explain
    results = results_of(columns, audit=explain)
    loaded.records, loaded.loaded = results, None
    return results, loaded


def _columnar(program, data: str, as_of: str, parameters: dict, fmt: str, engine_name: str, strict: bool,
              audit: str | None, explain: bool = False, mapping: str | None = None,
              max_items: int | None = None):
    """(engine.columnar.runner.ColumnarTable, loaded) from the columnar backend (engine.columnar),
    or None to use the per-patient engine. ``auto`` (the default) uses the per-patient engine, without a word, when
    the data are not tables, for FHIR output, --audit, --mapping and --explain (the full
    explanation is the per-patient engine's), and when a bad value in the protocol's parameters
    is to be reported; it falls back with a warning when the protocol has a construct the
    backend does not compile or the tables hold rows the reader would skip. ``duckdb`` and
    ``spark`` refuse instead. The output is then the per-patient engine's, byte for byte."""
    from engine.columnar import Unsupported
    from engine.columnar.duckdb_backend import DataProblems
    from engine.columnar.runner import evaluate_columns
    from engine.tables import is_tables_folder

    auto = engine_name == "auto"
    why = None
    if not is_tables_folder(data):
        why = f"{data} is not a folder of tables (CSV or Parquet)"
    elif fmt.startswith("fhir") or audit:
        why = "FHIR output and --audit need the per-patient engine's full results"
    elif mapping:
        why = "a local code mapping (--mapping) is applied by the per-patient reader only"
    if why or (auto and explain):
        if auto:
            return None
        raise click.UsageError(f"--engine {engine_name}: {why}; use --engine python or auto")
    backend = "spark" if engine_name == "spark" else "duckdb"
    try:
        from engine.tables import TablesReport
        report = TablesReport(source=str(data)) if backend == "duckdb" else None
        columns = evaluate_columns(program, data, as_of, parameters, backend=backend, max_items=max_items,
                                   report=report, audit_columns=explain)
    except (Unsupported, DataProblems) as exc:
        if not auto:
            raise click.ClickException(str(exc)) from None
        click.echo(f"warning: {exc}; running the per-patient engine instead", err=True)
        return None
    except Exception as exc:  # noqa: BLE001 - an engine error is reported plainly, never as a traceback
        if auto:  # the per-patient engine reports it (a bad parameter, a bad file) in its own words
            import engine
            if not isinstance(exc, engine.EngineError):
                click.echo(f"warning: --engine auto: {_first_line(exc)}; running the per-patient engine instead",
                           err=True)
            return None
        from_backend = type(exc).__module__.split(".")[0] in ("duckdb", "_duckdb", "pyspark", "py4j")
        if from_backend or "Error" in type(exc).__name__:
            hint = ("; --engine python reads the tables row by row and names each row it skips"
                    if from_backend and backend == "duckdb" else "")
            raise click.ClickException(f"--engine {backend}: {_first_line(exc)}{hint}") from None
        raise
    if strict:
        pass  # the columnar engine refuses any row the reader would skip (DataProblems), so strict holds
    loaded = Loaded(records=[], read=len(columns), report=report, loaded=len(columns))
    if not len(columns) and auto:
        return None  # the per-patient reader says why nothing was loaded
    if not len(columns):
        raise click.ClickException(f"no patients were loaded from {data}; nothing to evaluate")
    return columns, loaded


def _first_line(exc: Exception) -> str:
    """An error in one line: DuckDB's CSV errors run to twenty lines of its reader's settings
    and advice on them; what a user needs is the first line and the file."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    where = next((line.split("=", 1)[1].strip() for line in lines if line.strip().startswith("file =")), None)
    return lines[0] + (f" ({where})" if where else "")


def write_columnar(program, columns, fmt: str, explain: bool, output: str | None) -> dict:
    """The columnar backend's results as ``rows`` and ``write_parquet`` write them, byte for byte,
    from the columns (engine.columnar.output): each distinct value of a column is worded once and
    Arrow spreads the words over the rows, never an object per patient. ``output`` None: stdout.
    Returns the outcome columns coded (name -> engine.columnar.output.Coded), for the summary."""
    from engine.columnar.output import coded_column, csv_field, csv_strings, json_strings, write_rows

    table, n = columns.table, len(columns)
    coded = {o.name: coded_column(table, o) for o in columns.outcomes}
    if fmt == "parquet":
        _write_columnar_parquet(program, columns, coded, output)
        return coded
    header, head = program.protocol.header, b""
    if fmt == "jsonl":
        protocol = protocol_json(program)
        parts: list = ['{"patient_id":', json_strings(table.column("patient_id").combine_chunks()),
                       ',"as_of":' + orjson.dumps(columns.plan.as_of.isoformat()).decode()
                       + ',"protocol":' + orjson.dumps(protocol).decode() + ',"outcomes":{']
        parts += _json_members(coded.values(), lambda v: orjson.dumps(v).decode())
        parts.append("}")
        if columns.shown:
            parts.append(',"parameters":' + orjson.dumps(dict(sorted(columns.shown.items()))).decode())
        if explain:
            audits = [coded_column(table, o) for o in columns.audits]
            parts.append(',"explanation":{"engine":"columnar","values":{')
            parts += _json_members(audits, lambda v: orjson.dumps(v).decode())
            parts.append("}}")
        parts.append("}\n")
    else:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(csv_header(program))
        head = buffer.getvalue().encode()
        parts = [csv_strings(table.column("patient_id").combine_chunks()),
                 "," + columns.plan.as_of.isoformat() + "," + csv_field(header.name) + "," + csv_field(header.version)]
        for name in program.outcome_names:
            column = coded[name]
            parts += [",", (column.texts(lambda v: csv_field(_csv_value(v))), column.codes)]
        parts.append("\n")
    with output_sink(output) as sink:
        sink.write(head)
        write_rows(sink, parts, n)
    return coded


def _json_members(coded, word) -> list:
    """The parts of a JSON object's members ``"name":value``, one per coded column."""
    parts: list = []
    for i, column in enumerate(coded):
        parts += [("," if i else "") + orjson.dumps(column.name).decode() + ":", (column.texts(word), column.codes)]
    return parts


def _write_columnar_parquet(program, columns, coded: dict, path: str) -> None:
    """write_parquet's table, from the columns: the same types and values, so the same bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    header, n = program.protocol.header, len(columns)

    def same(value, kind):
        return pa.repeat(pa.scalar(value, kind), n)

    table = {
        "patient_id": columns.table.column("patient_id").combine_chunks().cast(pa.string()),
        "as_of": same(columns.plan.as_of, pa.date32()),
        "protocol": same(header.name, pa.string()),
        "version": same(header.version, pa.string()),
        "sha256": same(program.protocol.sha256, pa.string()),
    }
    for name in program.outcome_names:
        column = coded[name]
        kind, word = _parquet_type([v for v in column.values if v is not None])
        table[name] = pa.array([word(v) for v in column.values] if word else column.values, kind).take(column.codes)
    pq.write_table(pa.table(table), path)


def _counted(program, coded: dict) -> dict[str, Counter]:
    """What _summary counts, from coded columns: per outcome, patients per value (as _countable)."""
    counted = {}
    for name in program.outcome_names:
        column, tally = coded[name], Counter()
        for value, n in zip(column.values, column.counts()):
            tally[_countable(value)] += n
        counted[name] = tally
    return counted
