"""Personalised care plans: a care-plan template filled in for one patient on one date.

Each line of the template is in the plan when its ``when`` holds for the
patient (a line with no ``when`` is always in); a line whose ``when`` is
false or unknown is left out and listed as left out, with the reason, so an
auditor sees both. ``{name}`` in a line's text is replaced by the value of
the definition, parameter or patient fact it names. The review date comes
from the plan's pathway (its own, or an imported protocol's: ``for
case_management.case_management``): the patient's next recurring action
there (the next review), or, when they are not on it yet, the as-of date
plus the pathway's shortest ``every`` interval, overrides applied.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from pathways import model as m
from pathways import schema
from pathways.records import PatientRecord

from .pathway_state import Check, _check, interval_text, state_of

#: ``{name}`` or ``{alias.name}`` (the language's placeholder form, dsl.resolve.PLACEHOLDER)
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)\}")

SECTION_TITLES = {
    "objectives": "Health objectives", "needs": "Care needs", "self_care": "What I do for my own self care",
    "agencies": "What each professional and agency does", "preventive": "Prevention and health promotion",
    "contingency": "Contingency and emergency arrangements", "review": "Review",
}


@dataclass(frozen=True)
class Line:
    """One line of the personalised plan, with why it is there."""

    id: str  # the template item's id: stable, so FHIR ids derived from it are deterministic
    text: str  # placeholders filled in
    template: str
    role: str | None
    criterion: Check | None  # None: the line is always in the plan
    evidence: tuple[dict, ...] = ()  # record items the criterion rested on (source_id, record, text)


@dataclass(frozen=True)
class Section:
    kind: str
    title: str
    lines: tuple[Line, ...]


@dataclass
class PersonalPlan:
    """A care plan for one patient: sections, lines left out, review date."""

    patient_id: str
    name: str
    title: str
    as_of: dt.date
    protocol: str
    version: str
    pathway: str | None = None
    step: str | None = None
    review_date: dt.date | None = None
    review_basis: str = ""
    sections: list[Section] = field(default_factory=list)
    left_out: list[tuple[str, Line]] = field(default_factory=list)  # (reason, line)


class PlanError(LookupError):
    """The plan asked for is not in the protocol."""


def find_plan(protocol: m.Protocol, name: str | None) -> m.CarePlan:
    """The care-plan template called ``name`` (the first when None); a PlanError says which exist."""
    from .pathway_state import find_declaration
    return find_declaration(protocol, "care_plan", "care plan", name, PlanError)


def _placeholder_ref(protocol: m.Protocol, name: str) -> m.Ref | None:
    ns, _, base = name.rpartition(".")
    if ns:
        target = f"import:{ns}:{base}"
    elif protocol.get(base) is not None:
        target = f"decl:{base}"
    elif base in schema.PATIENT_ATTRIBUTES:
        target = f"patient:{base}"
    else:
        return None  # the checker reports unknown placeholders (PW201); left as written
    return m.Ref(id=f"placeholder:{name}", name=base, namespace=ns or None, target=target)


def personalise(program, plan_name: str | None, record: PatientRecord, as_of, parameters=None,
                population: dict | None = None) -> PersonalPlan:
    """The template ``plan_name`` filled in for ``record`` on ``as_of``."""
    from .program import _as_date
    from .wording import show

    day = _as_date(as_of)
    protocol = program.protocol
    plan = find_plan(protocol, plan_name)
    items = [(s, item) for s in plan.sections for item in s.items]
    names = sorted({n for _, item in items for n in PLACEHOLDER.findall(item.text)})
    refs = {n: _placeholder_ref(protocol, n) for n in names}
    conditions = [item.condition for _, item in items if item.condition is not None]
    exprs = conditions + [r for r in refs.values() if r is not None]
    values, trace = program.evaluate_expressions(record, day, exprs, parameters, explain=True,
                                                 population=population)
    cond_values = dict(zip((item.id for _, item in items if item.condition is not None), values))
    filled = {n: show(v) for n, v in zip([n for n, r in refs.items() if r is not None], values[len(conditions):])}
    evidence = _evidence(program, record, day, parameters, population,
                         [(item.id, item.condition) for _, item in items if item.condition is not None])

    out = PersonalPlan(record.id, plan.name, plan.label or plan.name, day, protocol.header.name,
                       protocol.header.version, plan.pathway)
    for section in plan.sections:
        lines = []
        for item in section.items:
            text = PLACEHOLDER.sub(lambda mt: filled.get(mt.group(1), mt.group(0)), item.text)
            check = None
            if item.condition is not None:
                check = _check(program, item.condition, cond_values[item.id], trace)
            line = Line(item.id, text, item.text, item.role, check,
                        evidence.get(item.id, ()) if check is not None else ())
            if check is None or check.met:
                lines.append(line)
            else:
                out.left_out.append(("condition not met" if check.value is False
                                     else "not known from the record", line))
        if lines:
            out.sections.append(Section(section.section, section.label or SECTION_TITLES.get(section.section,
                                                                                         section.section),
                                        tuple(lines)))
    _review(program, plan, record, day, parameters, population, out)
    return out


def _evidence(program, record, day, parameters, population, conditions) -> dict[str, tuple[dict, ...]]:
    """Per template item id, the record items its ``when`` rested on (from the engine's explanation
    of each local definition the condition names)."""
    from pathways.walk import walk

    from .program import Program

    wanted: dict[str, list[str]] = {}
    local = {d.name for d in program.protocol.declarations if d.kind in ("definition", "score", "bands", "levels")}
    for item_id, cond in conditions:
        used = [n.name for n in walk(cond) if isinstance(n, m.Ref) and n.namespace is None and n.name in local]
        wanted[item_id] = list(dict.fromkeys(used))
    names = sorted({n for ns in wanted.values() for n in ns})
    if not names:
        return {}
    sub = Program(program.protocol.model_copy(update={"outcomes": tuple(names)}))
    explained = sub.evaluate(record, day, parameters, explain=True, population=population).explain()
    per_name = {o["name"]: _items(o) for o in explained["outcomes"]}
    out = {}
    for item_id, used in wanted.items():
        seen, found = set(), []
        for n in used:
            for ev in per_name.get(n, []):
                key = (ev.get("record"), ev.get("source_id"))
                if key not in seen:
                    seen.add(key)
                    found.append({"source_id": ev.get("source_id"), "record": ev.get("record"),
                                  "text": ev.get("text")})
        out[item_id] = tuple(found)
    return out


def _items(node) -> list[dict]:
    found = []
    if isinstance(node, dict):
        if "source_id" in node and "record" in node:
            found.append(node)
        for v in node.values():
            found.extend(_items(v))
    elif isinstance(node, list):
        for v in node:
            found.extend(_items(v))
    return found


def _review(program, plan: m.CarePlan, record, day, parameters, population, out: PersonalPlan) -> None:
    """The review date from the plan's pathway (``for name`` or ``for alias.name``, an imported one,
    walked with its own protocol's program and the overrides given to it)."""
    from .timings import owner_of, pathway_times

    found = owner_of(program, plan.pathway, parameters) if plan.pathway else None
    if found is None:
        return
    pathway, owner, own_parameters = found
    state = state_of(owner, pathway, record, day, own_parameters, explain=False, population=population)
    out.step = state.step
    recurring = [a for a in state.actions if a.timing == "every"] if state.active else []
    if recurring:
        nxt = min(recurring, key=lambda a: a.due)
        out.review_date = nxt.due
        out.review_basis = f"the next \u201c{nxt.action}\u201d, every {nxt.interval}, in step {state.step_label}"
        return
    timed = pathway_times(owner, pathway, own_parameters)
    intervals = [a.interval for s in timed.steps for a in s.actions if a.timing == "every"]
    if intervals:
        from .calendar import shift
        shortest = min(intervals, key=lambda q: shift(day, q.value, q.unit))
        out.review_date = shift(day, shortest.value, shortest.unit)
        out.review_basis = f"every {interval_text(shortest)} on {pathway.label or pathway.name}, from {day.isoformat()}"


# --- renderings ------------------------------------------------------------------------------------

def reasons(line: Line) -> str:
    """The criterion values that put a line in the plan, in words ("" when always included)."""
    return "; ".join(f"{b['label']}: {b['value']}" for b in line.criterion.because) if line.criterion else ""


def _because(line: Line) -> str:
    c = line.criterion
    if c is None:
        return "always included"
    names = reasons(line)
    return f"because `{c.condition}` holds" + (f" ({names})" if names else "")


def to_markdown(plan: PersonalPlan) -> str:
    """The plan as Markdown, for the patient's copy and the record."""
    out = [f"# {plan.title}", "",
           f"Patient **{plan.patient_id}**, as of {plan.as_of.isoformat()}. "
           f"Protocol {plan.protocol} {plan.version}, template `{plan.name}`.", ""]
    if plan.review_date:
        out += [f"**Review by {plan.review_date.isoformat()}**: {plan.review_basis}.", ""]
    for section in plan.sections:
        out += [f"## {section.title}", ""]
        for line in section.lines:
            role = f" *({line.role})*" if line.role else ""
            out.append(f"- {line.text}{role}")
            out.append(f"  - {_because(line)}")
            for ev in line.evidence:
                out.append(f"  - evidence: {ev['text']}")
        out.append("")
    if plan.left_out:
        out += ["## Left out of this plan", ""]
        for reason, line in plan.left_out:
            out.append(f"- {line.text} — `{line.criterion.condition}`: {reason}")
        out.append("")
    return "\n".join(out)


def to_text(plan: PersonalPlan) -> str:
    """The plan as plain text (for a terminal or a letter)."""
    out = [plan.title, "=" * len(plan.title),
           f"Patient {plan.patient_id}, as of {plan.as_of.isoformat()} ({plan.protocol} {plan.version}, "
           f"template {plan.name})"]
    if plan.review_date:
        out.append(f"Review by {plan.review_date.isoformat()}: {plan.review_basis}")
    for section in plan.sections:
        out += ["", section.title, "-" * len(section.title)]
        for line in section.lines:
            out.append(f"* {line.text}" + (f" [{line.role}]" if line.role else ""))
            out.append(f"    {_because(line)}")
            for ev in line.evidence:
                out.append(f"    evidence: {ev['text']}")
    if plan.left_out:
        out += ["", "Left out of this plan", "---------------------"]
        for reason, line in plan.left_out:
            out.append(f"* {line.text}: {line.criterion.condition} - {reason}")
    return "\n".join(out) + "\n"
