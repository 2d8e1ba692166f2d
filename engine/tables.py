"""The tabular layout: patient records as one table per kind of item, in CSV or Parquet.

``write_tables(records, folder, fmt)`` writes ``patients``, ``conditions``,
``medications``, ``encounters``, ``observations``, ``procedures``,
``life_events`` and ``pathway_events`` (``.csv`` or ``.parquet``) into
``folder``. It streams: CSV rows are written as they come and Parquet rows go
out in row groups of ``chunk_rows``, so millions of patients need no more
memory than one chunk.

``read_tables(folder)`` reads them back (the format is told by the files'
suffix) and returns ``(records, report)``. Every row is validated into the
record model (``pathways.records``). A bad row is reported with its table file,
its row (the CSV line, header = line 1; the Parquet row, first = 1), the field
and the reason, and skipped; rows of a patient with no valid ``patients`` row
are reported and skipped; a second row for a patient id is reported and
skipped. Nothing is dropped silently: :class:`TablesReport` counts, for every
table, the rows read, loaded and skipped (by reason).

``docs/data.md`` ("Tabular layout") documents every column.

>>> import tempfile
>>> from engine.generate import generate
>>> records = list(generate(5, seed=3, as_of="2024-04-01"))
>>> folder = tempfile.mkdtemp()
>>> write_tables(records, folder)["patients"]
5
>>> back, report = read_tables(folder)
>>> back == records, report.problem_count
(True, 0)
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import types
import typing
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal

from pydantic import ValidationError

from pathways.records import (Condition, Encounter, LifeEvent, Medication, Observation, PartialDate, Patient,
                              PathwayEventRecord, PatientRecord, Procedure)

#: table name -> the model of its rows; item tables are named like PatientRecord's fields
MODELS: dict[str, type] = {
    "patients": Patient,
    "conditions": Condition,
    "medications": Medication,
    "encounters": Encounter,
    "observations": Observation,
    "procedures": Procedure,
    "life_events": LifeEvent,
    "pathway_events": PathwayEventRecord,
}
TABLES = tuple(MODELS)
ITEM_TABLES = TABLES[1:]
FORMATS = ("csv", "parquet")
CHUNK_ROWS = 50_000
#: how many problems a report keeps in full; beyond this it only counts them
MAX_PROBLEMS = 10_000


class TablesError(Exception):
    """A folder that cannot be read as tables, or (``strict=True``) the first problem met."""


@dataclass(frozen=True)
class Column:
    """One column: its name, the model field it fills, its type and whether it must have a value."""

    name: str
    field: str
    type: Literal["text", "code", "date", "boolean", "number"]
    required: bool
    choices: tuple[str, ...] = ()


def _column(name: str, model: type, field_name: str) -> Column:
    info = model.model_fields[field_name]
    annotation = info.annotation
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in args if a is not type(None))
        args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Literal:
        kind, choices = "code", tuple(args)
    elif annotation is PartialDate:
        kind, choices = "date", ()
    elif annotation is bool:
        kind, choices = "boolean", ()
    elif annotation is float:
        kind, choices = "number", ()
    else:
        kind, choices = "text", ()
    return Column(name, field_name, kind, info.is_required(), choices)


def _columns(table: str) -> tuple[Column, ...]:
    model = MODELS[table]
    if table == "patients":
        return tuple(_column("patient_id" if f == "id" else f, model, f) for f in model.model_fields)
    fields = ["source_id", *(f for f in model.model_fields if f != "source_id")]
    return (Column("patient_id", "", "text", True), *(_column(f, model, f) for f in fields))


#: table name -> its columns, in order
COLUMNS: dict[str, tuple[Column, ...]] = {t: _columns(t) for t in TABLES}


# -- writing ------------------------------------------------------------------------------


def _cell(column: Column, value, fmt: str):
    """A field's value as a cell: text for CSV (empty for None), typed for Parquet (null for None)."""
    if value is None:
        return "" if fmt == "csv" else None
    if column.type == "date":
        return value.text
    if fmt == "csv":
        if column.type == "boolean":
            return "true" if value else "false"
        if column.type == "number":
            return repr(float(value))
    return value


def _rows(record: PatientRecord, fmt: str):
    """(table, row as a list of cells) for one patient."""
    patient = record.patient
    yield "patients", [_cell(c, getattr(patient, c.field), fmt) for c in COLUMNS["patients"]]
    for table in ITEM_TABLES:
        columns = COLUMNS[table][1:]
        for item in getattr(record, table):
            yield table, [patient.id, *(_cell(c, getattr(item, c.field), fmt) for c in columns)]


def _arrow_schema(table: str):
    import pyarrow as pa

    types_ = {"text": pa.string(), "code": pa.string(), "date": pa.string(), "boolean": pa.bool_(),
              "number": pa.float64()}
    return pa.schema([pa.field(c.name, types_[c.type], nullable=not (c.required and c.name == "patient_id"))
                      for c in COLUMNS[table]])


def write_tables(records: Iterable[PatientRecord], folder: str | Path, fmt: str = "csv",
                 chunk_rows: int = CHUNK_ROWS) -> Counter:
    """Write records as one table per kind of item into ``folder`` (created if need be).

    ``fmt``: ``"csv"`` or ``"parquet"``. ``records`` may be a generator: it is
    read once, and only ``chunk_rows`` rows per table are held at a time.
    Every table is written, empty or not. Returns table -> rows written."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written: Counter = Counter({t: 0 for t in TABLES})
    if fmt == "csv":
        files = {t: open(out / f"{t}.csv", "w", encoding="utf-8", newline="") for t in TABLES}
        try:
            writers = {t: csv.writer(f, lineterminator="\n") for t, f in files.items()}
            for t, w in writers.items():
                w.writerow([c.name for c in COLUMNS[t]])
            for record in records:
                for table, row in _rows(record, fmt):
                    writers[table].writerow(row)
                    written[table] += 1
        finally:
            for f in files.values():
                f.close()
        return written

    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = {t: _arrow_schema(t) for t in TABLES}
    writers = {t: pq.ParquetWriter(out / f"{t}.parquet", schemas[t]) for t in TABLES}
    buffers: dict[str, list[list]] = {t: [] for t in TABLES}

    def flush(table: str) -> None:
        rows = buffers[table]
        if rows:
            columns = list(zip(*rows))
            writers[table].write_table(pa.Table.from_arrays(
                [pa.array(col, type=f.type) for col, f in zip(columns, schemas[table])], schema=schemas[table]))
            buffers[table] = []

    try:
        for record in records:
            for table, row in _rows(record, fmt):
                buffers[table].append(row)
                written[table] += 1
                if len(buffers[table]) >= chunk_rows:
                    flush(table)
        for table in TABLES:
            flush(table)
    finally:
        for w in writers.values():
            w.close()
    return written


# -- the report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TableProblem:
    """One problem with the tables, and where it is: file, CSV line or Parquet row, field."""

    file: str
    message: str
    line: int | None = None  # CSV line (the header is line 1)
    row: int | None = None  # Parquet row (the first is 1)
    field: str | None = None
    patient_id: str | None = None

    @property
    def place(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.place + (f": {self.field}" if self.field else "")
        who = f" (patient {self.patient_id})" if self.patient_id else ""
        return f"{where}: {self.message}{who}"

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "row": self.row, "field": self.field,
                "patient_id": self.patient_id, "message": self.message}


@dataclass
class TablesReport:
    """Counts and problems of one read of a folder of tables.

    ``read``, ``loaded``: table -> rows; ``skipped``: (table, reason) -> rows.
    For every table, loaded + skipped = read (:meth:`unbalanced` is empty)."""

    source: str = ""
    format: str = ""
    tables: list[str] = field(default_factory=list)  # tables found
    tables_absent: list[str] = field(default_factory=list)  # item tables with no file: no rows
    read: Counter = field(default_factory=Counter)
    loaded: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    problems: list[TableProblem] = field(default_factory=list)
    problem_count: int = 0

    def add_problem(self, problem: TableProblem) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    @property
    def patients_read(self) -> int:
        return self.read["patients"]

    @property
    def patients_loaded(self) -> int:
        return self.loaded["patients"]

    def skipped_by_table(self) -> Counter:
        out: Counter = Counter()
        for (table, _reason), n in self.skipped.items():
            out[table] += n
        return out

    def unbalanced(self) -> dict[str, tuple[int, int, int]]:
        """Tables where loaded + skipped != read: table -> (read, loaded, skipped)."""
        skipped = self.skipped_by_table()
        return {t: (self.read[t], self.loaded[t], skipped[t]) for t in TABLES
                if self.loaded[t] + skipped[t] != self.read[t]}

    def to_dict(self) -> dict:
        skipped = self.skipped_by_table()
        return {
            "source": self.source, "format": self.format, "tables_absent": list(self.tables_absent),
            "tables": {t: {"read": self.read[t], "loaded": self.loaded[t], "skipped": skipped[t],
                           "skipped_by_reason": {r: n for (tt, r), n in sorted(self.skipped.items()) if tt == t}}
                       for t in TABLES},
            "problem_count": self.problem_count,
            "problems": [p.to_dict() for p in self.problems],
        }

    def summary(self, problems: int = 10) -> str:
        """Counts per table, skip reasons and the first ``problems`` problems, as text."""
        skipped = self.skipped_by_table()
        lines = [f"Read tables from {self.source or 'input'} ({self.format}): {len(self.tables)} table(s)"
                 + (f"; no file for {', '.join(self.tables_absent)} (no rows)" if self.tables_absent else "")]
        patient_reasons = {r: n for (t, r), n in self.skipped.items() if t == "patients"}
        lines.append(f"Patients: {self.loaded['patients']} loaded, {skipped['patients']} skipped"
                     + "".join(f"; {n} {r}" for r, n in sorted(patient_reasons.items())))
        lines.append(f"{'table':<14}  {'read':>8}  {'loaded':>8}  {'skipped':>8}")
        for t in TABLES:
            lines.append(f"{t:<14}  {self.read[t]:>8}  {self.loaded[t]:>8}  {skipped[t]:>8}")
        if self.skipped:
            lines.append("Skipped, by reason:")
            for (t, r), n in sorted(self.skipped.items(), key=lambda kv: (TABLES.index(kv[0][0]), -kv[1], kv[0][1])):
                lines.append(f"  {t}: {n} {r}")
        if self.problem_count:
            lines.append(f"Problems: {self.problem_count}")
            for p in self.problems[:problems]:
                lines.append(f"  {p}")
            if self.problem_count > problems:
                lines.append(f"  ... and {self.problem_count - problems} more")
        else:
            lines.append("Problems: none")
        return "\n".join(lines)


# -- reading ------------------------------------------------------------------------------


class _Bad(Exception):
    """A cell that is not a value of its column: reason (for the counts) and message."""

    def __init__(self, field_name: str, reason: str, message: str):
        super().__init__(message)
        self.field = field_name
        self.reason = reason
        self.message = message


_TRUE = {"true", "yes", "1", "t", "y"}
_FALSE = {"false", "no", "0", "f", "n"}


def _value(column: Column, raw):
    """A cell's value for the model, or None when it is empty; raises _Bad when it is not valid."""
    if raw is None:
        return None
    if isinstance(raw, str):
        if raw.strip() == "":
            return None
        text = raw.strip()
    else:
        text = None
    kind = column.type
    if kind == "date":
        if isinstance(raw, dt.datetime):
            raw = raw.date()
        if isinstance(raw, dt.date):
            return PartialDate.of(raw)
        text = text if text is not None else str(raw)
        try:
            return PartialDate.parse(text)
        except ValidationError as exc:
            message = exc.errors()[0]["msg"].removeprefix("Value error, ")
            if repr(text) not in message:
                message = f"{text!r} is not a date: {message}"
            raise _Bad(column.name, "invalid date", message) from None
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw
        word = (text if text is not None else str(raw)).lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise _Bad(column.name, "invalid boolean", f"{raw!r} is not true or false")
    if kind == "number":
        if isinstance(raw, bool):
            raise _Bad(column.name, "not a number", f"{raw!r} is not a number")
        try:
            number = float(raw if text is None else text)
        except (TypeError, ValueError):
            raise _Bad(column.name, "not a number", f"{raw!r} is not a number" + _number_hint(text)) from None
        if not math.isfinite(number):
            raise _Bad(column.name, "not a number", f"{raw!r} is not a finite number")
        return number
    value = raw if isinstance(raw, str) else str(raw)
    if kind == "code":
        value = value.strip()
        if value not in column.choices:
            lower = value.lower().replace(" ", "_").replace("-", "_")
            raise _Bad(column.name, "unknown value",
                       f"{value!r} is not one of {', '.join(column.choices)}"
                       + (f" (write it as {lower}: the values are in lower case)" if lower in column.choices else ""))
    return value


def _number_hint(text: str | None) -> str:
    """How to write a number a person wrote another way (`£12.40`, `1,200`), or ""."""
    if not text:
        return ""
    plain = text.replace("£", "").replace(",", "").strip()
    try:
        float(plain)
    except ValueError:
        return ""
    return f" (write it as {plain}: numbers are plain, without £ or thousands commas)"


def _build(table: str, cells: dict):
    """The model of one row from its cells (column name -> raw); raises _Bad."""
    data = {}
    for column in COLUMNS[table]:
        if not column.field:
            continue  # patient_id of an item row: the caller handles it
        value = _value(column, cells.get(column.name))
        if value is None:
            if column.required:
                raise _Bad(column.name, "required value missing", "required, and empty")
            continue
        data[column.field] = value
    try:
        return MODELS[table].model_validate(data)
    except ValidationError as exc:  # the checks above should leave nothing for the model to refuse
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        raise _Bad("patient_id" if name == "id" else name, "invalid record", first["msg"]) from None


def _find_format(folder: Path) -> str:
    found = [fmt for fmt in FORMATS if (folder / f"patients.{fmt}").is_file()]
    if not found:
        raise TablesError(f"{folder}: no patients.csv or patients.parquet: not a folder of tables")
    if len(found) > 1:
        raise TablesError(f"{folder}: both patients.csv and patients.parquet are here; keep one format per folder")
    return found[0]


def _csv_rows(path: Path, report: TablesReport, table: str):
    """(place kwargs, cells dict or None when the row is malformed) for each data row; header checked."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            yield "header", [], None
            return
        yield "header", [h.strip() for h in header], None
        names = [h.strip() for h in header]
        for cells in reader:
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # a blank line
            place = {"line": reader.line_num}
            if len(cells) != len(names):
                yield "row", place, (f"{len(cells)} cells where the header has {len(names)}; the row is skipped"
                                     + (" (a value with a comma in it needs double quotes around it)"
                                        if len(cells) > len(names) else ""), None)
                continue
            yield "row", place, dict(zip(names, cells))


def _parquet_rows(path: Path, report: TablesReport, table: str):
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - a file pyarrow cannot open is the input's problem
        raise TablesError(f"{path.name}: not a Parquet file ({exc})") from None
    yield "header", list(pf.schema_arrow.names), None
    number = 0
    for batch in pf.iter_batches(batch_size=CHUNK_ROWS):
        for cells in batch.to_pylist():
            number += 1
            yield "row", {"row": number}, cells


def read_tables(folder: str | Path, strict: bool = False) -> tuple[list[PatientRecord], TablesReport]:
    """Read a folder of tables (CSV or Parquet, told by the suffix of ``patients.*``).

    Returns the records of every patient loaded, in the order of the patients
    table (items in the order of their tables), and the :class:`TablesReport`.
    ``strict``: raise :class:`TablesError` at the first problem instead."""
    root = Path(folder)
    if not root.is_dir():
        raise TablesError(f"{folder}: not a folder")
    fmt = _find_format(root)
    report = TablesReport(source=str(folder), format=fmt)
    patients: dict[str, Patient] = {}
    refused: set[str] = set()  # patient ids whose patients row was skipped
    items: dict[str, dict[str, list]] = {}

    def problem(table: str, reason: str, p: TableProblem) -> None:
        if strict:
            raise TablesError(str(p))
        report.skipped[(table, reason)] += 1
        report.add_problem(p)

    for table in TABLES:
        path = root / f"{table}.{fmt}"
        if not path.is_file():
            if table == "patients":
                raise TablesError(f"{path}: missing")
            report.tables_absent.append(table)
            continue
        report.tables.append(table)
        rows = _csv_rows(path, report, table) if fmt == "csv" else _parquet_rows(path, report, table)
        _, header, _ = next(rows)
        known = {c.name for c in COLUMNS[table]}
        place0 = {"line": 1} if fmt == "csv" else {}
        for name in sorted({h for h in header if header.count(h) > 1}):
            msg = "the column appears twice; the last is used"
            if strict:
                raise TablesError(str(TableProblem(path.name, msg, field=name, **place0)))
            report.add_problem(TableProblem(path.name, msg, field=name, **place0))
        for name in [h for h in header if h not in known]:
            msg = "not a column of the layout; ignored"
            if strict:
                raise TablesError(str(TableProblem(path.name, msg, field=name, **place0)))
            report.add_problem(TableProblem(path.name, msg, field=name, **place0))
        missing = [c.name for c in COLUMNS[table] if c.required and c.name not in header]
        skipped_whole = 0
        for _, place, cells in rows:
            report.read[table] += 1
            if missing:
                skipped_whole += 1
                report.skipped[(table, "required column missing")] += 1
                continue
            if isinstance(cells, tuple):
                problem(table, "malformed row", TableProblem(path.name, cells[0], **place))
                continue
            raw_id = cells.get("patient_id")
            pid = "" if raw_id is None else str(raw_id).strip()
            if not pid:
                problem(table, "no patient_id", TableProblem(path.name, "required, and empty; the row is skipped",
                                                            field="patient_id", **place))
                continue
            if table != "patients":
                if pid not in patients:
                    if pid in refused:
                        reason, msg = "patient's row skipped", f"patient {pid}'s patients row was skipped"
                    else:
                        reason, msg = "no patients row", f"no patient {pid} in patients.{fmt}"
                    problem(table, reason, TableProblem(path.name, msg + "; the row is skipped",
                                                        field="patient_id", patient_id=pid, **place))
                    continue
            elif pid in patients or pid in refused:
                problem(table, "duplicate patient id",
                        TableProblem(path.name, f"patient {pid} has another row above; this one is skipped",
                                     field="patient_id", patient_id=pid, **place))
                continue
            try:
                value = _build(table, cells)
            except _Bad as bad:
                if table == "patients":
                    refused.add(pid)
                problem(table, bad.reason, TableProblem(path.name, f"{bad.message}; the row is skipped",
                                                        field=bad.field, patient_id=pid, **place))
                continue
            report.loaded[table] += 1
            if table == "patients":
                patients[pid] = value
            else:
                items.setdefault(pid, {}).setdefault(table, []).append(value)
        if missing:
            p = TableProblem(path.name, f"required column{'s' * (len(missing) > 1)} missing; "
                             f"all {skipped_whole} row(s) of the table are skipped",
                             field=", ".join(missing), **place0)
            if strict:
                raise TablesError(str(p))
            report.add_problem(p)

    records = []
    for pid, patient in patients.items():
        mine = items.get(pid, {})
        records.append(PatientRecord(patient=patient, **{t: tuple(v) for t, v in mine.items()}))
    return records, report


def is_tables_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding ``patients.csv`` or ``patients.parquet``."""
    p = Path(path)
    return p.is_dir() and any((p / f"patients.{fmt}").is_file() for fmt in FORMATS)
