"""Lists of record items: filters, windows, aggregates, total stays, counts per period.

Methods of plan.Compiler (kept here to keep plan.py to one subject). A list
is a three-valued test per item row: TRUE the item is in the list, NULL it
may be (an imprecise date on a window's edge, a filter that cannot decide),
FALSE it is not. Kleene's AND of the tests is exactly how engine/evaluate.py
moves items between its ``sure`` and ``maybe`` lists.
"""

from __future__ import annotations

import datetime as dt

from pathways import model as m

from engine import calendar as cal
from engine.values import DateR, Qty

from .sql import dbl, lit
from .values import NULL, ItemSet, V, unknown


def _inside(d_lo: str, d_hi: str, lo: dt.date, hi: dt.date, strict_lo: bool, strict_hi: bool) -> str:
    """engine.evaluate._inside: is the item's date inside the window? NULL when its precision cannot say."""
    L, H = lit(lo), lit(hi)
    above = f"{d_lo} {'>' if strict_lo else '>='} {L}"
    below = f"{d_hi} {'<' if strict_hi else '<='} {H}"
    out_low = f"{d_hi} {'<=' if strict_lo else '<'} {L}"
    out_high = f"{d_lo} {'>=' if strict_hi else '>'} {H}"
    return (f"(CASE WHEN {d_lo} IS NULL THEN NULL WHEN {above} AND {below} THEN TRUE "
            f"WHEN {out_low} OR {out_high} THEN FALSE ELSE NULL END)")


#: the weight of a row that may be in a list, in a packed pair of counts (see count_pair): 2**26, so
#: a patient's sum stays an exact double below 2**53 (up to 67 million rows a patient)
PACK = 1 << 26


def count_pair(self, items: ItemSet, test: str, guard: str | None = None) -> tuple[str, str]:
    """(sure, maybe): SQL, read per patient, of how many rows ``test`` holds for (TRUE) and how many
    it may hold for (NULL; only rows where ``guard`` holds). One aggregate, not two: each row adds 1
    when TRUE and PACK when NULL, and the two counts are the remainder and the quotient of the sum
    by PACK. The aggregates of a table's pass are most of its cost per row. A double sum (exact for
    these integers) is fast on every engine; an integer sum would be 128-bit on DuckDB."""
    weight = dbl(PACK) if guard is None else f"CASE WHEN {guard} THEN {dbl(PACK)} ELSE {dbl(0)} END"
    total = f"COALESCE({self.agg_in(items, f'SUM(COALESCE(CAST(({test}) AS DOUBLE), {weight}))')}, {dbl(0)})"
    maybe = f"FLOOR({total} / {dbl(PACK)})"
    return f"CAST({total} - {maybe} * {dbl(PACK)} AS BIGINT)", f"CAST({maybe} AS BIGINT)"


def count_if(test: str) -> str:
    """Rows where ``test`` is TRUE, as a BIGINT (a SUM of CASEs would be a 128-bit sum, slower; a
    ``COUNT(*) FILTER (WHERE ..)`` evaluates its test at almost twice the cost on DuckDB)."""
    return f"COUNT(CASE WHEN {test} THEN 1 END)"


def _date_field(table: str) -> str:
    from .plan import ITEM_DATE
    return ITEM_DATE.get(table, "date")


def _items(self, v: V, node) -> ItemSet | None:
    if v.kind == "null":
        return None
    if v.kind != "items":
        self.fail(f"a {v.kind} where a list of record items is needed", node)
    return v.items


def _x_filter(self, cp, path, node: m.Filter) -> V:
    items = _items(self, self.expr(cp, path, node.source), node.source)
    if items is None:
        return unknown()
    test = self.condition(cp, path, node.condition, items)
    cleared = None if items.cleared is None else f"({items.cleared}) AND ({test}) IS TRUE"
    scope = " AND ".join([*([items.scope] if items.scope else []),
                          *_filter_scopes(self, cp, path, node.condition, items)]) or None
    return V("items", items=ItemSet(items.table, items.item_kind, f"({items.status}) AND ({test})",
                                    items.window, cleared, since=items.since, scope=scope,
                                    visible=items.visible, window_test=items.window_test))


#: table -> text columns the views never leave empty (a default applies: engine.tables)
NEVER_EMPTY = {"conditions": {"status"}, "medications": {"status"}}


def _filter_scopes(self, cp, path, node, items: ItemSet) -> list[str]:
    """Tests a `where` makes every row of the filtered list pass, for its scope (plan.Compiler.agg):
    ``status is active`` on a column never empty is never unknown, so a row failing it is out of
    the list, not maybe in it (a cleared assessment must pass the whole test too). Through `and`,
    each side's; nothing through `or` or `not`."""
    if isinstance(node, m.Binary) and node.op == "and":
        return (_filter_scopes(self, cp, path, node.left, items)
                + _filter_scopes(self, cp, path, node.right, items))
    if isinstance(node, m.InValueSet):
        return _code_list_scope(self, cp, path, node, items)
    if not (isinstance(node, m.Compare) and node.op == "=" and isinstance(node.left, m.Ref)
            and node.left.target.startswith("attribute:")
            and node.left.name in NEVER_EMPTY.get(items.table, ())):
        return []
    right = self.expr(cp, path, node.right)
    if not (right.is_const and isinstance(right.const, str)):
        return []
    return [f"{node.left.name} = {lit(right.const)}"]


def condition(self, cp, path, node, items: ItemSet) -> str:
    """A `where` test on one item row, three-valued."""
    if isinstance(node, m.Binary) and node.op in ("and", "or"):
        a, b = self.condition(cp, path, node.left, items), self.condition(cp, path, node.right, items)
        return f"({a} {node.op.upper()} {b})"
    if isinstance(node, m.Not):
        return f"(NOT {self.condition(cp, path, node.operand, items)})"
    if isinstance(node, m.InValueSet):
        return self._x_in_value_set(cp, path, node, items)
    if isinstance(node, m.Compare) and isinstance(node.left, m.Ref) and node.left.target.startswith("attribute:"):
        left = self.attribute(items, node.left.name, node.left)
        right = self.expr(cp, path, node.right)
        if not right.is_const:
            self.fail("a `where` test that compares an item with a fact about the patient", node)
        return self.compare(left, node.op, right, node).lo
    self.fail("this `where` test", node, "only tests on the item's own attributes compile")


def _x_in_value_set(self, cp, path, node: m.InValueSet, items: ItemSet) -> str:
    codes = self.expr(cp, path, node.value_set)
    if codes.kind != "valueset":
        self.fail("`in` with something other than a code list", node)
    if node.attribute != "code" or "system" not in _fields(items.table):
        self.fail(f"`{node.attribute} in` a code list on {items.table}", node)
    by_system: dict[str, list[str]] = {}
    for system, code in sorted(codes.const):
        by_system.setdefault(system, []).append(code)
    if not by_system:
        return "FALSE"
    parts = []
    for system, codes in by_system.items():
        bit = self.code_list_bit(items.table, system, tuple(codes))
        if bit is None:
            parts.append(f"(system = {lit(system)} AND code IN ({', '.join(lit(c) for c in codes)}))")
        else:  # the row's bit for this list (Compiler._source); NULL when the row has no code
            parts.append(f"(system = {lit(system)} AND (codes_mask & {1 << bit}) <> 0)")
    return "(" + " OR ".join(parts) + ")"


def _code_list_scope(self, cp, path, node: m.InValueSet, items: ItemSet) -> list[str]:
    """`where code in LIST`: a row whose code is in none of the list's codes is out of the list
    (a row with no code may be in it: its mask is NULL). Only when every part of the list is a bit
    of the mask (Compiler._source): the test is then one AND on a number."""
    codes = self.expr(cp, path, node.value_set)
    if codes.kind != "valueset" or node.attribute != "code" or "system" not in _fields(items.table):
        return []
    by_system: dict[str, list[str]] = {}
    for system, code in sorted(codes.const):
        by_system.setdefault(system, []).append(code)
    bits = [self.code_list_bit(items.table, system, tuple(c)) for system, c in by_system.items()]
    if not bits or None in bits:
        return []
    return [f"(codes_mask IS NULL OR (codes_mask & {sum(1 << b for b in set(bits))}) <> 0)"]


def _fields(table: str) -> dict:
    from .plan import TABLE_FIELDS
    return TABLE_FIELDS[table]


def attribute(self, items: ItemSet, name: str, node) -> V:
    """An attribute of one item row (engine.record_index.attribute)."""
    table, fields = items.table, _fields(items.table)
    AS_OF = self.AS_OF
    if name == "date":
        d = _date_field(table)
        return V("date", f"{d}_lo", f"{d}_hi")
    if name == "duration" and table in ("conditions", "medications", "encounters"):
        start, end = ("onset", "abatement") if table == "conditions" else ("start", "end")
        e_lo = f"LEAST(COALESCE({end}_lo, {AS_OF}), {AS_OF})"
        e_hi = f"LEAST(COALESCE({end}_hi, {AS_OF}), {AS_OF})"
        return V("span", span=(f"{start}_lo", f"{start}_hi", e_lo, e_hi))
    if name == "length" and table == "encounters":
        e_lo = f"LEAST(COALESCE(end_lo, {AS_OF}), {AS_OF})"
        e_hi = f"LEAST(COALESCE(end_hi, {AS_OF}), {AS_OF})"
        return V("days", f"GREATEST(DATE_DIFF('day', start_hi, {e_lo}), 0)",
                 f"GREATEST(DATE_DIFF('day', start_lo, {e_hi}), 0)")
    kind = fields.get(name)
    if kind == "date":
        return V("date", f"{name}_lo", f"{name}_hi")
    if kind == "num":
        return V("num", name, name)
    if kind == "text":
        if table == "encounters" and name == "code":
            return V("text", "COALESCE(code, '')", "COALESCE(code, '')")  # the model's default: empty
        return V("text", name, name)
    return unknown()


def window_bounds(self, cp, path, node: m.Window):
    """(lo, hi, lo strict, hi strict) as dates, or None when the window cannot be placed."""
    if node.mode == "last":
        q = self.expr(cp, path, node.amount)
        if q.kind != "qty":
            return None
        return cal.shift(self.as_of, -q.const.value, q.const.unit), self.as_of, False, False
    a = self.expr(cp, path, node.start) if node.start is not None else None
    if a is None or a.kind != "date" or not a.is_const:
        if a is not None and a.kind == "date":
            self.fail("a window whose start is a date from the record", node)
        return None
    a = a.const
    if node.mode == "between":
        b = self.expr(cp, path, node.end)
        if b.kind != "date":
            return None
        if not b.is_const:
            self.fail("a window whose end is a date from the record", node)
        return a.lo, b.const.hi, False, False
    if node.mode == "before":
        return dt.date.min, a.lo, False, True
    return a.hi, dt.date.max, True, False


def _x_window(self, cp, path, node: m.Window) -> V:
    items = _items(self, self.expr(cp, path, node.source), node.source)
    bounds = self.window_bounds(cp, path, node)
    if items is None or bounds is None:
        return unknown()
    d = _date_field(items.table)
    inside = _inside(f"{d}_lo", f"{d}_hi", *bounds)
    cleared = None if items.cleared is None else f"({items.cleared}) AND ({inside}) IS TRUE"
    window = bounds[:2] if node.mode == "last" else items.window
    # a row dated before the window's start is out of it whatever else holds (see Compiler.agg)
    since = bounds[0] if bounds[0] > dt.date.min else None
    if items.since is not None:
        since = max(since or items.since, items.since)
    status, visible = items.status, items.visible
    if visible is not None and bounds[1] <= self.as_of and visible in status:
        # inside a window that ends by the as-of date, an item is dated by then exactly when it is in
        # the window: the two tests' Kleene AND is the window's alone (TRUE inside means dated by
        # the as-of date; a date after it is outside; an unknown one is NULL for both), so the
        # as-of test is dropped: one three-valued CASE less per row and list
        status, visible = status.replace(visible, "(TRUE)"), None
    window_test = f"({inside})" if node.mode == "last" else items.window_test
    return V("items", items=ItemSet(items.table, items.item_kind, f"({status}) AND ({inside})", window,
                                    cleared, since=since, scope=items.scope, visible=visible,
                                    window_test=window_test))


def _x_aggregate(self, cp, path, node: m.Aggregate) -> V:
    if node.op == "total_stay":
        return self._total_stay(cp, path, node)
    items = _items(self, self.expr(cp, path, node.source), node.source)
    if items is None:
        return unknown()
    st = items.status
    n, extra = self.count_pair(items, st)
    if node.op == "count":
        return V("num", n, f"({n} + {extra})")
    if node.op in ("any", "no"):
        absent = "FALSE"
        if items.cleared is not None:
            c = f"COALESCE({self.agg_in(items, count_if(items.cleared))}, 0)"
            absent = f"CASE WHEN {c} > 0 THEN FALSE ELSE NULL END"
        found = f"(CASE WHEN {n} > 0 THEN TRUE WHEN {extra} > 0 THEN NULL ELSE {absent} END)"
        return V("bool", found if node.op == "any" else f"(NOT {found})", None)._same()
    value = self.attribute(items, node.attribute, node)
    if node.op == "sum":
        if value.kind != "num":
            self.fail(f"`sum` of {node.attribute}", node, "only sums of numbers and amounts compile")
        sure = f"COALESCE({self.agg_in(items, f'SUM(CASE WHEN {st} THEN {value.lo} END)')}, 0)"
        low = f"COALESCE({self.agg_in(items, f'SUM(CASE WHEN ({st}) IS NULL THEN LEAST({value.lo}, 0) END)')}, 0)"
        high = f"COALESCE({self.agg_in(items, f'SUM(CASE WHEN ({st}) IS NULL THEN GREATEST({value.lo}, 0) END)')}, 0)"
        return V("num", f"({sure} + {low})", f"({sure} + {high})")
    if value.kind not in ("num", "date"):
        self.fail(f"`{node.op}` of {node.attribute}", node, "only extremes of numbers and dates compile")
    fn = "MIN" if node.op in ("min", "earliest") else "MAX"
    picked, every = [], []
    for part in (value.lo, value.hi) if value.kind == "date" else (value.lo,):
        picked.append(self.agg_in(items, f"{fn}(CASE WHEN {st} THEN {part} END)"))
        every.append(self.agg_in(items, f"{fn}(CASE WHEN ({st}) IS NOT FALSE THEN {part} END)"))
    # an item that may be in the list makes the answer unknown unless it changes nothing
    moved = " OR ".join(f"({a} IS DISTINCT FROM {b})" for a, b in zip(picked, every))
    guard = f"{extra} > 0 AND ({moved})"
    lo = f"(CASE WHEN {guard} THEN NULL ELSE {picked[0]} END)"
    hi = f"(CASE WHEN {guard} THEN NULL ELSE {picked[-1]} END)"
    return V(value.kind, lo, hi)


def _total_stay(self, cp, path, node: m.Aggregate) -> V:
    """Nights in hospital, overlapping stays merged (gaps and islands), clipped to the window."""
    inner, bounds = node.source, None
    if isinstance(inner, m.Window) and inner.mode == "last":
        inner, bounds = inner.source, self.window_bounds(cp, path, inner)
        if bounds is None:
            return unknown()
    items = _items(self, self.expr(cp, path, inner), inner)
    if items is None:
        return unknown()
    if items.table != "encounters":
        self.fail("`total stay of` a list that is not of encounters", node)
    lo, hi = (bounds[0], bounds[1]) if bounds else (dt.date.min, dt.date.max)
    L, H = lit(lo), lit(min(hi, self.as_of))
    AS_OF, st = self.AS_OF, items.status
    # one scan of the encounters for both readings (narrowest dates w = 0, widest w = 1): each
    # reading of the table parses its date cells again
    # admissions are a few of the encounters. The list's test is computed once, with the dates it
    # reads, as ``rd``, the first reading the row is in (0 both, 1 the widest only, 2 neither), and
    # applied with the readings: as a filter (even on the test's own column, which DuckDB pushes
    # down) it would work the dates out a second time, on rows the scope leaves scattered thinly
    scope = f" WHERE {items.scope}" if items.scope else ""
    src = (f"SELECT patient_id, start_lo, start_hi, end_lo, end_hi, "
           f"CASE WHEN ({st}) THEN 0 WHEN ({st}) IS NULL THEN 1 ELSE 2 END AS rd FROM t_encounters{scope}")
    spans = (f"SELECT patient_id, w, "
             f"CASE WHEN w = 0 THEN GREATEST(start_hi, {L}) ELSE GREATEST(start_lo, {L}) END AS s, "
             f"CASE WHEN w = 0 THEN LEAST(COALESCE(end_lo, {AS_OF}), {H}) ELSE LEAST(COALESCE(end_hi, {AS_OF}), {H}) "
             f"END AS e FROM ({src}) x CROSS JOIN (VALUES (0), (1)) AS v(w) WHERE w >= rd")
    order = "PARTITION BY patient_id, w ORDER BY s, e"
    name = self.fresh("stay")
    # The nights the stays cover together, without forming the islands: in order of start, a stay
    # adds the nights after both its start and every earlier stay's end (pe, the latest of them):
    # every earlier stay starts no later, so what they cover from this start on ends at pe. One
    # window and one GROUP BY, where merging the islands took two of each.
    sql = (f"SELECT patient_id, SUM(CASE WHEN w = 0 THEN d ELSE 0 END) AS {name}_lo, "
           f"SUM(CASE WHEN w = 1 THEN d ELSE 0 END) AS {name}_hi FROM ("
           f"SELECT patient_id, w, GREATEST(DATE_DIFF('day', GREATEST(s, COALESCE(pe, s)), e), 0) AS d FROM ("
           f"SELECT patient_id, w, s, e, MAX(e) OVER ({order} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) "
           f"AS pe FROM ({spans}) spans WHERE e > s) ordered) added GROUP BY patient_id")
    self.base_extra.append((name, sql, [f"{name}_lo", f"{name}_hi"]))
    return V("days", f"COALESCE({name}_lo, 0)", f"COALESCE({name}_hi, 0)")


def _x_per_period(self, cp, path, node: m.PerPeriod) -> V:
    from engine.evaluate import literal
    items = _items(self, self.expr(cp, path, node.source), node.source)
    period = literal(node.period)
    if items is None or items.window is None or not isinstance(period, Qty):
        return unknown()
    lo, hi = items.window
    edges = cal.period_edges(hi, self.as_of, lo, period.value, period.unit)
    periods = len(edges) - 1
    if periods == 0:
        return unknown()
    d = _date_field(items.table)
    st = items.status
    if items.window_test and all(lo <= e <= hi for e in edges):
        # every period lies inside the window: an item in a period is in the window, and one that
        # may be in a period overlaps the window, so it is in it or may be. The window's test adds
        # nothing to the period's (Kleene's AND of the two is the period's), and is dropped: one
        # three-valued CASE less per row and period
        st = st.replace(items.window_test, "(TRUE)")
    sure, both = [], []
    for k in range(periods):
        inside = _inside(f"{d}_lo", f"{d}_hi", edges[k + 1], edges[k], k != periods - 1, False)
        # in the period: Kleene's AND of the list's test and the period's. TRUE: sure; NULL exactly
        # when the item may be in the list and in the period (the list's test NULL and the period's
        # not FALSE, or the list's TRUE and the period's NULL). One shared test is far cheaper per
        # row than testing each side with IS TRUE / IS NULL.
        s, u = self.count_pair(items, f"({st}) AND {inside}", guard=f"{d}_lo IS NOT NULL")
        sure.append(s)
        both.append(f"({s} + {u})")
    if node.op == "average":
        return V("num", f"(({' + '.join(sure)}) / {dbl(periods)})", f"(({' + '.join(both)}) / {dbl(periods)})")
    fn = "LEAST" if node.op == "lowest" else "GREATEST"
    pick = (lambda xs: xs[0]) if periods == 1 else (lambda xs: f"{fn}({', '.join(xs)})")
    return V("num", pick(sure), pick(both))


__all__ = ["_x_filter", "_x_window", "_x_aggregate", "_x_per_period", "_x_in_value_set", "condition",
           "attribute", "window_bounds", "_total_stay", "count_pair", "DateR", "NULL"]
