"""Run a compiled plan on Apache Spark: the same SQL, transpiled by SQLGlot to Spark SQL.

A local session (``local[2]``) is made when none is given; to use a cluster,
pass a session built for it (``SparkSession.builder.master("spark://host:7077")``
or ``yarn``) and a folder every executor can read (HDFS, S3, a shared disk).
See docs/backend.md.
"""

from __future__ import annotations

from pathlib import Path

import sqlglot

from engine.tables import COLUMNS, TABLES, _find_format

from .sources import ROW_NUMBER, view_sql

SPARK_TYPES = {"boolean": "BOOLEAN", "double": "DOUBLE", "float": "FLOAT", "int": "INTEGER", "bigint": "BIGINT",
               "smallint": "SMALLINT", "tinyint": "TINYINT", "date": "DATE", "string": "VARCHAR"}


def to_spark(sql: str) -> str:
    """DuckDB SQL (as the plan writes it) in Spark SQL's dialect."""
    return sqlglot.transpile(sql, read="duckdb", write="spark")[0]


def session(master: str = "local[2]"):
    """A Spark session for this process (shuffles kept small: the data of one run)."""
    from pyspark.sql import SparkSession
    return (SparkSession.builder.master(master).appName("ltc-pathways")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .getOrCreate())


def register_tables(spark, folder: str | Path) -> None:
    root = Path(folder)
    fmt = _find_format(root)
    for table in TABLES:
        path = root / f"{table}.{fmt}"
        if path.is_file():
            if fmt == "parquet":
                frame = spark.read.parquet(str(path))
            else:  # every cell as text: a date known to the year must stay text
                frame = spark.read.option("header", True).option("inferSchema", False).csv(str(path))
            if table == "patients":  # file order (one increasing id per row; gaps between partitions)
                from pyspark.sql.functions import monotonically_increasing_id
                frame = frame.withColumn(ROW_NUMBER, monotonically_increasing_id())
            frame.createOrReplaceTempView(f"raw_{table}")
            # name -> type, as DuckDB names them (sources.typed): typed columns are read as stored
            present = {name: SPARK_TYPES.get(kind, kind.upper()) for name, kind in frame.dtypes}
        else:
            cols = ", ".join(f"CAST(NULL AS STRING) AS `{c.name}`" for c in COLUMNS[table])
            spark.sql(f"SELECT {cols} WHERE FALSE").createOrReplaceTempView(f"raw_{table}")
            present = {c.name for c in COLUMNS[table]}
        spark.sql(to_spark(view_sql(table, f"raw_{table}", present))).createOrReplaceTempView(f"t_{table}")


def run(plan, folder: str | Path, spark=None):
    """Execute the plan on Spark; returns a pyarrow Table in the patients table's order."""
    import pyarrow as pa
    spark = spark or session()
    register_tables(spark, folder)
    frame = spark.sql(to_spark(plan.sql))
    try:
        return frame.toArrow()
    except AttributeError:  # pyspark before 4.0
        return pa.Table.from_pandas(frame.toPandas(), preserve_index=False)
