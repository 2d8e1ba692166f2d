"""Fast roads: closures for the shapes of expression protocols use most.

The general closures of :mod:`engine.evaluate` scan record items and carry
every date as a range, so that dates known only to the month or year give
unknown where they should. Most records date everything to the day; for
them a windowed count is two binary searches over the collection's sorted
dates (:class:`engine.record_index.Dated`), and an age is a whole
number. Each road here checks, at run time, that the data it reads is
day-precise and otherwise hands over to the general closure of the same
node, so it always gives what the general road gives
(``tests/test_fast_roads.py`` compares the two on generated populations
with imprecise dates, and the conformance cases run through both).

Roads over lists are taken only when no trace is recorded: an explanation
needs the items themselves, which the general road collects. A `where` test
on one item (:func:`fast_condition`) records nothing, so it runs under a
trace too.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING, Callable

from pathways import model as m
from pathways.records import Condition

from . import calendar as cal
from .record_index import ASSESSED, PLAIN_NUMBERS as plain_numbers, plain_sum
from .values import PLAIN_OPERATORS, Qty

window_text = cal.window_text

if TYPE_CHECKING:
    from .evaluate import CompiledProtocol, Ctx, Fn

def fast_road(compiled: "CompiledProtocol", node: m.Expr, general: "Fn") -> "Fn | None":
    """A faster closure for ``node`` that falls back on ``general``, or None when
    the node has no fast road."""
    if isinstance(node, m.Aggregate) and node.op in ("count", "any", "no"):
        name, amount = _last_window_over_collection(node.source)
        if name is not None:
            return _window_count(compiled, node.op, name, amount, general)
    if isinstance(node, m.PerPeriod) and isinstance(node.period, m.Quantity):
        name, amount = _last_window_over_collection(node.source)
        if name is not None and node.period.unit in ("days", "weeks", "months", "years"):
            return _per_period(compiled, node, name, amount, general)
    if isinstance(node, m.Aggregate) and (node.op == "count" or (node.op == "sum" and node.attribute in plain_numbers)):
        found = _filter_over_collection(compiled, node.source)
        if found is not None:
            return _filtered(node.op, node.attribute, *found, general)
    if isinstance(node, m.Compare) and isinstance(node.left, m.Ref) and node.left.target == "patient:age" \
            and node.op in PLAIN_OPERATORS:
        return _age_compare(compiled, node, general)
    return None


def _last_window_over_collection(source: m.Expr) -> tuple[str | None, m.Expr | None]:
    """(collection name, window length) for ``COLLECTION in the last AMOUNT``."""
    if isinstance(source, m.Window) and source.mode == "last" and isinstance(source.source, m.Ref):
        kind, _, name = source.source.target.partition(":")
        if kind == "collection":
            return name, source.amount
    return None, None


def _filter_over_collection(compiled: "CompiledProtocol", source: m.Expr):
    """(collection name, compiled `where` test) for ``COLLECTION where TEST``, written
    in place or as a definition of this protocol; None for any other list."""
    if isinstance(source, m.Ref) and source.target.startswith("decl:"):
        name = source.target[5:]
        decl = compiled.decls.get(name)
        if not isinstance(decl, m.Definition) or name in compiled.ranked:
            return None  # (a ranked definition must keep its check for a population)
        source = decl.expr
    if isinstance(source, m.Filter) and isinstance(source.source, m.Ref) \
            and source.source.target.startswith("collection:"):
        return source.source.target[11:], compiled.condition(source.condition)
    return None


def _filtered(op: str, attr: str | None, name: str, test: Callable, general: "Fn") -> "Fn":
    """A count (or plain sum) of the items of a collection that pass a test, without
    building the lists: the general road's answer whenever every item is seen for
    sure on the as-of date and every test is decided."""
    def filtered(ctx: "Ctx"):
        sure, maybe = ctx.index.as_of(name, ctx.as_of)
        if maybe:
            return general(ctx)
        picked = []
        for item in sure:
            holds = test(item, ctx)
            if holds:
                picked.append(item)
            elif holds is None:
                return general(ctx)
        if op == "count":
            return len(picked)
        total = plain_sum(picked, attr)
        return general(ctx) if total is None else total
    return filtered


def _window_count(compiled: "CompiledProtocol", op: str, name: str, amount_node: m.Expr,
                  general: "Fn") -> "Fn":
    amount = compiled.expr(amount_node)
    assessed = name in ASSESSED
    cleared_name = "cleared:" + name

    def window_count(ctx: "Ctx"):
        dated = ctx.index.dated(name)
        q = amount(ctx)
        if not dated.exact or type(q) is not Qty:
            return general(ctx)
        start, day = window_text(ctx.as_of, q.value, q.unit)
        days = dated.days
        n = bisect_right(days, day) - bisect_left(days, start)
        if op == "count":
            return n
        if n:
            found = True
        elif assessed:
            # an impairment no assessment in the window looked for is unknown, not absent
            cleared = ctx.index.dated(cleared_name)
            if not cleared.exact:
                return general(ctx)
            found = False if bisect_right(cleared.days, day) - bisect_left(cleared.days, start) else None
        else:
            found = False
        if op == "any":
            return found
        return None if found is None else not found
    return window_count


def _per_period(compiled: "CompiledProtocol", node: m.PerPeriod, name: str, amount_node: m.Expr,
                general: "Fn") -> "Fn":
    amount = compiled.expr(amount_node)
    size, unit, op = node.period.value, node.period.unit, node.op

    def per_period(ctx: "Ctx"):
        dated = ctx.index.dated(name)
        q = amount(ctx)
        if not dated.exact or type(q) is not Qty:
            return general(ctx)
        edges = cal.period_text(ctx.as_of, q.value, q.unit, size, unit)
        periods = len(edges) - 1
        if periods == 0:
            return None
        days = dated.days
        # period k holds (edges[k+1], edges[k]]; the oldest holds its first day too
        counts = [bisect_right(days, edges[k]) - bisect_right(days, edges[k + 1]) for k in range(periods - 1)]
        counts.append(bisect_right(days, edges[-2]) - bisect_left(days, edges[-1]))
        if op == "lowest":
            return min(counts)
        if op == "highest":
            return max(counts)
        return sum(counts) / periods
    return per_period


def _age_compare(compiled: "CompiledProtocol", node: m.Compare, general: "Fn") -> "Fn":
    right = compiled.expr(node.right)
    test = PLAIN_OPERATORS[node.op]

    def age_compare(ctx: "Ctx"):
        birth = ctx.index.record.patient.birth_date
        q = right(ctx)
        if birth is None or len(birth.text) != 10 or type(q) is not Qty or q.unit != "years":
            return general(ctx)
        return test(cal.age_on(birth.earliest, ctx.as_of), q.value)
    return age_compare


def fast_condition(compiled: "CompiledProtocol", node: m.Expr, general: Callable) -> Callable | None:
    """A faster `where` test on one item for ``node``, falling back on ``general``, or None."""
    if isinstance(node, m.Compare) and isinstance(node.left, m.Ref) and node.left.target == "attribute:duration" \
            and node.op in PLAIN_OPERATORS:
        return _duration_test(compiled, node, general)
    return None


def _duration_test(compiled: "CompiledProtocol", node: m.Compare, general: Callable) -> Callable:
    right = compiled.expr(node.right)
    test = PLAIN_OPERATORS[node.op]
    whole_units = cal.whole_units

    def duration_test(item, ctx: "Ctx"):
        # a condition runs from onset to abatement, anything else from start to end
        start, end = (item.onset, item.abatement) if type(item) is Condition else (item.start, item.end)
        q = right(ctx)
        if start is None or len(start.text) != 10 or (end is not None and len(end.text) != 10) \
                or type(q) is not Qty:
            return general(item, ctx)
        as_of = ctx.as_of
        stop = as_of if end is None else min(end.earliest, as_of)
        return test(whole_units(start.earliest, stop, q.unit), q.value)
    return duration_test

