"""Run a compiled plan on DuckDB over a folder of tables (CSV or Parquet)."""

from __future__ import annotations

from pathlib import Path

from engine.tables import COLUMNS, TABLES, TablesError, _find_format

from .sources import ROW_NUMBER, patient_key, problem_test, view_sql
from .sql import lit


class DataProblems(Exception):
    """Rows the per-patient reader would report and skip: the columnar engine does not
    guess; it says how many and where, and the per-patient reader lists them."""

    def __init__(self, counts: dict[str, int]):
        self.counts = counts
        parts = ", ".join(f"{table}: {n}" for table, n in counts.items())
        super().__init__(f"the tables hold rows that cannot be read as they are ({parts}); "
                         "the per-patient engine reads what it can (it also ignores tabs and line breaks "
                         "around a value, which the columnar engine does not) and reports each of the "
                         "others with its row and field")


def connect(threads: int | None = None, memory_limit: str | None = None):
    import duckdb
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}").fetchall()
    if memory_limit:
        con.execute(f"SET memory_limit = {lit(memory_limit)}").fetchall()
    con.execute("SET preserve_insertion_order = false").fetchall()
    return con


def register_tables(con, folder: str | Path) -> dict[str, int]:
    """Views ``t_<table>`` over the folder's files; returns what was found: ``format``, ``found`` and
    ``absent`` tables, and ``odd`` (table -> header names not of the layout or repeated, which the
    per-patient reader reports)."""
    root = Path(folder)
    fmt = _find_format(root)
    layout = {"format": fmt, "found": [], "absent": [], "odd": {}}
    for table in TABLES:
        path = root / f"{table}.{fmt}"
        if path.is_file():
            layout["found"].append(table)
            header = (_csv_header(path) if fmt != "parquet" else
                      [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({lit(str(path))})").fetchall()])
            known = {c.name for c in COLUMNS[table]}
            odd = sorted({h for h in header if h not in known or header.count(h) > 1})
            if odd:
                layout["odd"][table] = odd
            numbered = table == "patients" and fmt == "parquet"
            reader = (f"read_parquet({lit(str(path))}{', file_row_number = true' if numbered else ''})"
                      if fmt == "parquet"
                      else f"read_csv({lit(str(path))}, header = true, all_varchar = true, "
                           "auto_detect = false, columns = " + _csv_columns(con, path) + ")")
            if table == "patients" and fmt != "parquet":
                _numbered_csv(con, reader)
            else:
                con.execute(f"CREATE OR REPLACE TEMP VIEW raw_{table} AS SELECT * FROM {reader}").fetchall()
        else:
            layout["absent"].append(table)
            cols = ", ".join(f"CAST(NULL AS VARCHAR) AS {c.name}" for c in COLUMNS[table])
            con.execute(f"CREATE OR REPLACE TEMP VIEW raw_{table} AS SELECT {cols} WHERE FALSE").fetchall()
        # name -> type: a typed Parquet column (boolean, double, date) is read as stored
        present = {row[0]: row[1] for row in con.execute(f"DESCRIBE raw_{table}").fetchall()}
        con.execute(f"CREATE OR REPLACE TEMP VIEW t_{table} AS {view_sql(table, f'raw_{table}', present)}").fetchall()
    return layout


def fill_report(con, layout: dict, report, rows: dict[str, int] | None = None) -> None:
    """The per-patient reader's account (engine.tables.TablesReport) of clean tables: every row
    read is loaded. ``rows``: the rows of each table, when already counted (by the data check)."""
    report.format = layout["format"]
    report.tables = list(layout["found"])
    report.tables_absent = [t for t in layout["absent"] if t != "patients"]
    for table in layout["found"]:
        n = rows[table] if rows else con.execute(f"SELECT COUNT(*) FROM raw_{table}").fetchall()[0][0]
        report.read[table] = report.loaded[table] = int(n)


def _numbered_csv(con, reader: str) -> None:
    """raw_patients from a CSV file, with each row's place in the file (read_csv has no row
    number): a temporary table filled in file order, whose rowid is that place."""
    con.execute("SET preserve_insertion_order = true").fetchall()
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE raw_patients_rows AS SELECT * FROM {reader}").fetchall()
    finally:
        con.execute("SET preserve_insertion_order = false").fetchall()
    con.execute(f"CREATE OR REPLACE TEMP VIEW raw_patients AS SELECT *, rowid AS {ROW_NUMBER} "
                "FROM raw_patients_rows").fetchall()


def _csv_header(path: Path) -> list[str]:
    import csv
    with open(path, encoding="utf-8-sig", newline="") as f:
        header = next(csv.reader(f), None)
    if not header:
        raise TablesError(f"{path.name}: no header row")
    return [h.strip() for h in header]


def _csv_columns(con, path: Path) -> str:
    """Every column of the header as text: a date known to the year must stay text."""
    return "{" + ", ".join(f"{lit(h)}: 'VARCHAR'" for h in _csv_header(path)) + "}"


def check(con, max_items: int | None = None) -> dict[str, int]:
    """Counts of rows the per-patient reader would refuse, by table (empty: all clean); with
    ``max_items``, also the patients with more items than that (engine.limits)."""
    return _check(con, max_items)[0]


def _check(con, max_items: int | None = None) -> tuple[dict[str, int], dict[str, int]]:
    """(problem counts as ``check`` gives them, rows read by table).

    Each table is read once: one pass per table counts, per patient id, its rows and its rows the
    reader would refuse (problem_test); every count (bad rows, rows of no patient, a patient's
    repeated rows, items over the limit) then comes from these few rows per patient. Reading
    each table once per kind of problem took as long as the query itself."""
    passes = []
    for number, table in enumerate(TABLES):  # tables by number: a row per patient per table to hold
        present = {row[0]: row[1] for row in con.execute(f"DESCRIBE raw_{table}").fetchall()}
        test = problem_test(table, present) or "FALSE"
        # COUNT(CASE ..), not COUNT(*) FILTER (WHERE ..): DuckDB evaluates a long test under FILTER
        # at almost twice the cost (1.85 against 1.05 CPU s on the encounters at 1M)
        passes.append(f"SELECT CAST({number} AS TINYINT) AS tbl, {patient_key(present)} AS patient_id, "
                      f"COUNT(*) AS n, COUNT(CASE WHEN {test} THEN 1 END) AS bad FROM raw_{table} GROUP BY 2")
    patients = TABLES.index("patients")
    con.execute("CREATE OR REPLACE TEMP TABLE check_rows AS " + " UNION ALL ".join(passes)).fetchall()
    try:
        counts: dict[str, int] = {}
        if max_items is not None:
            over = con.execute(f"SELECT COUNT(*) FROM (SELECT patient_id FROM check_rows WHERE tbl <> {patients} "
                               f"GROUP BY patient_id HAVING SUM(n) > {int(max_items)})").fetchall()[0][0]
            if over:
                counts[f"patients with more than {max_items:,} items"] = int(over)
        # a patient's rows after the first it can read are refused; an item of no patient (or of
        # no id) is too. A row is refused once, for its first reason, as the reader counts it.
        by_table = [(TABLES[t], n, bad) for t, n, bad in con.execute(
            f"SELECT c.tbl, SUM(c.n), SUM(c.bad) + CASE WHEN c.tbl = {patients} "
            "THEN SUM(GREATEST(c.n - c.bad - 1, 0)) "
            "ELSE COALESCE(SUM(c.n - c.bad) FILTER (WHERE p.patient_id IS NULL), 0) END "
            f"FROM check_rows c LEFT JOIN (SELECT patient_id FROM check_rows WHERE tbl = {patients}) p "
            f"ON c.tbl <> {patients} AND p.patient_id = c.patient_id GROUP BY c.tbl").fetchall()]
    finally:
        con.execute("DROP TABLE IF EXISTS check_rows").fetchall()
    rows = {table: 0 for table in TABLES} | {table: int(n) for table, n, _ in by_table}
    for table in TABLES:
        bad = next((int(b or 0) for t, _, b in by_table if t == table), 0)
        if bad:
            counts[table] = bad
    return counts, rows


def run(plan, folder: str | Path, con=None, check_data: bool = True, max_items: int | None = None, report=None):
    """Execute the plan over the folder's tables; returns a pyarrow Table (one row per patient, in
    the patients table's order). ``report`` (an engine.tables.TablesReport) is filled as the
    per-patient reader would fill it; a header the reader would remark on is then a DataProblem."""
    own = con is None
    con = con or connect()
    try:
        layout = register_tables(con, folder)
        rows = None
        if check_data:
            problems, rows = _check(con, max_items)
            if report is not None:
                problems.update({f"{t} (columns not of the layout, or repeated: {', '.join(cols)})": 1
                                 for t, cols in layout["odd"].items()})
            if problems:
                raise DataProblems(problems)
        if report is not None:
            fill_report(con, layout, report, rows)
        return con.sql(plan.sql).to_arrow_table()
    finally:
        if own:
            con.close()


def count_rows(con, table: str) -> int:
    return con.execute(f"SELECT COUNT(*) FROM t_{table}").fetchall()[0][0]


def write(con, plan, out: str | Path, fmt: str = "parquet") -> None:
    """Write the plan's result straight from DuckDB: Parquet, or one JSON object per patient
    (every outcome and audit column; a number as ``x`` and ``x__hi``, see engine.columnar.output),
    in the patients table's order.

    JSON lines go through Parquet: DuckDB's JSON writer with the final ORDER BY holds the whole
    result (4.4 GB at a million patients) and writes about 115 MB/s; the Parquet file is then
    streamed to JSON lines in batches, by polars when installed (the same bytes, 2.5 times
    faster), else by DuckDB reading it in file order."""
    out = Path(out)
    if fmt == "parquet":
        con.execute(f"COPY ({plan.sql}) TO {lit(str(out))} (FORMAT PARQUET)").fetchall()
        return
    middle = out.with_name(out.name + ".part.parquet")
    try:
        con.execute(f"COPY ({plan.sql}) TO {lit(str(middle))} (FORMAT PARQUET)").fetchall()
        parquet_to_jsonl(con, middle, out)
    finally:
        middle.unlink(missing_ok=True)


def parquet_to_jsonl(con, source: Path, out: Path) -> None:
    """A Parquet file as JSON lines, row by row in file order, a batch at a time."""
    try:
        import polars as pl
    except ImportError:
        pl = None
    if pl is None:
        con.execute("SET preserve_insertion_order = true").fetchall()
        try:
            con.execute(f"COPY (SELECT * FROM read_parquet({lit(str(source))})) TO {lit(str(out))} "
                        "(FORMAT JSON)").fetchall()
        finally:
            con.execute("SET preserve_insertion_order = false").fetchall()
        return
    import pyarrow.parquet as pq
    with open(out, "wb") as sink:
        for batch in pq.ParquetFile(source).iter_batches(batch_size=65_536):
            pl.from_arrow(batch).write_ndjson(sink)
