"""The columnar backend: a protocol compiled to columnar queries over the tabular layout.

>>> import engine                                                   # doctest: +SKIP
>>> from engine.columnar import compile_plan, duckdb_backend         # doctest: +SKIP
>>> plan = compile_plan(engine.load("library/ltc_pyramid.pw"), "2024-04-01")   # doctest: +SKIP
>>> table = duckdb_backend.run(plan, "data/tables/")                 # doctest: +SKIP

See docs/backend.md.
"""

from .plan import Plan, compile_plan
from .unsupported import Unsupported

__all__ = ["Plan", "Unsupported", "compile_plan"]
