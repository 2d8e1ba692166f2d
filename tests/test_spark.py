"""The columnar plan on Apache Spark (local[2]) gives DuckDB's results, column for column.

One Spark session for the module; small generated data. Skipped only when
Java (which Spark runs on) is missing.
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


def test_the_library_on_spark_matches_duckdb_on_every_column(spark, tables):
    """One Spark query (the whole pyramid, CSV cells read as text) against DuckDB."""
    from engine.columnar.spark_backend import run
    program = engine.load(ROOT / "library" / "ltc_pyramid.pw")
    plan = compile_plan(program, "2024-04-01", {"castlefields.lookback": "24 months"})
    ids_s, spark_values = columns_json(run(plan, tables / "csv", spark), plan.outputs)
    ids_d, duck_values = columns_json(duckdb_backend.run(plan, tables / "parquet"), plan.outputs)
    assert ids_s == ids_d and len(ids_s) == 200
    for out in plan.outputs:  # every outcome, and every criterion item, definition and level condition
        assert spark_values[out.name] == duck_values[out.name], out.name
    levels = set(spark_values["level"])
    assert len(levels) >= 3  # the data exercise more than one level


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
