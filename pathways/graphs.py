"""Graph views derived from the model (never stored in it), and checks over them.

The checks are free functions over a networkx graph, so the linter, the CLI's
``graph`` command, the engine and the workbench share them.
"""

from __future__ import annotations

from typing import Iterable

import networkx as nx

from . import model as m
from .walk import refs

START = "(start)"


def dependency_graph(declarations: Iterable[m.Decl], target_of=None) -> nx.DiGraph:
    """Edges from each declaration to the local declarations it uses.

    A reference's meaning is its resolved ``target`` (``decl:NAME``); for a
    model not yet resolved, a name equal to a declaration's. ``target_of``
    lets the compiler supply targets it has not yet written into the nodes.

    >>> from pathways.model import Definition, Ref
    >>> g = dependency_graph([Definition(name="a", expr=Ref(name="b")),
    ...                       Definition(name="b", expr=Ref(name="age"))])
    >>> sorted(g.edges)
    [('a', 'b')]
    """
    decls = list(declarations)
    names = {d.name for d in decls}
    graph = nx.DiGraph()
    for decl in decls:
        graph.add_node(decl.name, kind=decl.kind, label=decl.label or decl.name)
    for decl in decls:
        if decl.kind == "test":
            continue
        for ref in refs(decl):
            target = target_of(ref) if target_of else ref.target
            if target.startswith("decl:"):
                graph.add_edge(decl.name, target[5:])
            elif not target and ref.namespace is None and ref.name in names:
                graph.add_edge(decl.name, ref.name)
    return graph


def definition_cycles(graph: nx.DiGraph) -> list[list[str]]:
    """Each cycle of definitions that use each other (an error: nothing can be evaluated first).

    >>> g = nx.DiGraph([("a", "b"), ("b", "a"), ("c", "a")])
    >>> definition_cycles(g)
    [['a', 'b']]
    """
    cycles = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1 or any(graph.has_edge(n, n) for n in component):
            cycles.append(sorted(component))
    return sorted(cycles)


def cycle_through(graph: nx.DiGraph, members: Iterable[str], start: str) -> list[str]:
    """A shortest circle from ``start`` back to itself, using only ``members``
    (a strongly connected set, as :func:`definition_cycles` gives).

    >>> g = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "a"), ("b", "a")])
    >>> cycle_through(g, ["a", "b", "c"], "c")
    ['c', 'a', 'b']
    """
    sub = graph.subgraph(list(members))
    if sub.has_edge(start, start):
        return [start]
    best: list[str] | None = None
    for nxt in sorted(sub.successors(start)):
        try:
            path = nx.shortest_path(sub, nxt, start)
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            continue
        if best is None or len(path) < len(best):
            best = path
    return [start, *best[:-1]] if best else sorted(sub.nodes)


def state_graph(pathway: m.Pathway) -> nx.MultiDiGraph:
    """Steps and exits as nodes; transitions as edges with their trigger.

    Exits with their own trigger (``exit died: on died``) can be taken from
    every step, so they get an edge from each step. The first step is entered
    from the ``(start)`` node.
    """
    graph = nx.MultiDiGraph(name=pathway.name)
    graph.add_node(START, kind="start", label="start")
    for step in pathway.steps:
        graph.add_node(step.name, kind="step", label=step.label or step.name)
    for exit_ in pathway.exits:
        graph.add_node(f"exit:{exit_.name}", kind="exit", label=exit_.label or exit_.name)
    if pathway.steps:
        graph.add_edge(START, pathway.steps[0].name, trigger="entry", label="entry")
    for step in pathway.steps:
        for t in step.transitions:
            target = f"exit:{t.target}" if t.target_is_exit else t.target
            if target not in graph:
                continue  # an unknown target is reported by the resolver
            graph.add_edge(step.name, target, trigger=t.trigger, label=_trigger_label(t))
        for exit_ in pathway.exits:
            if exit_.event or exit_.condition is not None:
                trigger = "event" if exit_.event else "when"
                graph.add_edge(step.name, f"exit:{exit_.name}", trigger=trigger,
                               label=f"on {exit_.event}" if exit_.event else "when exit criteria met")
    return graph


def _trigger_label(t: m.Transition) -> str:
    if t.trigger == "event":
        return f"on {t.event}"
    if t.trigger == "after":
        if isinstance(t.delay, m.Ref):  # before compiling: the parameter's name
            return f"after {t.delay.dotted}"
        # compiled: the value (a parameter's default), so the graph reads as the pathway runs
        return f"after {t.delay.text if t.delay else ''} {t.delay.unit if t.delay else ''}".strip()
    return "when condition holds"


def unreachable_steps(graph: nx.MultiDiGraph) -> list[str]:
    """Steps that no path from the start reaches.

    >>> g = nx.MultiDiGraph([("(start)", "a"), ("b", "exit:x")])
    >>> g.nodes["a"]["kind"] = "step"; g.nodes["b"]["kind"] = "step"
    >>> unreachable_steps(g)
    ['b']
    """
    reached = nx.descendants(graph, START) if START in graph else set()
    return sorted(n for n, kind in graph.nodes(data="kind") if kind == "step" and n not in reached)


def steps_without_exit(graph: nx.MultiDiGraph) -> list[str]:
    """Steps from which no exit can ever be reached (patients would be stuck).

    >>> g = nx.MultiDiGraph([("(start)", "a"), ("a", "b"), ("b", "a")])
    >>> for n in "ab": g.nodes[n]["kind"] = "step"
    >>> steps_without_exit(g)
    ['a', 'b']
    """
    exits = [n for n, kind in graph.nodes(data="kind") if kind == "exit"]
    can_exit: set[str] = set()
    for e in exits:
        can_exit |= nx.ancestors(graph, e) | {e}
    return sorted(n for n, kind in graph.nodes(data="kind") if kind == "step" and n not in can_exit)


def timerless_cycles(graph: nx.MultiDiGraph, order: Iterable[str] = ()) -> list[list[str]]:
    """Cycles made only of ``when`` transitions: nothing (no event, no timer)
    stops a patient going round them for ever on one day.

    Each is a real circle, in the order a patient would go round it, starting
    from the member that comes first in ``order`` (else the first by name).

    >>> g = nx.MultiDiGraph()
    >>> _ = g.add_edge("a", "b", trigger="when"); _ = g.add_edge("b", "a", trigger="when")
    >>> _ = g.add_edge("b", "c", trigger="event"); _ = g.add_edge("c", "b", trigger="when")
    >>> timerless_cycles(g)
    [['a', 'b']]
    """
    instant = nx.DiGraph()
    instant.add_edges_from((u, v) for u, v, t in graph.edges(data="trigger") if t == "when")
    rank = {name: i for i, name in enumerate(order)}
    out = []
    for members in definition_cycles(instant):
        start = min(members, key=lambda n: (rank.get(n, len(rank)), n))
        out.append(cycle_through(instant, members, start))
    return out


def care_plan_graph(plan: m.CarePlan) -> nx.DiGraph:
    """The plan, its sections and items, and the definitions items depend on."""
    graph = nx.DiGraph(name=plan.name)
    graph.add_node(plan.name, kind="care_plan", label=plan.label or plan.name)
    for section in plan.sections:
        sid = f"{plan.name}/{section.section}"
        graph.add_node(sid, kind="section", label=section.label or section.section)
        graph.add_edge(plan.name, sid)
        for i, item in enumerate(section.items):
            iid = f"{sid}/{i}"
            graph.add_node(iid, kind="item", label=item.text)
            graph.add_edge(sid, iid)
            if item.condition is not None:
                for ref in refs(item.condition):
                    graph.add_edge(iid, ref.dotted, kind="requires")
    return graph


def to_mermaid(graph: nx.DiGraph | nx.MultiDiGraph, highlight: Iterable[str] = (),
               path: Iterable[str] = ()) -> str:
    """A Mermaid flowchart of a graph; ``highlight`` nodes are drawn bold.

    ``path``: the nodes a patient passed through, in order, the last being where
    they are now (see :func:`patient_path`): passed nodes are shaded, the
    current one filled."""
    path = list(path)
    ids = {n: f"n{i}" for i, n in enumerate(graph.nodes)}
    lines = ["flowchart TD"]
    for n, data in graph.nodes(data=True):
        label = str(data.get("label", n)).replace('"', "'")
        shape = ('(["', '"])') if data.get("kind") in ("start", "exit") else ('["', '"]')
        lines.append(f"    {ids[n]}{shape[0]}{label}{shape[1]}")
    for u, v, data in graph.edges(data=True):
        label = str(data.get("label", "")).replace('"', "'")
        arrow = f'-->|"{label}"|' if label else "-->"
        lines.append(f"    {ids[u]} {arrow} {ids[v]}")
    for n in highlight:
        if n in ids:
            lines.append(f"    style {ids[n]} stroke-width:4px")
    for n in _passed_nodes(path):
        if n in ids:
            lines.append(f"    style {ids[n]} {PASSED_MERMAID}")
    if path and path[-1] in ids:
        lines.append(f"    style {ids[path[-1]]} {CURRENT_MERMAID}")
    return "\n".join(lines) + "\n"


def to_dot(graph: nx.DiGraph | nx.MultiDiGraph, highlight: Iterable[str] = (),
           path: Iterable[str] = ()) -> str:
    """A Graphviz DOT rendering of a graph; ``highlight`` nodes are drawn bold;
    ``path`` as in :func:`to_mermaid`."""
    marked = set(highlight)
    path = list(path)
    passed = set(_passed_nodes(path))
    ids = {n: f"n{i}" for i, n in enumerate(graph.nodes)}

    def q(text: object) -> str:
        return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [f"digraph {q(graph.graph.get('name', 'graph'))} {{", "    rankdir=TB;"]
    for n, data in graph.nodes(data=True):
        attrs = [f"label={q(data.get('label', n))}"]
        if data.get("kind") in ("start", "exit"):
            attrs.append("shape=oval")
        else:
            attrs.append("shape=box")
        if n in marked:
            attrs.append("penwidth=3")
        if path and n == path[-1]:
            attrs.append(CURRENT_DOT)
        elif n in passed:
            attrs.append(PASSED_DOT)
        lines.append(f"    {ids[n]} [{', '.join(attrs)}];")
    for u, v, data in graph.edges(data=True):
        label = data.get("label", "")
        lines.append(f"    {ids[u]} -> {ids[v]}" + (f" [label={q(label)}];" if label else ";"))
    lines.append("}")
    return "\n".join(lines) + "\n"


PASSED_MERMAID = "fill:#dbe9f6,stroke:#1f4e79,stroke-width:2px"
CURRENT_MERMAID = "fill:#ffd966,stroke:#7f6000,stroke-width:4px"
PASSED_DOT = 'style=filled, fillcolor="#dbe9f6", color="#1f4e79"'
CURRENT_DOT = 'style=filled, fillcolor="#ffd966", color="#7f6000", penwidth=3'


def _passed_nodes(path: list[str]) -> list[str]:
    return list(dict.fromkeys(path[:-1])) if path else []


def patient_path(graph: nx.MultiDiGraph, visited: Iterable[str], now: str | None) -> list[str]:
    """The nodes of a pathway's state graph a patient passed through, ending where they are
    now (``now``: a step, or ``exit:NAME``), for the ``path`` of :func:`to_mermaid`/:func:`to_dot`.

    >>> g = nx.MultiDiGraph([(START, "a"), ("a", "b"), ("b", "exit:x")])
    >>> patient_path(g, ["a", "b"], "exit:x")
    ['(start)', 'a', 'b', 'exit:x']
    """
    out = [START] + [n for n in visited if n in graph]
    if now and now in graph and (not out or out[-1] != now):
        out.append(now)
    return out
