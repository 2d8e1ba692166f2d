"""Audit columns back to the per-patient engine's JSON forms (engine.values.to_json).

A number column ``x`` holds the lowest value it can be and ``x__hi`` the
highest: equal when settled, NULL when unknown; a range is written
``{"between": [lo, hi]}`` as the per-patient engine writes it.

:func:`columns_json` gives every row's value as a Python object.
:func:`coded_column` gives a column as codes into its distinct values instead
(a population of millions holds a handful): each distinct value is worded
once, by the same functions, and spread over the rows by Arrow (``take``), so
whole files are written without an object per patient (:func:`write_rows`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

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


def _json_of(out, table):
    """(the JSON value of a (lo, hi) pair for this output, the name of its ``__hi`` column or None)."""
    hi_name = out.name + "__hi" if out.name + "__hi" in table.column_names else None
    if out.kind in ("num", "days", "date") or (out.kind == "level" and hi_name):
        conv = converter(out.kind)
        if out.kind in ("num", "level"):
            return (lambda v, h: v if v is None or (v == h and type(v) is int) else conv(v, h)), hi_name
        return conv, hi_name
    if out.kind == "list":
        conv = converter("list")
        return (lambda v, h: conv(v, v)), None
    return (lambda v, h: v), None


def columns_json(table, outputs) -> tuple[list, dict[str, list]]:
    """(patient ids, output name -> list of JSON values), column at a time."""
    table = plain_types(table)
    ids = table.column("patient_id").to_pylist()
    values: dict[str, list] = {}
    for out in outputs:
        conv, hi_name = _json_of(out, table)
        lo = table.column(out.name).to_pylist()
        if hi_name is None and out.kind not in ("num", "days", "date", "list"):
            values[out.name] = lo  # the column's values are their JSON forms
            continue
        hi = table.column(hi_name).to_pylist() if hi_name else lo
        values[out.name] = [conv(v, h) for v, h in zip(lo, hi)]
    return ids, values


@dataclass
class Coded:
    """One output column as ``codes`` (an int Array, one per row, never null) into ``values``
    (the distinct JSON values, as columns_json words them)."""

    name: str
    codes: object
    values: list

    def counts(self) -> list[int]:
        """How many rows hold each value, by code."""
        import pyarrow.compute as pc
        held = [0] * len(self.values)
        counted = pc.value_counts(self.codes)
        for code, n in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()):
            held[code] = n
        return held

    def texts(self, word) -> object:
        """A string Array of ``word(value)`` for each distinct value (index it by the codes)."""
        import pyarrow as pa
        return pa.array([word(v) for v in self.values], pa.string())


def _encoded(array):
    import pyarrow.compute as pc
    d = pc.dictionary_encode(array, null_encoding="encode")
    return d.indices, d.dictionary.to_pylist()


def coded_column(table, out) -> Coded:
    """An output column of a (plain_types) table as codes into its distinct JSON values; a number
    column's (lo, hi) pairs are coded together."""
    import pyarrow as pa
    import pyarrow.compute as pc

    conv, hi_name = _json_of(out, table)
    lo_codes, lo_values = _encoded(table.column(out.name).combine_chunks())
    if hi_name is None:
        return Coded(out.name, lo_codes, [conv(v, v) for v in lo_values])
    hi_codes, hi_values = _encoded(table.column(hi_name).combine_chunks())
    width = len(hi_values)
    pairs = pc.add(pc.multiply(lo_codes.cast(pa.int64()), width), hi_codes.cast(pa.int64()))
    codes, keys = _encoded(pairs)
    return Coded(out.name, codes, [conv(lo_values[k // width], hi_values[k % width]) for k in keys])


def json_strings(array):
    """A text column as orjson writes each value (a JSON string, or ``null``); Arrow quotes the
    texts, unless one holds a character JSON escapes (rare in an id: orjson words those)."""
    import orjson
    import pyarrow as pa
    import pyarrow.compute as pc

    array = array.cast(pa.string())
    if pc.any(pc.match_substring_regex(array, r'[\x00-\x1f"\\]')).as_py():
        return pa.array([orjson.dumps(v).decode() for v in array.to_pylist()], pa.string())
    return pc.fill_null(pc.binary_join_element_wise('"', array, '"', ""), "null")


def csv_field(value) -> str:
    """One field as csv.writer (lineterminator newline) writes it within a row of several."""
    import csv
    import io
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([value, ""])
    return buffer.getvalue()[:-2]


def csv_strings(array):
    """A text column as csv.writer writes each value; Arrow copies the texts that need no quotes,
    csv_field words the column if any does (or holds a character csv might treat specially)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = array.cast(pa.string())
    if pc.any(pc.match_substring_regex(array, r'[\x00\r\n",]')).as_py():
        return pa.array([csv_field(v) for v in array.to_pylist()], pa.string())
    return pc.fill_null(array, "")


def write_rows(sink, parts: list, rows: int, batch: int = 16_384) -> None:
    """Write ``rows`` lines to a binary ``sink``, each the concatenation of ``parts``: a str (the
    same in every row), a string Array with a text per row, or (texts, codes): row i's text is
    ``texts[codes[i]]`` (Coded.texts, Coded.codes); a batch of rows at a time, copied from the
    joined Arrow buffer, so no row becomes a Python object and only a batch's texts are held."""
    import pyarrow as pa
    import pyarrow.compute as pc

    merged: list = []
    for part in parts:  # neighbouring constants as one (fewer arguments to join)
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    for start in range(0, rows, batch):
        length = min(batch, rows - start)
        pieces = [p if isinstance(p, str) else p[0].take(p[1].slice(start, length)) if isinstance(p, tuple)
                  else p.slice(start, length) for p in merged]
        if all(isinstance(p, str) for p in pieces):  # no column at all: one text per row
            sink.write("".join(pieces).encode() * length)
            continue
        joined = pc.binary_join_element_wise(*pieces, "")
        width = pa.int64() if pa.types.is_large_string(joined.type) else pa.int32()
        _, offsets_buffer, data = joined.buffers()
        offsets = pa.Array.from_buffers(width, len(joined) + 1, [None, offsets_buffer], offset=joined.offset)
        first, last = offsets[0].as_py(), offsets[len(joined)].as_py()
        if last > first:
            sink.write(data.slice(first, last - first))


def outcome_rows(table, plan) -> dict[str, dict]:
    """patient id -> {outcome: JSON value}, as Result.values() gives them."""
    outcomes = [o for o in plan.outputs if o.outcome]
    ids, values = columns_json(table, outcomes)
    return {pid: {o.name: values[o.name][i] for o in outcomes} for i, pid in enumerate(ids)}


__all__ = ["Coded", "coded_column", "columns_json", "converter", "csv_field", "csv_strings",
           "json_strings", "outcome_rows", "write_rows", "dt"]
