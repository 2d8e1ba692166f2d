"""Text -> syntax: the first pass.

A file is cut into top-level statements (a statement starts at every line
that begins in column 1) and each is parsed on its own with a LALR parser,
so one syntax error costs one statement, never the rest of the file.
Comments are kept beside the tree for the formatter; ``##`` comments just
above a statement become its doc text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import (
    UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError,
)
from lark.indenter import DedentError, Indenter

from pathways import model as m
from pathways.walk import depth as node_depth

from .diagnostics import Label, Sink, did_you_mean

#: Deeper statements are refused before any recursive pass sees them.
MAX_DEPTH = 150
#: Longer numbers are refused (a float has about 15 significant digits).
MAX_NUMBER_DIGITS = 15


class _Indenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR"]
    CLOSE_PAREN_types = ["RPAR"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark.open_from_package(
        "dsl", "grammar.lark", parser="lalr", postlex=_Indenter(),
        propagate_positions=True, maybe_placeholders=True,
    )


@dataclass(frozen=True)
class Comment:
    line: int
    column: int
    text: str
    own_line: bool  # the comment is the whole line (else it trails code)


@dataclass
class Statement:
    """One parsed top-level statement and the lines it covers."""

    node: object  # Header | Use | Decl | Outcomes
    first_line: int
    last_line: int


@dataclass(frozen=True)
class Outcomes:
    span: m.Span
    names: tuple[tuple[str, m.Span], ...]


@dataclass
class Syntax:
    """What the parser saw in one file."""

    source: str
    statements: list[Statement] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    failed_chunks: int = 0
    #: names declared by statements that failed to parse; their uses are not
    #: reported again as unknown names
    broken_names: set[str] = field(default_factory=set)


# --- comments and chunks ------------------------------------------------------

_STRING_OR_HASH = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#')


def scan_comments(source: str) -> list[Comment]:
    """Find ``#`` comments outside quoted text.

    >>> scan_comments('define x: "a # b"  # why\\n# own\\n')
    [Comment(line=1, column=20, text='# why', own_line=False), Comment(line=2, column=1, text='# own', own_line=True)]
    """
    out = []
    for number, line in enumerate(source.split("\n"), start=1):
        if "#" not in line:
            continue
        for match in _STRING_OR_HASH.finditer(line):
            if match.group() == "#":
                col = match.start()
                out.append(Comment(number, col + 1, line[col:].rstrip(), not line[:col].strip()))
                break
    return out


def _chunks(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) 0-based line ranges of top-level statements."""
    starts = [i for i, ln in enumerate(lines) if ln[:1] not in ("", " ", "\t", "#", "\r", "\f")]
    ranges = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        while end - 1 > start and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
            end -= 1
        ranges.append((start, end - 1))
    return ranges


# --- the transformer ------------------------------------------------------------

_UNITS = {"day": "days", "days": "days", "week": "weeks", "weeks": "weeks", "month": "months",
          "months": "months", "year": "years", "years": "years", "GBP": "gbp"}
_ESCAPE = re.compile(r"\\(.)")


def _unquote(token: str) -> str:
    return _ESCAPE.sub(lambda mt: mt.group(1), token[1:-1])


class _Build(Transformer):
    """Builds model nodes straight from the parse tree (ids come later, in lower)."""

    def __init__(self, sink: Sink, line_offset: int, pos_offset: int, chunk: str):
        super().__init__()
        self.sink = sink
        self.lines = line_offset
        self.pos = pos_offset
        self.chunk = chunk

    def span(self, meta) -> m.Span:
        if getattr(meta, "empty", True):
            return m.NOWHERE
        end = meta.end_pos
        if end > meta.start_pos and self.chunk[end - 1] in " \t\r\n#":
            end = _trim_end(self.chunk, meta.start_pos, end)
        end_line = meta.line + self.chunk.count("\n", meta.start_pos, end)
        end_column = end - (self.chunk.rfind("\n", 0, end) + 1) + 1
        return m.Span(line=meta.line + self.lines, column=meta.column, end_line=end_line + self.lines,
                      end_column=end_column, start=meta.start_pos + self.pos, end=end + self.pos)

    def tspan(self, tok: Token) -> m.Span:
        return m.Span(line=tok.line + self.lines, column=tok.column, end_line=tok.end_line + self.lines,
                      end_column=tok.end_column, start=tok.start_pos + self.pos, end=tok.end_pos + self.pos)

    def number(self, tok: Token) -> float:
        digits = tok.replace(".", "")
        if len(digits.lstrip("0")) > MAX_NUMBER_DIGITS:
            self.sink.error("PW104", f"the number {tok[:20]}{'…' if len(tok) > 20 else ''} is too long",
                            self.tspan(tok), help=f"numbers may have at most {MAX_NUMBER_DIGITS} digits")
            return 0.0
        return float(tok)

    def string(self, tok: Token | None) -> str | None:
        return None if tok is None else _unquote(tok)

    # header, imports, outcomes
    @v_args(inline=True, meta=True)
    def protocol_header(self, meta, name, *fields):
        values: dict = {"name": str(name), "span": self.span(meta)}
        known = {"version", "title", "status", "authors", "source", "description"}
        for key, items, fspan in fields:
            if key not in known:
                from .diagnostics import did_you_mean
                close = did_you_mean(key, sorted(known))
                self.sink.error("PW110", f"`{key}` is not a header field", fspan,
                                help=close or f"header fields are: {', '.join(sorted(known))}")
                if close is None:
                    continue
                key = close.split("`")[1]  # read it as the field meant, so it is not reported missing too
            if key == "authors":
                values["authors"] = tuple(items)
            elif len(items) != 1:
                self.sink.error("PW111", f"`{key}` takes one value", fspan)
            elif key == "source":
                values["citation"] = items[0]
            else:
                values[key] = items[0]
        return m.Header(**values)

    @v_args(inline=True, meta=True)
    def header_field(self, meta, key, *items):
        return (str(key), [_unquote(i) if i.type == "STRING" else str(i) for i in items], self.span(meta))

    @v_args(inline=True, meta=True)
    def uses(self, meta, path, alias):
        text = _unquote(path)
        stem = re.sub(r"\.pw$", "", text.replace("\\", "/").rsplit("/", 1)[-1])
        return m.Use(span=self.span(meta), path=text, alias=str(alias) if alias else stem)

    @v_args(inline=True, meta=True)
    def outcomes(self, meta, *names):
        return Outcomes(self.span(meta), tuple((str(n), self.tspan(n)) for n in names))

    # parameters and codes
    @v_args(inline=True, meta=True)
    def parameter(self, meta, name, label, default):
        return m.Parameter(span=self.span(meta), name=str(name), label=self.string(label), default=default)

    @v_args(inline=True, meta=True)
    def codes_inline(self, meta, name, label, *codes):
        return m.ValueSet(span=self.span(meta), name=str(name), label=self.string(label), codes=tuple(codes))

    @v_args(inline=True, meta=True)
    def codes_file(self, meta, name, label, path):
        return m.ValueSet(span=self.span(meta), name=str(name), label=self.string(label), source_file=_unquote(path))

    @v_args(inline=True, meta=True)
    def code_line(self, meta, system, code, display):
        text = _unquote(code) if code.type == "STRING" else str(code)
        return m.Code(system=str(system), code=text, display=self.string(display) or "")

    # definitions and item lists
    @v_args(inline=True, meta=True)
    def define(self, meta, keyword, name, label, body):
        return m.Definition(span=self.span(meta), name=str(name), label=self.string(label),
                            criterion=keyword == "criterion", expr=body)

    @v_args(inline=True, meta=True)
    def item_block(self, meta, quantifier, *items):
        kind, minimum = quantifier
        return m.ItemList(span=self.span(meta), quantifier=kind, minimum=minimum, items=tuple(items))

    def q_all(self, _):
        return ("all", None)

    def q_any(self, _):
        return ("any", None)

    def q_none(self, _):
        return ("none", None)

    @v_args(inline=True)
    def q_at_least(self, minimum):
        return ("at_least", minimum)

    @v_args(inline=True, meta=True)
    def labelled_item(self, meta, label, body):
        return m.Item(span=self.span(meta), label=_unquote(label), expr=body)

    @v_args(inline=True, meta=True)
    def ref_item(self, meta, ref):
        return m.Item(span=self.span(meta), label="", expr=ref)

    # scores, bands, levels
    @v_args(inline=True, meta=True)
    def score(self, meta, name, label, *items):
        return m.Score(span=self.span(meta), name=str(name), label=self.string(label), items=tuple(items))

    @v_args(inline=True, meta=True)
    def labelled_score_item(self, meta, label, weight, expr):
        return m.ScoreItem(span=self.span(meta), label=_unquote(label), weight=1.0 if weight is None else weight,
                           expr=expr)

    @v_args(inline=True, meta=True)
    def ref_score_item(self, meta, ref, weight):
        return m.ScoreItem(span=self.span(meta), label="", weight=1.0 if weight is None else weight, expr=ref)

    @v_args(inline=True)
    def weight(self, tok):
        return self.number(tok)

    @v_args(inline=True, meta=True)
    def bands(self, meta, name, label, value, *bands):
        return m.Bands(span=self.span(meta), name=str(name), label=self.string(label), value=value, bands=tuple(bands))

    @v_args(inline=True, meta=True)
    def band(self, meta, name, label, op, threshold):
        return m.Band(span=self.span(meta), name=str(name), label=self.string(label), op=op, threshold=threshold)

    @v_args(inline=True, meta=True)
    def band_otherwise(self, meta, name, label):
        return m.Band(span=self.span(meta), name=str(name), label=self.string(label))

    @v_args(inline=True, meta=True)
    def levels(self, meta, name, label, *levels):
        ordered = tuple(lv for lv in levels if lv.condition is not None)
        fallbacks = [lv for lv in levels if lv.condition is None]
        for extra in fallbacks[1:]:
            self.sink.error("PW120", "a levels block has only one `otherwise` level", extra.span)
        for lv in levels:
            if lv.condition is not None and fallbacks and lv.span.line > fallbacks[0].span.line:
                self.sink.error("PW121", f"level {lv.number} comes after the `otherwise` level and can never be used",
                                lv.span, help="put the `otherwise` level last")
        return m.Levels(span=self.span(meta), name=str(name), label=self.string(label), levels=ordered,
                        fallback=fallbacks[0] if fallbacks else None)

    @v_args(inline=True, meta=True)
    def level(self, meta, number, label, body):
        return m.Level(span=self.span(meta), number=self._int(number), label=_unquote(label), condition=body)

    @v_args(inline=True, meta=True)
    def level_otherwise(self, meta, number, label):
        return m.Level(span=self.span(meta), number=self._int(number), label=_unquote(label))

    def _int(self, tok) -> int:
        return int(self.number(tok))

    # pathways
    @v_args(inline=True, meta=True)
    def pathway(self, meta, name, label, *parts):
        entries = [p for p in parts if isinstance(p, tuple)]
        for extra in entries[1:]:
            self.sink.error("PW122", "a pathway has only one `entry when` line", extra[1],
                            help="combine the conditions with `and` or `or`")
        return m.Pathway(span=self.span(meta), name=str(name), label=self.string(label),
                         entry=entries[0][0] if entries else None,
                         steps=tuple(p for p in parts if isinstance(p, m.Step)),
                         exits=tuple(p for p in parts if isinstance(p, m.Exit)))

    @v_args(inline=True, meta=True)
    def entry(self, meta, expr):
        return (expr, self.span(meta))

    @v_args(inline=True, meta=True)
    def step(self, meta, name, label, *parts):
        return m.Step(span=self.span(meta), name=str(name), label=self.string(label),
                      actions=tuple(p for p in parts if isinstance(p, m.Action)),
                      transitions=tuple(p for p in parts if isinstance(p, m.Transition)))

    @v_args(inline=True, meta=True)
    def on_event(self, meta, event, target):
        return m.Transition(span=self.span(meta), trigger="event", event=str(event), **target)

    @v_args(inline=True, meta=True)
    def on_condition(self, meta, cond, target):
        return m.Transition(span=self.span(meta), trigger="when", condition=cond, **target)

    @v_args(inline=True, meta=True)
    def on_timer(self, meta, delay, target):
        return m.Transition(span=self.span(meta), trigger="after", delay=delay, **target)

    @v_args(inline=True)
    def step_target(self, name):
        return {"target": str(name), "target_is_exit": False}

    @v_args(inline=True)
    def exit_target(self, name):
        return {"target": str(name), "target_is_exit": True}

    @v_args(inline=True, meta=True)
    def action(self, meta, label, timing, interval):
        return m.Action(span=self.span(meta), label=_unquote(label), timing=str(timing), interval=interval)

    @v_args(inline=True, meta=True)
    def exit_plain(self, meta, name, label):
        return m.Exit(span=self.span(meta), name=str(name), label=self.string(label))

    @v_args(inline=True, meta=True)
    def exit_event(self, meta, name, label, event):
        return m.Exit(span=self.span(meta), name=str(name), label=self.string(label), event=str(event))

    @v_args(inline=True, meta=True)
    def exit_condition(self, meta, name, label, cond):
        return m.Exit(span=self.span(meta), name=str(name), label=self.string(label), condition=cond)

    # care plans
    @v_args(inline=True, meta=True)
    def care_plan(self, meta, name, label, pathway, *sections):
        return m.CarePlan(span=self.span(meta), name=str(name), label=self.string(label),
                          pathway=str(pathway) if pathway else None, sections=tuple(sections))

    @v_args(inline=True, meta=True)
    def section(self, meta, kind, label, *items):
        return m.Section(span=self.span(meta), section=str(kind), label=self.string(label), items=tuple(items))

    @v_args(inline=True, meta=True)
    def plan_item(self, meta, text, role, cond):
        return m.PlanItem(span=self.span(meta), text=_unquote(text), role=self.string(role), condition=cond)

    # tests
    @v_args(inline=True, meta=True)
    def test(self, meta, name, *parts):
        fields: dict = {"as_of": None, "overrides": [], "facts": [], "expectations": []}
        for part in parts:
            key, value = part
            if key == "as_of":
                fields["as_of"] = value
            else:
                fields[key].extend(value)
        return m.ProtocolTest(span=self.span(meta), name=_unquote(name), as_of=fields["as_of"],
                              overrides=tuple(fields["overrides"]), facts=tuple(fields["facts"]),
                              expectations=tuple(fields["expectations"]))

    @v_args(inline=True)
    def test_as_of(self, date):
        self._check_date(date)
        return ("as_of", str(date))

    def _check_date(self, tok: Token) -> None:
        from .dates import check_date
        problem = check_date(str(tok))
        if problem:
            self.sink.error("PW105", problem, self.tspan(tok))

    @v_args(inline=True, meta=True)
    def test_with(self, meta, ref, value):
        return ("overrides", [m.Override(span=self.span(meta), parameter=ref.dotted, value=value)])

    @v_args(inline=True)
    def test_patient(self, *facts):
        return ("facts", list(facts))

    @v_args(inline=True, meta=True)
    def fact(self, meta, verb, *args):
        for arg in args:
            if isinstance(arg, Token) and arg.type == "DATE":
                self._check_date(arg)
        return m.Fact(span=self.span(meta), verb=str(verb), args=tuple(str(a) for a in args))

    @v_args(inline=True)
    def money_arg(self, number):
        return f"£{number}"

    @v_args(inline=True, meta=True)
    def test_expect(self, meta, ref, value):
        return ("expectations", [m.Expectation(span=self.span(meta), outcome=ref.dotted, value=value)])

    # expressions
    def _fold(self, meta, children, op_of):
        node = children[0]
        i = 1
        while i < len(children):
            op, right = op_of(children, i)
            i += 2 if isinstance(children[i], Token) and children[i].type in ("ADD_OP", "MUL_OP") else 1
            span = m.Span(line=node.span.line, column=node.span.column, end_line=right.span.end_line,
                          end_column=right.span.end_column, start=node.span.start, end=right.span.end)
            node = m.Binary(span=span, op=op, left=node, right=right)
        return node

    @v_args(meta=True)
    def or_expr(self, meta, children):
        return self._fold(meta, children, lambda ch, i: ("or", ch[i]))

    @v_args(meta=True)
    def and_expr(self, meta, children):
        return self._fold(meta, children, lambda ch, i: ("and", ch[i]))

    filter = or_expr
    filter_and = and_expr

    @v_args(meta=True)
    def sum(self, meta, children):
        return self._fold(meta, children, lambda ch, i: (str(ch[i]), ch[i + 1]))

    product = sum

    @v_args(inline=True, meta=True)
    def not_(self, meta, operand):
        return m.Not(span=self.span(meta), operand=operand)

    @v_args(inline=True, meta=True)
    def negate(self, meta, operand):
        if isinstance(operand, m.Quantity) and operand.value > 0:
            # a negative number is a value, so it can be a parameter's default
            return operand.model_copy(update={"span": self.span(meta), "value": -operand.value,
                                              "text": f"-{operand.text}"})
        return m.Negate(span=self.span(meta), operand=operand)

    @v_args(inline=True, meta=True)
    def compare(self, meta, left, op, right):
        return m.Compare(span=self.span(meta), op=op, left=left, right=right)

    @v_args(inline=True, meta=True)
    def in_top(self, meta, value, percent, group):
        pct = m.Quantity(span=self.tspan(percent), value=self.number(percent), unit="percent", text=str(percent))
        return m.InTop(span=self.span(meta), value=value, percent=pct, group=str(group))

    def ge(self, _):
        return ">="

    def gt(self, _):
        return ">"

    def le(self, _):
        return "<="

    def lt(self, _):
        return "<"

    def eq(self, _):
        return "="

    def ne(self, _):
        return "!="

    @v_args(inline=True, meta=True)
    def count(self, meta, source):
        return m.Aggregate(span=self.span(meta), op="count", source=source)

    @v_args(inline=True, meta=True)
    def any_(self, meta, source):
        return m.Aggregate(span=self.span(meta), op="any", source=source)

    @v_args(inline=True, meta=True)
    def no_(self, meta, source):
        return m.Aggregate(span=self.span(meta), op="no", source=source)

    @v_args(inline=True, meta=True)
    def attr_aggregate(self, meta, op, attribute, source):
        return m.Aggregate(span=self.span(meta), op=str(op), attribute=str(attribute), source=source)

    @v_args(inline=True, meta=True)
    def total_stay(self, meta, source):
        return m.Aggregate(span=self.span(meta), op="total_stay", source=source)

    @v_args(inline=True, meta=True)
    def per_period(self, meta, op, period, source):
        return m.PerPeriod(span=self.span(meta), op=str(op), period=period, source=source)

    @v_args(inline=True, meta=True)
    def percentile(self, meta, value, group):
        return m.Percentile(span=self.span(meta), value=value, group=str(group))

    @v_args(inline=True, meta=True)
    def items_met(self, meta, ref):
        return m.ItemsMet(span=self.span(meta), target=ref)

    @v_args(inline=True, meta=True)
    def where(self, meta, source, cond):
        return m.Filter(span=self.span(meta), source=source, condition=cond)

    @v_args(meta=True)
    def in_last(self, meta, children):
        # `within 90 days` and `in the last 90 days` mean the same; keep the author's words
        phrase = "in the last" if len(children) == 3 else "within"
        return m.Window(span=self.span(meta), source=children[0], mode="last", amount=children[-1], phrase=phrase)

    @v_args(inline=True, meta=True)
    def between(self, meta, source, start, end):
        return m.Window(span=self.span(meta), source=source, mode="between", start=start, end=end)

    @v_args(inline=True, meta=True)
    def before(self, meta, source, start):
        return m.Window(span=self.span(meta), source=source, mode="before", start=start)

    @v_args(inline=True, meta=True)
    def after(self, meta, source, start):
        return m.Window(span=self.span(meta), source=source, mode="after", start=start)

    @v_args(inline=True, meta=True)
    def attr_compare(self, meta, name, op, value):
        attr = m.Ref(span=self.tspan(name), name=str(name))
        return m.Compare(span=self.span(meta), op=op, left=attr, right=value)

    @v_args(inline=True, meta=True)
    def attr_in(self, meta, name, ref):
        return m.InValueSet(span=self.span(meta), attribute=str(name), value_set=ref)

    @v_args(inline=True, meta=True)
    def quantity(self, meta, number, unit):
        return m.Quantity(span=self.span(meta), value=self.number(number),
                          unit=_UNITS[str(unit)] if unit else "count", text=str(number))

    @v_args(inline=True, meta=True)
    def percent(self, meta, number):
        return m.Quantity(span=self.span(meta), value=self.number(number), unit="percent", text=str(number))

    @v_args(inline=True, meta=True)
    def money(self, meta, number):
        return m.Quantity(span=self.span(meta), value=self.number(number), unit="gbp", text=str(number))

    @v_args(inline=True, meta=True)
    def text(self, meta, tok):
        return m.Text(span=self.span(meta), value=_unquote(tok))

    @v_args(inline=True, meta=True)
    def date(self, meta, tok):
        from .dates import check_date
        problem = check_date(str(tok))
        if problem:
            self.sink.error("PW105", problem, self.tspan(tok))
        precision = {10: "day", 7: "month"}.get(len(tok), "year")
        return m.DateLiteral(span=self.span(meta), value=str(tok), precision=precision)

    @v_args(inline=True, meta=True)
    def ago(self, meta, amount):
        return m.Ago(span=self.span(meta), amount=amount)

    @v_args(inline=True, meta=True)
    def ref(self, meta, first, second):
        if second is None:
            return m.Ref(span=self.span(meta), name=str(first))
        return m.Ref(span=self.span(meta), name=str(second), namespace=str(first))

    @v_args(meta=True)
    def true(self, meta, _children):
        return m.Boolean(span=self.span(meta), value=True)

    @v_args(meta=True)
    def false(self, meta, _children):
        return m.Boolean(span=self.span(meta), value=False)

    @v_args(inline=True)
    def start(self, statement):
        return statement


def _trim_end(chunk: str, start: int, end: int) -> int:
    """Move a span's end back over trailing blank lines and comment lines."""
    while True:
        while end > start and chunk[end - 1] in " \t\r\n":
            end -= 1
        line_start = chunk.rfind("\n", start, end) + 1
        if line_start > start and chunk[line_start:end].lstrip().startswith("#"):
            end = line_start
            continue
        return end


# --- errors ---------------------------------------------------------------------

_FRIENDLY = {
    "NAME": "a name", "STRING": "text in double quotes", "NUMBER": "a number", "INT": "a whole number",
    "DATE": "a date (YYYY-MM-DD)", "UNIT": "a unit (days, weeks, months, years, GBP)", "_NL": "the end of the line",
    "_INDENT": "an indented block", "_DEDENT": "the end of the block", "$END": "the end of the file",
    "CODE": "a code", "IN_THE_LAST": "`in the last`", "ADD_OP": "`+` or `-`", "MUL_OP": "`*` or `/`",
    "DEFINE_KW": "`define` or `criterion`", "AGG_OP": "`sum`, `min`, `max`, `latest` or `earliest`",
    "PERIOD_OP": "`lowest`, `highest` or `average`", "ACTION_TIMING": "`within` or `every`",
}


def _friendly(term: str) -> str:
    if term in _FRIENDLY:
        return _FRIENDLY[term]
    try:
        pattern = _lark().get_terminal(term).pattern
    except KeyError:
        return term.lower()
    return f"`{pattern.value}`" if pattern.type == "str" else term.lower()


def _describe_token(tok: Token) -> str:
    if tok.type in ("_NL", "$END", "_DEDENT", "_INDENT"):
        return {"_NL": "end of line", "$END": "end of the statement",
                "_DEDENT": "end of the block", "_INDENT": "indented line"}[tok.type]
    text = str(tok)
    return f"`{text[:30]}`"


#: The words a top-level statement starts with.
STATEMENT_WORDS = ("protocol", "uses", "outcomes", "parameter", "codes", "define", "criterion", "score",
                   "bands", "levels", "pathway", "care", "test")

#: Terminals that can start a value; an error expecting all of them says "a value".
_VALUE_STARTS = {"AGG_OP", "ANY", "COUNT", "DATE", "FALSE", "ITEMS", "LPAR", "MINUS", "NAME", "NO", "NOT",
                 "NUMBER", "PERCENTILE", "PERIOD_OP", "STRING", "TOTAL", "TRUE"}

#: Help for characters the language does not use, keyed by the character.
_CHARACTER_HELP = {
    "{": "blocks are not written with braces: indent the lines under a line that ends with `:`",
    "}": "blocks are not written with braces: indent the lines under a line that ends with `:`",
    "[": "lists are not written with brackets: put each item on its own indented line",
    "]": "lists are not written with brackets: put each item on its own indented line",
    "&": "write `and`",
    "|": "write `or`",
    "!": "write `not`, or `is not` to compare",
    ";": "put each statement on its own line",
    "'": 'write text in double quotes: `"like this"`',
    "$": "write amounts of money in pounds: `£100`",
    "@": "remove it; comparisons are written in words, e.g. `age at least 65 years`",
    "\u201c": 'write text in plain double quotes `"`; word processors change them to curly quotes',
    "\u201d": 'write text in plain double quotes `"`; word processors change them to curly quotes',
    "\u2018": 'write text in plain double quotes `"`; word processors change them to curly quotes',
    "\u2019": 'write text in plain double quotes `"`; word processors change them to curly quotes',
    "\u2013": "write a plain `-`",
    "\u2014": "write a plain `-`",
}

#: Names of characters that cannot be seen.
_INVISIBLE = {"\u00a0": "a non-breaking space", "\ufeff": "a byte order mark", "\u200b": "a zero-width space",
              "\r": "a carriage return"}

_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def _expected_text(expected: set[str]) -> str | None:
    terms = {t for t in expected if not t.startswith("__")}
    words = []
    if {"NAME", "NUMBER"} <= terms:
        terms -= _VALUE_STARTS
        words.append("a value (a number with its unit, a name, or text in quotes)")
    words.extend(sorted({_friendly(t) for t in terms}))
    if not words:
        return None
    shown = ", ".join(words[:6]) + (", ..." if len(words) > 6 else "")
    return f"expected {shown}"


def _unclosed_paren(chunk: str) -> int | None:
    """The position of a `(` that is never closed, if any (text and comments skipped)."""
    opened: list[int] = []
    i = 0
    while i < len(chunk):
        c = chunk[i]
        if c == '"':
            close = re.compile(r'(?:[^"\\\n]|\\.)*"').match(chunk, i + 1)
            i = close.end() if close else i + 1
            continue
        if c == "#":
            nl = chunk.find("\n", i)
            i = len(chunk) if nl < 0 else nl
            continue
        if c == "(":
            opened.append(i)
        elif c == ")" and opened:
            opened.pop()
        i += 1
    return opened[-1] if opened else None


def _chunk_span(chunk: str, at: int, lines: int, pos: int, width: int = 1) -> m.Span:
    line = chunk.count("\n", 0, at) + 1 + lines
    column = at - (chunk.rfind("\n", 0, at) + 1) + 1
    return m.Span(line=line, column=column, end_line=line, end_column=column + width, start=pos + at,
                  end=pos + at + width)


def _syntax_error(exc: Exception, sink: Sink, lines: int, pos: int, chunk: str) -> None:
    if isinstance(exc, UnexpectedCharacters):
        char = chunk[exc.pos_in_stream] if exc.pos_in_stream < len(chunk) else ""
        span = m.Span(line=exc.line + lines, column=exc.column, end_line=exc.line + lines,
                      end_column=exc.column + 1, start=exc.pos_in_stream + pos, end=exc.pos_in_stream + pos + 1)
        if char == '"':
            sink.error("PW102", "this text has no closing quote", span,
                       help='add a `"` at the end of the text, on the same line')
        elif char.isalpha() and char.isupper():
            sink.error("PW103", "names are written in lower case", span,
                       help="write names with lower-case letters, digits and `_`, e.g. `active_ltcs`")
        elif char.isprintable() and char.strip():
            sink.error("PW101", f"`{char}` is not allowed here", span,
                       help=_CHARACTER_HELP.get(char, "remove it"))
        else:
            name = _INVISIBLE.get(char, f"U+{ord(char):04X}" if char else "")
            sink.error("PW101", f"an invisible character ({name}) is not allowed here", span,
                       help="delete it and type a plain space if one is needed; such characters often come "
                            "from text copied out of a web page or a word processor")
        return
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        line = (tok.line or 1) + lines
        col = tok.column or 1
        end_col = tok.end_column if tok.end_line == tok.line and tok.end_column else col + 1
        start = (tok.start_pos or 0) + pos
        if tok.type in ("_NL", "_DEDENT", "_INDENT", "$END"):
            end_col = col + 1
        span = m.Span(line=line, column=col, end_line=line, end_column=end_col, start=start, end=start + 1)
        expected = set(exc.expected)
        text = str(tok)
        if tok.type in ("_NL", "_DEDENT", "$END"):
            paren = _unclosed_paren(chunk)
            if paren is not None:
                sink.error("PW100", "this `(` is never closed", _chunk_span(chunk, paren, lines, pos),
                           help="add a `)` where the part in brackets ends")
            elif expected == {"COLON"}:
                sink.error("PW100", "a `:` is missing at the end of this line", span,
                           help='a line that names a definition, or opens a block, ends with `:`, '
                                'e.g. `define frail "Frail":`')
            elif expected == {"_INDENT"}:
                sink.error("PW100", "this line ends with `:` but no indented lines follow it", span,
                           help="write what it means after the `:`, or on lines indented under it")
            else:
                sink.error("PW100", "this line ends too early", span, help=_expected_text(expected))
            return
        if tok.type in ("NAME", "CODE") and tok.line == 1 and tok.column == 1:
            if text.lower() in STATEMENT_WORDS:
                sink.error("PW103", f"`{text}` is written in lower case", span, help=f"write `{text.lower()}`")
            else:
                sink.error("PW100", f"`{text[:30]}` does not start a statement", span,
                           help=did_you_mean(text, STATEMENT_WORDS)
                           or "statements start with " + ", ".join(f"`{w}`" for w in STATEMENT_WORDS))
            return
        if "COLON" in expected and len(expected - {"_NL", "COLON"}) <= 1 and tok.start_pos \
                and chunk[tok.start_pos - 1] in " \t":
            sink.error("PW100", f"a `:` is missing before `{text[:30]}`", span,
                       help="write `:` between a name or label and what it means, "
                            'e.g. `"aged 80 or over": age at least 80 years`')
            return
        if tok.type == "CODE" and "NAME" in expected and text != text.lower():
            sink.error("PW103", "names are written in lower case", span,
                       help=f"write `{text.lower()}`" if _NAME.fullmatch(text.lower())
                       else "write names with lower-case letters, digits and `_`, e.g. `active_ltcs`")
            return
        sink.error("PW100", f"unexpected {_describe_token(tok)}", span, help=_expected_text(expected))
        return
    if isinstance(exc, UnexpectedEOF):
        sink.error("PW100", "the statement ends too early", m.Span(line=lines + 1, column=1, end_line=lines + 1,
                                                                    end_column=2, start=pos, end=pos + 1))
        return
    sink.error("PW100", "this statement could not be read", m.Span(line=lines + 1, column=1, end_line=lines + 1,
                                                                    end_column=2, start=pos, end=pos + 1))


def _depth(tree: Tree) -> int:
    """The depth of a parse tree, without recursion."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        for child in node.children:
            if isinstance(child, Tree):
                stack.append((child, d + 1))
    return deepest


_DECLARES = re.compile(r"^(?:define|criterion|parameter|codes|score|bands|levels|pathway|care\s+plan)\s+"
                       r"([a-z_][a-z0-9_]*)")


def parse(source: str, sink: Sink) -> Syntax:
    """Parse a whole file, statement by statement, reporting into ``sink``."""
    syntax = Syntax(source=source, comments=scan_comments(source))
    if "\x00" in source:
        at = source.index("\x00")
        line = source.count("\n", 0, at) + 1
        column = at - (source.rfind("\n", 0, at) + 1) + 1
        sink.error("PW106", "this file contains a NUL character (code 0), so it is not a protocol text",
                   m.Span(line=line, column=column, end_line=line, end_column=column + 1, start=at, end=at + 1),
                   help="protocol files are plain UTF-8 text; was another kind of file saved as `.pw`?")
        syntax.failed_chunks += 1
        return syntax
    lines = source.split("\n")
    offsets = [0]
    for ln in lines:
        offsets.append(offsets[-1] + len(ln) + 1)
    docs = {c.line: c.text for c in syntax.comments if c.own_line and c.text.startswith("##") and c.column == 1}
    parser = _lark()
    chunks = _chunks(lines)
    words = [lines[first].split(None, 1)[0] if lines[first].strip() else "" for first, _ in chunks]
    skip = previous_failed = False
    for k, (first, last) in enumerate(chunks):
        chunk = "\n".join(lines[first:last + 1]) + "\n"
        try:
            tree = parser.parse(chunk)
        except (UnexpectedInput, DedentError) as exc:
            syntax.failed_chunks += 1
            declared = _DECLARES.match(lines[first])
            if declared:
                syntax.broken_names.add(declared.group(1))
            # One mistake, one error: the lines of a block written without indenting
            # them, or a closing brace left over from a statement that failed.
            if skip or (previous_failed and words[k][:1] in ("}", "]", ")")):
                skip = False
                continue
            previous_failed = True
            if isinstance(exc, UnexpectedToken) and exc.token.type == "$END" and set(exc.expected) <= {"_INDENT"} \
                    and k + 1 < len(chunks) and words[k + 1] not in STATEMENT_WORDS:
                line = chunks[k + 1][0]
                sink.error("PW107", "this line should be indented under the line above it",
                           m.Span(line=line + 1, column=1, end_line=line + 1, end_column=len(lines[line]) + 1,
                                  start=offsets[line], end=offsets[line] + len(lines[line])),
                           labels=[Label(span=m.Span(line=last + 1, column=len(lines[last].rstrip()),
                                                     end_line=last + 1, end_column=len(lines[last].rstrip()) + 1),
                                         message="this line ends with `:`, so the lines below it must be indented")],
                           help="indent the lines of a block by two spaces more than the line that ends with `:`")
                skip = True
                continue
            if isinstance(exc, DedentError):
                sink.error("PW107", "this line's indentation does not match any block above it",
                           _dedent_span(chunk, first, offsets[first]),
                           help="indent it to line up with the lines of its block")
            else:
                _syntax_error(exc, sink, first, offsets[first], chunk)
            continue
        skip = previous_failed = False
        depth = _depth(tree)
        if depth > MAX_DEPTH * 4:
            syntax.failed_chunks += 1
            sink.error("PW108", "this statement is nested too deeply to read",
                       m.Span(line=first + 1, column=1, end_line=first + 1, end_column=2, start=offsets[first]),
                       help="split it into named definitions")
            continue
        try:
            node = _Build(sink, first, offsets[first], chunk).transform(tree)
        except (RecursionError, VisitError) as exc:
            if isinstance(exc, VisitError) and not isinstance(exc.orig_exc, RecursionError):
                raise
            syntax.failed_chunks += 1
            sink.error("PW108", "this statement is nested too deeply to read",
                       m.Span(line=first + 1, column=1, end_line=first + 1, end_column=2, start=offsets[first]),
                       help="split it into named definitions")
            continue
        if isinstance(node, m.Node) and node_depth(node) > MAX_DEPTH:
            syntax.failed_chunks += 1
            sink.error("PW108", f"this statement nests more than {MAX_DEPTH} levels deep",
                       m.Span(line=first + 1, column=1, end_line=first + 1, end_column=2, start=offsets[first]),
                       help="split it into named definitions and combine those")
            continue
        doc_lines = []
        above = first  # 1-based line number of the line just above the statement
        while above in docs:
            doc_lines.insert(0, docs[above][2:].strip())
            above -= 1
        if doc_lines and isinstance(node, (m.Decl, m.Header)):
            node = node.model_copy(update={"doc": "\n".join(doc_lines)})
        syntax.statements.append(Statement(node, first + 1, last + 1))
    return syntax


def _dedent_span(chunk: str, first: int, offset: int) -> m.Span:
    """The first line whose indentation matches no open block."""
    levels = [0]
    for i, ln in enumerate(chunk.split("\n")):
        if not ln.strip() or ln.lstrip().startswith("#"):
            continue
        indent = len(ln.expandtabs(8)) - len(ln.expandtabs(8).lstrip())
        if indent > levels[-1]:
            levels.append(indent)
        elif indent < levels[-1]:
            while levels and indent < levels[-1]:
                levels.pop()
            if not levels or levels[-1] != indent:
                return m.Span(line=first + i + 1, column=1, end_line=first + i + 1, end_column=indent + 1,
                              start=offset)
    return m.Span(line=first + 1, column=1, end_line=first + 1, end_column=2, start=offset)
