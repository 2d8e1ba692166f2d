"""Population-relative terms as window functions (engine.evaluate.top_share, percentile_of).

Methods of plan.Compiler. The group is the patient's practice, or everyone.
Only patients whose value is exactly known (and who have a group) join the
group's distribution, as in Program.distributions. A patient whose own value
is a range is ranked at both ends against the group (a join with the group's
members; such patients are few) and is unknown unless both ends agree.
"""

from __future__ import annotations

from pathways import model as m

from .sql import dbl
from .values import V, unknown


def _rank(self, cp, path, node):
    """Materialise the value and the group's window figures; returns the column names."""
    v = self.expr(cp, path, node.value)
    if v.kind == "null":
        return None
    if v.kind not in ("num", "days"):
        self.fail(f"ranking a {v.kind}", node)
    name = self.fresh("rank")
    val = self.materialize(v, name, "", None, audit=False)
    k = val.stage
    stage = k + 1
    while len(self.stages) <= stage:
        self.stages.append([])
    by_practice = node.group == "practice"
    grp = "practice" if by_practice else "'population'"
    lo, hi = val.lo, val.hi
    exact = f"({lo} = {hi} AND {grp} IS NOT NULL)"
    key = f"CASE WHEN {exact} THEN {lo} END"
    # The window runs over the distinct (group, value) pairs with how many patients hold each, not
    # over every patient: a practice's patients share a few dozen values, so it sorts thousands of
    # rows instead of millions, and each patient finds its figures by its group and value. The
    # patients whose value is not exact share the NULL value, ranked last: as many at or above
    # them as the group holds, as the window over every patient counts them.
    group_cols = ["practice AS " + f"{name}_p"] if by_practice else []
    groups = (f"SELECT {', '.join([*group_cols, f'{key} AS {name}_k'])}, "
              f"COUNT(CASE WHEN {exact} THEN 1 END) AS {name}_c FROM s{k} "
              f"GROUP BY {', '.join((['practice'] if by_practice else []) + [key])}")
    part = f"PARTITION BY {name}_p" if by_practice else ""
    cols = {
        "n": f"CAST(SUM({name}_c) OVER ({part}) AS BIGINT)",
        "mn": f"MIN({name}_k) OVER ({part})",
        "ge": (f"CAST(SUM({name}_c) OVER ({part} ORDER BY {name}_k DESC NULLS LAST "
               "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT)"),
    }
    picked = ([f"{name}_p"] if by_practice else []) + [f"{name}_k"]
    win = (f"SELECT {', '.join(picked)}, {', '.join(f'{sql} AS {name}_{c}' for c, sql in cols.items())} "
           f"FROM ({groups}) {name}_groups")
    on = f"{name}_window.{name}_k IS NOT DISTINCT FROM ({key})"
    if by_practice:
        on = f"{name}_window.{name}_p IS NOT DISTINCT FROM practice AND {on}"
    self.stage_ctes.setdefault(stage, []).append((f"{name}_window", win, [f"{name}_{c}" for c in cols], on))
    # A patient whose value is a range counts the group's exact values at or above each end. The
    # window's rows already hold, for each exact value, how many are at or above it (``ge``,
    # falling as the value rises): the count at or above an end is the largest ``ge`` of a value
    # at or above that end. So such a patient is joined with its group's distinct values, not with
    # every member (a join the size of the group for each of them, built even when none is inexact).
    on = f"w.{name}_p = i.practice" if by_practice else "TRUE"
    inexact = (f"SELECT i.patient_id, COALESCE(MAX(CASE WHEN w.{name}_k >= i.{lo} THEN w.{name}_ge END), 0) "
               f"AS {name}_gelo, COALESCE(MAX(CASE WHEN w.{name}_k >= i.{hi} THEN w.{name}_ge END), 0) "
               f"AS {name}_gehi FROM s{k} i JOIN {name}_window w ON {on} WHERE i.{lo} <> i.{hi} "
               "GROUP BY i.patient_id")
    self.stage_ctes.setdefault(stage, []).append((f"{name}_inexact", inexact, [f"{name}_gelo", f"{name}_gehi"], None))
    known = f"{grp} IS NOT NULL AND {lo} IS NOT NULL AND {name}_n > 0"
    return dict(lo=lo, hi=hi, n=f"{name}_n", mn=f"{name}_mn", ge=f"{name}_ge", gelo=f"COALESCE({name}_gelo, 0)",
                gehi=f"COALESCE({name}_gehi, 0)", known=known, stage=stage)


def _x_in_top(self, cp, path, node: m.InTop) -> V:
    r = self._rank(cp, path, node)
    if r is None:
        return unknown()
    places = f"GREATEST(CEIL({dbl(node.percent.value / 100)} * {r['n']}), 1)"

    def top(x: str, count: str) -> str:
        return f"(CASE WHEN {x} <= {r['mn']} THEN FALSE ELSE {count} <= {places} END)"
    a, b = top(r["lo"], f"({r['gelo']} + 1)"), top(r["hi"], f"({r['gehi']} + 1)")
    sql = (f"(CASE WHEN NOT ({r['known']}) THEN NULL WHEN {r['lo']} = {r['hi']} THEN {top(r['lo'], r['ge'])} "
           f"WHEN {a} = {b} THEN {a} ELSE NULL END)")
    return V("bool", sql, sql, stage=r["stage"])


def _x_percentile(self, cp, path, node: m.Percentile) -> V:
    r = self._rank(cp, path, node)
    if r is None:
        return unknown()
    n = r["n"]

    def pct(count: str) -> str:
        return f"(CAST(100 AS DOUBLE) * ({n} - {count}) / {n})"
    exact = f"{r['lo']} = {r['hi']}"
    lo = f"(CASE WHEN NOT ({r['known']}) THEN NULL WHEN {exact} THEN {pct(r['ge'])} ELSE {pct(r['gelo'])} END)"
    hi = f"(CASE WHEN NOT ({r['known']}) THEN NULL WHEN {exact} THEN {pct(r['ge'])} ELSE {pct(r['gehi'])} END)"
    return V("num", lo, hi, stage=r["stage"])
