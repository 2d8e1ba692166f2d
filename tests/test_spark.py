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
    yield s
    s.stop()


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spark") / "t"
    write_tables(generate(400, seed=21, as_of="2024-04-01"), folder, "parquet")
    return folder


def test_the_library_on_spark_matches_duckdb_on_every_column(spark, tables):
    from engine.columnar.spark_backend import run
    program = engine.load(ROOT / "library" / "ltc_pyramid.pw")
    plan = compile_plan(program, "2024-04-01", {"castlefields.lookback": "24 months"})
    ids_s, spark_values = columns_json(run(plan, tables, spark), plan.outputs)
    ids_d, duck_values = columns_json(duckdb_backend.run(plan, tables), plan.outputs)
    assert ids_s == ids_d and len(ids_s) == 400
    for out in plan.outputs:  # every outcome, and every criterion item, definition and level condition
        assert spark_values[out.name] == duck_values[out.name], out.name
    levels = set(spark_values["level"])
    assert len(levels) >= 3  # the data exercise more than one level


def test_csv_tables_on_spark(spark, tmp_path):
    from engine.columnar.spark_backend import run
    write_tables(generate(60, seed=4, as_of="2024-04-01"), tmp_path, "csv")
    program = engine.load(ROOT / "library" / "castlefields.pw")
    plan = compile_plan(program, "2024-03-31")
    _, spark_values = columns_json(run(plan, tmp_path, spark), plan.outputs)
    _, duck_values = columns_json(duckdb_backend.run(plan, tmp_path), plan.outputs)
    assert spark_values == duck_values
