"""Coverage of protocol tests: which criterion items, levels and bands the tests saw
true, false and unknown (docs/testing.md, "pathways test --coverage").

Reads the traces the runner keeps (node id -> value), so it counts what the
evaluation actually reached: an item after a level that already matched was
never evaluated, and is not counted as seen. Pathway transitions come from
walking the test patient's pathway events (``engine.pathway_state``): a
transition is *taken* when the walk took it, and *not taken* when the
patient was in its step and left another way or stayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pathways import model as m
from pathways.walk import walk


@dataclass
class Row:
    """One thing a test can reach: a criterion item, a level, a band or a pathway transition."""

    kind: str  # "item", "level", "band" or "transition"
    protocol: str
    label: str
    node_id: str
    seen_true: int = 0
    seen_false: int = 0
    seen_unknown: int = 0

    @property
    def covered(self) -> bool:
        """Seen both ways (true and false; for a level or band: taken and not taken)."""
        return self.seen_true > 0 and self.seen_false > 0


@dataclass
class Coverage:
    """Rows in protocol order; ``percent`` is the share of rows seen both true and false."""

    rows: list[Row] = field(default_factory=list)

    @property
    def percent(self) -> float:
        rows = self.rows
        return 100.0 * sum(r.covered for r in rows) / len(rows) if rows else 100.0

    def table(self) -> str:
        """The coverage table as plain text, one line per row, then the summary."""
        lines = [f"{'true':>5} {'false':>5} {'unkn':>5}  what (for a level, band or transition: taken, not taken)"]
        current = None
        for row in self.rows:
            if row.protocol != current:
                current = row.protocol
                lines.append(f"{current}:")
            if row.kind == "transition":
                mark = "" if row.covered else "   <- not seen " + ("taken" if not row.seen_true else "not taken")
            else:
                mark = "" if row.covered else "   <- not seen " + ("true" if not row.seen_true else "false")
            lines.append(f"{row.seen_true:>5} {row.seen_false:>5} {row.seen_unknown:>5}  {row.kind} "
                         f"{row.label}{mark}")
        covered = sum(r.covered for r in self.rows)
        lines.append(f"coverage: {covered} of {len(self.rows)} items, levels, bands and transitions seen "
                     f"both true and false ({self.percent:.0f}%)")
        return "\n".join(lines)


def protocols_under_test(outcomes) -> list[m.Protocol]:
    """The protocols of the tests' files and everything they import, each once, in first-seen order."""
    out: dict[str, m.Protocol] = {}
    stack = [o.case.protocol for o in reversed(outcomes) if o.case.protocol is not None]
    while stack:
        p = stack.pop()
        if p.header.name in out:
            continue
        out[p.header.name] = p
        stack.extend(u.protocol for u in reversed(p.uses) if u.protocol is not None)
    return list(out.values())


def rows_of(protocol: m.Protocol) -> list[Row]:
    """Every labelled item, level, band and pathway transition of one protocol."""
    name = protocol.header.name
    rows: list[Row] = []
    for decl in protocol.declarations:
        if isinstance(decl, m.ProtocolTest):
            continue
        if isinstance(decl, m.Levels):
            for level in decl.levels:
                rows.append(Row("level", name, f"{decl.name} {level.number} \u201c{level.label}\u201d", level.id))
            if decl.fallback is not None:
                fb = decl.fallback
                rows.append(Row("level", name, f"{decl.name} {fb.number} \u201c{fb.label}\u201d (otherwise)",
                                f"{decl.id}={fb.number}"))
            continue
        if isinstance(decl, m.Bands):
            rows.extend(Row("band", name, f"{decl.name} {b.name}", f"{decl.id}={b.name}") for b in decl.bands)
            continue
        if isinstance(decl, m.Pathway):
            for step in decl.steps:
                for t in step.transitions:
                    how = t.event if t.trigger == "event" else t.trigger
                    rows.append(Row("transition", name, f"{decl.name}: {step.name} -> {t.target} ({how})", t.id))
            continue
        for node in walk(decl):
            if isinstance(node, m.Item) and node.label:
                rows.append(Row("item", name, f"\u201c{node.label}\u201d", node.id))
    return rows


def coverage(outcomes) -> Coverage:
    """Which items, levels and bands the outcomes' evaluations saw true, false and unknown."""
    protocols = protocols_under_test(outcomes)
    rows = [row for p in protocols for row in rows_of(p)]
    decl_ids = {}
    for p in protocols:
        for decl in p.declarations:
            if isinstance(decl, (m.Levels, m.Bands)):
                decl_ids[decl.id] = decl
    for o in outcomes:
        trace = o.trace
        if not trace:
            continue
        for row in rows:
            if "=" in row.node_id:  # a fallback level or a band: taken when the declaration has that value
                decl_id, _, value = row.node_id.partition("=")
                if decl_id not in trace:
                    continue
                got = trace[decl_id]
                _count(row, None if got is None else str(got) == value)
            elif row.node_id in trace:
                _count(row, trace[row.node_id])
    return Coverage(rows)


def _count(row: Row, value) -> None:
    if value is True:
        row.seen_true += 1
    elif value is False:
        row.seen_false += 1
    else:
        row.seen_unknown += 1


def walk_pathways(protocol: m.Protocol, program_of, record, day, overrides: dict[str, str],
                  population: dict | None = None) -> dict[str, bool]:
    """Transition id -> taken (True) or not taken (False) for the test patient, for every pathway of the
    protocol and of the protocols it imports directly. A pathway the patient is not on gives nothing."""
    from .evaluate import EngineError
    from .pathway_state import state_of

    seen: dict[str, bool] = {}
    owners = [("", protocol)] + [(u.alias, u.protocol) for u in protocol.uses if u.protocol is not None]
    for alias, owner in owners:
        pathways = owner.of_kind("pathway")
        if not pathways:
            continue
        # the root program takes every override, its imports' (`alias.name`) included; an
        # import walked on its own program takes those under its alias, without the alias
        params = dict(overrides) if not alias else \
            {k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith(alias + ".")}
        for pathway in pathways:
            try:
                state = state_of(program_of(owner), pathway, record, day, params or None, explain=False,
                                 population=population)
            except EngineError:
                continue  # coverage is a help: a pathway that cannot be walked is left unseen
            seen.update(_taken(pathway, state))
    return seen


def _taken(pathway: m.Pathway, state) -> dict[str, bool]:
    steps = {s.name: s for s in pathway.steps}
    out: dict[str, bool] = {}
    history = state.history
    for i, visit in enumerate(history):
        step = steps.get(visit.step)
        if step is None:
            continue
        taken = None
        if i + 1 < len(history):
            taken = _match(step, history[i + 1].step, False, history[i + 1].via)
        elif state.exit is not None:
            taken = _match(step, state.exit, True, "")
        if visit.renewed:
            renew = _match(step, step.name, False, "")
            if renew is not None:
                out[renew.id] = True
        for t in step.transitions:
            if t is taken:
                out[t.id] = True
            else:
                out.setdefault(t.id, False)
    return out


def _match(step: m.Step, target: str, to_exit: bool, via: str):
    found = [t for t in step.transitions if t.target == target and t.target_is_exit == to_exit]
    for t in found:
        if (via.startswith("on ") and t.trigger == "event" and t.event == via[3:]) or \
                (via.startswith("after") and t.trigger == "after"):
            return t
    return found[0] if found else None
