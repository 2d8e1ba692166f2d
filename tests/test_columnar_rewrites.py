"""Shortcuts the columnar compiler takes for speed give exactly what the long way gives.

* ``duration at least k months`` (engine.columnar.sqlmath.span_at_least) compares
  the start moved by k months with the end instead of counting whole months per
  row; checked here against engine.calendar.whole_units on every pair of days
  around month ends, leap days and year ends, with imprecise starts (three-valued);
* the type-aware views read Parquet booleans, doubles and dates as stored and
  give what the text reading gives;
* the table pass skips rows outside every list's scope (``kind``) and, for a
  total stay, reads admissions only.
"""

from __future__ import annotations

import datetime as dt
import itertools

import duckdb
import pytest

import engine
from engine.calendar import whole_units
from engine.columnar import compile_plan, duckdb_backend, sqlmath
from engine.columnar.output import columns_json
from engine.generate import generate
from engine.tables import write_tables


def _days(start: str, n: int) -> list[dt.date]:
    first = dt.date.fromisoformat(start)
    return [first + dt.timedelta(days=i) for i in range(n)]


STARTS = _days("2023-01-27", 8) + _days("2023-02-25", 6) + _days("2024-02-26", 6) + _days("2023-12-29", 4) \
    + _days("2024-05-30", 3)
ENDS = STARTS + _days("2024-03-27", 7) + _days("2025-02-26", 5) + _days("2023-07-29", 5) + _days("2024-08-29", 4)


def _python(op: str, k: int, unit: str, s_lo, s_hi, e_lo, e_hi):
    """engine.values.interval_compare of duration_range(span) against k (engine semantics)."""
    lo, hi = whole_units(s_hi, e_lo, unit), whole_units(s_lo, e_hi, unit)
    sure = {">=": lo >= k, ">": lo > k, "<": hi < k, "<=": hi <= k}[op]
    never = {">=": hi < k, ">": hi <= k, "<": lo >= k, "<=": lo > k}[op]
    return True if sure else False if never else None


@pytest.mark.parametrize("unit", ["months", "years", "weeks", "days"])
def test_duration_shortcut_agrees_with_whole_units(unit):
    con = duckdb.connect()
    # exact starts and ends, and starts known to the month (a range of days)
    rows = [(s, s, e, e) for s, e in itertools.product(STARTS, ENDS)]
    rows += [(s.replace(day=1), s, e, e) for s, e in itertools.product(STARTS[::3], ENDS[::2])]
    con.execute("CREATE TABLE spans (s_lo DATE, s_hi DATE, e_lo DATE, e_hi DATE)")
    con.executemany("INSERT INTO spans VALUES (?, ?, ?, ?)", rows)
    con.execute("INSERT INTO spans VALUES (NULL, NULL, DATE '2024-01-01', DATE '2024-01-01')")
    checked = 0
    for op, k in itertools.product((">=", ">", "<", "<="), (1, 2, 6, 12, 13) if unit != "days" else (1, 7, 30, 366)):
        sql = sqlmath.span_at_least(("s_lo", "s_hi", "e_lo", "e_hi"), op, k, unit)
        assert sql is not None
        got = con.execute(f"SELECT s_lo, s_hi, e_lo, e_hi, {sql} FROM spans").fetchall()
        for s_lo, s_hi, e_lo, e_hi, value in got:
            if s_lo is None:
                assert value is None, "an unknown start leaves the duration unknown"
                continue
            expected = _python(op, k, unit, s_lo, s_hi, e_lo, e_hi)
            assert value is expected, f"{unit} {op} {k}: {s_lo}..{s_hi} to {e_lo}: SQL {value}, engine {expected}"
            checked += 1
    assert checked > 10_000


def test_duration_shortcut_refuses_what_it_cannot_say():
    span = ("a", "b", "c", "d")
    assert sqlmath.span_at_least(span, ">=", 0, "months") is None  # 0 whole months is also a little before
    assert sqlmath.span_at_least(span, "=", 6, "months") is None
    assert sqlmath.span_at_least(span, ">=", 6, "fortnights") is None
    assert sqlmath.span_at_least(span, "<=", 0, "months") is not None  # < 1


def _typed_and_text(tmp_path, records):
    """The same records as Parquet (typed booleans and numbers) and as CSV (all text)."""
    write_tables(records, tmp_path / "pq", "parquet")
    write_tables(records, tmp_path / "csv", "csv")
    return tmp_path / "pq", tmp_path / "csv"


def test_typed_parquet_columns_read_as_the_text_of_the_same_cells(tmp_path):
    records = list(generate(300, seed=5, as_of="2024-04-01"))
    pq, csv = _typed_and_text(tmp_path, records)
    con = duckdb_backend.connect()
    duckdb_backend.register_tables(con, pq)
    kinds = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE raw_observations)").fetchall())
    assert kinds["impaired"] == "BOOLEAN" and kinds["value"] == "DOUBLE"  # the typed path is taken
    views = {}
    for folder in (pq, csv):
        duckdb_backend.register_tables(con, folder)
        views[folder] = {t: con.execute(f"SELECT * EXCLUDE (pk) FROM t_{t} ORDER BY ALL" if t == "patients" else
                                        f"SELECT * FROM t_{t} ORDER BY ALL").fetchall()
                         for t in ("patients", "observations", "medications")}
    assert views[pq] == views[csv]
    assert any(row for row in views[pq]["observations"])


def test_scoped_passes_give_the_per_patient_results(tmp_path):
    """The pyramid's plan reads only the encounter and observation kinds its lists name, and only
    active medications; the results still equal the per-patient engine's on a population with
    every kind and status."""
    program = engine.load("library/ltc_pyramid.pw")
    plan = compile_plan(program, "2024-04-01")
    assert "FROM t_encounters WHERE ((kind = 'admission') OR" in plan.sql
    assert "FROM t_medications WHERE ((status = 'active'))" in plan.sql  # every list of them is active
    assert "FROM t_encounters WHERE kind = 'admission')" in plan.sql  # the total stay reads admissions only
    records = list(generate(400, seed=8, as_of="2024-04-01"))
    write_tables(records, tmp_path, "parquet")
    ids, values = columns_json(duckdb_backend.run(plan, tmp_path), [o for o in plan.outputs if o.outcome])
    got = {pid: {o.name: values[o.name][i] for o in plan.outputs if o.outcome} for i, pid in enumerate(ids)}
    expected = {r.patient_id: r.values() for r in program.evaluate_population(records, as_of="2024-04-01")}
    assert got == expected


EDGE_DATES = ["2024-04", "2024-03", "2024", "2023", "2023-04", "2023-03", "2024-01", "2023-12", "2023-10",
              "2023-07", "2024-04-01", "2024-04-02", "2024-02-29", "2023-04-01", "2023-03-31", "2024-01-01",
              "2023-10-01", "2023-07-01", "2025-01"]


def _edge_dated(records):
    """The records with every encounter and observation moved onto a window edge, a period edge or
    an as-of date, some known to the day, some to the month or the year only (three-valued)."""
    from pathways.records import PartialDate
    out, n = [], 0
    for record in records:
        encounters = []
        for item in record.encounters:
            n += 1
            start = PartialDate.parse(EDGE_DATES[n % len(EDGE_DATES)])
            update = {"start": start}
            if item.end is not None:
                update["end"] = PartialDate.parse(EDGE_DATES[(n * 7) % len(EDGE_DATES)])
                if update["end"].latest < start.earliest:
                    update["end"] = None
            encounters.append(item.model_copy(update=update))
        observations = [o.model_copy(update={"date": PartialDate.parse(EDGE_DATES[(n + i) % len(EDGE_DATES)])})
                        for i, o in enumerate(record.observations)]
        # conditions: on the edges too, and every third with no onset (an item with no date)
        conditions = [c.model_copy(update={"onset": None if (n + i) % 3 == 0 else
                                           PartialDate.parse(EDGE_DATES[(n + 2 * i) % len(EDGE_DATES)])})
                      for i, c in enumerate(record.conditions)]
        out.append(record.model_copy(update={"encounters": encounters, "observations": observations,
                                             "conditions": conditions}))
    return out


@pytest.mark.parametrize("as_of", ["2024-04-01", "2024-02-29", "2024-01-01"])
@pytest.mark.parametrize("name", ["castlefields", "ltc_pyramid"])
def test_window_and_period_edges_agree_with_the_per_patient_engine(tmp_path, name, as_of):
    """Windows that end on the as-of date (the as-of test dropped), counts per period (one
    Kleene AND per period) and total stays, on dates sitting on their edges."""
    from test_columnar import differences
    records = _edge_dated(generate(120, seed=21, as_of="2024-04-01"))
    assert any(e.start.precision != "day" for r in records for e in r.encounters)
    problems = differences(engine.load(f"library/{name}.pw"), records, as_of, tmp_path)
    assert not problems, "\n".join(problems[:20])


EDGES_PROTOCOL = '''protocol edges:
  version "1.0.0"
  title "Counts on window and period edges"
  status active

outcomes sw_lowest, gp_average, op_highest, admissions_12m, stay, long_meds, falls_q, winter, after_new_year, old_falls, quarter_but_one, conditions_q, conditions_12m

define sw_lowest "Lowest social work visits in a quarter": lowest count per 3 months of social_work_visits in the last 12 months
define gp_average "GP consultations a month": average count per 1 month of gp_consultations in the last 6 months
define op_highest "Most outpatient appointments in a quarter": highest count per 3 months of outpatient_appointments in the last 12 months
define admissions_12m "Admissions in a year": count admissions in the last 12 months
define stay "Nights in hospital in a year": total stay of admissions in the last 1 year
define long_meds "Medicines for six months or more": count medications where status is active and duration at least 6 months
define falls_q "Falls in a quarter": highest count per 3 months of falls in the last 12 months
define winter "Emergency admissions last winter": count emergency_admissions between 2023-11-01 and 2024-02-29
define after_new_year "Admissions since the new year": count admissions after 2024-01
define old_falls "Falls over a year ago": count falls before 12 months ago
define quarter_but_one "GP consultations in the quarter but one": count gp_consultations between 6 months ago and 3 months ago
define conditions_q "Most conditions begun in a quarter": highest count per 3 months of conditions in the last 12 months
define conditions_12m "Conditions begun in a year": count conditions in the last 12 months
'''


@pytest.mark.parametrize("as_of", ["2024-04-01", "2024-02-29", "2024-01-01"])
def test_counts_per_period_and_windows_as_numbers_agree(tmp_path, as_of):
    """The numbers themselves (a range when dates are imprecise), not only the criteria read
    from them: a count that may be higher must say so, exactly as the per-patient engine does."""
    from test_columnar import differences
    source = tmp_path / "edges.pw"
    source.write_text(EDGES_PROTOCOL, encoding="utf-8")
    records = _edge_dated(generate(150, seed=4, as_of="2024-04-01"))
    problems = differences(engine.load(source), records, as_of, tmp_path / "tables")
    assert not problems, "\n".join(problems[:20])


def test_code_lists_by_mask_give_what_in_lists_give(tmp_path, monkeypatch):
    """Codes tested through one join with the lists' codes (a bit per list) against the plain
    ``code IN (...)``, on every column of the pyramid, with rows whose code or system is empty
    (read here without the data check, which would refuse them). With the mask, the conditions
    pass also skips rows in none of its lists (plan_items._code_list_scope); with IN it reads all."""
    import pyarrow.parquet as pq
    from engine.columnar.plan import Compiler

    records = list(generate(300, seed=13, as_of="2024-04-01"))
    write_tables(records, tmp_path, "parquet")
    table = pq.read_table(tmp_path / "conditions.parquet").to_pylist()
    for i, row in enumerate(table[:40]):
        row["code"] = None if i % 2 else row["code"]
        row["system"] = None if i % 3 == 0 else row["system"]
    import pyarrow as pa
    pq.write_table(pa.Table.from_pylist(table), tmp_path / "conditions.parquet")
    program = engine.load("library/ltc_pyramid.pw")
    masked = compile_plan(program, "2024-04-01")
    assert "codes_mask" in masked.sql and "code IN (" not in masked.sql
    assert "WHERE (((codes_mask IS NULL OR (codes_mask & 1) <> 0) AND" in masked.sql  # the pass skips
    # rows in no list; a row with no code may be in one
    monkeypatch.setattr(Compiler, "code_list_bit", lambda self, table, system, codes: None)
    plain = compile_plan(program, "2024-04-01")
    assert "codes_mask" not in plain.sql and "code IN (" in plain.sql
    got = [duckdb_backend.run(p, tmp_path, check_data=False).to_pylist() for p in (masked, plain)]
    assert got[0] == got[1]


def test_a_table_with_more_code_lists_than_mask_bits_tests_the_rest_with_in():
    from engine.columnar.plan import Compiler
    compiler = Compiler(engine.load("library/castlefields.pw"), dt.date(2024, 4, 1))
    bits = [compiler.code_list_bit("conditions", "snomed", (str(i),)) for i in range(64)]
    assert bits[:62] == list(range(62)) and bits[62:] == [None, None]
    assert compiler.code_list_bit("conditions", "snomed", ("5",)) == 5  # the same list, the same bit


@pytest.mark.parametrize("protocol", ["library/ltc_pyramid.pw", "edges"])
def test_sums_over_their_own_kinds_give_what_sums_over_the_whole_pass_give(tmp_path, monkeypatch, protocol):
    """A table pass reads every kind some list reads; each sum is computed only on rows of its own
    kinds (``SUM(CASE WHEN kind = 'gp' THEN ...)``). Every column is the same as with each sum over
    every row of the pass, on edge-dated items (some known only to the month or the year)."""
    from engine.columnar.plan import Compiler

    if protocol == "edges":
        protocol = tmp_path / "edges.pw"
        protocol.write_text(EDGES_PROTOCOL, encoding="utf-8")
    write_tables(_edge_dated(generate(200, seed=17, as_of="2024-04-01")), tmp_path / "t", "parquet")
    program = engine.load(protocol)
    scoped = compile_plan(program, "2024-04-01")
    assert "SUM(CASE WHEN (kind = 'gp') THEN" in scoped.sql
    monkeypatch.setattr(Compiler, "_scoped", lambda self, sql, alias, table_scope: sql)
    whole = compile_plan(program, "2024-04-01")
    assert "SUM(CASE WHEN kind" not in whole.sql
    got = [duckdb_backend.run(p, tmp_path / "t").to_pylist() for p in (scoped, whole)]
    assert got[0] == got[1] and len(got[0]) == 200


SCOPES_PROTOCOL = '''protocol scopes:
  version "1.0.0"
  title "Filters that narrow a table pass"
  status active

outcomes a, b, c, d, f, g

define a "Active medicines": count medications where status is active
define b "Long active medicines": count medications where status is active and duration at least 6 months
define c "Medicines not stopped": count medications where not status is stopped
define d "Active or resolved conditions": count conditions where status is active or status is resolved
define f "Cost of stopped medicines": sum monthly_cost of medications where status is stopped
define g "Active conditions in a year": count conditions where status is active in the last 12 months
'''


@pytest.mark.parametrize("protocol", ["scopes", "library/ltc_pyramid.pw"])
def test_a_where_on_a_status_narrows_the_pass_and_changes_nothing(tmp_path, monkeypatch, protocol):
    """`where status is active` (a column never empty: a blank status is active) makes a row of
    another status out of the list, never maybe in it, so the pass may skip such rows or leave
    them out of that list's sum; `or` and `not` narrow nothing. Every column is the same as without
    the narrowing, with blank, active and other statuses and imprecise dates, and the same as the
    per-patient engine's."""
    from test_columnar import differences

    from engine.columnar import plan_items

    if protocol == "scopes":
        protocol = tmp_path / "scopes.pw"
        protocol.write_text(SCOPES_PROTOCOL, encoding="utf-8")
    records = _edge_dated(generate(200, seed=23, as_of="2024-04-01"))
    write_tables(records, tmp_path / "t", "csv")
    path = tmp_path / "t" / "medications.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    column = lines[0].split(",").index("status")
    for i in range(1, len(lines), 5):  # some statuses left blank: the default, active
        cells = lines[i].split(",")
        cells[column] = ""
        lines[i] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    program = engine.load(protocol)
    narrowed = compile_plan(program, "2024-04-01")

    def narrows(sql: str) -> bool:
        return "CASE WHEN (status = 'active') THEN" in sql or "WHERE ((status = 'active'))" in sql
    assert narrows(narrowed.sql)
    if "scopes" in str(protocol):
        assert "t_medications WHERE" not in narrowed.sql  # `not stopped` reads every status
    monkeypatch.setattr(plan_items, "_filter_scopes", lambda *args: [])
    whole = compile_plan(program, "2024-04-01")
    assert not narrows(whole.sql)
    got = [duckdb_backend.run(p, tmp_path / "t").to_pylist() for p in (narrowed, whole)]
    assert got[0] == got[1] and len(got[0]) == 200
    monkeypatch.undo()
    problems = differences(program, records, "2024-04-01", tmp_path / "again")
    assert not problems, "\n".join(problems[:20])
