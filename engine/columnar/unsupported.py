"""What the columnar backend cannot compile, reported before anything runs.

The per-patient engine (engine/evaluate.py) is the reference: every
construct either compiles to columnar SQL with exactly its meaning, or is
refused here, naming the construct and where it is written, so that
``pathways run --engine auto`` can fall back to the per-patient engine with
a warning instead of giving a different answer.
"""

from __future__ import annotations


class Unsupported(Exception):
    """A construct of the protocol that the columnar backend does not compile."""

    def __init__(self, construct: str, node=None, file: str = "", why: str = ""):
        self.construct = construct
        self.file = file
        self.line = getattr(getattr(node, "span", None), "line", None)
        self.column = getattr(getattr(node, "span", None), "column", None)
        self.why = why
        where = f"{file}:{self.line}:{self.column}" if file and self.line else (file or "the protocol")
        text = f"{where}: the columnar engine cannot compile {construct}"
        super().__init__(text + (f" ({why})" if why else "") + "; use --engine python for this protocol")
