"""The columnar plan on Apache Spark (local[2]) gives DuckDB's results, column for column.

One Spark session for the module; small generated data. Skipped only when
Java (which Spark runs on) is missing.

Spark runs the library's case-finding protocols, Castlefields and Evercare,
and every outcome and audit column is compared with DuckDB. The pyramid
(ltc_pyramid.pw: both protocols plus the levels) is checked on DuckDB only
(tests/test_columnar.py, against the per-patient engine): its one query took
Spark about 86 s on 200 patients on a 2-core machine, mostly planning the wide
expressions, and its parts are the two protocols run here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import engine
from engine.columnar import compile_plan, duckdb_backend
from engine.columnar.output import columns_json
from engine.generate import generate
from engine.tables import write_tables

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("java") is None,
                                reason="Java is not installed: Spark needs a Java runtime (apt-get install "
                                       "openjdk-17-jre-headless)")


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install -e '.[spark]')")
    from engine.columnar.spark_backend import session
    s = session("local[2]")
    s.sparkContext.setLogLevel("ERROR")
    # small data: compiling the plan's wide expressions to Java costs more than it saves
    s.conf.set("spark.sql.codegen.wholeStage", "false")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """The same generated population as CSV and as Parquet tables."""
    root = tmp_path_factory.mktemp("spark")
    records = list(generate(200, seed=21, as_of="2024-04-01"))
    write_tables(records, root / "csv", "csv")
    write_tables(records, root / "parquet", "parquet")
    return root


@pytest.mark.parametrize("name, parameters", [("castlefields", {"lookback": "24 months"}), ("evercare", {})])
def test_the_library_on_spark_matches_duckdb_on_every_column(spark, tables, name, parameters):
    """One Spark query per protocol (CSV cells read as text) against DuckDB (Parquet)."""
    from engine.columnar.spark_backend import run
    program = engine.load(ROOT / "library" / f"{name}.pw")
    plan = compile_plan(program, "2024-04-01", parameters)
    ids_s, spark_values = columns_json(run(plan, tables / "csv", spark), plan.outputs)
    ids_d, duck_values = columns_json(duckdb_backend.run(plan, tables / "parquet"), plan.outputs)
    assert ids_s == ids_d and len(ids_s) == 200  # the same patients in the same (file) order
    for out in plan.outputs:  # every outcome, and every criterion item and definition
        assert spark_values[out.name] == duck_values[out.name], out.name
    outcome = plan.outputs[0].name
    assert len(set(map(repr, spark_values[outcome]))) >= 2  # the data give more than one answer


def test_parquet_and_csv_tables_give_spark_the_same_rows(spark, tables):
    """The normalised views (dates as earliest/latest day, defaults, code systems) are the
    same whichever file format the tables come in."""
    from engine.columnar.spark_backend import register_tables
    seen = {}
    for fmt in ("csv", "parquet"):
        register_tables(spark, tables / fmt)
        seen[fmt] = {t: sorted(map(tuple, spark.table(f"t_{t}").collect()), key=repr)
                     for t in ("patients", "encounters", "observations")}
    assert seen["csv"] == seen["parquet"]
    assert len(seen["csv"]["patients"]) == 200 and seen["csv"]["encounters"]
