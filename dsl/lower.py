"""Lowering: the checked syntax becomes the model, with stable ids and targets.

An id is the protocol name, the declaration name and the field path inside
it (``castlefields.published_criteria/expr/items.3``): editing one
declaration never changes the ids of another.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel

from pathways import model as m

from .unit import Unit


def _assign(node: BaseModel, node_id: str, unit: Unit) -> BaseModel:
    update: dict = {}
    for name in type(node).model_fields:
        if name in ("span", "protocol"):
            continue
        value = getattr(node, name)
        if isinstance(value, BaseModel):
            update[name] = _assign(value, f"{node_id}/{name}", unit)
        elif isinstance(value, tuple) and value and isinstance(value[0], BaseModel):
            update[name] = tuple(_assign(v, f"{node_id}/{name}.{i}", unit) for i, v in enumerate(value))
    if "id" in type(node).model_fields:
        update["id"] = node_id
    if isinstance(node, m.ValueSet):
        update["codes"] = unit.codes.get(node.name, node.codes)  # inline and CSV codes together
    if isinstance(node, m.Ref):
        update["target"] = unit.targets.get(id(node), "")
    if isinstance(node, m.Item) and not node.label and isinstance(node.expr, m.Ref):
        update["label"] = _label_of(unit, node.expr)
    if isinstance(node, m.ScoreItem) and not node.label and isinstance(node.expr, m.Ref):
        update["label"] = _label_of(unit, node.expr)
    if isinstance(node, m.Action) and isinstance(node.interval, m.Ref):
        update["interval"] = _timing(unit, node.interval, update["interval"].id)
    if isinstance(node, m.Transition) and isinstance(node.delay, m.Ref):
        update["delay"] = _timing(unit, node.delay, update["delay"].id)
    return node.model_copy(update=update)


def _timing(unit: Unit, ref: m.Ref, node_id: str) -> m.Quantity:
    """``every review_interval``: the parameter's default, naming the parameter,
    so code that reads pathway times gets a duration (the checker made sure it is one)."""
    owner = unit if ref.namespace is None else unit.imports[ref.namespace]
    default = owner.decls[ref.name].default
    return default.model_copy(update={"id": node_id, "span": ref.span, "parameter": ref.dotted})


def _label_of(unit: Unit, ref: m.Ref) -> str:
    owner = unit if ref.namespace is None else unit.imports.get(ref.namespace)
    decl = owner.decls.get(ref.name) if owner else None
    return (decl.label if decl and decl.label else ref.dotted)


def lower(unit: Unit, imported: dict[str, m.Protocol]) -> m.Protocol:
    """Build the model of a checked unit; ``imported`` maps alias -> lowered protocol."""
    name = unit.name
    decls = tuple(_assign(d, f"{name}.{'test:' if d.kind == 'test' else ''}{d.name}", unit) for d in unit.order)
    uses = tuple(u.model_copy(update={"protocol": imported.get(u.alias)}) for u in unit.uses)
    header = unit.header or m.Header(name=name)
    return m.Protocol(
        header=header, file=unit.file, sha256=hashlib.sha256(unit.source.encode()).hexdigest(),
        uses=uses, declarations=decls, outcomes=tuple(n for n, _ in unit.outcomes),
    )
