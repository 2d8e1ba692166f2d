"""Parse tree -> model nodes: the Lark transformer.

Each rule builds a frozen model node carrying its source span (ids come
later, in lowering). Problems only visible here (an impossible date, a
number too long, an unknown header field) go to the sink; building carries on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lark import Token, Transformer, v_args

from pathways import model as m

from .diagnostics import Sink

#: Longer numbers are refused (a float has about 15 significant digits).
MAX_NUMBER_DIGITS = 15


@dataclass(frozen=True)
class Outcomes:
    span: m.Span
    names: tuple[tuple[str, m.Span], ...]




_UNITS = {"day": "days", "days": "days", "week": "weeks", "weeks": "weeks", "month": "months",
          "months": "months", "year": "years", "years": "years", "GBP": "gbp"}
_ESCAPE = re.compile(r"\\(.)")


def _unquote(token: str) -> str:
    return _ESCAPE.sub(lambda mt: mt.group(1), token[1:-1])


class BuildModel(Transformer):
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
        given: dict[str, m.Span] = {}
        for key, items, fspan in fields:
            if key in given:
                from .diagnostics import Label
                self.sink.error("PW112", f"`{key}` is given twice", fspan,
                                labels=[Label(span=given[key], message="first given here")],
                                help="keep one of them")
                continue
            given[key] = fspan
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
                          pathway=pathway.dotted if pathway else None, sections=tuple(sections))

    @v_args(inline=True, meta=True)
    def section(self, meta, kind, label, *items):
        return m.Section(span=self.span(meta), section=str(kind), label=self.string(label), items=tuple(items))

    @v_args(inline=True, meta=True)
    def plan_item(self, meta, text, role, cond):
        return m.PlanItem(span=self.span(meta), text=_unquote(text), role=self.string(role), condition=cond)

    # tests
    @v_args(inline=True, meta=True)
    def test(self, meta, name, *parts):
        fields: dict = {"as_of": None, "overrides": [], "facts": [], "expectations": [], "reasons": [],
                        "lists": [], "steps": [], "ranked_among": [], "patient": None}
        flat = [p for part in parts for p in (part if isinstance(part, list) else [part])]
        for key, value in flat:
            if key == "as_of":
                if fields["as_of"] is not None:
                    self.sink.error("PW113", "a test has one `as of` date", self.span(meta),
                                    help=f"this test already says `as of {fields['as_of']}`")
                fields["as_of"] = value
            elif key == "patient":
                if value is not None:
                    fields["patient"] = value
            else:
                fields[key].extend(value)
        return m.ProtocolTest(span=self.span(meta), name=_unquote(name), as_of=fields["as_of"],
                              overrides=tuple(fields["overrides"]), facts=tuple(fields["facts"]),
                              expectations=tuple(fields["expectations"]), reasons=tuple(fields["reasons"]),
                              lists=tuple(fields["lists"]), steps=tuple(fields["steps"]),
                              ranked_among=tuple(fields["ranked_among"]), patient=fields["patient"])

    @v_args(inline=True, meta=True)
    def shared_patient(self, meta, name, label, *facts):
        return m.ProtocolTest(span=self.span(meta), name=str(name), label=self.string(label),
                              facts=tuple(facts), shared=True)

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

    def test_patient(self, children):
        name, *facts = children
        return [("patient", str(name) if name is not None else None), ("facts", list(facts))]

    @v_args(inline=True)
    def test_patient_named(self, name):
        return [("patient", str(name))]

    @v_args(inline=True, meta=True)
    def fact(self, meta, *words):
        # dates and everything else in a fact are checked by dsl.facts, which reads facts
        verb, *args = (str(w) for w in words)
        return m.Fact(span=self.span(meta), verb=verb, args=tuple(args))

    @v_args(inline=True)
    def dotted_arg(self, alias, name):
        return f"{alias}.{name}"

    @v_args(inline=True)
    def test_ranked(self, *numbers):
        return ("ranked_among", [self.number(n) for n in numbers])

    @v_args(inline=True, meta=True)
    def test_expect_unknown(self, meta, ref):
        return ("expectations", [m.Expectation(span=self.span(meta), outcome=ref.dotted, value=None)])

    @v_args(inline=True, meta=True)
    def test_reason(self, meta, what, within, state):
        label = _unquote(what) if isinstance(what, Token) else None
        name = what.dotted if isinstance(what, m.Ref) else None
        return ("reasons", [m.ReasonExpectation(span=self.span(meta), label=label, name=name,
                                                within=str(within) if within is not None else None,
                                                state=state)])

    def met(self, _):
        return "met"

    def not_met(self, _):
        return "not_met"

    def unknown_state(self, _):
        return "unknown"

    @v_args(inline=True)
    def money_arg(self, number):
        return f"£{number}"

    def _level(self, tok: Token) -> int:
        value = self.number(tok)
        if not float(value).is_integer():
            self.sink.error("PW812", f"{tok} is not a level: levels are whole numbers", self.tspan(tok),
                            help=f"write the level's number, such as {int(value)}")
        return int(value)

    @v_args(inline=True, meta=True)
    def test_expect_includes(self, meta, ref, level):
        return ("lists", [m.ListExpectation(span=self.span(meta), outcome=ref.dotted, op="includes",
                                            level=self._level(level))])

    @v_args(inline=True, meta=True)
    def test_expect_excludes(self, meta, ref, level):
        return ("lists", [m.ListExpectation(span=self.span(meta), outcome=ref.dotted, op="excludes",
                                            level=self._level(level))])

    @v_args(inline=True, meta=True)
    def test_expect_empty(self, meta, ref):
        return ("lists", [m.ListExpectation(span=self.span(meta), outcome=ref.dotted, op="empty")])

    @v_args(inline=True, meta=True)
    def test_expect_at_step(self, meta, ref, name):
        return ("steps", [m.StepExpectation(span=self.span(meta), pathway=ref.dotted, at="step", name=str(name))])

    @v_args(inline=True, meta=True)
    def test_expect_at_exit(self, meta, ref, name):
        return ("steps", [m.StepExpectation(span=self.span(meta), pathway=ref.dotted, at="exit", name=str(name))])

    @v_args(inline=True, meta=True)
    def test_expect_not_on(self, meta, ref):
        return ("steps", [m.StepExpectation(span=self.span(meta), pathway=ref.dotted, at="not_on")])

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
    def possible_levels(self, meta, ref):
        return m.PossibleLevels(span=self.span(meta), target=ref)

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
