"""Type checking: true/false, numbers with their dimension, dates, lists of items.

Durations (days, weeks, months, years), money (GBP) and plain counts are
different dimensions: comparing days with GBP is an error, and so is
comparing ``age`` with a bare ``65`` (the fix is to write ``65 years``).
A wrong sub-expression gets the type ``unknown`` so one mistake is reported
once, not again by every expression that contains it.
"""

from __future__ import annotations


from pathways import model as m
from pathways import schema
from pathways.schema import BOOL, COUNT, DATE, DURATION, PERCENT, TEXT, UNKNOWN, Type

from .diagnostics import did_you_mean
from .syntax_errors import date_like
from .resolve import PLACEHOLDER, lookup, name_span, report_unknown
from .unit import Unit

LEVEL = Type("level")
VALUE_SET = Type("value_set")

_CMP_WORDS = {">=": "at least", ">": "more than", "<=": "at most", "<": "less than", "=": "is", "!=": "is not"}


def _is_number(t: Type) -> bool:
    return t.base == "number" or t.base == "level"


def _dim(t: Type) -> str:
    return "count" if t.base == "level" else t.detail


class Checker:
    def __init__(self, unit: Unit):
        self.unit = unit
        self.sink = unit.sink
        self.visiting: set[str] = set()

    # --- declarations -------------------------------------------------------
    def decl_type(self, unit: Unit, name: str) -> Type:
        if name in unit.types:
            return unit.types[name]
        if unit is not self.unit:
            return UNKNOWN  # imported units were checked on their own
        decl = unit.decls.get(name)
        if decl is None or name in self.visiting:
            return UNKNOWN
        self.visiting.add(name)
        try:
            t = self.check_decl(decl)
        finally:
            self.visiting.discard(name)
        unit.types[name] = t
        return t

    def check_decl(self, decl: m.Decl) -> Type:
        if isinstance(decl, m.Parameter):
            if not isinstance(decl.default, (m.Quantity, m.Text, m.Boolean, m.DateLiteral)):
                # `= 01/02/2024` reads as a sum (1 / 2 / 2024): say how dates are written
                at = decl.default.span
                found = date_like(self.unit.source[at.start:].split("\n", 1)[0], 0) if at.end > at.start else None
                self.sink.error("PW320", f"the default of parameter `{decl.name}` must be a plain value",
                                decl.default.span,
                                help=f"`{found[1]}` is not read as a date: {found[2]}" if found
                                else "write a number with its unit, a date, text, true or false")
                return UNKNOWN
            return self.expr(decl.default)
        if isinstance(decl, m.ValueSet):
            return VALUE_SET
        if isinstance(decl, m.Definition):
            t = self.expr(decl.expr)
            if decl.criterion and t not in (BOOL, UNKNOWN):
                self.sink.error("PW310", f"criterion `{decl.name}` must be true or false, but it is {_a(t)}",
                                decl.expr.span,
                                help="compare it with something, e.g. `... at least 2`, or use `define` for a value "
                                     "that is not true/false" if _is_number(t)
                                else "use `define` for values that are not true/false")
            return t
        if isinstance(decl, m.Score):
            for item in decl.items:
                self.expect(item.expr, BOOL, "a score item")
            return COUNT
        if isinstance(decl, m.Bands):
            value = self.expr(decl.value)
            if value is not UNKNOWN and not _is_number(value):
                self.sink.error("PW330", f"bands divide a number, but this is a {value}", decl.value.span)
            for band in decl.bands:
                if band.threshold is not None:
                    t = self.expr(band.threshold)
                    if value is not UNKNOWN and t is not UNKNOWN and _is_number(value) and _is_number(t) \
                            and _dim(t) != _dim(value):
                        self._unit_mismatch(band.threshold, value, t)
            return Type("symbol", f"band:{decl.name}")
        if isinstance(decl, m.Levels):
            numbers: dict[int, m.Level] = {}
            for level in (*decl.levels, *([decl.fallback] if decl.fallback else [])):
                if level.number in numbers:
                    from .diagnostics import Label
                    self.sink.error("PW340", f"level {level.number} is used twice", level.span,
                                    labels=[Label(span=numbers[level.number].span, message="first used here")],
                                    help="give each level its own number")
                numbers.setdefault(level.number, level)
                if level.condition is not None:
                    self.expect(level.condition, BOOL, f"the condition of level {level.number}")
            if decl.fallback is None:
                self.sink.error("PW341", f"levels `{decl.name}` have no `otherwise` level for patients who match "
                                "none of them", name_span(self.unit, decl),
                                help='add a last line such as `otherwise level 0 "No long term condition"`')
            return LEVEL
        if isinstance(decl, m.Pathway):
            if decl.entry is not None:
                self.expect(decl.entry, BOOL, "the entry condition")
            for step in decl.steps:
                for action in step.actions:
                    self.timing(action.interval, f"the time in `{action.timing}`")
                for t in step.transitions:
                    if t.condition is not None:
                        self.expect(t.condition, BOOL, "a `when` transition")
                    if t.delay is not None:
                        self.timing(t.delay, "the time in `after`")
            for exit_ in decl.exits:
                if exit_.condition is not None:
                    self.expect(exit_.condition, BOOL, "an exit condition")
            return Type("pathway")
        if isinstance(decl, m.CarePlan):
            for section in decl.sections:
                for item in section.items:
                    self.check_placeholders(item)
                    if item.condition is not None:
                        self.expect(item.condition, BOOL, "a care-plan item's `when`")
            return Type("care_plan")
        if isinstance(decl, m.ProtocolTest):
            self.check_test(decl)
            return Type("test")
        return UNKNOWN

    def timing(self, e: m.Quantity | m.Ref, what: str) -> None:
        """A pathway time is a written duration or a duration parameter: the same
        for every patient, so a worklist can date what is due without evaluating anyone."""
        if isinstance(e, m.Ref):
            target = self.unit.targets.get(id(e)) or lookup(self.unit, e)
            if target is None or target == "broken":
                self.expect(e, DURATION, what)  # reports the unknown name once
                return
            kind, _, rest = target.partition(":")
            owner = self.unit if kind == "decl" else self.unit.imports.get(rest.partition(":")[0])
            decl = owner.decls.get(e.name) if owner is not None else None
            if not isinstance(decl, m.Parameter):
                kinds = {"value_set": "a code list", "bands": "a set of bands", "levels": "a set of levels",
                         "score": "a score", "pathway": "a pathway", "care_plan": "a care plan"}
                if isinstance(decl, m.Definition):
                    what_it_is = "a criterion" if decl.criterion else "a definition, worked out for each patient"
                else:
                    what_it_is = {"patient": "a fact about the patient", "collection": "a list in the record"}.get(
                        kind) or kinds.get(getattr(decl, "kind", ""), "not a parameter")
                self.sink.error("PW300", f"{what} must be a duration or a duration parameter, but `{e.dotted}` is "
                                f"{what_it_is}", e.span,
                                help="a pathway time is the same for every patient: write it, e.g. `3 months`, or "
                                     'declare a parameter, e.g. `parameter review_interval "Review interval" = '
                                     '3 months`, and write its name here')
                return
        self.expect(e, DURATION, what)

    def check_placeholders(self, item: m.PlanItem) -> None:
        """``{name}`` in care-plan text must name a value that can be written out."""
        for match in PLACEHOLDER.finditer(item.text):
            ns, _, base = match.group(1).rpartition(".")
            ref = m.Ref(span=item.span, name=base, namespace=ns or None)
            if lookup(self.unit, ref) is None:
                continue  # reported by the resolver
            t = self._ref(ref, None, None)
            if t.base in ("list", "value_set", "pathway", "care_plan", "test"):
                self.sink.error("PW254", f"`{{{match.group(1)}}}` is {_a(t)}, which cannot be written into text",
                                item.span, help="name a number, date, true/false or text instead, e.g. a `count`")

    def check_test(self, test: m.ProtocolTest) -> None:
        for o in test.overrides:
            ns, _, base = o.parameter.rpartition(".")
            owner = self.unit if not ns else self.unit.imports.get(ns)
            if owner is None or base not in owner.decls:
                continue
            self.expect(o.value, self.decl_type(owner, base), f"parameter `{o.parameter}`", symbols_of=None)
        for e in test.expectations:
            ns, _, base = e.outcome.rpartition(".")
            owner = self.unit if not ns else self.unit.imports.get(ns)
            if owner is None or base not in owner.decls or e.value is None:  # None: `is unknown`
                continue
            want = self.decl_type(owner, base)
            self.expect(e.value, want, f"the expected `{e.outcome}`", symbols_of=want)
        for reason in test.reasons:
            if reason.name is None:
                continue
            ns, _, base = reason.name.rpartition(".")
            owner = self.unit if not ns else self.unit.imports.get(ns)
            if owner is None or base not in owner.decls:
                continue
            got = self.decl_type(owner, base)
            if got not in (BOOL, UNKNOWN):
                self.sink.error("PW807", f"`{reason.name}` is {_a(got)}, so it cannot be met or not met",
                                reason.span, help=f"write `expect {reason.name} is VALUE` instead")
        from .checktests import check_test_parts
        check_test_parts(self.unit, test)

    # --- expressions ----------------------------------------------------------
    def expect(self, expr: m.Expr, want: Type, what: str, symbols_of: Type | None = None) -> None:
        got = self.expr(expr, symbols_of=symbols_of)
        if UNKNOWN in (got, want) or got == want:
            return
        if _is_number(got) and _is_number(want) and _dim(got) == _dim(want):
            return
        if _is_number(got) and _is_number(want):
            self._unit_mismatch(expr, want, got)
            return
        hint = None
        if want == DATE and expr.span.end > expr.span.start:
            # `after 01/04/2023` reads as `(... after 01) / 04 / 2023`: say how dates are written
            rest = self.unit.source[expr.span.start:].split("\n", 1)[0]
            found = date_like(rest, 0)
            hint = f"`{found[1]}` is not read as a date: {found[2]}" if found else None
        self.sink.error("PW300", f"{what} must be {_a(want)}, but this is {_a(got)}", expr.span, help=hint)

    def _unit_mismatch(self, expr: m.Expr, want: Type, got: Type) -> None:
        hint = {"duration": "write a duration, e.g. `12 months`",
                "gbp": "write an amount in pounds, e.g. `£100`"}.get(want.detail)
        param = self._parameter(expr)
        if param is not None and want.detail == "duration":
            value = _value_text(param.default)
            if isinstance(param.default, m.Quantity) and param.default.unit == "count":
                hint = f"`{expr.dotted}` is a parameter with the value {value}, a number: give its value a unit, " \
                       f"e.g. `parameter {expr.name} = {value} months`"
            else:
                hint = f"`{expr.dotted}` is a parameter with the value {value}; use a parameter whose value is a " \
                       "duration, e.g. `parameter review_interval = 3 months`"
        if isinstance(expr, m.Quantity) and got == COUNT:
            unit = {"duration": "years", "gbp": "GBP"}.get(want.detail)
            if unit == "GBP":
                hint = f"write the amount in pounds: `£{expr.text or expr.value:g}`" if not expr.text else \
                    f"write the amount in pounds: `£{expr.text}`"
            elif unit:
                hint = f"write the unit, e.g. `{expr.text or expr.value} {unit}` or `{expr.text or expr.value} months`"
        self.sink.error("PW301", f"this is {_a(got)} where {_a(want)} is needed", expr.span, help=hint)

    def _parameter(self, e: m.Expr) -> m.Parameter | None:
        """The parameter a name refers to, if it is one."""
        if not isinstance(e, m.Ref):
            return None
        target = self.unit.targets.get(id(e)) or ""
        kind, _, rest = target.partition(":")
        if kind == "decl":
            decl = self.unit.decls.get(rest)
        elif kind == "import":
            owner = self.unit.imports.get(rest.partition(":")[0])
            decl = owner.decls.get(e.name) if owner is not None else None
        else:
            return None
        return decl if isinstance(decl, m.Parameter) else None

    def expr(self, e: m.Expr, item: str | None = None, symbols_of: Type | None = None) -> Type:
        method = getattr(self, f"_{e.kind}")
        return method(e, item, symbols_of)

    def _quantity(self, e, item, sym):
        return schema.UNIT_TYPES[e.unit]

    def _text(self, e, item, sym):
        return TEXT

    def _boolean(self, e, item, sym):
        return BOOL

    def _date(self, e, item, sym):
        return DATE

    def _ref(self, e: m.Ref, item, sym):
        if sym is not None and sym.base == "symbol" and e.namespace is None:
            members = self.symbols(sym)
            if e.name in members:
                self.unit.targets[id(e)] = f"symbol:{e.name}"
                return sym
        if item is not None and e.namespace is None and e.name in schema.ITEM_ATTRIBUTES[item]:
            self.unit.targets[id(e)] = f"attribute:{e.name}"
            return schema.ITEM_ATTRIBUTES[item][e.name]
        target = self.unit.targets.get(id(e)) or lookup(self.unit, e)
        if target is None:
            if sym is not None and sym.base == "symbol":
                members = self.symbols(sym)
                what = f"the bands of `{sym.detail[5:]}`" if sym.detail.startswith("band:") else f"the values of {sym}"
                self.sink.error("PW302", f"`{e.name}` is not one of {what}", e.span,
                                help=did_you_mean(e.name, members) or f"the values are: {', '.join(members)}")
            else:
                report_unknown(self.unit, e)
            return UNKNOWN
        self.unit.targets[id(e)] = target
        kind, _, rest = target.partition(":")
        if kind == "decl":
            self.unit.used.add(rest)
            return self.decl_type(self.unit, rest)
        if kind == "import":
            alias, _, name = rest.partition(":")
            imported = self.unit.imports.get(alias)
            return imported.types.get(name, UNKNOWN) if imported else UNKNOWN
        if kind == "patient":
            return schema.PATIENT_ATTRIBUTES[rest]
        if kind == "collection":
            return Type("list", schema.COLLECTIONS[rest])
        return UNKNOWN

    def symbols(self, t: Type) -> tuple[str, ...]:
        if t.detail.startswith("band:"):
            name = t.detail[5:]
            decl = self.unit.decls.get(name)
            if not isinstance(decl, m.Bands):
                # a band of an imported protocol: `efi.efi_band is fit`
                decl = next((u.decls[name] for u in self.unit.imports.values()
                             if u is not None and isinstance(u.decls.get(name), m.Bands)), None)
            return tuple(b.name for b in decl.bands) if isinstance(decl, m.Bands) else ()
        return schema.ENUMS.get(t.detail, ())

    def _not(self, e: m.Not, item, sym):
        self._bool_operand(e.operand, item, "`not`")
        return BOOL

    def _negate(self, e: m.Negate, item, sym):
        t = self.expr(e.operand, item)
        if t is not UNKNOWN and not _is_number(t):
            self.sink.error("PW303", f"only numbers can be negative, but this is {_a(t)}", e.operand.span)
            return UNKNOWN
        return t

    def _bool_operand(self, e: m.Expr, item, what: str) -> None:
        t = self.expr(e, item)
        if t not in (BOOL, UNKNOWN):
            hint = None
            if item is not None and isinstance(e, m.Ref):
                hint = "inside `where`, compare an attribute with a value, e.g. `status is active`"
            elif t.base == "list":
                hint = f"`any {_operand(e)}` is true when there is at least one"
            elif _is_number(t):
                hint = f"compare it with a value, e.g. `{_operand(e)} at least 1`"
            self.sink.error("PW304", f"{what} needs true/false, but this is {_a(t)}", e.span, help=hint)

    def _binary(self, e: m.Binary, item, sym):
        if e.op in ("and", "or"):
            self._bool_operand(e.left, item, f"`{e.op}`")
            self._bool_operand(e.right, item, f"`{e.op}`")
            return BOOL
        left, right = self.expr(e.left, item), self.expr(e.right, item)
        if UNKNOWN in (left, right):
            return UNKNOWN
        if e.op in ("+", "-") and left == DATE and right == DURATION:
            return DATE
        if e.op == "-" and left == DATE and right == DATE:
            return DURATION
        if not (_is_number(left) and _is_number(right)):
            hint = "add or subtract a duration, e.g. `6 months`" if DATE in (left, right) else None
            self.sink.error("PW305", f"cannot use `{e.op}` with {_a(left)} and {_a(right)}", e.span, help=hint)
            return UNKNOWN
        ld, rd = _dim(left), _dim(right)
        if e.op in ("+", "-"):
            if ld != rd:
                self.sink.error("PW301", f"cannot {'add' if e.op == '+' else 'subtract'} {_a(right)} "
                                f"{'to' if e.op == '+' else 'from'} {_a(left)}", e.span,
                                help="both sides need the same unit")
                return UNKNOWN
            return left if left.base == "number" else COUNT
        if e.op == "*":
            if ld != "count" and rd != "count":
                self.sink.error("PW301", f"cannot multiply {_a(left)} by {_a(right)}", e.span)
                return UNKNOWN
            return left if ld != "count" else right
        if rd == "count":
            return left if left.base == "number" else COUNT
        if ld == rd:
            return COUNT
        self.sink.error("PW301", f"cannot divide {_a(left)} by {_a(right)}", e.span)
        return UNKNOWN

    def _compare(self, e: m.Compare, item, sym):
        left = self.expr(e.left, item)
        right = self.expr(e.right, item if not (item and isinstance(e.left, m.Ref)) else None,
                          symbols_of=left if left.base == "symbol" else None)
        if UNKNOWN in (left, right):
            return BOOL
        word = _CMP_WORDS[e.op]
        if left == DATE and right == DATE and e.op in (">", ">=", "<", "<=") \
                and (isinstance(e.right, m.Ago) or isinstance(e.left, m.Ago)):
            ago = e.right if isinstance(e.right, m.Ago) else e.left
            amount = ago.amount.dotted if isinstance(ago.amount, m.Ref) else f"{ago.amount.text} {ago.amount.unit}"
            later = (e.op in (">", ">=")) == isinstance(e.right, m.Ago)
            self.sink.warning(
                "PW407", f"dates compare by the calendar: this holds for dates "
                f"{'after' if later else 'before'} {amount} ago, that is "
                f"{'within the last' if later else 'longer ago than'} {amount}", e.span,
                help=f"if that is what you mean, say it plainly: use a window such as `in the last {amount}`"
                if later else f"if that is what you mean, say it plainly: `before {amount} ago` on the list")
        if _is_number(left) and _is_number(right):
            if _dim(left) != _dim(right):
                self.sink.error("PW301", f"cannot compare {_a(left)} with {_a(right)}", e.span,
                                help=self._compare_hint(e.right, left, right))
            return BOOL
        if left.base == "list" or right.base == "list":
            listed, other = (e.left, e.right) if left.base == "list" else (e.right, e.left)
            self.sink.error("PW306", f"cannot compare a list of items with `{word}`", e.span,
                            help=f"count them first: `count {_operand(listed)} {word} {_operand(other)}`"
                            if listed is e.left else "count them first: `count conditions ... at least 4`")
            return BOOL
        if left != right:
            if TEXT in (left, right):
                hint = 'compare text with text in double quotes, e.g. `practice is "Y01234"`'
            elif left == BOOL and not isinstance(e.left, m.Compare):
                shown = _operand(e.left)
                hint = f"`{shown}` is true or false: write `{shown}` alone, or `{shown} is false`"
            else:
                hint = "both sides must be the same kind of value"
            self.sink.error("PW301", f"cannot compare {_a(left)} with {_a(right)}", e.span, help=hint)
            return BOOL
        if e.op not in ("=", "!=") and left.base not in ("date",):
            self.sink.error("PW307", f"`{word}` needs numbers or dates, but these are {left}", e.span,
                            help="use `is` or `is not`")
        return BOOL

    def _compare_hint(self, right: m.Expr, left: Type, got: Type) -> str | None:
        if isinstance(right, m.Quantity) and left.detail == "gbp":
            return f"write the amount in pounds: `£{right.text}`"
        if isinstance(right, m.Quantity) and got == COUNT:
            if left.detail == "duration":
                return f"write the unit: `{right.text} years`, `{right.text} months`, `{right.text} weeks` or `{right.text} days`"
            if left.detail == "gbp":
                return f"write the amount in pounds: `£{right.text}`"
        return "both sides need the same unit"

    def _in_value_set(self, e: m.InValueSet, item, sym):
        if item is None:
            self.sink.error("PW308", "`in` a code list is only used inside `where`", e.span)
            return BOOL
        self._attribute(e.attribute, item, e.span)
        target = lookup(self.unit, e.value_set)
        if target is None:
            report_unknown(self.unit, e.value_set, declare=f'check the spelling, or declare the code list: '
                           f'`codes {e.value_set.name} "…":` with its codes on the lines under it')
            return BOOL
        self.unit.targets[id(e.value_set)] = target
        t = self._ref(e.value_set, None, None)
        if t not in (VALUE_SET, UNKNOWN):
            self.sink.error("PW309", f"`{e.value_set.dotted}` is not a code list", e.value_set.span,
                            help="declare it with `codes NAME:`")
        return BOOL

    def _attribute(self, name: str, item: str, span: m.Span) -> Type:
        attrs = schema.ITEM_ATTRIBUTES[item]
        if name not in attrs:
            outside = name in schema.PATIENT_ATTRIBUTES or name in schema.COLLECTIONS or name in self.unit.decls
            help_ = (f"`and` or `or` after a `where` test continues the filter; to combine the result with "
                     f"`{name}`, put the filtered part in brackets or give it a name with `define`") if outside \
                else did_you_mean(name, attrs) or f"it has: {', '.join(attrs)}"
            self.sink.error("PW240", f"a {item.replace('_', ' ')} has no `{name}`", span, help=help_)
            return UNKNOWN
        return attrs[name]

    def _list(self, e: m.Expr, what: str) -> str | None:
        t = self.expr(e)
        if t is UNKNOWN:
            return None
        if t.base != "list" or t.detail not in schema.ITEM_ATTRIBUTES:  # e.g. possible higher levels
            self.sink.error("PW311", f"{what} needs a list from the patient's record, but this is {_a(t)}", e.span,
                            help=f"lists are: {', '.join(list(schema.COLLECTIONS)[:6])}, ...")
            return None
        return t.detail

    def _filter(self, e: m.Filter, item, sym):
        kind = self._list(e.source, "`where`")
        if kind is None:
            return UNKNOWN
        self._filter_condition(e.condition, kind)
        return Type("list", kind)

    def _filter_condition(self, cond: m.Expr, kind: str) -> None:
        if isinstance(cond, m.Compare) and isinstance(cond.left, m.Ref) and cond.left.namespace is None:
            attr = self._attribute(cond.left.name, kind, cond.left.span)
            self.unit.targets[id(cond.left)] = f"attribute:{cond.left.name}"
            if attr is UNKNOWN:
                return
            right = self.expr(cond.right, None, symbols_of=attr if attr.base == "symbol" else None)
            if right is UNKNOWN:
                return
            if _is_number(attr) and _is_number(right):
                if _dim(attr) != _dim(right):
                    self.sink.error("PW301", f"`{cond.left.name}` is {_a(attr)}, but this is {_a(right)}",
                                    cond.right.span, help=self._compare_hint(cond.right, attr, right))
            elif attr != right:
                listed = right.base == "value_set" and cond.op in ("=", "!=")
                self.sink.error("PW301", f"`{cond.left.name}` is {_a(attr)}, but this is {_a(right)}",
                                cond.right.span,
                                help=(f"to ask whether the {cond.left.name} is in a code list, write "
                                      f"`{cond.left.name} {'not in' if cond.op == '!=' else 'in'} "
                                      f"{_source_text(self.unit, cond.right.span)}`") if listed else None)
            elif cond.op not in ("=", "!=") and attr.base not in ("number", "date"):
                self.sink.error("PW307", f"`{_CMP_WORDS[cond.op]}` needs numbers or dates", cond.span,
                                help="use `is` or `is not`")
            return
        if isinstance(cond, m.InValueSet):
            self._in_value_set(cond, kind, None)
            return
        if isinstance(cond, m.Binary) and cond.op in ("and", "or"):
            self._filter_condition(cond.left, kind)
            self._filter_condition(cond.right, kind)
            return
        if isinstance(cond, m.Not):
            self._filter_condition(cond.operand, kind)
            return
        self._bool_operand(cond, kind, "`where`")

    def _window(self, e: m.Window, item, sym):
        kind = self._list(e.source, "a time window")
        if e.mode == "last":
            self.expect(e.amount, DURATION, "the length of a window")
        else:
            for bound in (e.start, e.end):
                if bound is not None:
                    self.expect(bound, DATE, f"the date in `{e.mode}`")
        return Type("list", kind) if kind else UNKNOWN

    def _aggregate(self, e: m.Aggregate, item, sym):
        kind = self._list(e.source, f"`{e.op.replace('_', ' ')}`")
        if e.op == "count":
            return COUNT
        if e.op in ("any", "no"):
            return BOOL
        if kind is None:
            return UNKNOWN
        if e.op == "total_stay":
            if kind != "admission":
                self.sink.error("PW312", f"`total stay of` needs hospital admissions, not {kind.replace('_', ' ')}s",
                                e.source.span, help="use a list of admissions, e.g. `total stay of admissions in the last 1 year`")
            return DURATION
        attr = self._attribute(e.attribute or "", kind, e.span)
        if attr is UNKNOWN:
            return UNKNOWN
        if e.op in ("sum", "min", "max") and not _is_number(attr):
            if not (e.op in ("min", "max") and attr == DATE):
                self.sink.error("PW313", f"cannot take the {e.op} of `{e.attribute}`: it is {_a(attr)}", e.span)
                return UNKNOWN
        return attr

    def _per_period(self, e: m.PerPeriod, item, sym):
        self.expect(e.period, DURATION, "the period")
        source = e.source
        while isinstance(source, (m.Filter, m.Window)) and not (isinstance(source, m.Window) and source.mode == "last"):
            source = source.source  # `... in the last 12 months where ...` keeps its window
        if not (isinstance(source, m.Window) and source.mode == "last"):
            self.sink.error("PW314", "a count per period needs a window to cut into periods", e.source.span,
                            help="add `in the last 12 months` after the list")
        self._list(e.source, "a count per period")
        return COUNT

    def _ago(self, e: m.Ago, item, sym):
        self.expect(e.amount, DURATION, "`ago`")
        return DATE

    def _group(self, group: str, span: m.Span) -> None:
        if group not in schema.GROUPS:
            if span.end_line == span.line and span.end_column - len(group) >= span.column:
                # the group is the last word of the expression: point at it
                span = m.Span(line=span.line, column=span.end_column - len(group), end_line=span.line,
                              end_column=span.end_column, start=span.end - len(group), end=span.end)
            self.sink.error("PW315", f"`{group}` is not a group of patients", span,
                            help=did_you_mean(group, schema.GROUPS) or "groups are: practice, population")

    def _percentile(self, e: m.Percentile, item, sym):
        t = self.expr(e.value)
        if t is not UNKNOWN and not _is_number(t):
            self.sink.error("PW316", f"a percentile needs a number, but this is {_a(t)}", e.value.span)
        self._group(e.group, e.span)
        return PERCENT

    def _in_top(self, e: m.InTop, item, sym):
        t = self.expr(e.value)
        if t is not UNKNOWN and not _is_number(t):
            self.sink.error("PW316", f"`in the top` needs a number to rank, but this is {_a(t)}", e.value.span)
        if not 0 < e.percent.value <= 100:
            self.sink.error("PW317", f"{e.percent.text}% is not a share of patients", e.percent.span,
                            help="use a percentage above 0 and at most 100")
        self._group(e.group, e.span)
        return BOOL

    def _item_list(self, e: m.ItemList, item, sym):
        if e.minimum is not None:
            self.expect(e.minimum, schema.COUNT, "the number in `at least N of`")
        for it in e.items:
            self._bool_operand(it.expr, None, f'item "{it.label or _ref_text(it.expr)}"')
        return BOOL

    def _target_decl(self, ref: m.Ref):
        target = self.unit.targets.get(id(ref), "")
        if target.startswith("decl:"):
            return self.unit.decls.get(target[5:])
        if target.startswith("import:"):
            alias, _, name = target[7:].partition(":")
            imported = self.unit.imports.get(alias)
            return imported.decls.get(name) if imported else None
        return None

    def _possible_levels(self, e: m.PossibleLevels, item, sym):
        t = self._ref(e.target, None, None)
        if t is not UNKNOWN and not isinstance(self._target_decl(e.target), m.Levels):
            self.sink.error("PW319", f"`{e.target.dotted}` is not a list of levels", e.target.span,
                            help="`possible higher levels of` names a `levels` declaration")
            return UNKNOWN
        return Type("list", "levels")

    def _items_met(self, e: m.ItemsMet, item, sym):
        t = self._ref(e.target, None, None)
        decl = self._target_decl(e.target)
        if t is not UNKNOWN and not (isinstance(decl, m.Definition) and isinstance(decl.expr, m.ItemList)):
            self.sink.error("PW318", f"`{e.target.dotted}` is not a list of items", e.target.span,
                            help="`items met in` counts the true items of an `all of` / `any of` / `at least N of` list")
        return COUNT


def _value_text(e: m.Expr) -> str:
    if isinstance(e, m.Quantity):
        number = e.text or f"{e.value:g}"
        return {"count": number, "gbp": f"£{number}", "percent": f"{number}%"}.get(e.unit, f"{number} {e.unit}")
    return e.kind


def _ref_text(e: m.Expr) -> str:
    return e.dotted if isinstance(e, m.Ref) else e.kind


def _a(t: Type) -> str:
    text = str(t)
    if text.startswith("amount"):
        return f"an {text}"
    if t == TEXT:
        return "text"
    if t.base in ("list",) or text.startswith(("true", "number", "duration", "percentage", "date", "text")):
        return f"a {text}" if not text.startswith("true") else "true/false"
    if t.base == "symbol":
        return f"a {text} value"
    if t.base == "unknown":
        return "unknown"
    if t.base == "value_set":
        return "a code list"
    return f"a {text}"


def typecheck(unit: Unit) -> None:
    """Type every declaration of the unit, reporting into its sink."""
    checker = Checker(unit)
    for decl in unit.order:
        if isinstance(decl, m.ProtocolTest):
            checker.check_test(decl)
        else:
            checker.decl_type(unit, decl.name)


def _operand(e: m.Expr) -> str:
    """An expression as written, in brackets when it would not read as one operand."""
    from .formatter import expr_to_text
    text = expr_to_text(e)
    return text if isinstance(e, (m.Ref, m.Window, m.Aggregate, m.Quantity)) else f"({text})"


def _source_text(unit: Unit, span: m.Span) -> str:
    """What the protocol says at ``span`` (one line), to quote it back in a help line."""
    line = unit.source.split("\n")[span.line - 1] if span.line >= 1 else ""
    end = span.end_column if span.end_line == span.line else len(line) + 1
    return line[span.column - 1:end - 1]
