"""`pathways run` with the columnar backend writes its files from the columns (tui.run_columnar.write_columnar,
engine.columnar.output): the bytes must be those of the per-patient writers (tui.run.rows,
tui.run.write_parquet over a ColumnarResult per patient), and the summary the same, for every
format the backend serves, with and without --explain, parameters, odd patient ids, numbers that
are ranges, fractions, durations and lists.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import engine
from engine.columnar.output import coded_column, columns_json, csv_strings, json_strings, write_rows
from engine.columnar.runner import evaluate_columns, results_of
from engine.generate import generate
from engine.tables import TablesReport, write_tables
from test_columnar_rewrites import EDGES_PROTOCOL
from tui.run import Loaded, _summary, _summary_text, rows, write_parquet
from tui.run_columnar import _counted, write_columnar

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2024-04-01"
PROTOCOLS = ["castlefields", "evercare", "ltc_pyramid", "case_management", "edges"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Generated tables, some patient ids holding characters JSON or CSV must quote."""
    out = tmp_path_factory.mktemp("pop") / "t"
    write_tables(generate(400, seed=11, as_of=AS_OF), out, "parquet")
    odd = ['odd "quoted"', "comma, id", "back\\slash", "é-ünïcode"]
    chosen = pq.read_table(out / "patients.parquet").column("patient_id").to_pylist()[:len(odd)]
    new_id = {old: prefix + old for old, prefix in zip(chosen, odd)}
    for path in out.glob("*.parquet"):  # the same patients renamed in every table
        table = pq.read_table(path)
        renamed = [new_id.get(i, i) for i in table.column("patient_id").to_pylist()]
        table = table.set_column(table.column_names.index("patient_id"), "patient_id", pa.array(renamed, pa.string()))
        pq.write_table(table, path)
    return out


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    edges = tmp_path_factory.mktemp("edges") / "edges.pw"
    edges.write_text(EDGES_PROTOCOL, encoding="utf-8")
    return {name: engine.load(edges if name == "edges" else ROOT / "library" / f"{name}.pw") for name in PROTOCOLS}


def _both(program, folder, tmp_path, fmt, explain=False, parameters=None):
    """(bytes written from the columns, bytes written per patient), and both summaries."""
    report = TablesReport(source=str(folder))
    columns = evaluate_columns(program, str(folder), AS_OF, parameters, report=report)
    fast_path = tmp_path / f"fast.{fmt}"
    coded = write_columnar(program, columns, fmt, explain, str(fast_path))
    results = results_of(columns, audit=explain)
    if fmt == "parquet":
        write_parquet(program, results, str(tmp_path / "slow.parquet"))
        slow = (tmp_path / "slow.parquet").read_bytes()
    else:
        slow = b"".join(rows(program, results, fmt, explain))
    loaded = Loaded(records=results, read=len(results), report=report)
    summaries = (_summary_text(program, len(columns), _counted(program, coded), loaded),
                 _summary(program, results, loaded))
    return fast_path.read_bytes(), slow, summaries


@pytest.mark.parametrize("name", PROTOCOLS)
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_the_columns_are_written_byte_for_byte_as_per_patient(programs, folder, tmp_path, name, fmt):
    fast, slow, (fast_summary, slow_summary) = _both(programs[name], folder, tmp_path, fmt)
    assert fast == slow
    assert fast_summary == slow_summary and "400 patients evaluated" in fast_summary
    if fmt != "parquet":
        assert len(fast.splitlines()) == 400 + (fmt == "csv")


@pytest.mark.parametrize("name", ["castlefields", "ltc_pyramid", "edges"])
def test_explanations_and_parameters_are_written_byte_for_byte(programs, folder, tmp_path, name):
    parameters = {"castlefields": {"minimum_criteria": "2"},
                  "ltc_pyramid": {"castlefields.lookback": "6 months"}}.get(name)
    fast, slow, _ = _both(programs[name], folder, tmp_path, "jsonl", explain=True, parameters=parameters)
    assert fast == slow and b'"explanation":{"engine":"columnar","values":{' in fast
    if parameters:
        assert b'"parameters":' in fast
        fast, slow, _ = _both(programs[name], folder, tmp_path, "csv", parameters=parameters)
        assert fast == slow


def test_the_population_holds_what_the_writers_must_word(programs, folder, tmp_path):
    """Guards the tests above: the data hold ids to quote, ranges, fractions and lists."""
    fast, _, _ = _both(programs["edges"], folder, tmp_path, "jsonl")
    assert b'"between":' in fast and b'"days":' in fast and b'.5' in fast
    assert b'"odd \\"quoted\\"' in fast and b'"back\\\\slash' in fast
    csv_bytes, _, _ = _both(programs["castlefields"], folder, tmp_path, "csv")
    assert b'"comma, id' in csv_bytes and b'"{""between"":[' in csv_bytes
    table = pq.read_table(io.BytesIO(_both(programs["ltc_pyramid"], folder, tmp_path, "parquet")[0]))
    assert table.schema.field("might_reach").type == pa.list_(pa.int64())


def test_coded_columns_give_columns_json_values_over_chunks():
    """Numbers as (lo, hi) pairs, unknowns, and a table in several chunks."""
    from engine.columnar.plan import Output
    lo = pa.chunked_array([[1, 2, None, 3], [3, 1, 2]], pa.int64())
    hi = pa.chunked_array([[1, 4, None, 3], [5, 1, 4]], pa.int64())
    table = pa.table({"patient_id": pa.chunked_array([["a", "b", "c", "d"], ["e", "f", "g"]]), "n": lo, "n__hi": hi})
    out = Output("n", "num", "n")
    coded = coded_column(table, out)
    assert [coded.values[c] for c in coded.codes.to_pylist()] == columns_json(table, [out])[1]["n"]
    assert sorted(coded.counts()) == [1, 1, 1, 2, 2]


def test_rows_are_the_same_whatever_the_batch():
    texts = pa.array([f"row {i}" for i in range(50)])
    spread = (pa.array(["x", "yy", "zzz"]), pa.array([i % 3 for i in range(50)], pa.int32()))
    parts = ["<", json_strings(texts), ",", csv_strings(pa.array(['a"b'] * 50)), ",", spread, ">\n"]
    whole, batched = io.BytesIO(), io.BytesIO()
    write_rows(whole, parts, 50)
    write_rows(batched, parts, 50, batch=7)
    assert whole.getvalue() == batched.getvalue()
    lines = whole.getvalue().splitlines()
    assert len(lines) == 50 and lines[3] == b'<"row 3","a""b",x>' and lines[49] == b'<"row 49","a""b",yy>'


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], capture_output=True, cwd=ROOT)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_run_engine_duckdb_and_python_write_the_same_bytes(folder, tmp_path, fmt):
    """End to end: the command's files and summaries, DuckDB against the per-patient engine."""
    out = {}
    for name in ("python", "duckdb"):
        target = tmp_path / f"{name}.{fmt}"
        done = _cli("run", "library/castlefields.pw", "--data", str(folder), "--as-of", AS_OF, "--format", fmt,
                    "--engine", name, "--output", str(target), "--param", "minimum_criteria=2")
        assert done.returncode == 0, done.stderr
        out[name] = (target.read_bytes(), done.stderr)
    assert out["python"] == out["duckdb"]
    assert b"400 patients evaluated" in out["duckdb"][1]


def test_texts_are_quoted_as_orjson_and_csv_quote_them():
    import orjson

    from engine.columnar.output import csv_field
    plain = ["p1", "é-ü", "", None, "x y/z"]
    awkward = plain + ['a"b', "c,d", "e\\f", "g\nh", "i\x01j"]
    for texts in (plain, awkward):
        array = pa.chunked_array([texts[:2], texts[2:]]).combine_chunks()
        assert json_strings(array).to_pylist() == [orjson.dumps(t).decode() for t in texts]
        assert csv_strings(array).to_pylist() == [csv_field(t) for t in texts]
    assert csv_field('c,d') == '"c,d"' and csv_field("") == "" and csv_field(None) == ""


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("name", ["python", "duckdb"])
def test_an_output_that_cannot_be_written_is_named_not_a_traceback(folder, tmp_path, fmt, name):
    target = tmp_path / "absent" / f"out.{fmt}"
    done = _cli("run", "library/evercare.pw", "--data", str(folder), "--as-of", AS_OF, "--format", fmt,
                "--engine", name, "--output", str(target))
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    assert f"cannot write {target}".encode() in done.stderr
