"""Lint: things that are legal but almost certainly not what the author meant."""

from __future__ import annotations

from pathways import model as m
from pathways.graphs import state_graph, steps_without_exit, timerless_cycles, unreachable_steps
from pathways.walk import walk

from .diagnostics import Label
from .resolve import name_span
from .unit import Unit


def _shape(node: m.Node) -> object:
    """A node's content without spans or ids, for spotting repeated conditions."""
    return _strip(node.model_dump(mode="json"))


def _strip(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _strip(v)) for k, v in value.items() if k not in ("span", "id", "target")))
    if isinstance(value, list):
        return tuple(_strip(v) for v in value)
    return value


def lint_unused(unit: Unit) -> None:
    """Declarations nothing uses, in a protocol that names its outcomes.

    A file without an ``outcomes`` line is a library of definitions for other
    protocols to import, so unused names there are expected.
    """
    if not unit.outcomes:
        return
    if unit.syntax is not None and unit.syntax.failed_chunks:
        return  # a statement that cannot be read may be what uses them: say nothing until it is fixed
    for decl in unit.order:
        if isinstance(decl, (m.Pathway, m.CarePlan, m.ProtocolTest)) or decl.name in unit.used:
            continue
        what = {"parameter": "parameter", "value_set": "code list"}.get(decl.kind, "definition")
        unit.sink.warning("PW401", f"{what} `{decl.name}` is never used", name_span(unit, decl),
                          help="use it, list it in `outcomes`, or delete it")


def lint_item_lists(unit: Unit) -> None:
    for decl in unit.order:
        for node in walk(decl):
            if isinstance(node, m.ItemList) and node.quantifier == "at_least":
                n = _constant(unit, node.minimum)
                if n is not None and n > len(node.items):
                    unit.sink.warning("PW402", f"`at least {n:g} of` a list of {len(node.items)} items can never be met",
                                      node.span, help=f"the list has only {len(node.items)} items")
                elif n is not None and n <= 0:
                    unit.sink.warning("PW403", f"`at least {n:g} of` is always met", node.span)


def _constant(unit: Unit, expr: m.Expr | None) -> float | None:
    if isinstance(expr, m.Quantity):
        return expr.value
    if isinstance(expr, m.Ref) and expr.namespace is None:
        decl = unit.decls.get(expr.name)
        if isinstance(decl, m.Parameter) and isinstance(decl.default, m.Quantity):
            return decl.default.value
    return None


def lint_levels(unit: Unit) -> None:
    """A level whose condition an earlier level already covers can never be reached."""
    for decl in unit.order:
        if not isinstance(decl, m.Levels):
            continue
        seen: list[tuple[object, m.Level]] = []
        for level in decl.levels:
            if level.condition is None:
                continue
            shape = _shape(level.condition)
            for earlier_shape, earlier in seen:
                if earlier_shape == shape or (isinstance(earlier.condition, m.Boolean) and earlier.condition.value):
                    unit.sink.warning("PW404", f"level {level.number} can never be reached", level.span,
                                      labels=[Label(span=earlier.span, message=f"level {earlier.number} already "
                                                    "matches every patient this level would")],
                                      help="first match wins: change or reorder the conditions")
                    break
            seen.append((shape, level))


def lint_bands(unit: Unit) -> None:
    """Bands are tried in order; a band whose bound an earlier band covers is dead."""
    for decl in unit.order:
        if not isinstance(decl, m.Bands):
            continue
        previous: m.Band | None = None
        for band in decl.bands:
            if band.threshold is None:
                if band is not decl.bands[-1]:
                    unit.sink.warning("PW405", f"band `{band.name}` is `otherwise` but is not last", band.span,
                                      help="bands after it can never be reached")
                continue
            if previous is not None and previous.op == band.op and previous.op in ("<=", "<") \
                    and isinstance(previous.threshold, m.Quantity) and isinstance(band.threshold, m.Quantity) \
                    and band.threshold.value <= previous.threshold.value:
                unit.sink.warning("PW406", f"band `{band.name}` can never be reached", band.span,
                                  labels=[Label(span=previous.span, message="this band already takes those values")],
                                  help="list the bands from the lowest bound to the highest")
            previous = band


def lint_pathways(unit: Unit) -> None:
    """Graph checks over each pathway's state graph."""
    for decl in unit.order:
        if not isinstance(decl, m.Pathway) or not decl.steps:
            continue
        graph = state_graph(decl)
        steps = {s.name: s for s in decl.steps}
        exits = {e.name for e in decl.exits}
        complete = all(t.target in (exits if t.target_is_exit else steps) for s in decl.steps for t in s.transitions)
        # A transition to an unknown step is already an error; with it missing from
        # the graph, "cannot be reached" and "no way out" would only repeat it.
        for name in unreachable_steps(graph) if complete else ():
            unit.sink.warning("PW501", f"step `{name}` cannot be reached from the start of `{decl.name}`",
                              name_span(unit, steps[name]),
                              help="add a transition that goes to it, or remove it")
        for name in steps_without_exit(graph) if complete else ():
            unit.sink.warning("PW502", f"from step `{name}` there is no way to leave `{decl.name}`",
                              name_span(unit, steps[name]),
                              help="add a transition towards an exit, or an exit that applies from every step")
        for cycle in timerless_cycles(graph, order=steps):
            first = steps.get(cycle[0])
            labels = []
            for here, there in zip(cycle, [*cycle[1:], cycle[0]]):
                step = steps.get(here)
                for t in step.transitions if step else ():
                    if t.trigger == "when" and not t.target_is_exit and t.target == there:
                        labels.append(Label(span=t.span, message=f"moves on to `{there}` at once"))
                        break
            unit.sink.error("PW503", "these steps can pass a patient round in a circle with no event or timer: "
                            + " → ".join([*cycle, cycle[0]]),
                            name_span(unit, first) if first else decl.span, labels=labels,
                            help="guard one of the transitions with an event (`on reviewed`) or a timer (`after 3 months`)")


LINTS = (lint_unused, lint_item_lists, lint_levels, lint_bands, lint_pathways)
