"""The editor's language services: checking, highlighting, outline, names, completion, saving.

Nothing here imports textual, so the benchmark and the tests time and check
exactly the code the editor runs on each keystroke.

Live checking runs the whole compiler pipeline on the edited text. The files
it imports do not change while one file is edited, so their compiled units
are kept between checks and only the edited text is compiled again; saving
any file clears them. Statements parsed by an earlier check are not parsed
again (dsl.statements), so a keystroke costs the parse of one statement and
the later passes.
"""

from __future__ import annotations

import bisect
import os
import re
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from dsl.compiler import Session
from dsl.statements import StatementCache
from dsl.diagnostics import Diagnostic
from dsl.unit import Unit
from pathways import model as m
from pathways import schema

# --- checking ----------------------------------------------------------------


@dataclass
class CheckResult:
    """One check of the edited text: its own diagnostics, the unit (for the
    outline, names and completion) and how long the check took."""

    text: str
    unit: Unit
    diagnostics: list[Diagnostic]
    elapsed_ms: float
    session: Session = field(repr=False)

    @property
    def errors(self) -> int:
        return sum(d.severity == "error" for d in self.diagnostics)

    @property
    def warnings(self) -> int:
        return sum(d.severity == "warning" for d in self.diagnostics)

    def protocol(self) -> m.Protocol | None:
        """The compiled model, when the text has no errors (lowered on demand: a keystroke never pays for it)."""
        return self.session.lower(self.unit)


class LanguageService:
    """Checks the text of one protocol file as it is edited."""

    def __init__(self, path: Path, display: str | None = None, *, reuse_statements: bool = True):
        self.path = path.resolve()
        self.display = display or path.name
        self._imports: dict[Path, Unit] = {}
        # Statements parsed by earlier checks, by their text (the benchmark turns this off to
        # show what it saves: a cache that keeps nothing).
        self._statements = StatementCache() if reuse_statements else StatementCache(limit=0)
        # The editor checks in a worker thread; a check still running when the next starts
        # finishes first, so the kept imports and statements are never changed by two at once.
        self._lock = threading.Lock()
        self._stale = False

    def forget_imports(self) -> None:
        """Compile imported files afresh at the next check (one of them was saved or changed)."""
        self._stale = True  # not cleared here: a check running in the worker holds them

    def check(self, text: str) -> CheckResult:
        """Compile ``text`` as this file; safe to call from any thread."""
        started = time.perf_counter()
        with self._lock:
            if self._stale:
                self._imports.clear()
                self._stale = False
            session = Session(root=self.path.parent, statements=self._statements)
            session.units.update(self._imports)
            unit = session.compile_text(text, self.display, self.path)
            for key, imported in session.units.items():
                if key != self.path:
                    self._imports.setdefault(key, imported)
        diagnostics = sorted((d for d in unit.sink.items), key=lambda d: (d.span.line, d.span.column, d.code))
        elapsed = (time.perf_counter() - started) * 1000
        return CheckResult(text, unit, diagnostics, elapsed, session)


# --- highlighting ------------------------------------------------------------


@lru_cache(maxsize=1)
def keywords() -> frozenset[str]:
    """The language's words, read from the grammar itself so the highlighting never drifts from it."""
    from dsl.parser import _lark

    words = {t.pattern.value for t in _lark().terminals
             if t.pattern.type == "str" and t.pattern.value.replace("_", "").isalpha()}
    words |= {"define", "criterion", "within", "every", "sum", "min", "max", "latest", "earliest",
              "lowest", "highest", "average", "last"}
    return frozenset(words)


_TOKEN = re.compile(r"""
    (?P<comment>\#.*)
  | (?P<string>"(?:[^"\\]|\\.)*"?)
  | (?P<date>\d{4}-\d{2}(?:-\d{2})?(?![\d.]))
  | (?P<number>£?\d+(?:\.\d+)?%?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)
  | (?P<operator>[-+*/=<>:,()])
""", re.VERBOSE)

_UNITS = re.compile(r"(days?|weeks?|months?|years?|GBP)$")
#: words after which a name is being declared
_DECLARES = {"define", "criterion", "parameter", "codes", "score", "bands", "levels", "pathway", "step",
             "exit", "plan", "protocol"}


def highlight_line(line: str) -> list[tuple[int, int, str]]:
    """(start, end, style name) character ranges of one line, left to right."""
    out: list[tuple[int, int, str]] = []
    words = keywords()
    previous = ""
    for match in _TOKEN.finditer(line):
        kind = match.lastgroup
        text = match.group()
        if kind == "name":
            if previous in _DECLARES and text not in words:
                kind = "name.definition"
            elif text in words:
                kind = "keyword"
            elif _UNITS.match(text):
                kind = "unit"
            elif "." in text:
                kind = "name.imported"
            else:
                kind = "name"
            previous = text
        if kind != "name":
            out.append((match.start(), match.end(), kind))
    return out


def highlight_bytes(line: str) -> list[tuple[int, int, str]]:
    """The same ranges in UTF-8 byte offsets, as Textual's TextArea takes them."""
    if line.isascii():
        return highlight_line(line)
    offsets = [0]
    for ch in line:
        offsets.append(offsets[-1] + len(ch.encode("utf-8")))
    return [(offsets[s], offsets[e], k) for s, e, k in highlight_line(line)]


# --- outline -----------------------------------------------------------------


@dataclass
class OutlineEntry:
    """One line of the outline; ``line`` and ``column`` are 1-based, as in diagnostics."""

    label: str
    line: int
    column: int = 1
    children: list["OutlineEntry"] = field(default_factory=list)


_GROUPS = (("parameter", "Parameters"), ("value_set", "Code lists"), ("definition", "Criteria and definitions"),
           ("score", "Scores"), ("bands", "Bands"), ("levels", "Levels"), ("pathway", "Pathways"),
           ("care_plan", "Care plans"), ("test", "Tests"))


def _at(node, label: str, children=()) -> OutlineEntry:
    span = node.span
    return OutlineEntry(label, max(span.line, 1), max(span.column, 1), list(children))


def _item_label(item) -> str:
    """An item's label, or the name it refers to when it has none (``castlefields.eligible``)."""
    from dsl.formatter import expr_to_text

    return item.label or expr_to_text(item.expr)


def _decl_entry(decl: m.Decl) -> OutlineEntry:
    if isinstance(decl, m.ProtocolTest):
        return _at(decl, f'"{decl.name}"')
    title = decl.name + (f" \u2014 {decl.label}" if decl.label else "")
    children: list[OutlineEntry] = []
    if isinstance(decl, m.Definition):
        title = ("criterion " if decl.criterion else "define ") + title
        if isinstance(decl.expr, m.ItemList):
            children = [_at(item, _item_label(item)) for item in decl.expr.items]
    elif isinstance(decl, m.Score):
        children = [_at(item, _item_label(item)) for item in decl.items]
    elif isinstance(decl, m.Bands):
        children = [_at(band, band.name + (f" \u2014 {band.label}" if band.label else "")) for band in decl.bands]
    elif isinstance(decl, m.Levels):
        levels = list(decl.levels) + ([decl.fallback] if decl.fallback else [])
        children = [_at(lv, f"level {lv.number} \u2014 {lv.label}") for lv in levels]
    elif isinstance(decl, m.Pathway):
        children = [_at(s, f"step {s.name}" + (f" \u2014 {s.label}" if s.label else "")) for s in decl.steps]
        children += [_at(e, f"exit {e.name}" + (f" \u2014 {e.label}" if e.label else "")) for e in decl.exits]
    elif isinstance(decl, m.CarePlan):
        children = [_at(s, s.section + (f" \u2014 {s.label}" if s.label else "")) for s in decl.sections]
    return _at(decl, title, children)


def outline(unit: Unit) -> list[OutlineEntry]:
    """The file's declarations grouped by kind, each with its parts, in source order within a group."""
    groups: list[OutlineEntry] = []
    if unit.header is not None:
        groups.append(_at(unit.header, f"protocol {unit.header.name}"))
    for kind, title in _GROUPS:
        decls = [d for d in unit.order if d.kind == kind]
        if decls:
            first = decls[0].span
            groups.append(OutlineEntry(f"{title} ({len(decls)})", max(first.line, 1), 1,
                                       [_decl_entry(d) for d in decls]))
    return groups


# --- names under the cursor and completion -----------------------------------

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?")


def word_at(line: str, column: int) -> tuple[str, int, int]:
    """The name (``alias.name`` included) touching 0-based ``column``, with its start and end."""
    for match in _WORD.finditer(line):
        if match.start() <= column <= match.end():
            return match.group(), match.start(), match.end()
    return "", column, column


def prefix_at(line: str, column: int) -> tuple[str, int]:
    """The part of a name (``base.ol``, ``base.``) just before 0-based ``column``, and where it starts."""
    start = column
    while start > 0 and (line[start - 1].isalnum() or line[start - 1] in "_."):
        start -= 1
    return line[start:column], start


def _decl_kind(decl: m.Decl) -> str:
    if isinstance(decl, m.Definition):
        return "criterion" if decl.criterion else "definition"
    return {"value_set": "code list", "care_plan": "care plan"}.get(decl.kind, decl.kind)


def _type_of(unit: Unit, name: str) -> str:
    found = unit.types.get(name)
    return str(found) if found is not None else "not known yet (the file has errors here)"


@dataclass
class NameInfo:
    """What the side panel shows about a name: a title, plain lines, and where it is defined."""

    title: str
    lines: list[str]
    file: str | None = None
    line: int | None = None


def describe(unit: Unit, name: str) -> NameInfo | None:
    """The definition and type of ``name`` as this file sees it, or None for a word that names nothing."""
    from dsl.formatter import expr_to_text

    if not name:
        return None
    alias, _, local = name.rpartition(".")
    owner = unit
    if alias:
        owner = unit.imports.get(alias)
        if owner is None:
            return NameInfo(name, [f"`{alias}` is not an import of this file"])
    decl = owner.decls.get(local)
    if decl is not None:
        lines = [f"{_decl_kind(decl)}" + (f": {decl.label}" if decl.label else ""),
                 f"type: {_type_of(owner, local)}"]
        if isinstance(decl, m.Parameter):
            lines.append(f"default: {expr_to_text(decl.default)}")
        elif isinstance(decl, m.Definition) and not isinstance(decl.expr, m.ItemList):
            lines.append(f"= {expr_to_text(decl.expr)}")
        elif isinstance(decl, m.Definition):
            lines.extend(f"  \u2022 {_item_label(item)}" for item in decl.expr.items)
        if decl.doc:
            lines.append(decl.doc)
        where = owner.file if alias else None
        lines.append(f"defined at {owner.file}:{decl.span.line}")
        return NameInfo(name, lines, where, decl.span.line)
    if alias:
        return NameInfo(name, [f"`{alias}` ({owner.file}) has no declaration called `{local}`"])
    if name in unit.imports:
        imported = unit.imports[name]
        return NameInfo(name, [f"an imported protocol: {imported.file if imported else 'could not be read'}"])
    if name in schema.COLLECTIONS:
        kind = schema.COLLECTIONS[name]
        attrs = ", ".join(schema.ITEM_ATTRIBUTES[kind])
        return NameInfo(name, ["from the patient's record", f"type: list of {kind.replace('_', ' ')}",
                               f"each has: {attrs}"])
    if name in schema.PATIENT_ATTRIBUTES:
        return NameInfo(name, ["a fact about the patient", f"type: {schema.PATIENT_ATTRIBUTES[name]}"])
    if name in keywords():
        return NameInfo(name, ["a word of the language (docs/language.md)"])
    return None


def completions(unit: Unit | None, prefix: str) -> list[str]:
    """Names that complete ``prefix``: this file's, its imports' (``alias.name``), the record's and the patient's."""
    names: set[str] = set(schema.COLLECTIONS) | set(schema.PATIENT_ATTRIBUTES)
    if unit is not None:
        names |= {d.name for d in unit.order if d.kind != "test"}
        for alias, imported in unit.imports.items():
            names.add(alias)
            if imported is not None:
                names |= {f"{alias}.{d.name}" for d in imported.order if d.kind != "test"}
    return sorted(n for n in names if n.startswith(prefix) and n != prefix)


# --- positions -----------------------------------------------------------------


def line_starts(text: str) -> list[int]:
    starts = [0]
    starts.extend(i + 1 for i, ch in enumerate(text) if ch == "\n")
    return starts


def location(text: str, offset: int) -> tuple[int, int]:
    """0-based (row, column) of a character offset."""
    starts = line_starts(text)
    row = bisect.bisect_right(starts, offset) - 1
    return row, offset - starts[row]


# --- saving ------------------------------------------------------------------


@dataclass
class Saved:
    text: str  # what is now on disk
    formatted: bool
    message: str


def save(path: Path, text: str) -> Saved:
    """Format and write a protocol. A text that does not parse is written exactly as it is,
    so nothing typed is ever lost, and the message says why it was not formatted."""
    from dsl.formatter import format_source

    formatted, problems = format_source(text, path.name)
    if formatted is None:
        first = next((d for d in problems if d.severity == "error"), None)
        where = f" (line {first.span.line}: {first.message})" if first else ""
        out, message = text, f"Saved {path.name} as typed; it could not be formatted because it has an error{where}."
    else:
        out = formatted
        message = f"Saved and formatted {path.name}." if formatted != text else f"Saved {path.name}."
    tmp = path.with_name(f".{path.name}.saving")
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(out)
    os.replace(tmp, path)
    return Saved(out, formatted is not None, message)
