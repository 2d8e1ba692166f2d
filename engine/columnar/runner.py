"""A whole population through the columnar backend, as results the command line can write.

:func:`evaluate_columns` gives the query's Arrow table with its plan
(:class:`ColumnarTable`): ``pathways run`` writes JSONL, CSV and Parquet
straight from its columns (engine.columnar.output.coded_columns), never
making an object per patient. :func:`evaluate_tables` gives a
:class:`ColumnarResult` per patient instead, with the parts of
engine.program.Result that the per-patient writers read (``patient_id``,
``as_of``, ``parameters``, ``values()``, ``explain()``). ``explain()`` here is
the patient's audit columns (every criterion item, definition and level
condition by its id), not the full explanation: that one comes from the
per-patient engine (``pathways explain``), which also names the record items
behind each value.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .output import columns_json, plain_types
from .plan import compile_plan


@dataclass(slots=True)
class ColumnarResult:
    patient_id: str
    as_of: dt.date
    parameters: dict
    outcomes_json: dict
    audit: dict

    def values(self) -> dict:
        return self.outcomes_json

    def explain(self) -> dict:
        return {"engine": "columnar", "values": self.audit}


@dataclass
class ColumnarTable:
    """The query's result: one row per patient in the patients table's order (``table``, its
    decimals made int64 or float64), the compiled ``plan`` that names its columns, and the
    parameters as every result shows them (``shown``: name -> text)."""

    table: object  # pyarrow.Table
    plan: object   # engine.columnar.plan.Plan
    shown: dict

    @property
    def outcomes(self) -> list:
        return [o for o in self.plan.outputs if o.outcome]

    @property
    def audits(self) -> list:
        return [o for o in self.plan.outputs if not o.outcome]

    def __len__(self) -> int:
        return self.table.num_rows


def evaluate_columns(program, folder, as_of, parameters: dict[str, str] | None = None, backend: str = "duckdb",
                     max_items: int | None = None, report=None, audit_columns: bool = True) -> ColumnarTable:
    """Every patient of a folder of tables as one Arrow table; raises Unsupported before reading
    anything it cannot compile, and duckdb_backend.DataProblems when rows would have been skipped
    by the per-patient reader (with DuckDB, also a patient with more than ``max_items`` items,
    which the reader's limit refuses). ``report``: see duckdb_backend.run. ``audit_columns=False``:
    the outcomes only (the table then has no audit columns: see plan.compile_plan)."""
    plan = compile_plan(program, as_of, parameters, audit_columns)
    if backend == "spark":
        from . import spark_backend
        table = spark_backend.run(plan, folder)
    else:
        from . import duckdb_backend
        table = duckdb_backend.run(plan, folder, max_items=max_items, report=report)
    shown = {k: str(v) for k, v in (parameters or {}).items()}
    return ColumnarTable(plain_types(table), plan, shown)


def results_of(columns: ColumnarTable, audit: bool = True) -> list[ColumnarResult]:
    """A ColumnarResult per patient (with ``audit``, each holds its audit columns too)."""
    outcomes = columns.outcomes
    extra = columns.audits if audit else []
    ids, values = columns_json(columns.table, outcomes + extra)
    shown = columns.shown  # (shared by every result: read only)
    as_of = columns.plan.as_of
    names, audit_names = [o.name for o in outcomes], [o.name for o in extra]
    rows = zip(*(values[n] for n in names)) if names else ((),) * len(ids)
    if not audit_names:
        none: dict = {}
        return [ColumnarResult(pid, as_of, shown, dict(zip(names, row)), none) for pid, row in zip(ids, rows)]
    audits = zip(*(values[n] for n in audit_names))
    return [ColumnarResult(pid, as_of, shown, dict(zip(names, row)), dict(zip(audit_names, more)))
            for pid, row, more in zip(ids, rows, audits)]


def evaluate_tables(program, folder, as_of, parameters: dict[str, str] | None = None, backend: str = "duckdb",
                    audit: bool = True, max_items: int | None = None, report=None) -> list[ColumnarResult]:
    """:func:`evaluate_columns`, as a ColumnarResult per patient (see :func:`results_of`)."""
    return results_of(evaluate_columns(program, folder, as_of, parameters, backend, max_items, report), audit)
