"""The fifth and sixth rounds of columnar rewrites (docs/backend.md, "Speed"), each against what it replaces.

* a table pass skips rows dated before its windows by the cell's text when it is a whole day
  (``plan.since_test``), keeping every row the bounds would keep;
* total stays added up stay by stay in order of start, without forming the islands, and the
  list's test applied with the readings rather than as a filter;
* counts per period inside a window drop the window's test;
* ``audit_columns=False`` gives the outcomes alone, the same values;
* (sixth round) a text cell whose first character is printable ASCII is read without TRIM, in the
  views and in the data check, with the same result as before on every odd cell;
* (sixth round) a ranked value that is a range is ranked against its group's distinct values.

Each is checked against the per-patient engine (tests/test_columnar.py ``differences``) on records
built to sit on the edges the rewrite relies on.
"""

from __future__ import annotations

import datetime as dt

import pytest

import engine
from engine.columnar import compile_plan, duckdb_backend
from engine.columnar.plan import since_test
from engine.columnar.sources import view_sql
from engine.generate import generate
from engine.tables import write_tables
from pathways.records import Encounter, PartialDate

CELLS = ["2023-04-01", "2023-03-31", "2023-04-02", "2024-04-01", "2023-04", "2023-03", "2023-05", "2023", "2022",
         "2024", "", "   ", " 2023-03-31 ", " 2023-04-01", None, "2023-13-01", "2023-02-30", "abcd", "2023-4-5",
         "2023-04-01 00:00:00", "1999-xx", "2023/03/05", "0001-01-01", "9999-12-31"]


def _view(con, cells: list, typed: bool) -> None:
    """t_encounters over the given start cells (text, or a typed Parquet-like DATE column)."""
    kind = "DATE" if typed else "VARCHAR"
    rows = ", ".join(f"({i}, {'NULL' if c is None else repr(c)})" for i, c in enumerate(cells))
    con.execute(f"CREATE OR REPLACE TEMP TABLE raw_encounters AS SELECT 'p' || n AS patient_id, 'gp' AS kind, "
                f"CAST(s AS {kind}) AS start FROM (VALUES {rows}) v(n, s)").fetchall()
    present = {"patient_id": "VARCHAR", "kind": "VARCHAR", "start": kind}
    con.execute(f"CREATE OR REPLACE TEMP VIEW t_encounters AS {view_sql('encounters', 'raw_encounters', present)}")


@pytest.mark.parametrize("since", ["2023-04-01", "2023-03-31", "2024-01-01", "2023-01-01"])
@pytest.mark.parametrize("typed", [False, True])
def test_the_text_test_of_a_pass_keeps_every_row_its_bounds_keep(since, typed):
    """Every row whose latest day may be on or after ``since`` (or is unknown) is kept; a cell of a
    whole day is kept exactly when it is on or after it (and a typed date likewise)."""
    import duckdb
    con = duckdb.connect()
    cells = [c for c in CELLS if not typed or c is None or (len(c.strip()) == 10 and c.strip()[4] == "-"
                                                           and c not in ("2023-13-01", "2023-02-30"))]
    _view(con, cells, typed)
    day = dt.date.fromisoformat(since)
    rows = con.execute(f"SELECT start_lo, start_hi, {since_test('start', day)} AS kept, start_t "
                       "FROM t_encounters").fetchall()
    assert len(rows) == len(cells)
    for cell, (lo, hi, kept, text) in zip(cells, rows):
        needed = hi is None or hi >= day
        assert (lo is None) == (hi is None), cell
        assert kept is True or not needed, f"{cell!r}: needed (latest day {hi}) but skipped"
        if typed or (text is not None and len(text) == 10 and lo is not None):
            assert kept is needed, f"{cell!r}: a whole day ({hi}) kept {kept}, should be {needed}"


def _stays(records):
    """The records with their admissions replaced by stays that overlap in every way the merging
    must get right: nested, the same start, chained, back to back, across the window's start,
    with no end, after the as-of date, known only to the month or the year, of each method and of
    none (which may or may not be an emergency)."""
    sets = [
        [("2023-06-01", "2023-06-20", "emergency"), ("2023-06-05", "2023-06-10", "elective")],        # nested
        [("2023-07-01", "2023-07-05", "emergency"), ("2023-07-01", "2023-07-15", "emergency")],       # same start
        [("2023-08-01", "2023-08-10", "elective"), ("2023-08-08", "2023-08-20", "emergency"),
         ("2023-08-19", "2023-09-02", "emergency")],                                                # chained
        [("2023-09-01", "2023-09-10", "emergency"), ("2023-09-10", "2023-09-12", "emergency")],       # back to back
        [("2023-03-20", "2023-04-10", "emergency"), ("2023-04-05", "2023-04-08", "elective")],        # window start
        [("2024-03-25", None, "emergency"), ("2024-03-28", "2024-03-30", "elective")],                # no end
        [("2024-04-02", "2024-04-09", "emergency"), ("2023-12-01", "2023-12-03", "emergency")],       # after as-of
        [("2023-10", "2023-10-20", "emergency"), ("2023-10-10", "2023-11", "emergency")],             # months
        [("2023", "2023-11-02", "elective"), ("2023-11-01", "2023-11-05", "emergency")],              # a year
        [("2024-03", None, "emergency"), ("2023-05-01", "2023-05-01", "emergency")],                  # 0 nights
        [("2023-11-20", "2023-12-10", None), ("2023-12-01", "2023-12-05", "emergency"),               # maybe
         ("2024", None, "emergency"), ("2023-06-01", "2023-06-03", None)],                           # emergency
        [],
    ]
    out = []
    for n, record in enumerate(records):
        kept = [e for e in record.encounters if e.kind != "admission"]
        stays = [Encounter(source_id=f"stay-{n}-{i}", kind="admission", start=PartialDate.parse(s),
                           end=None if e is None else PartialDate.parse(e), method=method)
                 for i, (s, e, method) in enumerate(sets[n % len(sets)] + sets[(n * 5 + 3) % len(sets)])]
        out.append(record.model_copy(update={"encounters": kept + stays}))
    return out


STAYS_PROTOCOL = '''protocol stays:
  version "1.0.0"
  title "Total stays of overlapping admissions"
  status active

outcomes year, ever, emergency, long, winter, weeks

define weeks "Nights in stays of a week or more": total stay of admissions where length at least 7 days

define year "Nights in hospital in a year": total stay of admissions in the last 1 year
define ever "Nights in hospital": total stay of admissions
define emergency "Emergency nights in a year": total stay of emergency_admissions in the last 12 months
define long "Over four weeks in a year": total stay of admissions in the last 1 year more than 4 weeks
define winter "Nights of elective stays": total stay of elective_admissions
'''


@pytest.mark.parametrize("as_of", ["2024-04-01", "2023-09-11", "2023-07-03"])
def test_total_stays_added_stay_by_stay_agree_with_the_per_patient_engine(tmp_path, as_of):
    from test_columnar import differences
    source = tmp_path / "stays.pw"
    source.write_text(STAYS_PROTOCOL, encoding="utf-8")
    records = _stays(generate(66, seed=3, as_of="2024-04-01"))
    program = engine.load(source)
    problems = differences(program, records, as_of, tmp_path / "tables")
    assert not problems, "\n".join(problems[:20])
    # the population holds stays that overlap, ranges (imprecise dates) and stays out of the list
    plan = compile_plan(program, as_of)
    write_tables(records, tmp_path / "again", "parquet")
    rows = duckdb_backend.run(plan, tmp_path / "again").to_pylist()
    assert any(r["year"] != r["year__hi"] for r in rows)
    if as_of == "2024-04-01":
        assert any(r["emergency"] not in (0, r["year"]) for r in rows)
    assert "WHERE w >= rd" in plan.sql


def test_counts_per_period_inside_their_window_drop_the_windows_test(tmp_path):
    """``per 3 months of X in the last 12 months``: each period's test without the window's, the
    numbers (ranges included) the per-patient engine's, on dates on every edge."""
    from test_columnar import differences
    from test_columnar_rewrites import EDGES_PROTOCOL, _edge_dated
    source = tmp_path / "edges.pw"
    source.write_text(EDGES_PROTOCOL, encoding="utf-8")
    program = engine.load(source)
    plan = compile_plan(program, "2024-04-01")
    window = "start_lo >= DATE '2023-04-01' AND start_hi <= DATE '2024-04-01'"  # the 12 months' test
    sums = [part for part in plan.sql.split(" AS a") if "kind = 'social_work'" in part]
    assert sums and all(window not in part for part in sums)  # the quarters' sums read no window test
    records = _edge_dated(generate(150, seed=9, as_of="2024-04-01"))
    problems = differences(program, records, "2024-04-01", tmp_path / "tables")
    assert not problems, "\n".join(problems[:20])


@pytest.mark.parametrize("name", ["castlefields", "ltc_pyramid"])
def test_without_audit_columns_the_outcomes_are_the_same(tmp_path, name):
    program = engine.load(f"library/{name}.pw")
    write_tables(generate(150, seed=12, as_of="2024-04-01"), tmp_path, "parquet")
    full = compile_plan(program, "2024-04-01")
    lean = compile_plan(program, "2024-04-01", audit_columns=False)
    assert [o.name for o in lean.outputs] == [o.name for o in full.outputs if o.outcome]
    assert len(full.outputs) > len(lean.outputs)
    a = duckdb_backend.run(full, tmp_path)
    b = duckdb_backend.run(lean, tmp_path)
    assert b.column_names == [c for c in a.column_names if c == "patient_id" or c.split("__")[0] in
                              {o.name for o in lean.outputs}]
    assert b.to_pylist() == a.select(b.column_names).to_pylist()


def _reference_problem_test(table: str, present: set[str]) -> str | None:
    """The data check's test on a row of text cells as it was before this round (NULLIF(TRIM(..)),
    the date's bounds by its length, then its shape), the reference for the one now used."""
    from engine.columnar.sources import DATE_SHAPES, _bool, _trimmed, date_bounds
    from engine.columnar.sql import lit
    from engine.tables import COLUMNS
    tests = []
    for column in COLUMNS[table]:
        name = column.name
        if name not in present:
            if column.required:
                return "TRUE"
            continue
        value = _trimmed(name, present)
        if column.required:
            tests.append(f"{value} IS NULL")
        if column.type == "date":
            lo, _ = date_bounds(value)
            shapes = " OR ".join(f"{value} GLOB '{shape}'" for shape in DATE_SHAPES)
            tests.append(f"({value} IS NOT NULL AND ({lo} IS NULL OR NOT ({shapes})))")
        elif column.type == "boolean":
            tests.append(f"({value} IS NOT NULL AND {_bool(name, present)} IS NULL)")
        elif column.type == "number":
            tests.append(f"({value} IS NOT NULL AND (TRY_CAST({value} AS DOUBLE) IS NULL OR "
                         f"isinf(TRY_CAST({value} AS DOUBLE)) OR isnan(TRY_CAST({value} AS DOUBLE))))")
        elif column.type == "code":
            choices = ", ".join(lit(c) for c in column.choices)
            tests.append(f"({value} IS NOT NULL AND {value} NOT IN ({choices}))")
    return " OR ".join(tests) if tests else None


ODD_CELLS = [None, "", "  ", "\t", "2023-04-01", " 2023-04-01 ", "2023-02-30", "2024-02-29", "2023-13", "2023-04",
             "2023", "202", "20230401", "2023-4-5", "2023/04/01", "abcd", "true", " Yes ", "NO", "maybe", "1", "0",
             "1.5", " 2 ", "-3", "inf", "-inf", "nan", "NaN", "1e400", "x", "admission", " gp ", "GP", "emergency",
             "active", "resolved", "adl", "female", "snomed", "p1", "٣", "2023-04-01T00:00", "0001-01-01",
             # blank or not by their first character (the sixth round's guard before TRIM)
             "\u00a0", "\u3000\u3000", "\u00a0p1", " p1", "p1 ", "!", "~", "~p1", "\x7f", "\n p1", "é"]


@pytest.mark.parametrize("table", ["patients", "conditions", "medications", "encounters", "observations",
                                   "procedures", "life_events", "pathway_events"])
def test_the_data_checks_test_refuses_what_it_refused(table):
    """Row by row, the data check's test of text cells (one TRIM a reading, the whole day first)
    refuses exactly the rows the test it replaces refused, on cells of every odd kind in every column."""
    import duckdb
    from engine.columnar.sources import problem_test
    from engine.tables import COLUMNS
    columns = COLUMNS[table]
    names = [c.name for c in columns]
    good = [{"date": "2023-04-01", "boolean": "true", "number": "1"}.get(c.type) or
            (c.choices[0] if c.type == "code" else "snomed" if c.name == "system" else "p1") for c in columns]
    # a clean row, then each column in turn holding each odd cell
    rows = [good] + [good[:k] + [cell] + good[k + 1:] for k in range(len(names)) for cell in ODD_CELLS]
    con = duckdb.connect()
    values = ", ".join("(" + ", ".join("NULL" if c is None else "'" + c + "'" for c in row) + ")" for row in rows)
    cols = ", ".join(f'"{c}"' for c in names)
    con.execute(f"CREATE TABLE raw AS SELECT * FROM (VALUES {values}) v({cols})")
    present = set(names)
    new, old = problem_test(table, present), _reference_problem_test(table, present)
    got = con.execute(f"SELECT COALESCE({new}, FALSE), COALESCE({old}, FALSE) FROM raw").fetchall()
    assert [a for a, _ in got] == [b for _, b in got]
    assert any(a for a, _ in got) and not all(a for a, _ in got)


@pytest.mark.parametrize("table", ["patients", "conditions", "encounters", "observations"])
def test_text_cells_read_without_trim_when_their_first_character_says_so(table):
    """The views read a text cell (a patient id, a practice) as the expression they replace did
    (``CASE WHEN TRIM(x) = '' THEN NULL ELSE x END``): the new one skips the TRIM when the first
    character is printable ASCII, so a cell blank by Unicode spaces (which TRIM strips) or by a
    leading space must still be found blank by TRIM, and every other cell kept as it is."""
    import duckdb
    from engine.columnar.sources import _text
    con = duckdb.connect()
    cells = [c for c in ODD_CELLS if c is None or "'" not in c]
    values = ", ".join("(NULL)" if c is None else "('" + c + "')" for c in cells)
    con.execute(f"CREATE TABLE raw AS SELECT * FROM (VALUES {values}) v(patient_id)")
    old = "CASE WHEN TRIM(CAST(\"patient_id\" AS VARCHAR)) = '' THEN NULL ELSE CAST(\"patient_id\" AS VARCHAR) END"
    got = con.execute(f"SELECT {_text('patient_id', {'patient_id'})}, {old} FROM raw").fetchall()
    assert [a for a, _ in got] == [b for _, b in got]
    assert sum(a is None for a, _ in got) == 5  # NULL, '', spaces, NBSP, ideographic spaces (a tab is kept)
    # and the whole view: every column of the table read from the same odd cells
    from engine.tables import COLUMNS
    names = [c.name for c in COLUMNS[table]]
    con.execute(f"CREATE TABLE wide AS SELECT {', '.join(f'patient_id AS {n}' for n in names)} FROM raw")
    view = view_sql(table, "wide", set(names))
    assert "TRIM(CAST(\"patient_id\" AS VARCHAR)) = ''" in view  # the fallback is still there
    ids = [r[0] for r in con.execute(f"SELECT patient_id FROM ({view})").fetchall()]
    assert ids == [a for a, _ in got]


RANKS_PROTOCOL = '''protocol ranks:
  version "1.0.0"
  title "Ranks of imprecise counts"
  status active

outcomes top_practice, top_half, top_population, pct_practice, pct_population

define visits "GP visits in a year": count gp_consultations in the last 12 months
define top_practice "Top 3% of the practice": visits is in the top 3% of practice
define top_half "Top half of the practice": visits is in the top 50% of practice
define top_population "Top 10% of everyone": visits is in the top 10% of population
define pct_practice "Centile in the practice": percentile of visits in practice
define pct_population "Centile of everyone": percentile of visits in population
'''


def _imprecise_visits(records):
    """GP visits of one patient in three known only to the month or the year, on the window's
    edges (so that the count is a range), in four practices."""
    out = []
    for n, record in enumerate(records):
        patient = record.patient.model_copy(update={"practice": f"P{n % 4}"})
        record = record.model_copy(update={"patient": patient})
        if n % 3:
            out.append(record)
            continue
        cells = ["2023-04", "2023-03", "2023", "2024-03", "2024"][: 1 + n % 5]
        extra = [Encounter(source_id=f"gp-{n}-{i}", kind="gp", start=PartialDate.parse(c))
                 for i, c in enumerate(cells)]
        out.append(record.model_copy(update={"encounters": list(record.encounters) + extra}))
    return out


def test_ranks_of_imprecise_values_agree_with_the_per_patient_engine(tmp_path):
    """A patient whose value is a range is ranked at both ends against the exact values of its
    group, looked up among the group's distinct values (plan_rank): top shares and percentiles,
    by practice and of everyone, are the per-patient engine's, unknowns included."""
    from test_columnar import differences
    source = tmp_path / "ranks.pw"
    source.write_text(RANKS_PROTOCOL, encoding="utf-8")
    program = engine.load(source)
    records = _imprecise_visits(generate(240, seed=5, as_of="2024-04-01"))
    problems = differences(program, records, "2024-04-01", tmp_path / "tables")
    assert not problems, "\n".join(problems[:20])
    plan = compile_plan(program, "2024-04-01")
    assert "JOIN s" not in plan.sql.split("_inexact AS", 1)[1].split("),", 1)[0]  # not every member
    write_tables(records, tmp_path / "again", "parquet")
    rows = duckdb_backend.run(plan, tmp_path / "again").to_pylist()
    ranged = [r for r in rows if r["pct_practice"] != r["pct_practice__hi"]]
    assert len(ranged) > 10  # imprecise counts ranked at both ends
    for name in ("top_half",):  # decided both ways, and unknown for some
        assert {r[name] for r in rows} == {True, False, None}, name
