"""Small SQL helpers: literals are always written by SQLGlot, never pasted."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from sqlglot import exp


def lit(value) -> str:
    """A SQL literal for a Python value (text quoted and escaped by SQLGlot)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.date):
        return f"DATE {exp.Literal.string(value.isoformat()).sql()}"
    if isinstance(value, (int, float)):
        # doubles, not decimals: the per-patient engine computes in Python floats
        if isinstance(value, int) or float(value).is_integer():
            return str(int(value))
        return f"CAST({float(value)!r} AS DOUBLE)"
    return _text(str(value))


@lru_cache(maxsize=65536)
def _text(value: str) -> str:
    # a protocol's code lists repeat in every test that reads them: quote each code once
    return exp.Literal.string(value).sql()


def dbl(value: float) -> str:
    """A double literal (``0.03 * n`` must round as Python does, not as a DECIMAL)."""
    return f"CAST({float(value)!r} AS DOUBLE)"
