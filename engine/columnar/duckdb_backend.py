"""Run a compiled plan on DuckDB over a folder of tables (CSV or Parquet)."""

from __future__ import annotations

from pathlib import Path

from engine.tables import COLUMNS, TABLES, TablesError, _find_format

from .sources import problems_sql, view_sql
from .sql import lit


class DataProblems(Exception):
    """Rows the per-patient reader would report and skip: the columnar engine does not
    guess; it says how many and where, and the per-patient reader lists them."""

    def __init__(self, counts: dict[str, int]):
        self.counts = counts
        parts = ", ".join(f"{table}: {n}" for table, n in counts.items())
        super().__init__(f"the tables hold rows that cannot be read as they are ({parts}); "
                         "the per-patient engine reports each one with its row and field")


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
    """Views ``t_<table>`` over the folder's files; returns table -> rows (for the load summary)."""
    root = Path(folder)
    fmt = _find_format(root)
    for table in TABLES:
        path = root / f"{table}.{fmt}"
        if path.is_file():
            reader = (f"read_parquet({lit(str(path))})" if fmt == "parquet"
                      else f"read_csv({lit(str(path))}, header = true, all_varchar = true, "
                           "auto_detect = false, columns = " + _csv_columns(con, path) + ")")
            con.execute(f"CREATE OR REPLACE TEMP VIEW raw_{table} AS SELECT * FROM {reader}").fetchall()
        else:
            cols = ", ".join(f"CAST(NULL AS VARCHAR) AS {c.name}" for c in COLUMNS[table])
            con.execute(f"CREATE OR REPLACE TEMP VIEW raw_{table} AS SELECT {cols} WHERE FALSE").fetchall()
        present = {row[0] for row in con.execute(f"DESCRIBE raw_{table}").fetchall()}
        con.execute(f"CREATE OR REPLACE TEMP VIEW t_{table} AS {view_sql(table, f'raw_{table}', present)}").fetchall()
    return {}


def _csv_columns(con, path: Path) -> str:
    """Every column of the header as text: a date known to the year must stay text."""
    import csv
    with open(path, encoding="utf-8-sig", newline="") as f:
        header = next(csv.reader(f), None)
    if not header:
        raise TablesError(f"{path.name}: no header row")
    return "{" + ", ".join(f"{lit(h.strip())}: 'VARCHAR'" for h in header) + "}"


def check(con) -> dict[str, int]:
    """Counts of rows the per-patient reader would refuse, by table (empty: all clean)."""
    counts: dict[str, int] = {}
    for table in TABLES:
        present = {row[0] for row in con.execute(f"DESCRIBE raw_{table}").fetchall()}
        sql = problems_sql(table, f"raw_{table}", present)
        n = con.execute(sql).fetchall()[0][0] if sql else 0
        if table != "patients":
            n += con.execute(f"SELECT COUNT(*) FROM t_{table} t WHERE NOT EXISTS "
                             f"(SELECT 1 FROM t_patients p WHERE p.patient_id = t.patient_id)").fetchall()[0][0]
        else:
            n += con.execute("SELECT COALESCE(SUM(c - 1), 0) FROM (SELECT COUNT(*) AS c FROM t_patients "
                             "GROUP BY patient_id HAVING COUNT(*) > 1)").fetchall()[0][0]
        if n:
            counts[table] = int(n)
    return counts


def run(plan, folder: str | Path, con=None, check_data: bool = True):
    """Execute the plan over the folder's tables; returns a pyarrow Table (one row per patient)."""
    own = con is None
    con = con or connect()
    try:
        register_tables(con, folder)
        if check_data:
            problems = check(con)
            if problems:
                raise DataProblems(problems)
        return con.sql(plan.sql).to_arrow_table()
    finally:
        if own:
            con.close()


def count_rows(con, table: str) -> int:
    return con.execute(f"SELECT COUNT(*) FROM t_{table}").fetchall()[0][0]


def write(con, plan, out: str | Path, fmt: str = "parquet") -> None:
    """Write the plan's result straight from DuckDB: Parquet, or one JSON object per patient
    (every outcome and audit column; a number as ``x`` and ``x__hi``, see engine.columnar.output)."""
    kind = "PARQUET" if fmt == "parquet" else "JSON"
    con.execute(f"COPY ({plan.sql}) TO {lit(str(out))} (FORMAT {kind})").fetchall()
