"""The engine: evaluate compiled protocols against patient records.

>>> import engine
>>> program = engine.load("library/castlefields.pw")            # doctest: +SKIP
>>> result = program.evaluate(record, as_of="2021-04-01")        # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from pathways import model as m

from ._compiled import choose as _choose

#: how the evaluator runs: "compiled", or "pure Python (why)" (see engine/_compiled.py)
EVALUATOR = _choose()

from .evaluate import EngineError, PopulationRequired  # noqa: E402 - after the choice above
from .program import Program, Result  # noqa: E402
from .record_index import RecordIndex, prepare  # noqa: E402


class ProtocolError(EngineError):
    """A protocol that does not compile; the message holds every diagnostic, rendered."""

    def __init__(self, message: str, diagnostics: list):
        super().__init__(message)
        self.diagnostics = diagnostics


def load(path: str | Path) -> Program:
    """Compile a protocol file (and its imports) through the language and make it runnable."""
    from dsl.compiler import compile_file
    from dsl.diagnostics import render

    result = compile_file(path)
    if result.protocol is None:
        errors = [d for d in result.diagnostics if d.severity == "error"]
        text = "\n\n".join(render(d, result.sources.get(d.file)) for d in errors)
        raise ProtocolError(f"{path}: {len(errors)} error(s)\n\n{text}", result.diagnostics)
    return Program(result.protocol)


def compile(protocol: m.Protocol) -> Program:  # noqa: A001 - the API's name for it
    """Make a compiled model (e.g. loaded from `pathways export` JSON) runnable."""
    return Program(protocol)


__all__ = ["EVALUATOR", "EngineError", "PopulationRequired", "Program", "ProtocolError", "RecordIndex", "Result", "compile", "load",
           "prepare"]
