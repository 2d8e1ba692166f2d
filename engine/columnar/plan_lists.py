"""Item lists (``all of``, ``any of``, ``none of``, ``at least N of``) and ``items met in``.

Methods of plan.Compiler. Each item becomes an audit column named by its
node id; the list reads those columns (engine.values.at_least).
"""

from __future__ import annotations

from pathways import model as m

from engine.values import number_range

from .values import NULL, V


def _x_item_list(self, cp, path, node: m.ItemList) -> V:
    values = []
    for item in node.items:
        v = self.bool_of(self.expr(cp, path, item.expr), item)
        values.append(self.materialize(v, item.id, item.label, item.span.line))
    self.lists[node.id] = values
    stage = max([v.stage for v in values], default=0)
    if node.quantifier == "all":  # at_least(values, len(values)) is Kleene's AND
        return V("bool", "(" + " AND ".join(["TRUE", *(v.lo for v in values)]) + ")", None, stage=stage)._same()
    if node.quantifier in ("any", "none"):
        found = "(" + " OR ".join(["FALSE", *(v.lo for v in values)]) + ")"
        return V("bool", found if node.quantifier == "any" else f"(NOT {found})", None, stage=stage)._same()
    minimum = self.expr(cp, path, node.minimum)
    if not minimum.is_const:
        self.fail("`at least N of` with N taken from the record", node)
    n = number_range(minimum.const)
    if n is None or n[0] != n[1]:
        return V("bool", NULL, NULL, None, True)
    true, unknown = _counts(values)
    k = n[0]
    return V("bool", f"(CASE WHEN {true} >= {k!r} THEN TRUE WHEN {true} + {unknown} < {k!r} THEN FALSE ELSE NULL END)",
             None, stage=stage)._same()


def _counts(values: list[V]) -> tuple[str, str]:
    true = "(" + " + ".join(["0", *(f"CASE WHEN {v.lo} IS TRUE THEN 1 ELSE 0 END" for v in values)]) + ")"
    unknown = "(" + " + ".join(["0", *(f"CASE WHEN {v.lo} IS NULL THEN 1 ELSE 0 END" for v in values)]) + ")"
    return true, unknown


def declared(cp, path, ref: m.Ref):
    """(the compiled protocol declaring ``ref``, its path, the name there)."""
    kind, _, rest = ref.target.partition(":")
    if kind == "decl":
        return cp, path, rest
    alias, _, name = rest.partition(":")
    return cp.imports[alias], alias, name


def _x_items_met(self, cp, path, node: m.ItemsMet) -> V:
    owner, owner_path, name = declared(cp, path, node.target)
    self.decl(owner, owner_path, name)
    values = self.lists[owner.decls[name].expr.id]
    true, unknown = _counts(values)
    stage = max([v.stage for v in values], default=0)
    return V("num", true, f"({true} + {unknown})", stage=stage)
