"""Statements already parsed, kept by their text, so a re-check parses only what changed.

The workbench checks the whole file after each pause in typing, and the
fuzzer checks a million texts that are mostly the library's own statements:
in both, almost every statement has been parsed before, often at another
place in the file (a line typed above it moves it down). The parser builds
each statement's nodes with spans in the whole file, so a statement found
here is moved to its new place by shifting its spans, which costs a small
part of parsing it again. The cache belongs to one :class:`dsl.compiler.Session`.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

from pydantic import BaseModel

from pathways import model as m

from .diagnostics import Diagnostic, Sink

#: Statements kept; the least recently used are dropped past this (a fuzzing run
#: sees millions of different statements, an editing session a few hundred).
LIMIT = 4096


@dataclasses.dataclass(frozen=True)
class _Entry:
    node: object
    line: int  # 0-based first line and offset the node's spans were built at
    offset: int
    diagnostics: tuple[Diagnostic, ...]  # what building the node reported


class StatementCache:
    """Parsed statements by their exact text (a statement's text includes its indentation and
    line ends, so two texts that parse differently are never confused)."""

    def __init__(self, limit: int = LIMIT):
        self.limit = limit
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, text: str, line: int, offset: int, sink: Sink):
        """The node of a statement parsed before, placed at 0-based ``line`` and character ``offset``,
        with what building it reported added to ``sink``; None when it has not been parsed."""
        entry = self._entries.get(text)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(text)
        lines, chars = line - entry.line, offset - entry.offset
        for d in entry.diagnostics:
            sink.add(d.code, d.severity, d.message, shift(d.span, lines, chars), d.help,
                     [shift(label, lines, chars) for label in d.labels])
        return shift(entry.node, lines, chars)

    def put(self, text: str, line: int, offset: int, node: object, diagnostics: list[Diagnostic]) -> None:
        """Keep a statement that parsed and built without being refused (statements that failed are
        parsed again each time: their errors depend on the statements around them)."""
        self._entries[text] = _Entry(node, line, offset, tuple(diagnostics))
        self._entries.move_to_end(text)
        if len(self._entries) > self.limit:
            self._entries.popitem(last=False)


def shift(value, lines: int, chars: int):
    """``value`` with every span in it moved down ``lines`` lines and on ``chars`` characters.

    ``NOWHERE`` (a node with no place in the text) stays where it is. Parts
    without a span are shared, not copied: the nodes are frozen."""
    if not lines and not chars:
        return value
    return _shift(value, lines, chars)


_LEAVES = (str, int, float, bool, type(None))


def _shift(value, lines: int, chars: int):
    if isinstance(value, _LEAVES):
        return value
    if isinstance(value, m.Span):
        return value if value is m.NOWHERE else value.shifted(lines, chars)
    if isinstance(value, BaseModel):
        updates = {}
        for name, old in value.__dict__.items():  # a pydantic model's fields, in order
            if not isinstance(old, _LEAVES):
                new = _shift(old, lines, chars)
                if new is not old:
                    updates[name] = new
        return value.model_copy(update=updates) if updates else value
    if isinstance(value, tuple):
        moved = tuple([_shift(v, lines, chars) for v in value])
        return value if all(a is b for a, b in zip(moved, value)) else moved
    if isinstance(value, list):
        return [_shift(v, lines, chars) for v in value]
    if isinstance(value, dict):
        return {k: _shift(v, lines, chars) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        updates = {}
        for f in dataclasses.fields(value):
            old = getattr(value, f.name)
            new = _shift(old, lines, chars)
            if new is not old:
                updates[f.name] = new
        return dataclasses.replace(value, **updates) if updates else value
    return value  # dates, enumerations: nothing to move
