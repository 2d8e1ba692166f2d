"""Audit columns back to the per-patient engine's JSON forms (engine.values.to_json).

A number column ``x`` holds the lowest value it can be and ``x__hi`` the
highest: equal when settled, NULL when unknown; a range is written
``{"between": [lo, hi]}`` as the per-patient engine writes it.
"""

from __future__ import annotations

import datetime as dt

from engine.values import to_json


def _num(lo, hi):
    if lo is None or hi is None:
        return None
    if lo == hi:
        return to_json(float(lo)) if isinstance(lo, float) else lo
    return {"between": [to_json(float(lo)), to_json(float(hi))]}


def _days(lo, hi):
    if lo is None or hi is None:
        return None
    if lo == hi:
        return {"days": to_json(float(lo))}
    return {"days": [to_json(float(lo)), to_json(float(hi))]}


def _date(lo, hi):
    if lo is None or hi is None:
        return None
    if lo == hi:
        return lo.isoformat()
    return {"between": [lo.isoformat(), hi.isoformat()]}


def converter(kind: str):
    """A function (lo, hi) -> JSON value for a column kind."""
    if kind in ("num", "level"):
        return _num
    if kind == "days":
        return _days
    if kind == "date":
        return _date
    if kind == "list":
        import orjson
        return lambda lo, hi: None if lo is None else orjson.loads(lo)
    return lambda lo, hi: lo


def plain_types(table):
    """Whole-number decimals (DuckDB's sums of integers are 128-bit) as int64, others as float64."""
    import pyarrow as pa
    for i, f in enumerate(table.schema):
        if pa.types.is_decimal(f.type):
            target = pa.int64() if f.type.scale == 0 else pa.float64()
            table = table.set_column(i, f.name, table.column(i).cast(target))
    return table


def columns_json(table, outputs) -> tuple[list, dict[str, list]]:
    """(patient ids, output name -> list of JSON values), column at a time."""
    table = plain_types(table)
    ids = table.column("patient_id").to_pylist()
    values: dict[str, list] = {}
    for out in outputs:
        lo = table.column(out.name).to_pylist()
        if out.kind in ("num", "days", "date") or (out.kind == "level" and out.name + "__hi" in table.column_names):
            hi = table.column(out.name + "__hi").to_pylist() if out.name + "__hi" in table.column_names else lo
            conv = converter(out.kind)
            if out.kind in ("num", "level"):
                values[out.name] = [v if v is None or (v == h and type(v) is int) else conv(v, h)
                                    for v, h in zip(lo, hi)]
            else:
                values[out.name] = [conv(v, h) for v, h in zip(lo, hi)]
        elif out.kind == "list":
            conv = converter("list")
            values[out.name] = [conv(v, v) for v in lo]
        else:
            values[out.name] = lo
    return ids, values


def outcome_rows(table, plan) -> dict[str, dict]:
    """patient id -> {outcome: JSON value}, as Result.values() gives them."""
    outcomes = [o for o in plan.outputs if o.outcome]
    ids, values = columns_json(table, outcomes)
    return {pid: {o.name: values[o.name][i] for o in outcomes} for i, pid in enumerate(ids)}


__all__ = ["columns_json", "converter", "outcome_rows", "dt"]
