"""The canonical pretty-printer of the protocol language.

Each statement is printed from its model node as a list of lines, each line
remembering the source line it came from; comments are then merged back in
by line number. Layout depends only on the model (and on where comments sit),
so formatting twice gives the same text, and a reparse gives the same model.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import NamedTuple

from pathways import model as m

from .diagnostics import Diagnostic, Sink
from .build import Outcomes
from .parser import Comment, Statement, parse

WIDTH = 100
INDENT = "  "

_WORDS = {">=": "at least", ">": "more than", "<=": "at most", "<": "less than", "=": "is", "!=": "is not"}
# Binding strength, loosest first; a child printed below what its slot needs gets parentheses.
OR, AND, NOT, CMP, SUM, PROD, NEG, AGG, POST, ATOM = range(1, 11)
_BINARY = {"or": OR, "and": AND, "+": SUM, "-": SUM, "*": PROD, "/": PROD}
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*")
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_HEADER = (("version", "version"), ("title", "title"), ("status", "status"), ("authors", "authors"),
           ("source", "citation"), ("description", "description"))
_HEADER_DEFAULTS = m.Header(name="x")


class _Line(NamedTuple):
    src: int  # the source line it came from: comments attach by it
    depth: int
    text: str


class _Text(NamedTuple):
    text: str
    prec: int
    tail: bool  # ends in an unparenthesised `where` filter, which a following and/or would extend


def quote(text: str) -> str:
    """``text`` as a string literal of the language.

    >>> print(quote('say "hi" \\\\ bye'))
    "say \\"hi\\" \\\\ bye"
    """
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _num(value: float) -> str:
    # NUMBER has no exponent form, so never let repr's 1e-05 through.
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def _quantity(q: m.Quantity, atom: bool = True) -> str:
    number = q.text or _num(q.value)
    if q.unit == "gbp":
        # `£` is an atom of its own; where the grammar wants `quantity` only `GBP` parses.
        sign, digits = ("-", number[1:]) if number.startswith("-") else ("", number)
        return f"{sign}£{digits}" if atom else f"{number} GBP"
    unit = q.unit[:-1] if q.value == 1 and q.unit in ("days", "weeks", "months", "years") else q.unit
    return {"count": number, "percent": f"{number}%"}.get(unit, f"{number} {unit}")


def _timing(node) -> str:
    """A time in a pathway or before `ago`: written out, or the parameter named."""
    if isinstance(node, m.Ref):
        return node.dotted
    return node.parameter or _quantity(node, False)


def _wrap(part: _Text, need: int) -> _Text:
    return _Text(f"({part.text})", ATOM, False) if part.prec < need else part


def _at(node, need: int, closed: bool = False) -> _Text:
    """``node`` printed for a slot needing ``need``; ``closed``: an and/or follows it."""
    part = _expr(node, closed)
    return _Text(f"({part.text})", ATOM, False) if part.prec < need or (closed and part.tail) else part


def _expr(node, closed: bool = False) -> _Text:
    if isinstance(node, m.Binary):
        prec = _BINARY[node.op]
        # `and`/`or` right after a filter test would extend the filter, so an and/or
        # chain closes the filter at the end of each operand but its last.
        logical = node.op in ("and", "or")
        left = _at(node.left, prec, closed=logical)
        right = _at(node.right, prec + 1, closed=logical and closed)
        return _Text(f"{left.text} {node.op} {right.text}", prec, right.tail)
    if isinstance(node, m.Not):
        operand = _at(node.operand, NOT)
        return _Text(f"not {operand.text}", NOT, operand.tail)
    if isinstance(node, m.Compare):
        left, right = _at(node.left, SUM), _at(node.right, SUM)
        return _Text(f"{left.text} {_WORDS[node.op]} {right.text}", CMP, right.tail)
    if isinstance(node, m.InTop):
        value = _at(node.value, SUM).text
        return _Text(f"{value} is in the top {_quantity(node.percent)} of {node.group}", CMP, False)
    if isinstance(node, m.Negate):
        operand = _at(node.operand, NEG)
        return _Text(f"-{operand.text}", NEG, operand.tail)
    if isinstance(node, m.Aggregate):
        source = _at(node.source, POST)
        head = {"count": "count", "any": "any", "no": "no", "total_stay": "total stay of"}.get(node.op)
        head = head or f"{node.op} {node.attribute} of"
        return _Text(f"{head} {source.text}", AGG, source.tail)
    if isinstance(node, m.PerPeriod):
        source = _at(node.source, POST)
        return _Text(f"{node.op} count per {_quantity(node.period, False)} of {source.text}", AGG, source.tail)
    if isinstance(node, m.Percentile):
        return _Text(f"percentile of {_at(node.value, SUM).text} in {node.group}", AGG, False)
    if isinstance(node, m.ItemsMet):
        return _Text(f"items met in {node.target.dotted}", AGG, False)
    if isinstance(node, m.PossibleLevels):
        return _Text(f"possible higher levels of {node.target.dotted}", AGG, False)
    if isinstance(node, m.Filter):
        return _Text(f"{_at(node.source, POST).text} where {_condition(node.condition).text}", POST, True)
    if isinstance(node, m.Window):
        source = _at(node.source, POST).text
        if node.mode == "last":
            return _Text(f"{source} {node.phrase} {_at(node.amount, ATOM).text}", POST, False)
        if node.mode == "between":
            return _Text(f"{source} between {_at(node.start, ATOM).text} and {_at(node.end, ATOM).text}", POST, False)
        return _Text(f"{source} {node.mode} {_at(node.start, ATOM).text}", POST, False)
    if isinstance(node, m.InValueSet):
        return _Text(f"{node.attribute} in {node.value_set.dotted}", CMP, False)
    if isinstance(node, m.Quantity) and node.value < 0:
        # `-1` reads back as a value, but only where a unary minus may stand
        return _Text(_quantity(node), NEG, False)
    if isinstance(node, m.ItemList):
        # Not an expression a line can hold; quote the whole block for explanations.
        printer = _Printer([], [])
        printer.items(0, node)
        return _Text("\n".join(INDENT * ln.depth + ln.text for ln in printer.out), ATOM, False)
    return _Text(_atom(node), ATOM, False)


def _atom(node) -> str:
    if isinstance(node, m.Quantity):
        return _quantity(node)
    if isinstance(node, m.Text):
        return quote(node.value)
    if isinstance(node, m.Boolean):
        return "true" if node.value else "false"
    if isinstance(node, m.DateLiteral):
        return node.value
    if isinstance(node, m.Ref):
        return node.dotted
    if isinstance(node, m.Ago):
        return f"{_timing(node.amount)} ago"
    raise TypeError(f"cannot print {type(node).__name__}")


def _condition(node) -> _Text:
    """A `where` filter: its own small grammar of attribute tests."""
    if isinstance(node, m.Binary) and node.op in ("and", "or"):
        prec = _BINARY[node.op]
        left = _wrap(_condition(node.left), prec)
        right = _wrap(_condition(node.right), prec + 1)
        return _Text(f"{left.text} {node.op} {right.text}", prec, False)
    if isinstance(node, m.Not):
        return _Text(f"not {_wrap(_condition(node.operand), NOT).text}", NOT, False)
    if isinstance(node, m.Compare) and isinstance(node.left, m.Ref):
        return _Text(f"{node.left.dotted} {_WORDS[node.op]} {_at(node.right, ATOM).text}", CMP, False)
    return _expr(node)


def expr_to_text(expr) -> str:
    """Print one expression with canonical keywords and only the parentheses a reparse needs.

    >>> from dsl.parser import parse
    >>> from dsl.diagnostics import Sink
    >>> d = parse("define x: (a >= 3 months) = true and not (b or c)\\n", Sink()).statements[0].node
    >>> expr_to_text(d.expr)
    '(a at least 3 months) is true and not (b or c)'
    """
    return _expr(expr).text


def _named(node) -> str:
    return node.name if node.label is None else f"{node.name} {quote(node.label)}"


class _Printer:
    """Prints statements as `_Line`s. The source is read only to find the lines of the few
    constructs the model keeps no span for, and to see where comments sit."""

    def __init__(self, source: list[str], comments: list[Comment]):
        self.source = source
        self.comments = comments
        self.out: list[_Line] = []

    def add(self, src: int, depth: int, text: str) -> None:
        self.out.append(_Line(src, depth, text))

    def code_lines(self, st: Statement) -> list[tuple[int, str]]:
        """(line number, stripped text) of the code lines of a statement after its first."""
        lines = ((n, self.source[n - 1].strip()) for n in range(st.first_line + 1, st.last_line + 1))
        return [(n, text) for n, text in lines if text and not text.startswith("#")]

    def body(self, src: int, depth: int, head: str, expr, fit: bool) -> None:
        """`head expr` on one line, or the expression on the next line, one level deeper
        (always so for an item list; for other expressions when too long or commented)."""
        if isinstance(expr, m.ItemList):
            self.add(src, depth, head)
            self.items(depth + 1, expr)
            return
        text = expr_to_text(expr)
        too_long = fit and len(INDENT * depth + head) + 1 + len(text) > WIDTH
        # Comments that would land on the expression's own line (see _attach) keep it apart
        # from the head, so that they stay inside the body on the next run too.
        commented = any(src < c.line and (c.line < expr.span.line or c.line == expr.span.line and not c.own_line)
                        for c in self.comments)
        if too_long or commented:
            self.add(src, depth, head)
            self.add(expr.span.line, depth + 1, text)
        else:
            self.add(src, depth, f"{head} {text}")

    def items(self, depth: int, node: m.ItemList) -> None:
        quantifier = node.quantifier
        if quantifier == "at_least":
            quantifier = f"at least {_at(node.minimum, SUM).text}"
        self.add(node.span.line, depth, f"{quantifier} of:")
        for item in node.items:
            if item.label == "" and isinstance(item.expr, m.Ref):
                self.add(item.span.line, depth + 1, item.expr.dotted)
            else:
                self.body(item.span.line, depth + 1, quote(item.label) + ":", item.expr, fit=False)

    def statement(self, st: Statement) -> list[_Line]:
        self.out = []
        node, first = st.node, st.first_line
        if isinstance(node, m.Header):
            self.header(node, st)
        elif isinstance(node, m.Use):
            self.add(first, 0, f"uses {quote(node.path)} as {node.alias}")
        elif isinstance(node, Outcomes):
            self.add(first, 0, "outcomes " + ", ".join(name for name, _ in node.names))
        elif isinstance(node, m.Parameter):
            self.add(first, 0, f"parameter {_named(node)} = {expr_to_text(node.default)}")
        elif isinstance(node, m.ValueSet):
            self.value_set(node, st)
        elif isinstance(node, m.Definition):
            keyword = "criterion" if node.criterion else "define"
            self.body(first, 0, f"{keyword} {_named(node)}:", node.expr, fit=True)
        elif isinstance(node, m.Score):
            self.add(first, 0, f"score {_named(node)}:")
            for item in node.items:
                weight = "" if item.weight == 1.0 else f" weight {_num(item.weight)}"
                if item.label == "" and isinstance(item.expr, m.Ref):
                    self.add(item.span.line, 1, item.expr.dotted + weight)
                else:
                    self.add(item.span.line, 1, f"{quote(item.label)}{weight}: {expr_to_text(item.expr)}")
        elif isinstance(node, m.Bands):
            self.add(first, 0, f"bands {_named(node)} of {expr_to_text(node.value)}:")
            for band in node.bands:
                test = "otherwise" if band.op is None else f"{_WORDS[band.op]} {_at(band.threshold, SUM).text}"
                self.add(band.span.line, 1, f"{_named(band)}: {test}")
        elif isinstance(node, m.Levels):
            self.add(first, 0, f"levels {_named(node)}:")
            for level in node.levels:
                self.body(level.span.line, 1, f"level {level.number} {quote(level.label)}:", level.condition, True)
            if node.fallback is not None:
                fallback = node.fallback
                self.add(fallback.span.line, 1, f"otherwise level {fallback.number} {quote(fallback.label)}")
        elif isinstance(node, m.Pathway):
            self.pathway(node)
        elif isinstance(node, m.CarePlan):
            self.care_plan(node)
        elif isinstance(node, m.ProtocolTest):
            self.test(node, st)
        else:
            raise TypeError(f"cannot print {type(node).__name__}")
        return self.out

    def header(self, node: m.Header, st: Statement) -> None:
        self.add(st.first_line, 0, f"protocol {node.name}:")
        written = {}
        for n, text in self.code_lines(st):
            key = _NAME.match(text)
            if key:
                written[key.group()] = n  # a repeated field: the last one counts, as in the parser
        for key, attr in _HEADER:
            value = getattr(node, attr)
            if key not in written and value == getattr(_HEADER_DEFAULTS, attr):
                continue
            if key == "authors":
                text = ", ".join(quote(a) for a in value)
            else:
                text = value if key == "status" and _NAME.fullmatch(value) else quote(value)
            self.add(written.get(key, st.first_line), 1, f"{key} {text}")

    def value_set(self, node: m.ValueSet, st: Statement) -> None:
        if node.source_file is not None:
            self.add(st.first_line, 0, f"codes {_named(node)} from {quote(node.source_file)}")
            return
        self.add(st.first_line, 0, f"codes {_named(node)}:")
        # Codes carry no span, but each is exactly one line of the block.
        lines = [n for n, _ in self.code_lines(st)]
        if len(lines) != len(node.codes):
            lines = [st.first_line] * len(node.codes)
        for n, code in zip(lines, node.codes):
            value = code.code if _CODE.fullmatch(code.code) else quote(code.code)
            display = f" {quote(code.display)}" if code.display else ""
            self.add(n, 1, f"{code.system} {value}{display}")

    def pathway(self, node: m.Pathway) -> None:
        self.add(node.span.line, 0, f"pathway {_named(node)}:")
        if node.entry is not None:
            self.add(node.entry.span.line, 1, f"entry when {expr_to_text(node.entry)}")
        for step in node.steps:
            self.add(step.span.line, 1, f"step {_named(step)}:")
            for action in step.actions:
                interval = _timing(action.interval)
                self.add(action.span.line, 2, f"due {quote(action.label)} {action.timing} {interval}")
            for tr in step.transitions:
                target = f"exit {tr.target}" if tr.target_is_exit else tr.target
                if tr.trigger == "event":
                    trigger = f"on {tr.event}"
                elif tr.trigger == "when":
                    trigger = f"when {expr_to_text(tr.condition)}"
                else:
                    trigger = f"after {_timing(tr.delay)}"
                self.add(tr.span.line, 2, f"{trigger} go to {target}")
        for ex in node.exits:
            how = f": on {ex.event}" if ex.event else f": when {expr_to_text(ex.condition)}" if ex.condition else ""
            self.add(ex.span.line, 1, f"exit {_named(ex)}{how}")

    def care_plan(self, node: m.CarePlan) -> None:
        pathway = f" for {node.pathway}" if node.pathway else ""
        self.add(node.span.line, 0, f"care plan {_named(node)}{pathway}:")
        for section in node.sections:
            label = f" {quote(section.label)}" if section.label is not None else ""
            self.add(section.span.line, 1, f"{section.section}{label}:")
            for item in section.items:
                role = f" by {quote(item.role)}" if item.role is not None else ""
                cond = f" when {expr_to_text(item.condition)}" if item.condition is not None else ""
                self.add(item.span.line, 2, f"{quote(item.text)}{role}{cond}")

    def test(self, node: m.ProtocolTest, st: Statement) -> None:
        if node.shared:
            label = f" {quote(node.label)}" if node.label is not None else ""
            self.add(st.first_line, 0, f"patient {node.name}{label}:")
            for fact in node.facts:
                self.add(fact.span.line, 1, " ".join((fact.verb,) + fact.args))
            return
        self.add(st.first_line, 0, f"test {quote(node.name)}:")
        lines = self.code_lines(st)
        # `as of`, `patient` and `ranked among` have no span; find their lines (several blocks merge into one).
        as_of = [n for n, text in lines if re.match(r"as\s+of\b", text)]
        patient = [n for n, text in lines if re.match(r"patient\b", text)]
        ranked = [n for n, text in lines if re.match(r"ranked\s+among\b", text)]
        if node.as_of is not None:
            self.add(as_of[-1] if as_of else st.first_line, 1, f"as of {node.as_of}")
        for ov in node.overrides:
            self.add(ov.span.line, 1, f"with {ov.parameter} = {expr_to_text(ov.value)}")
        if node.facts or node.patient is not None:
            name = f" {node.patient}" if node.patient is not None else ""
            self.add(patient[0] if patient else st.first_line, 1, f"patient{name}{':' if node.facts else ''}")
            for fact in node.facts:
                self.add(fact.span.line, 2, " ".join((fact.verb,) + fact.args))
        if node.ranked_among:
            values = ", ".join(f"{v:g}" for v in node.ranked_among)
            self.add(ranked[-1] if ranked else st.first_line, 1, f"ranked among {values}")
        expects = []
        for ex in node.expectations:
            value = "unknown" if ex.value is None else expr_to_text(ex.value)
            expects.append((ex.span.line, f"expect {ex.outcome} is {value}"))
        for reason in node.reasons:
            what = quote(reason.label) if reason.label is not None else reason.name
            within = f" in {reason.within}" if reason.within is not None else ""
            state = {"met": "met", "not_met": "not met", "unknown": "unknown"}[reason.state]
            expects.append((reason.span.line, f"expect {what}{within} {state}"))
        for e in node.lists:
            text = {"includes": f"includes {e.level}", "excludes": f"does not include {e.level}",
                    "empty": "is empty"}[e.op]
            expects.append((e.span.line, f"expect {e.outcome} {text}"))
        for e in node.steps:
            text = {"step": f"expect {e.pathway} at {e.name}", "exit": f"expect {e.pathway} at exit {e.name}",
                    "not_on": f"expect not on {e.pathway}"}[e.at]
            expects.append((e.span.line, text))
        for line, text in sorted(expects, key=lambda e: e[0]):  # as written: values and reasons interleave
            self.add(line, 1, text)


def _attach(lines: list[_Line], comments: list[Comment]) -> tuple[list[list[Comment]], list[Comment | None]]:
    """Trailing comments go at the end of the line printed from their source line; other
    comments (and trailing ones whose line printed nothing) before the line printed from the
    next source line, or failing that at the end of the nearest line above."""
    lead: list[list[Comment]] = [[] for _ in lines]
    trail: list[list[Comment]] = [[] for _ in lines]
    order = range(len(lines))
    for c in comments:
        same = [i for i in order if lines[i].src == c.line]
        later = [i for i in order if lines[i].src > c.line]
        if same:
            trail[same[-1]].append(c)
        elif later:
            lead[min(later, key=lambda i: (lines[i].src, i))].append(c)
        else:
            above = [i for i in order if lines[i].src <= c.line] or [0]
            trail[max(above, key=lambda i: (lines[i].src, i))].append(c)
    # A line holds one trailing comment: a second `#` would be read as part of the first.
    for i in order:
        lead[i] = sorted(lead[i] + trail[i][:-1], key=lambda c: (c.line, c.column))
    return lead, [t[-1] if t else None for t in trail]


def _gap(source: list[str], comments: dict[int, Comment], lo: int, hi: int) -> tuple[list[list], bool]:
    """The comments on lines lo < n < hi, each with whether a blank line preceded it,
    and whether a blank line follows the last."""
    items, blank = [], False
    for n in range(lo + 1, hi):
        if n in comments:
            items.append([comments[n], blank])
            blank = False
        elif not source[n - 1].strip():
            blank = True
    return items, blank


def _above_doc(items: list[list], blank_after: bool, displaced: list[Comment]) -> bool:
    """Put ``displaced`` comments (ones a statement's first line cannot hold) into the gap
    above it, but above its doc comments; returns whether a blank line now ends the gap."""
    k = len(items)
    # The parser's doc: the `##` lines in column 1 just above the statement, no blank between.
    while not blank_after and k > 0 and items[k - 1][0].text.startswith("##") and items[k - 1][0].column == 1:
        k -= 1
        if items[k][1]:
            break
    moved = [[c, False] for c in displaced]
    if moved and k == len(items) and blank_after:
        # Keep them next to their statement: the gap's blank line goes above them instead.
        moved[0][1], blank_after = True, False
    items[k:k] = moved
    k += len(moved)
    # A `##` line that was not doc must not come to touch the statement and become doc.
    if k and items[k - 1][0].text.startswith("##"):
        if k == len(items):
            return True
        items[k][1] = True
    return blank_after


def _together(prev: Statement, st: Statement) -> bool:
    """Runs of one-line statements of one kind print without blank lines between them."""
    return any(isinstance(prev.node, kind) and isinstance(st.node, kind) for kind in (m.Use, m.Parameter, Outcomes))


def _render(syntax, lines: list[str]) -> list[str]:
    own_line = {c.line: c for c in syntax.comments if c.own_line}
    printer = _Printer(lines, syntax.comments)
    out: list[str] = []
    prev: Statement | None = None
    for st in syntax.statements + [None]:
        items, blank_after = _gap(lines, own_line, prev.last_line if prev else 0,
                                  st.first_line if st else len(lines) + 1)
        printed = printer.statement(st) if st else []
        lead, trail = _attach(printed, [c for c in syntax.comments if st and st.first_line <= c.line <= st.last_line])
        if st:
            blank_after = _above_doc(items, blank_after, lead[0])
        separate = prev is not None and st is not None and not _together(prev, st)
        for i, (c, blank) in enumerate(items):
            if blank or (i == 0 and separate):
                out.append("")
            out.append(c.text)
        if st and ((items and blank_after) or (not items and separate)):
            out.append("")
        for i, ln in enumerate(printed):
            pad = INDENT * ln.depth
            if i:
                out.extend(pad + c.text for c in lead[i])
            out.append(pad + ln.text + (f"  {trail[i].text}" if trail[i] else ""))
        prev = st
    while out and not out[-1]:
        out.pop()
    while out and not out[0]:
        out.pop(0)
    return out


def format_source(source: str, file: str = "") -> tuple[str | None, list[Diagnostic]]:
    """Parse ``source`` and print it canonically.

    Returns ``(None, diagnostics)`` when the file has an error: a file that
    does not parse is never rewritten.

    >>> format_source("define   x : a>=3   # why\\n")[0]
    'define x: a at least 3  # why\\n'
    """
    sink = Sink(file)
    syntax = parse(source, sink)
    lines = source.split("\n")
    covered = {n for st in syntax.statements for n in range(st.first_line, st.last_line + 1)}
    for n, text in enumerate(lines if not sink.has_errors else [], start=1):
        # The parser skips indented text before the first statement; printing would delete it.
        if n not in covered and text.strip() and not text.lstrip().startswith("#"):
            sink.error("PW190", "this line is indented but belongs to no statement",
                       m.Span(line=n, column=1, end_line=n, end_column=len(text) + 1),
                       help="statements start in column 1")
            break
    if sink.has_errors:
        return None, sink.items

    out = _render(syntax, lines)
    return ("\n".join(out) + "\n" if out else ""), sink.items
