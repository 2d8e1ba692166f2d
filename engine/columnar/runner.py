"""A whole population through the columnar backend, as results the command line can write.

:class:`ColumnarResult` has the parts of engine.program.Result that the
output writers of ``pathways run`` read (``patient_id``, ``as_of``,
``parameters``, ``values()``, ``explain()``), so JSONL, CSV and Parquet come
out in the same shapes as from the per-patient engine. ``explain()`` here is
the patient's audit columns (every criterion item, definition and level
condition by its id), not the full explanation: that one comes from the
per-patient engine (``pathways explain``), which also names the record items
behind each value.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .output import columns_json
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


def evaluate_tables(program, folder, as_of, parameters: dict[str, str] | None = None, backend: str = "duckdb",
                    audit: bool = True, max_items: int | None = None, report=None) -> list[ColumnarResult]:
    """Every patient of a folder of tables, in the patients table's order; raises Unsupported before
    reading anything it cannot compile, and duckdb_backend.DataProblems when rows would have been
    skipped by the per-patient reader (with DuckDB, also a patient with more than ``max_items`` items,
    which the reader's limit refuses). ``report``: see duckdb_backend.run."""
    plan = compile_plan(program, as_of, parameters)
    if backend == "spark":
        from . import spark_backend
        table = spark_backend.run(plan, folder)
    else:
        from . import duckdb_backend
        table = duckdb_backend.run(plan, folder, max_items=max_items, report=report)
    outcomes = [o for o in plan.outputs if o.outcome]
    extra = [o for o in plan.outputs if not o.outcome] if audit else []
    ids, values = columns_json(table, outcomes + extra)
    shown = {k: str(v) for k, v in (parameters or {}).items()}  # (shared by every result: read only)
    names, audit_names = [o.name for o in outcomes], [o.name for o in extra]
    rows = zip(*(values[n] for n in names)) if names else ((),) * len(ids)
    if not audit_names:
        none: dict = {}
        return [ColumnarResult(pid, plan.as_of, shown, dict(zip(names, row)), none) for pid, row in zip(ids, rows)]
    audits = zip(*(values[n] for n in audit_names))
    return [ColumnarResult(pid, plan.as_of, shown, dict(zip(names, row)), dict(zip(audit_names, more)))
            for pid, row, more in zip(ids, rows, audits)]
