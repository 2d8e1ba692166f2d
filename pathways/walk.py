"""Generic traversal of model nodes (iterative, so deep trees cannot overflow)."""

from __future__ import annotations

from typing import Iterator

from pydantic import BaseModel

from . import model as m


_FIELDS: dict[type, tuple[str, ...]] = {}


def _fields(cls: type) -> tuple[str, ...]:
    # pydantic's model_fields is a slow accessor; checks and the fuzzer walk models constantly
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = tuple(n for n in cls.model_fields if n not in ("span", "protocol"))
    return found


def children(node: BaseModel) -> Iterator[tuple[str, BaseModel]]:
    """(field path, child node) pairs of a node, in field order; spans excluded."""
    values = node.__dict__
    for name in _fields(type(node)):
        value = values[name]
        if isinstance(value, BaseModel):
            yield name, value
        elif isinstance(value, tuple):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield f"{name}.{i}", item


def walk(node: BaseModel) -> Iterator[BaseModel]:
    """Every node below ``node`` (itself included), parents before children."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed([c for _, c in children(current)]))


def refs(node: BaseModel) -> Iterator[m.Ref]:
    """Every name reference below ``node``, including value sets named in filters
    and the target of ``items met in``; attribute names inside filters are not
    references and are skipped."""
    stack: list[BaseModel] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, m.Ref):
            yield current
            continue
        if isinstance(current, m.Filter):
            stack.append(current.source)
            stack.extend(_filter_values(current.condition))
            continue
        stack.extend(c for _, c in children(current))


def _filter_values(cond: BaseModel) -> list[BaseModel]:
    """The parts of a filter condition that name things outside the item."""
    out: list[BaseModel] = []
    stack = [cond]
    while stack:
        current = stack.pop()
        if isinstance(current, m.Compare) and isinstance(current.left, m.Ref):
            out.append(current.right)
        elif isinstance(current, m.InValueSet):
            out.append(current.value_set)
        elif isinstance(current, (m.Binary, m.Not)):
            stack.extend(c for _, c in children(current))
    return out


def depth(node: BaseModel) -> int:
    """How deeply nodes nest below ``node``."""
    best = 0
    stack = [(node, 1)]
    while stack:
        current, d = stack.pop()
        best = max(best, d)
        stack.extend((c, d + 1) for _, c in children(current))
    return best
