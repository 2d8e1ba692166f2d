"""The evaluator: a compiled protocol becomes a tree of Python closures.

Each model node is compiled once into a function of the evaluation context;
no text is ever executed (protocols are data). When an explanation is asked
for, a second compilation records every node's value in a trace keyed by
node id, as cql-execution does; the fast one records nothing.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from functools import lru_cache
from typing import Callable

from pathways import model as m
from pathways import schema

from . import calendar as cal
from .fast_roads import fast_condition, fast_road
from .record_index import (
    ASSESSED, PLAIN_NUMBERS, RecordIndex, attribute, code_key, item_date, patient_attribute, plain_sum,
)
from .values import (
    PLAIN_OPERATORS, DateR, Days, Items, Qty, Rng, Span, at_least, compare, duration_range, k_and, k_not, k_or,
    number_range,
)

Fn = Callable[["Ctx"], object]


class EngineError(Exception):
    """An evaluation that cannot be carried out as asked (not bad data: that gives unknown)."""


class PopulationRequired(EngineError):
    """A population-relative term was evaluated for one patient with no population."""


class Ctx:
    """The state of evaluating one protocol for one patient on one date."""

    __slots__ = ("program", "index", "as_of", "params", "overrides", "cache", "trace", "population", "subs")

    def __init__(self, program: "CompiledProtocol", index: RecordIndex, as_of: dt.date,
                 overrides: dict[str, dict], trace: dict | None, population: dict | None, path: str = "",
                 subs: dict | None = None):
        self.program = program
        self.index = index
        self.as_of = as_of
        self.overrides = overrides  # protocol path ("" or "alias") -> parameter name -> runtime value
        self.params = overrides.get(path, {})
        self.cache: dict[str, object] = {}
        self.trace = trace
        self.population = population
        # every import's context, shared by the whole evaluation: a protocol imported
        # along two routes (the pyramid's Castlefields and a direct one) under the same
        # alias has the same inputs, so it is evaluated once
        self.subs: dict[tuple[str, int], Ctx] = {} if subs is None else subs

    def sub(self, alias: str) -> "Ctx":
        compiled = self.program.imports[alias]
        key = (alias, id(compiled))
        found = self.subs.get(key)
        if found is None:
            found = self.subs[key] = Ctx(compiled, self.index, self.as_of, self.overrides, self.trace,
                                         self.population, path=alias, subs=self.subs)
        return found


def literal(node: m.Expr):
    """The runtime value of a literal (a parameter's default, an override)."""
    if isinstance(node, m.Quantity):
        if node.unit in ("days", "weeks", "months", "years"):
            return Qty(node.value, node.unit)
        return int(node.value) if float(node.value).is_integer() else node.value
    if isinstance(node, m.Text):
        return node.value
    if isinstance(node, m.Boolean):
        return node.value
    if isinstance(node, m.DateLiteral):
        from pathways.records import PartialDate
        p = PartialDate.parse(node.value)
        return DateR(p.earliest, p.latest)
    raise EngineError(f"not a literal: {node.kind}")


class CompiledProtocol:
    """One protocol compiled to closures, with its imports compiled alike."""

    def __init__(self, protocol: m.Protocol, tracing: bool, imports: dict[str, "CompiledProtocol"]):
        self.protocol = protocol
        self.tracing = tracing
        self.imports = imports
        self.decls: dict[str, m.Decl] = {d.name: d for d in protocol.declarations if d.kind != "test"}
        self.defaults = {d.name: literal(d.default) for d in self.decls.values() if isinstance(d, m.Parameter)}
        self.value_sets = {d.name: frozenset((c.system, c.code) for c in d.codes)
                           for d in self.decls.values() if isinstance(d, m.ValueSet)}
        self.population_terms = [n for d in self.decls.values() for n in _walk_exprs(d)
                                 if isinstance(n, (m.InTop, m.Percentile))]
        self.ranked = self._ranked_names()
        self.fns: dict[str, Fn] = {}
        for name, decl in self.decls.items():
            if not isinstance(decl, (m.Parameter, m.ValueSet, m.Pathway, m.CarePlan)):
                self.fns[name] = self._memo(name, self._decl(decl))

    def _a_term(self):
        """A population-relative term of this protocol or its imports (for messages)."""
        if self.population_terms:
            return self.population_terms[0]
        return next(sub._a_term() for sub in self.imports.values() if sub.ranked)

    def _ranked_names(self) -> set[str]:
        """Declarations that depend, directly or through others, on a population-relative term."""
        uses: dict[str, set[str]] = {}
        ranked: set[str] = set()
        for name, decl in self.decls.items():
            uses[name] = set()
            for node in _walk_exprs(decl):
                if isinstance(node, (m.InTop, m.Percentile)):
                    ranked.add(name)
                elif isinstance(node, m.Ref):
                    kind, _, rest = node.target.partition(":")
                    if kind == "decl":
                        uses[name].add(rest)
                    elif kind == "import":
                        alias, _, other = rest.partition(":")
                        if other in self.imports[alias].ranked:
                            ranked.add(name)
        changed = True
        while changed:
            changed = False
            for name, used in uses.items():
                if name not in ranked and used & ranked:
                    ranked.add(name)
                    changed = True
        return ranked

    # --- declarations ---------------------------------------------------------------
    def _memo(self, name: str, fn: Fn) -> Fn:
        decl_id = self.decls[name].id
        # A declaration that ranks the patient among others needs a population whatever
        # the patient's data: without this check `age at least 65 years and <rank>` would
        # fail for a 70-year-old and quietly be false for a 60-year-old (`and` stops early).
        ranked = name in self.ranked

        def run(ctx: Ctx):
            if ranked and ctx.population is None:
                raise PopulationRequired(
                    f"`{_describe(self._a_term())}` ranks a patient within a group of patients: evaluate a "
                    "population (evaluate_population) or pass reference distributions")
            cache = ctx.cache
            if name in cache:
                return cache[name]
            value = cache[name] = fn(ctx)
            if ctx.trace is not None:
                ctx.trace[decl_id] = value
            return value
        return run

    def _decl(self, decl: m.Decl) -> Fn:
        if isinstance(decl, m.Definition):
            return self.expr(decl.expr)
        if isinstance(decl, m.Score):
            return self._score(decl)
        if isinstance(decl, m.Bands):
            return self._bands(decl)
        if isinstance(decl, m.Levels):
            return self._levels(decl)
        raise EngineError(f"cannot evaluate a {decl.kind}")

    def _score(self, decl: m.Score) -> Fn:
        parts = [(item.weight, self.expr(item.expr), item.id) for item in decl.items]

        def score(ctx: Ctx):
            lo = hi = 0.0
            for weight, fn, item_id in parts:
                v = fn(ctx)
                if ctx.trace is not None:
                    ctx.trace[item_id] = v
                if v is True:
                    lo += weight
                    hi += weight
                elif v is None:
                    lo, hi = lo + min(weight, 0), hi + max(weight, 0)
            return lo if lo == hi else Rng(lo, hi)
        return score

    def _bands(self, decl: m.Bands) -> Fn:
        value_fn = self.expr(decl.value)
        tests = [(b.name, b.op, self.expr(b.threshold) if b.threshold is not None else None) for b in decl.bands]

        def bands(ctx: Ctx):
            v = value_fn(ctx)
            for name, op, threshold in tests:
                if threshold is None:
                    return name
                holds = compare(v, op, threshold(ctx), ctx.as_of)
                if holds is None:
                    return None
                if holds:
                    return name
            return None
        return bands

    def _levels(self, decl: m.Levels) -> Fn:
        levels = [(lv.number, self.expr(lv.condition), lv.id) for lv in decl.levels]
        fallback = decl.fallback.number if decl.fallback else None

        def levels_fn(ctx: Ctx):
            for number, cond, level_id in levels:
                holds = cond(ctx)
                if ctx.trace is not None:
                    ctx.trace[level_id] = holds
                if holds is True:  # a level whose condition is unknown is not assigned
                    return number
            return fallback
        return levels_fn

    # --- expressions ------------------------------------------------------------------
    def expr(self, node: m.Expr) -> Fn:
        fn = getattr(self, f"_x_{node.kind}")(node)
        if not self.tracing:
            return fast_road(self, node, fn) or fn
        node_id = node.id

        def traced(ctx: Ctx):
            value = fn(ctx)
            ctx.trace[node_id] = value
            return value
        return traced

    def _x_quantity(self, node: m.Quantity) -> Fn:
        value = literal(node)
        return lambda ctx: value

    _x_text = _x_boolean = _x_date = _x_quantity

    def _x_ref(self, node: m.Ref) -> Fn:
        kind, _, rest = node.target.partition(":")
        if kind == "decl":
            decl = self.decls[rest]
            if isinstance(decl, m.Parameter):
                default = self.defaults[rest]
                return lambda ctx: ctx.params.get(rest, default)
            if isinstance(decl, m.ValueSet):
                codes = self.value_sets[rest]
                return lambda ctx: codes
            return lambda ctx: ctx.program.fns[rest](ctx)
        if kind == "import":
            alias, _, name = rest.partition(":")
            sub = self.imports[alias]
            if name in sub.value_sets:
                codes = sub.value_sets[name]
                return lambda ctx: codes
            if name in sub.defaults:
                default = sub.defaults[name]
                return lambda ctx: ctx.sub(alias).params.get(name, default)
            return lambda ctx: sub.fns[name](ctx.sub(alias))
        if kind == "patient":
            return lambda ctx: patient_attribute(ctx.index.record, rest, ctx.as_of)
        if kind == "collection":
            item_kind = schema.COLLECTIONS[rest]
            if rest in ASSESSED:
                return lambda ctx: Items(item_kind, *ctx.index.as_of(rest, ctx.as_of),
                                         cleared=ctx.index.cleared(rest, ctx.as_of))
            return lambda ctx: Items(item_kind, *ctx.index.as_of(rest, ctx.as_of))
        if kind == "symbol":
            return lambda ctx: rest
        raise EngineError(f"unresolved name `{node.dotted}` (compile the protocol through dsl first)")

    def _x_not(self, node: m.Not) -> Fn:
        operand = self.expr(node.operand)
        return lambda ctx: k_not(operand(ctx))

    def _x_negate(self, node: m.Negate) -> Fn:
        operand = self.expr(node.operand)

        def negate(ctx: Ctx):
            v = operand(ctx)
            if isinstance(v, Rng):
                return Rng(-v.hi, -v.lo)
            if isinstance(v, Qty):
                return Qty(-v.value, v.unit)
            return None if v is None else -v
        return negate

    def _x_binary(self, node: m.Binary) -> Fn:
        left, right = self.expr(node.left), self.expr(node.right)
        op = node.op
        if op == "and":
            def and_(ctx: Ctx):
                a = left(ctx)
                return False if a is False else k_and(a, right(ctx))
            return and_
        if op == "or":
            def or_(ctx: Ctx):
                a = left(ctx)
                return True if a is True else k_or(a, right(ctx))
            return or_
        return lambda ctx: arithmetic(op, left(ctx), right(ctx), ctx.as_of)

    def _x_compare(self, node: m.Compare) -> Fn:
        left, right, op = self.expr(node.left), self.expr(node.right), node.op
        if isinstance(node.right, m.Boolean) and op in ("=", "!="):
            # `X is true` / `X is false` ask what is recorded, as SQL's IS TRUE and
            # CQL's IsTrue do: never unknown. This is how a protocol states a default
            # for a fact that may be missing: `lives_alone is true` (not recorded
            # counts as no), `lives_alone is not false` (not recorded counts as yes).
            wanted, same = node.right.value, op == "="

            def is_recorded(ctx: Ctx):
                v = left(ctx)
                right(ctx)  # (records the literal in a trace, for the explanation)
                return (v is wanted) is same
            return is_recorded
        # two plain numbers (a count, an amount) compare directly; ranges,
        # durations and unknowns take the general road (both sides are evaluated
        # either way, so a trace records the same)
        test = PLAIN_OPERATORS[op]

        def numbers(ctx: Ctx):
            a, b = left(ctx), right(ctx)
            if (type(a) is int or type(a) is float) and (type(b) is int or type(b) is float):
                return test(a, b)
            return compare(a, op, b, ctx.as_of)
        return numbers

    def _x_ago(self, node: m.Ago) -> Fn:
        if isinstance(node.amount, m.Ref):  # `stable_period ago`: the name's value, overrides included
            value = self.expr(node.amount)

            def ago_named(ctx: Ctx):
                amount = value(ctx)
                if not isinstance(amount, Qty):
                    return None  # unknown (the checker allows only durations here)
                day = cal.shift(ctx.as_of, -amount.value, amount.unit)
                return DateR(day, day)
            return ago_named
        amount = literal(node.amount)

        def ago(ctx: Ctx):
            day = cal.shift(ctx.as_of, -amount.value, amount.unit)
            return DateR(day, day)
        return ago

    # --- lists of record items ------------------------------------------------------------
    def _x_filter(self, node: m.Filter) -> Fn:
        source = self.expr(node.source)
        test = self.condition(node.condition)

        def filter_(ctx: Ctx):
            items = source(ctx)
            if items is None:
                return None
            sure, maybe = [], []
            for item in items.sure:
                holds = test(item, ctx)
                if holds:
                    sure.append(item)
                elif holds is None:
                    maybe.append(item)
            if items.maybe:
                maybe.extend(it for it in items.maybe if test(it, ctx) is not False)
            cleared = None if items.cleared is None else [it for it in items.cleared if test(it, ctx)]
            return Items(items.kind, sure, maybe, items.window, cleared)
        return filter_

    def condition(self, node: m.Expr) -> Callable[[object, Ctx], bool | None]:
        """A `where` test on one item."""
        if isinstance(node, m.Binary) and node.op in ("and", "or"):
            a, b = self.condition(node.left), self.condition(node.right)
            # a test on an item records nothing, so the right side may be skipped
            if node.op == "and":
                def and_test(item, ctx):
                    x = a(item, ctx)
                    return False if x is False else k_and(x, b(item, ctx))
                return and_test

            def or_test(item, ctx):
                x = a(item, ctx)
                return True if x is True else k_or(x, b(item, ctx))
            return or_test
        if isinstance(node, m.Not):
            inner = self.condition(node.operand)
            return lambda item, ctx: k_not(inner(item, ctx))
        if isinstance(node, m.InValueSet):
            codes = self._constant_codes(node.value_set)
            if codes is not None:  # a code list is fixed: look it up once, not per item
                return lambda item, ctx: code_key(item) in codes
            codes_fn = self._x_ref(node.value_set)
            return lambda item, ctx: code_key(item) in codes_fn(ctx)
        if isinstance(node, m.Compare) and isinstance(node.left, m.Ref) and node.left.target.startswith("attribute:") \
                and node.op in ("=", "!=") and isinstance(node.right, m.Ref) and node.right.target.startswith("symbol:"):
            # `status is active`: a symbol held as it is on the item, so test it directly
            name, wanted, same = node.left.name, node.right.name, node.op == "="

            def symbol_test(item, ctx):
                v = getattr(item, name, None)
                return None if v is None else (v == wanted) is same
            return symbol_test
        if isinstance(node, m.Compare) and isinstance(node.left, m.Ref) and node.left.target.startswith("attribute:"):
            name, op = node.left.name, node.op
            value = self.expr(node.right)

            def attribute_test(item, ctx):
                return compare(attribute(item, name, ctx.as_of), op, value(ctx), ctx.as_of)
            # (a test on an item records nothing, so a trace does not stop the fast road)
            return fast_condition(self, node, attribute_test) or attribute_test
        whole = self.expr(node)
        return lambda item, ctx: whole(ctx)

    def _constant_codes(self, ref: m.Ref) -> frozenset | None:
        """The codes of a code list the reference names, or None if it names something else."""
        kind, _, rest = ref.target.partition(":")
        if kind == "decl":
            return self.value_sets.get(rest)
        if kind == "import":
            alias, _, name = rest.partition(":")
            return self.imports[alias].value_sets.get(name)
        return None

    def _x_window(self, node: m.Window) -> Fn:
        source = self.expr(node.source)
        bounds = self.window_bounds(node)

        def window(ctx: Ctx):
            items = source(ctx)
            if items is None:
                return None
            lo, hi, strict_lo, strict_hi = bounds(ctx)
            if lo is None:
                return None
            first, last = _text_bounds(lo, hi, strict_lo, strict_hi)
            sure, maybe = [], []
            for group, target in ((items.sure, sure), (items.maybe, maybe)):
                for item in group:
                    date = item_date(item)
                    if date is not None and len(date.text) == 10:  # known to the day: compare the text
                        if first <= date.text <= last:
                            target.append(item)
                        continue
                    inside = _inside(date, lo, hi, strict_lo, strict_hi)
                    if inside:
                        target.append(item)
                    elif inside is None:
                        maybe.append(item)
            cleared = None if items.cleared is None else [
                it for it in items.cleared if _inside(item_date(it), lo, hi, strict_lo, strict_hi)]
            return Items(items.kind, sure, maybe, (lo, hi) if node.mode == "last" else items.window, cleared)
        if not self.tracing and isinstance(node.source, m.Ref) and node.source.target.startswith("collection:"):
            # (a trace keeps the whole list too, for the explanation: there the general road is as quick)
            return self._window_of_collection(node, bounds, window)
        return window

    def _window_of_collection(self, node: m.Window, bounds, general: Fn) -> Fn:
        """A window straight over a collection whose dates are all known to the day:
        the items whose date is inside, in record order (what ``general`` gives)."""
        name = node.source.name
        kind = schema.COLLECTIONS[name]
        cleared_name = "cleared:" + name if name in ASSESSED else None
        last = node.mode == "last"

        def window_exact(ctx: Ctx):
            index = ctx.index
            dated = index.dated(name)
            cleared = index.dated(cleared_name) if cleared_name else None
            if not dated.exact or (cleared is not None and not cleared.exact):
                return general(ctx)
            lo, hi, strict_lo, strict_hi = bounds(ctx)
            if lo is None:
                return None
            # seen on the as-of date (not after it), and inside the window; ISO dates
            # compare as text (datetime.date.isoformat always writes four-digit years)
            try:
                a = (lo + _ONE_DAY if strict_lo else lo).isoformat()
                b = min(hi - _ONE_DAY if strict_hi else hi, ctx.as_of).isoformat()
            except OverflowError:  # a bound at the end of the calendar
                return general(ctx)
            sure = [item for item, day in zip(dated.items, dated.first) if a <= day <= b]
            found = None if cleared is None else [o for o, day in zip(cleared.items, cleared.first) if a <= day <= b]
            return Items(kind, sure, [], (lo, hi) if last else None, found)
        return window_exact

    def window_bounds(self, node: m.Window):
        """A function giving (lo, hi, lo is strict, hi is strict) for the window."""
        if node.mode == "last":
            amount = self.expr(node.amount)

            def last(ctx: Ctx):
                q = amount(ctx)
                if not isinstance(q, Qty):
                    return None, None, False, False
                return cal.shift(ctx.as_of, -q.value, q.unit), ctx.as_of, False, False
            return last
        start = self.expr(node.start) if node.start is not None else None
        end = self.expr(node.end) if node.end is not None else None

        def bounded(ctx: Ctx):
            a = start(ctx) if start else None
            if not isinstance(a, DateR):
                return None, None, False, False
            if node.mode == "between":
                b = end(ctx)
                if not isinstance(b, DateR):
                    return None, None, False, False
                return a.lo, b.hi, False, False
            if node.mode == "before":
                return dt.date.min, a.lo, False, True
            return a.hi, dt.date.max, True, False
        return bounded

    def _x_aggregate(self, node: m.Aggregate) -> Fn:
        if node.op == "total_stay":
            return self._total_stay(node)
        source = self.expr(node.source)
        op, attr = node.op, node.attribute
        plain = op == "sum" and attr in PLAIN_NUMBERS

        def aggregate(ctx: Ctx):
            items = source(ctx)
            if items is None:
                return None
            n, extra = len(items.sure), len(items.maybe)
            if op == "count":
                return n if not extra else Rng(n, n + extra)
            if op in ("any", "no"):
                # an impairment no assessment in scope looked for is unknown, not absent
                absent = False if items.cleared is None or items.cleared else None
                found = True if n else (None if extra else absent)
                return found if op == "any" else k_not(found)
            if op == "sum" and plain and not items.maybe:
                total = plain_sum(items.sure, attr)
                if total is not None:
                    return total
            return _attribute_aggregate(op, attr, items, ctx.as_of)
        return aggregate

    def _total_stay(self, node: m.Aggregate) -> Fn:
        # Stays are clipped to the window, so take the list before its window.
        inner, window = node.source, None
        if isinstance(inner, m.Window) and inner.mode == "last":
            inner, window = inner.source, self.window_bounds(inner)
        source = self.expr(inner)

        def total_stay(ctx: Ctx):
            items = source(ctx)
            if items is None:
                return None
            lo_hi = window(ctx)[:2] if window else (dt.date.min, dt.date.max)
            if lo_hi[0] is None:
                return None
            # Shortest possible stays of the sure items, longest of sure and maybe ones:
            # dates known only to the month or year give a range of nights.
            low = _stay_days(items.sure, *lo_hi, ctx.as_of, longest=False)
            precise = not items.maybe and all(_exact(e.start) and (e.end is None or _exact(e.end))
                                              for e in items.sure)
            high = low if precise else _stay_days(items.sure + items.maybe, *lo_hi, ctx.as_of, longest=True)
            return Days(low, high)
        return total_stay

    def _x_per_period(self, node: m.PerPeriod) -> Fn:
        source = self.expr(node.source)
        period = literal(node.period)
        op = node.op

        def per_period(ctx: Ctx):
            items = source(ctx)
            if items is None or items.window is None or not isinstance(period, Qty):
                return None
            lo, hi = items.window
            edges = cal.period_edges(hi, ctx.as_of, lo, period.value, period.unit)
            periods = len(edges) - 1
            if periods == 0:
                return None
            sure = [0] * periods
            unsure = [0] * periods
            texts = _edge_texts(hi, ctx.as_of, lo, period.value, period.unit)
            newest, oldest = texts[0], texts[-1]
            for group, counts in ((items.sure, sure), (items.maybe, unsure)):
                for item in group:
                    date = item_date(item)
                    if date is None:
                        continue
                    if len(date.text) == 10:  # known to the day: compare the text with the edges
                        day = date.text
                        if oldest <= day <= newest:
                            k = 0
                            while k < periods - 1 and day <= texts[k + 1]:
                                k += 1
                            counts[k] += 1
                        continue
                    for k in range(periods):
                        # period k covers (edges[k+1], edges[k]]; the oldest also holds its first day
                        inside = _inside(date, edges[k + 1], edges[k], k != periods - 1, False)
                        if inside:
                            counts[k] += 1
                            break
                        if inside is None:
                            unsure[k] += 1
            highs = [s + u for s, u in zip(sure, unsure)]
            if op == "lowest":
                a, b = min(sure), min(highs)
            elif op == "highest":
                a, b = max(sure), max(highs)
            else:
                a, b = sum(sure) / periods, sum(highs) / periods
            return a if a == b else Rng(a, b)
        return per_period

    # --- population-relative terms ---------------------------------------------------------
    def _population_value(self, node, ctx: Ctx):
        if ctx.population is None or node.id not in ctx.population:
            raise PopulationRequired(
                f"`{_describe(node)}` ranks a patient within a group of patients: evaluate a population "
                "(evaluate_population) or pass reference distributions")
        return ctx.population[node.id]

    def _x_in_top(self, node: m.InTop) -> Fn:
        value = self.expr(node.value)
        share = node.percent.value / 100

        def in_top(ctx: Ctx):
            groups = self._population_value(node, ctx)
            dist = groups.get(group_key(node.group, ctx.index.record))
            v = value(ctx)
            if type(v) is int and dist:  # a count: exact, so it joined the group (Program.distributions)
                return top_share(dist, v, share, True)
            v = number_range(v)
            if not dist or v is None:
                return None
            if v[0] == v[1]:  # only exact values joined the group (Program.distributions)
                return top_share(dist, v[0], share, True)
            return _same(top_share(dist, v[0], share, False), top_share(dist, v[1], share, False))
        return in_top

    def _x_percentile(self, node: m.Percentile) -> Fn:
        value = self.expr(node.value)

        def percentile(ctx: Ctx):
            groups = self._population_value(node, ctx)
            dist = groups.get(group_key(node.group, ctx.index.record))
            v = number_range(value(ctx))
            if not dist or v is None:
                return None
            a, b = percentile_of(dist, v[0]), percentile_of(dist, v[1])
            return a if a == b else Rng(a, b)
        return percentile

    # --- item lists -------------------------------------------------------------------------
    def _x_item_list(self, node: m.ItemList) -> Fn:
        items = [self.expr(it.expr) for it in node.items]
        ids = [it.id for it in node.items]
        minimum = self.expr(node.minimum) if node.minimum is not None else None
        quantifier = node.quantifier
        key = ("items", node.id)

        def item_list(ctx: Ctx):
            values = ctx.cache[key] = [fn(ctx) for fn in items]  # kept for `items met in`
            if ctx.trace is not None:
                for item_id, v in zip(ids, values):
                    ctx.trace[item_id] = v
            if quantifier == "all":
                return at_least(values, len(values))
            if quantifier == "any":
                return at_least(values, 1)
            if quantifier == "none":
                return k_not(at_least(values, 1))
            n = number_range(minimum(ctx))
            if n is None or n[0] != n[1]:
                return None
            return at_least(values, n[0])
        return item_list

    def _declared(self, ref: m.Ref):
        """(the compiled protocol that declares ``ref``, its name there, the import alias or None)."""
        kind, _, rest = ref.target.partition(":")
        if kind == "decl":
            return self, rest, None
        via, _, name = rest.partition(":")
        return self.imports[via], name, via

    def _x_items_met(self, node: m.ItemsMet) -> Fn:
        owner, name, via = self._declared(node.target)
        key = ("items", owner.decls[name].expr.id)

        def items_met(ctx: Ctx):
            inner = ctx.sub(via) if via else ctx
            owner.fns[name](inner)  # evaluates the list once; its item values are then cached
            values = inner.cache[key]
            true, unknown = values.count(True), values.count(None)
            return true if not unknown else Rng(true, true + unknown)
        return items_met

    def _x_possible_levels(self, node: m.PossibleLevels) -> Fn:
        owner, name, via = self._declared(node.target)
        conditions = [(lv.number, owner.expr(lv.condition)) for lv in owner.decls[name].levels]

        def possible_levels(ctx: Ctx):
            inner = ctx.sub(via) if via else ctx
            possible = []
            for number, cond in conditions:  # first match wins: stop at the level assigned
                holds = cond(inner)
                if holds is True:
                    break
                if holds is None:
                    possible.append(number)
            return tuple(possible)
        return possible_levels


# --- helpers ------------------------------------------------------------------------------------

_ONE_DAY = dt.timedelta(days=1)


def _walk_exprs(decl: m.Decl):
    from pathways.walk import walk
    return walk(decl)


def _describe(node) -> str:
    try:
        from dsl.formatter import expr_to_text
        return expr_to_text(node)
    except Exception:  # noqa: BLE001 - a description must never fail an evaluation
        return node.kind


def _same(a, b):
    return a if a == b else None


@lru_cache(maxsize=256)
def _edge_texts(end: dt.date, as_of: dt.date, start: dt.date, amount: float, unit: str) -> tuple[str, ...]:
    """calendar.period_edges as ISO text (cached: a run asks for the same few)."""
    return tuple(e.isoformat() for e in cal.period_edges(end, as_of, start, amount, unit))


@lru_cache(maxsize=256)
def _text_bounds(lo: dt.date, hi: dt.date, strict_lo: bool, strict_hi: bool) -> tuple[str, str]:
    """The first and last day inside a window as ISO text, which a date known to the day
    (``YYYY-MM-DD``) compares with as the dates do: ("", "") for a window with no day in it."""
    try:
        first = lo + _ONE_DAY if strict_lo else lo
        last = hi - _ONE_DAY if strict_hi else hi
    except OverflowError:  # a strict bound at the end of the calendar: no day beyond it
        return "", ""
    return first.isoformat(), last.isoformat()


def _inside(date, lo: dt.date, hi: dt.date, strict_lo: bool, strict_hi: bool) -> bool | None:
    if date is None:
        return None
    early, late = date.earliest, date.latest
    above = (early > lo) if strict_lo else (early >= lo)
    below = (late < hi) if strict_hi else (late <= hi)
    if above and below:
        return True
    out_low = (late <= lo) if strict_lo else (late < lo)
    out_high = (early >= hi) if strict_hi else (early > hi)
    return False if out_low or out_high else None


#: attributes that are lengths of time, whatever the kind of item
_DURATION_ATTRIBUTES = frozenset(name for attrs in schema.ITEM_ATTRIBUTES.values()
                                 for name, t in attrs.items() if t == schema.DURATION)


def _attribute_aggregate(op: str, attr: str, items: Items, as_of: dt.date):
    """sum/min/max/latest/earliest of an attribute; values not recorded are ignored.
    Items that may or may not be in the list make the answer unknown unless
    it is the same whether they count or not."""
    def values(group):
        return [v for v in (attribute(it, attr, as_of) for it in group) if v is not None]

    sure = values(items.sure)
    if op == "sum":
        nums = [r for r in map(number_range, sure) if r is not None]
        lo, hi = sum(a for a, _ in nums), sum(b for _, b in nums)
        extras = values(items.maybe)
        for extra in filter(None, map(number_range, extras)):
            lo, hi = lo + min(extra[0], 0), hi + max(extra[1], 0)
        if attr in _DURATION_ATTRIBUTES or any(isinstance(v, (Days, Span, Qty)) for v in sure + extras):
            return Days(lo, hi)  # lengths of time add up in days (none at all: 0 days, not unknown)
        return lo if lo == hi else Rng(lo, hi)
    smallest = op in ("min", "earliest")
    picked = _pick(sure, smallest)
    if items.maybe and _pick(sure + values(items.maybe), smallest) != picked:
        return None
    return picked


def _pick(vals: list, smallest: bool):
    if not vals:
        return None
    choose = min if smallest else max
    if isinstance(vals[0], DateR):
        return DateR(choose(v.lo for v in vals), choose(v.hi for v in vals))
    if isinstance(vals[0], (Days, Span, Qty)):
        # lengths of time keep their kind: the longest stay is a duration, not a number
        ranged = [(rng, v) for v, rng in ((v, number_range(v)) for v in vals) if rng is not None]
        if not ranged:
            return None
        low = choose(ranged, key=lambda p: p[0][0])
        high = choose(ranged, key=lambda p: p[0][1])
        return low[1] if low[1] is high[1] else Days(low[0][0], high[0][1])
    ranges = [r for r in map(number_range, vals) if r is not None]
    if not ranges:
        return None
    lo, hi = choose(a for a, _ in ranges), choose(b for _, b in ranges)
    return lo if lo == hi else Rng(lo, hi)


def _exact(date) -> bool:
    return len(date.text) == 10  # known to the day (PartialDate.precision, without counting)


def _stay_days(stays: list, lo: dt.date, hi: dt.date, as_of: dt.date, longest: bool = True) -> int:
    """Nights in hospital inside [lo, hi], overlapping stays merged first. Nights
    after the as-of date are never counted (a stay with no end runs to it).
    ``longest``: take imprecise dates at their widest (else their narrowest)."""
    spans = []
    hi = min(hi, as_of)
    for e in stays:
        if e.end is None:
            end = as_of
        else:
            end = e.end.latest if longest else e.end.earliest
        start = e.start.earliest if longest else e.start.latest
        start, end = max(start, lo), min(end, hi)
        if end > start:
            spans.append((start, end))
    spans.sort()
    total = 0
    current = None
    for start, end in spans:
        if current and start <= current[1]:
            current = (current[0], max(current[1], end))
            continue
        if current:
            total += (current[1] - current[0]).days
        current = (start, end)
    if current:
        total += (current[1] - current[0]).days
    return total


def arithmetic(op: str, a, b, as_of: dt.date):
    """+ - * / on numbers, durations and dates; unknown in, unknown out."""
    if a is None or b is None:
        return None
    if isinstance(a, DateR) and isinstance(b, (Qty,)):
        sign = 1 if op == "+" else -1
        return DateR(cal.shift(a.lo, sign * b.value, b.unit), cal.shift(a.hi, sign * b.value, b.unit))
    if isinstance(a, DateR) and isinstance(b, DateR) and op == "-":
        return Days((a.lo - b.hi).days, (a.hi - b.lo).days)
    if isinstance(a, Qty) and isinstance(b, Qty) and a.unit == b.unit and op in ("+", "-"):
        return Qty(a.value + b.value if op == "+" else a.value - b.value, a.unit)
    if isinstance(a, (Qty, Span, Days)) or isinstance(b, (Qty, Span, Days)):
        unit = a.unit if isinstance(a, Qty) else b.unit if isinstance(b, Qty) else "days"
        ra = duration_range(a, unit, as_of) if isinstance(a, (Qty, Span, Days)) else number_range(a)
        rb = duration_range(b, unit, as_of) if isinstance(b, (Qty, Span, Days)) else number_range(b)
        result = _interval_arith(op, ra, rb)
        if result is None:
            return None
        both = isinstance(a, (Qty, Span, Days)) and isinstance(b, (Qty, Span, Days))
        if op == "/" and both:
            return result[0] if result[0] == result[1] else Rng(*result)
        if result[0] == result[1] and unit in ("days", "weeks", "months", "years"):
            return Qty(result[0], unit)
        return Days(*[x * cal.UNIT_DAYS.get(unit, 30.4375) for x in result])
    ra, rb = number_range(a), number_range(b)
    result = _interval_arith(op, ra, rb)
    if result is None:
        return None
    lo, hi = result
    if lo == hi:
        return int(lo) if float(lo).is_integer() and not isinstance(a, float) and not isinstance(b, float) else lo
    return Rng(lo, hi)


def _interval_arith(op: str, a, b):
    if a is None or b is None:
        return None
    if op == "+":
        return a[0] + b[0], a[1] + b[1]
    if op == "-":
        return a[0] - b[1], a[1] - b[0]
    if op == "*":
        products = [x * y for x in a for y in b]
        return min(products), max(products)
    if b[0] <= 0 <= b[1]:
        return None  # division by zero, or by something that may be zero: unknown
    quotients = [x / y for x in a for y in b]
    return min(quotients), max(quotients)


def group_key(group: str, record) -> str | None:
    """Which group a patient is ranked in."""
    if group == "practice":
        return record.patient.practice
    return "population"


def top_share(dist: list[float], value: float, share: float, in_group: bool = True) -> bool:
    """In the top ``share`` of a group (``dist`` sorted ascending)?

    The group has ``share`` of its size in places, rounded up, at least one.
    A patient is in the top when everyone with a value at least as high as
    theirs (themselves included) fits in those places: a tie that would
    overfill the top leaves the whole tie out, so ties never inflate the top
    (14 of 43 patients tied on 2 visits are not "the top 3%"). A value no
    higher than the group's lowest is never in the top. ``in_group`` is False
    for a patient whose own value was too imprecise to join the group: they
    still count themselves.

    >>> top_share([0, 1, 1, 2, 5, 9], 9, 0.03), top_share([0, 1, 1, 2, 5, 9], 5, 0.03)
    (True, False)
    >>> top_share([1, 2, 9, 9], 9, 0.03)
    False
    >>> top_share([0, 0, 0], 0, 0.5)
    False
    """
    if value <= dist[0]:
        return False
    at_least_as_high = len(dist) - bisect.bisect_left(dist, value) + (0 if in_group else 1)
    return at_least_as_high <= max(math.ceil(share * len(dist)), 1)


def percentile_of(dist: list[float], value: float) -> float:
    """The percentage of the group with a lower value (0 to 100).

    >>> percentile_of([1, 2, 3, 4], 3)
    50.0
    """
    return 100.0 * bisect.bisect_left(dist, value) / len(dist)
