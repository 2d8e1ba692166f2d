"""The compilation unit: one file's state as it flows through the passes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pathways import model as m
from pathways.schema import Type

from .diagnostics import Sink
from .build import Outcomes
from .parser import Syntax


@dataclass
class Unit:
    """Everything known about one protocol file during compilation.

    Passes read and add to it; none stops the others. ``targets`` maps the
    Python identity of a ``Ref`` node to what it names, so the frozen nodes
    need not be rebuilt until lowering.
    """

    file: str
    source: str
    sink: Sink
    path: Path | None = None
    syntax: Syntax | None = None
    header: m.Header | None = None
    uses: list[m.Use] = field(default_factory=list)
    imports: dict[str, "Unit | None"] = field(default_factory=dict)  # alias -> unit (None: broken)
    decls: dict[str, m.Decl] = field(default_factory=dict)
    order: list[m.Decl] = field(default_factory=list)
    outcomes: list[tuple[str, m.Span]] = field(default_factory=list)
    codes: dict[str, tuple[m.Code, ...]] = field(default_factory=dict)
    types: dict[str, Type] = field(default_factory=dict)
    targets: dict[int, str] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)  # local names something refers to
    unknown: set[tuple[str | None, str]] = field(default_factory=set)  # names already reported
    # Labels as dsl.checktests reads them, worked out once per unit ("own": its declarations',
    # "all": with its imports'): a file with fifty tests would otherwise walk them fifty times.
    label_cache: dict[str, list] = field(default_factory=dict, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.header.name if self.header else Path(self.file).stem

    def collect(self, syntax: Syntax) -> None:
        """Sort the parsed statements into header, imports, declarations."""
        self.syntax = syntax
        for st in syntax.statements:
            node = st.node
            if isinstance(node, m.Header):
                if self.header is None:
                    self.header = node
                else:
                    self.sink.error("PW211", "this file already has a `protocol` header", node.span,
                                    labels=[_label(self.header.span, "the first header is here")],
                                    help="remove this header, or move what follows it into a file of its own")
            elif isinstance(node, m.Use):
                self.uses.append(node)
            elif isinstance(node, Outcomes):
                self.outcomes.extend(node.names)
            elif isinstance(node, m.Decl):
                key = decl_key(node)
                first = self.decls.get(key)
                if first is not None:
                    what = (f"patient `{node.name}`" if node.shared else f'test "{node.name}"') \
                        if isinstance(node, m.ProtocolTest) else f"`{node.name}`"
                    self.sink.error("PW202", f"{what} is declared twice", _name_span(self.source, node),
                                    labels=[_label(_name_span(self.source, first), "first declared here")],
                                    help="give one of them another name")
                    continue
                self.decls[key] = node
                self.order.append(node)


def decl_key(decl: m.Decl) -> str:
    """Tests are named by their description, shared test patients by their name, each in a namespace of
    their own."""
    if isinstance(decl, m.ProtocolTest):
        return f"patient {decl.name}" if decl.shared else f'test "{decl.name}"'
    return decl.name


def _label(span: m.Span, message: str):
    from .diagnostics import Label
    return Label(span=span, message=message)


def _name_span(source: str, decl: m.Decl) -> m.Span:
    """The span of a declaration's name on its first line (else of the line's first character)."""
    s = decl.span
    line = source[s.start:].split("\n", 1)[0]
    match = re.search(rf"\b{re.escape(decl.name)}\b", line)
    if not match:
        return m.Span(line=s.line, column=s.column, end_line=s.line, end_column=s.column + 1, start=s.start,
                      end=s.start + 1)
    return m.Span(line=s.line, column=s.column + match.start(), end_line=s.line, end_column=s.column + match.end(),
                  start=s.start + match.start(), end=s.start + match.end())
