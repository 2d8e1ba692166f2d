"""`pathways run` and `pathways explain`: a protocol over a dataset, to files and a summary.

Data come from the project's record files (JSON lines of PatientRecord, as
written by `pathways generate`), from a folder of tables (CSV or Parquet, see
engine.tables) or from FHIR R4 (bundles or bulk NDJSON,
through engine.readers). Nothing is dropped silently: the summary on stderr
counts what was read, loaded and skipped, and why.
"""

from __future__ import annotations

import csv
import io
import sys
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import click
import orjson


@dataclass
class Loaded:
    """Records read from a dataset, and the account of what was not."""

    records: list
    read: int = 0
    skipped: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    report: object | None = None  # the FHIR reader's own report, when it was used
    loaded: int | None = None  # how many were loaded, when ``records`` does not hold them (columnar runs)


def read_records_jsonl(path: Path, strict: bool, limits=None) -> Loaded:
    """One PatientRecord per line; a bad line is reported with its line number and skipped.
    ``limits`` (engine.limits.Limits): a line over max_record_bytes, or a record over
    max_items_per_record, is a bad line too."""
    from pydantic import ValidationError

    from engine.limits import LimitError, check_record
    from pathways.records import PatientRecord

    max_bytes = limits.max_record_bytes if limits is not None else None

    loaded = Loaded(records=[])
    seen: set[str] = set()
    opener = _open_text(path)
    with opener as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            loaded.read += 1
            problem = None
            # bytes are counted only for lines long enough to matter (a character is at most 4)
            size = len(line.rstrip("\r\n").encode()) if max_bytes is not None and len(line) * 4 > max_bytes else 0
            if max_bytes is not None and size > max_bytes:  # checked before parsing it
                problem, reason = (f"{path}:{number}: the record is {size:,} bytes; the limit is {max_bytes:,} "
                                   "(--limit max_record_bytes=N to change it)"), "record over the size limit"
                record = None
            else:
                data = None
                try:
                    data = orjson.loads(line)
                    record = PatientRecord.model_validate(data)
                    if limits is not None:
                        check_record(record, limits)
                except orjson.JSONDecodeError as exc:
                    problem, reason = f"{path}:{number}: not JSON ({exc})", "malformed JSON"
                except ValidationError as exc:
                    problem, reason = f"{path}:{number}: {_record_problem(exc, data)}", "invalid record"
                except LimitError as exc:
                    problem, reason = (f"{path}:{number}: {exc} (--limit max_items_per_record=N to change it)",
                                       "record over the item limit")
            if problem is None:
                if record.id in seen:
                    problem, reason = f"{path}:{number}: patient {record.id} appears twice", "duplicate patient id"
                else:
                    seen.add(record.id)
                    loaded.records.append(record)
            if problem:
                if strict:
                    raise click.ClickException(problem)
                loaded.skipped[reason] += 1
                loaded.problems.append(problem)
    return loaded


#: pydantic's words for what is wrong, in the words of the record format (docs/generate.md)
_PLAIN = (
    ("Value error, ", ""),
    ("Input should be a valid dictionary or instance of PartialDate",
     'a date is written as {"text": "YYYY-MM-DD"} (or "YYYY-MM", "YYYY")'),
    ("Input should be a valid dictionary or instance of PatientRecord",
     "each line must be one patient record: a JSON object with a \"patient\""),
    ("Input should be a valid dictionary or instance of ", "this should be a JSON object: "),
    ("Extra inputs are not permitted", "not a field of the record format; check its spelling"),
    ("Field required", "required, and missing"),
    ("Input should be ", "should be "),
)


def _record_problem(exc, data) -> str:
    """A record line's first validation problem, with its field and patient, in plain words
    (and how many more the line has): ``field conditions[0].onset: ... (patient p1)``."""
    errors = exc.errors()
    first = errors[0]
    loc = [p for p in first["loc"] if p != "text" or first["loc"][-1] != "text"]  # a date's inner "text"
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    message = first["msg"]
    for pydantic_words, ours in _PLAIN:
        message = message.replace(pydantic_words, ours)
    patient = data.get("patient") if isinstance(data, dict) else None
    pid = patient.get("id") if isinstance(patient, dict) else None
    more = len(errors) - 1
    return ((f"field {where}: " if where else "") + message
            + (f" (patient {pid})" if isinstance(pid, str) and pid else "")
            + (f"; and {more} more problem{'s' * (more != 1)} in this record" if more else ""))


def _open_text(path: Path):
    if path.suffix == ".gz":
        import gzip
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def load_data(path: str, strict: bool, mapping: str | None = None, limits=None) -> Loaded:
    """Read a dataset: record JSON lines, a folder of tables (patients.csv or
    patients.parquet, see engine.tables), or FHIR R4 (bundles or bulk NDJSON).
    ``limits`` (engine.limits.Limits) bounds record size and items per record."""
    p = Path(path)
    if p.is_file() and (p.name.endswith(".jsonl") or p.name.endswith(".jsonl.gz")):
        return read_records_jsonl(p, strict, limits)
    if p.is_dir() and any((p / f"patients.{suffix}").is_file() for suffix in ("csv", "parquet")):
        return _within_item_limit(read_tables_folder(p, strict), strict, limits)
    try:
        from engine.readers import read_fhir
    except ImportError:  # the FHIR readers are not installed in this build
        raise click.UsageError(f"{path}: only record files (.jsonl) can be read by this build") from None
    try:
        records, report = read_fhir(p, mapping=mapping, strict=strict,
                                    max_items_per_record=limits.max_items_per_record if limits else None,
                                    max_record_bytes=limits.max_record_bytes if limits else None)
    except Exception as exc:  # noqa: BLE001 - any reader failure is the input's, reported plainly
        if type(exc).__name__ == "ReadError":
            raise click.ClickException(str(exc)) from None
        raise
    loaded = Loaded(records=list(records), report=report)
    loaded.read = getattr(report, "patients_read", len(loaded.records))
    return loaded


def _within_item_limit(loaded: Loaded, strict: bool, limits) -> Loaded:
    """Tables hold a patient's items in many rows: the item limit is checked per assembled record."""
    if limits is None or limits.max_items_per_record is None:
        return loaded
    from engine.limits import LimitError, check_record

    kept = []
    for record in loaded.records:
        try:
            check_record(record, limits)
        except LimitError as exc:
            problem = f"{exc} (--limit max_items_per_record=N to change it)"
            if strict:
                raise click.ClickException(problem) from None
            loaded.skipped["record over the item limit"] += 1
            loaded.problems.append(problem)
            continue
        kept.append(record)
    loaded.records = kept
    return loaded


def read_tables_folder(path: Path, strict: bool) -> Loaded:
    """The tabular layout (engine.tables): one CSV or Parquet table per kind of item."""
    from engine.tables import TablesError, read_tables

    try:
        records, report = read_tables(path, strict=strict)
    except TablesError as exc:
        raise click.ClickException(str(exc)) from None
    loaded = Loaded(records=records, report=report)
    loaded.read = report.patients_read
    return loaded


def _summary(program, results: list, loaded: Loaded) -> str:
    values = [r.values() for r in results]
    counted = {outcome: Counter(_countable(v[outcome]) for v in values) for outcome in program.outcome_names}
    return _summary_text(program, len(results), counted, loaded)


def _summary_text(program, evaluated: int, counted: dict[str, Counter], loaded: Loaded) -> str:
    """The summary: ``counted`` holds, per outcome, how many patients hold each value (as _countable)."""
    lines = []
    name = program.protocol.header
    lines.append(f"{name.name} {name.version}: {evaluated} patient{'s' * (evaluated != 1)} evaluated")
    for outcome in program.outcome_names if evaluated else ():
        # word each distinct value once (a million patients hold a handful)
        counts: Counter = Counter()
        for (_, value), n in counted[outcome].items():
            counts[_key(orjson.loads(value) if isinstance(value, bytes) else value)] += n
        parts = ", ".join(f"{value}: {n}" for value, n in sorted(counts.items(), key=_order))
        lines.append(f"  {outcome}: {parts}")
    if loaded.report is not None and hasattr(loaded.report, "summary"):
        lines.append(str(loaded.report.summary()))
        for problem in loaded.problems[:20]:  # records the reader loaded but a limit then refused
            lines.append(f"    skipped: {problem}")
    else:
        skipped = sum(loaded.skipped.values())
        held = len(loaded.records) if loaded.loaded is None else loaded.loaded
        lines.append(f"  records: {loaded.read} read, {held} loaded, {skipped} skipped"
                     + (" (" + ", ".join(f"{r}: {n}" for r, n in sorted(loaded.skipped.items())) + ")"
                        if skipped else ""))
        for problem in loaded.problems[:20]:
            lines.append(f"    {problem}")
        if len(loaded.problems) > 20:
            lines.append(f"    ... and {len(loaded.problems) - 20} more")
    return "\n".join(lines)


def _countable(value) -> tuple:
    """A value as a Counter key: a list or range as its JSON bytes, and True kept apart from 1."""
    if isinstance(value, (dict, list)):
        return (2, orjson.dumps(value))
    return (value is True or value is False, value)


def _key(value) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "true" if value else "false"
    return orjson.dumps(value).decode() if isinstance(value, dict) else str(value)


def _order(item) -> tuple:
    value = item[0]
    try:
        return (0, -float(value), "")
    except ValueError:
        return (1, 0.0, value)


def rows(program, results: list, fmt: str, explain: bool) -> Iterator[bytes]:
    """Results as output: JSONL objects, CSV rows, or FHIR RiskAssessments (a Bundle or NDJSON)."""
    if fmt in ("fhir", "fhir-ndjson"):
        from engine.fhir_out import bundle, risk_assessment
        resources = [risk_assessment(r) for r in results]
        if fmt == "fhir":
            yield orjson.dumps(bundle(resources), option=orjson.OPT_INDENT_2) + b"\n"
        else:
            for res in resources:
                yield orjson.dumps(res) + b"\n"
        return
    header = program.protocol.header
    protocol = protocol_json(program)
    if fmt == "jsonl":
        for r in results:
            obj = {"patient_id": r.patient_id, "as_of": r.as_of.isoformat(), "protocol": protocol,
                   "outcomes": r.values()}
            if r.parameters:
                obj["parameters"] = dict(sorted(r.parameters.items()))
            if explain:
                obj["explanation"] = r.explain()
            yield orjson.dumps(obj) + b"\n"
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(csv_header(program))
    for r in results:
        values = r.values()
        writer.writerow([r.patient_id, r.as_of.isoformat(), header.name, header.version,
                         *(_csv_value(values[n]) for n in program.outcome_names)])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue().encode()


def protocol_json(program) -> dict:
    """The protocol as every JSON line names it."""
    header = program.protocol.header
    return {"name": header.name, "version": header.version, "sha256": program.protocol.sha256}


def csv_header(program) -> list[str]:
    return ["patient_id", "as_of", "protocol", "version", *program.outcome_names]


def write_parquet(program, results: list, path: str) -> None:
    """Results as a Parquet table: one row per patient, one typed column per outcome
    (booleans and whole numbers keep their type; unknown is null; a range that
    could not be settled is written as its JSON text in a text column)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    header = program.protocol.header
    columns = {
        "patient_id": pa.array([r.patient_id for r in results], pa.string()),
        "as_of": pa.array([r.as_of for r in results], pa.date32()),
        "protocol": pa.array([header.name] * len(results), pa.string()),
        "version": pa.array([header.version] * len(results), pa.string()),
        "sha256": pa.array([program.protocol.sha256] * len(results), pa.string()),
    }
    rows_of = [r.values() for r in results]
    for name in program.outcome_names:
        values = [row[name] for row in rows_of]
        kind, word = _parquet_type([v for v in values if v is not None])
        columns[name] = pa.array([word(v) for v in values] if word else values, kind)
    pq.write_table(pa.table(columns), path)


def _parquet_type(present: list) -> tuple:
    """(Arrow type, function wording a value for it or None) of an outcome column whose values,
    unknowns left out, are ``present`` (every one, or each distinct one: the same answer)."""
    import pyarrow as pa

    if all(isinstance(v, bool) for v in present):
        return pa.bool_(), None
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.int64(), None
    if present and all(isinstance(v, list) and all(type(x) is int for x in v) for v in present):
        return pa.list_(pa.int64()), None  # possible higher levels
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pa.float64(), lambda v: None if v is None else float(v)
    return pa.string(), lambda v: None if v is None else _csv_value(v)


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


def parse_params(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise click.BadParameter(f"{item!r}: write NAME=VALUE, e.g. minimum_criteria=2 or "
                                     "castlefields.lookback='24 months'", param_hint="--param")
        out[name.strip()] = value.strip()
    return out


def load_program(protocol: str, limits=None):
    import engine
    from engine.limits import load_protocol
    try:
        return engine.load(protocol) if limits is None else load_protocol(protocol, limits)
    except engine.ProtocolError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)


def run_command(protocol: str, data: str, as_of: str, params: tuple[str, ...], fmt: str, output: str | None,
                explain: bool, strict: bool, mapping: str | None, audit: str | None = None,
                engine_name: str = "python", limits=None) -> None:
    """Evaluate a protocol over a dataset; results to a file or stdout, summary to stderr.
    ``limits`` (engine.limits.Limits; None: the defaults) bound protocol, records and time."""
    import engine
    from engine.limits import DEFAULT

    limits = limits or DEFAULT
    program = load_program(protocol, limits)
    parameters = parse_params(params)
    columnar = None
    if engine_name != "python":
        from .run_columnar import _columnar, _counted, write_columnar
        columnar = _columnar(program, data, as_of, parameters, fmt, engine_name, strict, audit,
                             explain=explain, mapping=mapping, max_items=limits.max_items_per_record)
    if columnar is not None:  # JSONL, CSV or Parquet (the others need the per-patient engine)
        columns, loaded = columnar
        if fmt == "parquet" and not output:
            raise click.UsageError("--format parquet needs --output FILE")
        with _writing(output):
            coded = write_columnar(program, columns, fmt, explain, output)
        click.echo(_summary_text(program, len(columns), _counted(program, coded), loaded), err=True)
        return
    loaded = load_data(data, strict, mapping, limits)
    if not loaded.records:
        click.echo(_summary(program, [], loaded), err=True)
        raise click.ClickException(f"no patients were loaded from {data}; nothing to evaluate")
    try:
        program.parameters(parameters)
        traced = explain or fmt.startswith("fhir")  # a RiskAssessment's basis comes from the trace
        results = list(_progress(_timed(program, loaded.records, as_of, parameters, traced,
                                        limits.max_seconds_per_patient), len(loaded.records)))
    except engine.EngineError as exc:
        raise click.ClickException(str(exc)) from None
    if audit:
        _audit(audit, results)
    if fmt == "parquet":
        if not output:
            raise click.UsageError("--format parquet needs --output FILE")
        with _writing(output):
            write_parquet(program, results, output)
        click.echo(_summary(program, results, loaded), err=True)
        return
    with _writing(output), output_sink(output) as sink:
        for chunk in rows(program, results, fmt, explain):
            sink.write(chunk)
    click.echo(_summary(program, results, loaded), err=True)


@contextmanager
def output_sink(output: str | None):
    """The binary file to write results to (``output``), or standard output (flushed, not closed)."""
    if not output:
        try:
            yield sys.stdout.buffer
        finally:
            sys.stdout.buffer.flush()
        return
    with open(output, "wb") as sink:
        yield sink


@contextmanager
def _writing(output: str | None):
    """An output file that cannot be written is the user's to fix: said plainly, not as a traceback."""
    try:
        yield
    except OSError as exc:
        if output is None:
            raise
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from None


def _timed(program, records: list, as_of: str, parameters: dict, explain: bool, seconds: float | None):
    """Program.evaluate_population, one patient at a time, each within ``seconds``.

    The time is checked when a patient's evaluation ends: stopping one from
    outside would cost a thread per patient, more than most evaluations."""
    import time

    from engine.limits import LimitError

    if seconds is None:
        yield from program.evaluate_population(records, as_of=as_of, parameters=parameters, explain=explain)
        return
    population = program.distributions(records, as_of, parameters) if program.population_terms() else None
    for record in records:
        start = time.perf_counter()
        result = program.evaluate(record, as_of, parameters, explain, population)
        took = time.perf_counter() - start
        if took > seconds:
            raise LimitError(f"patient {record.id}: the evaluation took {took:.2f} seconds, longer than the limit "
                             f"of {seconds:g} seconds (--limit max_seconds_per_patient=N to change it); "
                             "nothing was written")
        yield result


def _audit(path: str, results: list) -> None:
    """One hash-chained entry per patient (engine.audit), written before any output."""
    from engine.audit import AuditLog, current_user, evaluation_entry

    who = current_user()
    try:
        AuditLog(path).append([evaluation_entry(r, who, "cli") for r in results])
    except OSError as exc:
        raise click.ClickException(f"cannot write the audit log {path}: {exc.strerror or exc}") from None


def _progress(results, total: int):
    """Show a progress bar on a terminal; pass results through untouched otherwise."""
    if not sys.stderr.isatty() or total < 1000:
        yield from results
        return
    from rich.progress import Progress
    with Progress(transient=True, console=None) as bar:
        task = bar.add_task("evaluating", total=total)
        for r in results:
            bar.advance(task)
            yield r


def explain_command(protocol: str, data: str, patient: str, as_of: str, params: tuple[str, ...], fmt: str,
                    strict: bool, mapping: str | None) -> None:
    """Explain one patient's result; population terms rank them within the dataset."""
    import engine

    program = load_program(protocol)
    loaded = load_data(data, strict, mapping)
    parameters = parse_params(params)
    chosen = next((r for r in loaded.records if r.id == patient), None)
    if chosen is None:
        ids = [r.id for r in loaded.records]
        import difflib
        close = difflib.get_close_matches(patient, ids, n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise click.ClickException(f"no patient {patient!r} in {data} ({len(ids)} patients loaded).{hint}")
    try:
        population = program.distributions(loaded.records, as_of, parameters) if program.population_terms() else None
        result = program.evaluate(chosen, as_of=as_of, parameters=parameters, explain=True, population=population)
    except engine.EngineError as exc:
        raise click.ClickException(str(exc)) from None
    if fmt == "json":
        click.echo(orjson.dumps(result.explain(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(result.explain_text())


class AsOfDate(click.ParamType):
    """A calendar date YYYY-MM-DD, with the same kind messages as protocol dates."""

    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx):
        import datetime as dt
        import re

        from dsl.dates import check_date

        text = str(value)
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            from dsl.syntax_errors import date_like

            found = date_like(text, 0)  # `01/04/2024`, day first as in the UK, or `2024-4-1`
            if found is not None and found[1] == text and found[2].startswith("write it as"):
                self.fail(f"{text!r} is not a date: dates are written YYYY-MM-DD; {found[2]}", param, ctx)
            self.fail(f"{text!r} is not a date: write it as YYYY-MM-DD, e.g. 2021-04-01", param, ctx)
        problem = check_date(text)
        if problem:
            self.fail(problem, param, ctx)
        return dt.date.fromisoformat(text).isoformat()
