"""The columnar engine's data check (engine.columnar.duckdb_backend.check) reads each table once
and still finds every row the per-patient reader would refuse.

The check decides whether a columnar run may go ahead: any row the reader
(engine.tables.read_tables) would skip must stop it, and clean tables must
pass. Each case below spoils one cell or row of a small generated population
(CSV, and Parquet with typed columns) and asks both: the reader skips
something exactly when the check counts something. The counts themselves are
compared with the check as it was written before it was fused into one pass
per table (one query per kind of problem, kept here as the reference for
whether anything is found) and, row by row, with the reader's own count.
"""

from __future__ import annotations

import csv

import duckdb
import pytest

from engine.columnar import duckdb_backend
from engine.columnar.sources import problems_sql
from engine.generate import generate
from engine.tables import TABLES, read_tables, write_tables

AS_OF = "2024-04-01"


def reference_check(con, max_items=None) -> dict[str, int]:
    """The check as one query per kind of problem (the code before the single pass)."""
    counts: dict[str, int] = {}
    if max_items is not None:
        items = " UNION ALL ".join(f"SELECT patient_id FROM t_{t}" for t in TABLES if t != "patients")
        over = con.execute(f"SELECT COUNT(*) FROM (SELECT patient_id FROM ({items}) i GROUP BY patient_id "
                           f"HAVING COUNT(*) > {int(max_items)})").fetchall()[0][0]
        if over:
            counts[f"patients with more than {max_items:,} items"] = int(over)
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


def _edit(folder, table: str, change) -> None:
    """Rewrite one CSV table: ``change(rows)`` edits the list of dict rows in place."""
    path = folder / f"{table}.csv"
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        names, rows = reader.fieldnames, list(reader)
    change(rows)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, names)
        writer.writeheader()
        writer.writerows(rows)


def _first(table: str, field: str, value: str):
    def change(rows):
        rows[0][field] = value
    return table, change


def _dated(table: str, field: str, value: str):
    """The first row with a date in ``field`` gets ``value`` instead."""
    def change(rows):
        next(r for r in rows if r[field])[field] = value
    return table, change


def _append(table: str, **cells):
    def change(rows):
        rows.append({**{k: "" for k in rows[0]}, **cells})
    return table, change


def _repeat_first(table: str):
    def change(rows):
        rows.append(dict(rows[0]))
    return table, change


CASES = {
    "clean": None,
    "a month 13": _first("patients", "birth_date", "1950-13"),
    "a day that does not exist": _dated("encounters", "start", "2023-02-30"),
    "slashes in a date": _dated("conditions", "onset", "2023/01/05"),
    "a one-digit month": _dated("medications", "start", "2023-1-05"),
    "a negative year": _dated("observations", "date", "-999"),
    "a time after the day": _dated("encounters", "start", "2023-01-05T10"),
    "eight digits": _dated("procedures", "date", "20230105"),
    "a word for a date": _dated("life_events", "date", "soon"),
    "not a boolean": _first("patients", "lives_alone", "perhaps"),
    "not a number": _dated("medications", "monthly_cost", "cheap"),
    "an infinite number": _dated("medications", "monthly_cost", "inf"),
    "not a number, NaN": _dated("medications", "monthly_cost", "nan"),
    "a kind not of the list": _first("encounters", "kind", "telepathy"),
    "no code": _first("conditions", "code", "  "),
    "an item of no patient": _append("encounters", patient_id="nobody", kind="gp", start="2023-05-01"),
    "an item with no patient id": _append("encounters", patient_id="", kind="gp", start="2023-05-01"),
    "a patient twice": _repeat_first("patients"),
    "a patient with no id": _append("patients", patient_id=" ", birth_date="1950-01-01"),
}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clean")
    write_tables(generate(12, seed=7, as_of=AS_OF), folder, "csv")
    return folder


def _copy(base, folder):
    folder.mkdir()
    for path in base.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def _refused(folder) -> dict[str, int]:
    """The rows the reader refuses, by table, each once whatever its reasons; not the items it
    then leaves out because their patient's row was refused (the check need not count those:
    the run stops for the patient's row)."""
    _, report = read_tables(folder)
    out: dict[str, int] = {}
    for (table, reason), n in report.skipped.items():
        if reason != "patient's row skipped":
            out[table] = out.get(table, 0) + n
    return out


def _checks(folder, max_items=None):
    con = duckdb_backend.connect()
    try:
        duckdb_backend.register_tables(con, folder)
        return duckdb_backend.check(con, max_items), reference_check(con, max_items)
    finally:
        con.close()


@pytest.mark.parametrize("case", list(CASES))
def test_the_check_finds_what_the_reader_skips(base, tmp_path, case):
    folder = _copy(base, tmp_path / "t")
    if CASES[case]:
        table, change = CASES[case]
        _edit(folder, table, change)
    got, reference = _checks(folder)
    assert got == _refused(folder)
    assert bool(got) == bool(reference) == (case != "clean")


def test_the_counts_add_up_over_several_problems(base, tmp_path):
    folder = _copy(base, tmp_path / "t")
    for table, change in (CASES["a month 13"], CASES["a patient twice"], CASES["an item of no patient"],
                          CASES["an item with no patient id"], CASES["a kind not of the list"],
                          CASES["not a number"]):
        _edit(folder, table, change)
    got, _ = _checks(folder)
    # patients: the first row's bad birth date and its copy (bad too: refused once, not again as a
    # repeat); encounters: the bad kind, the item of no patient, and the item with no id (refused
    # once: the old check counted it twice, as of no id and of no patient); medications: the cost
    # (the reader counts some of these as its patient's row refused: the first patient's)
    assert got == {"patients": 2, "medications": 1, "encounters": 3}


def test_patients_over_the_item_limit_are_counted(base, tmp_path):
    folder = _copy(base, tmp_path / "t")
    records, _ = read_tables(folder)
    sizes = sorted(len(r.conditions) + len(r.medications) + len(r.encounters) + len(r.observations)
                   + len(r.procedures) + len(r.life_events) + len(r.pathway_events) for r in records)
    limit = sizes[-3]  # the two largest records are over it (unless they tie with the third)
    over = sum(1 for s in sizes if s > limit)
    got, reference = _checks(folder, max_items=limit)
    assert got == reference == {f"patients with more than {limit:,} items": over}
    assert _checks(folder, max_items=sizes[-1]) == ({}, {})


def test_typed_parquet_columns_are_checked_as_stored(base, tmp_path):
    """Parquet booleans, doubles and dates need no reading from text: only a number that is not
    finite is refused (the reader refuses NaN and infinities)."""
    folder = tmp_path / "p"
    folder.mkdir()
    con = duckdb.connect()
    for table in TABLES:
        src = base / f"{table}.csv"
        if not src.is_file():
            continue
        typed = {"patients": "* REPLACE (CAST(birth_date AS DATE) AS birth_date, "
                             "CAST(lives_alone AS BOOLEAN) AS lives_alone)",
                 "medications": "* REPLACE (CAST(monthly_cost AS DOUBLE) AS monthly_cost)"}.get(table, "*")
        con.execute(f"COPY (SELECT {typed} FROM read_csv('{src}', all_varchar = true)) "
                    f"TO '{folder / (table + '.parquet')}' (FORMAT PARQUET)")
    assert _checks(folder) == ({}, {})
    path = folder / "medications.parquet"
    con.execute(f"COPY (SELECT * REPLACE (CASE WHEN row_number() OVER () = 1 THEN 'NaN'::DOUBLE "
                f"ELSE monthly_cost END AS monthly_cost) FROM read_parquet('{path}')) "
                f"TO '{tmp_path / 'm.parquet'}' (FORMAT PARQUET)")
    path.write_bytes((tmp_path / "m.parquet").read_bytes())
    got, reference = _checks(folder)
    assert got == reference == {"medications": 1}
    _, report = read_tables(folder)
    assert report.skipped_by_table()["medications"] == 1


def test_a_run_counts_the_rows_it_read_without_reading_again(base, tmp_path):
    """`pathways run --engine duckdb` reports rows read per table from the check's own pass."""
    from engine.tables import TablesReport
    con = duckdb_backend.connect()
    layout = duckdb_backend.register_tables(con, base)
    _, rows = duckdb_backend._check(con)
    expected = {t: con.execute(f"SELECT COUNT(*) FROM raw_{t}").fetchall()[0][0] for t in layout["found"]}
    assert {t: rows[t] for t in layout["found"]} == expected
    report = TablesReport(source=str(base))
    duckdb_backend.fill_report(con, layout, report, rows)
    _, reader = read_tables(base)
    for table in TABLES:
        assert report.read[table] == reader.read[table] and report.loaded[table] == reader.loaded[table]
