"""A pathway drawn as text, from the networkx state graph (pathways.graphs.state_graph).

Steps are drawn as boxes in the order they are written, each followed by its
ways out; a way back to an earlier step or to itself is marked as a loop, so
a reader sees the cycle of review without a two-dimensional layout that
would not fit an 80-column terminal.
"""

from __future__ import annotations

from pathways import graphs
from pathways import model as m


def _name(graph, node: str) -> str:
    data = graph.nodes[node]
    if data.get("kind") == "exit":
        return f"exit {node.removeprefix('exit:')}"
    return node


def draw(pathway: m.Pathway, ascii: bool = False) -> str:  # noqa: A002 - as explain_text names it
    """The pathway's steps and transitions, one box per step, with unreachable steps and dead ends flagged."""
    graph = graphs.state_graph(pathway)
    h, v, tl, tr, bl, br, tee, last, arrow = ("-", "|", "+", "+", "+", "+", "|-", "`-", "->") if ascii else \
        ("\u2500", "\u2502", "\u250c", "\u2510", "\u2514", "\u2518", "\u251c\u2500", "\u2514\u2500", "\u2192")
    order = [s.name for s in pathway.steps]
    position = {name: i for i, name in enumerate(order)}
    unreachable = set(graphs.unreachable_steps(graph))
    dead_ends = set(graphs.steps_without_exit(graph))
    out = [f"pathway {pathway.name}" + (f" \u2014 {pathway.label}" if pathway.label else ""),
           f"{len(order)} steps, {len(pathway.exits)} exits", ""]
    if pathway.entry is not None:
        from dsl.formatter import expr_to_text
        out.append(f"(start) when {expr_to_text(pathway.entry)}")
    else:
        out.append("(start)")
    out.append(f"   {v}")
    for step in pathway.steps:
        title = step.name + (f"  {step.label}" if step.label else "")
        flags = []
        if step.name in unreachable:
            flags.append("no way in")
        if step.name in dead_ends:
            flags.append("no way out")
        if flags:
            title += "  [" + ", ".join(flags) + "]"
        out.append(f"{tl}{h * (len(title) + 2)}{tr}")
        out.append(f"{v} {title} {v}")
        out.append(f"{bl}{h * (len(title) + 2)}{br}")
        for action in step.actions:
            out.append(f"   {v}  due: {action.label} ({action.timing} {action.interval.text} {action.interval.unit})")
        edges = [(target, data["label"]) for _, target, data in graph.out_edges(step.name, data=True)]
        for k, (target, label) in enumerate(edges):
            mark = last if k == len(edges) - 1 else tee
            note = ""
            if target in position and position[target] <= position[step.name]:
                note = "  (loop back)" if target != step.name else "  (stays)"
            out.append(f"   {mark} {label} {arrow} {_name(graph, target)}{note}")
        out.append(f"   {v}" if step is not pathway.steps[-1] else "")
    if pathway.exits:
        out.append("exits: " + ", ".join(e.name + (f" ({e.label})" if e.label else "") for e in pathway.exits))
    return "\n".join(out).rstrip() + "\n"
