"""CDS Hooks cards from an explained result: the level and why, what is unknown,
the suggested pathway and its care plan."""

from __future__ import annotations

import re

from ..values import to_json

_NAME = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")
MAX_LINES = 12  # a card is read in a glance; the full explanation is one click away


def _short(text: str, limit: int = 140) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def level_reasons(outcome: dict) -> tuple[list[str], list[str]]:
    """(met, unknown) lines: labelled items met under the matched level, and labelled
    items left unknown under the higher levels that did not match."""
    met: list[str] = []
    tree = outcome.get("tree") or {}
    matched = next((c for c in tree.get("children", ()) if c.get("matched")), None)
    stack = [matched] if matched else []
    while stack:
        node = stack.pop()
        if node.get("kind") == "item" and node.get("status") == "true":
            met.append(_item_line(node))
        stack.extend(reversed(node.get("children", ())))
    unknown: list[str] = []
    for higher in (outcome.get("level") or {}).get("higher_levels", ()):
        if higher.get("status") != "unknown":
            continue
        stack = list(reversed(higher.get("why_not", ())))
        while stack:
            entry = stack.pop()
            if entry.get("status") == "unknown" and not entry.get("because"):
                unknown.append(f"{entry.get('label')}: {entry.get('reason')}")
            stack.extend(reversed(entry.get("because", ())))
    return _dedupe(met), _dedupe(unknown)


def _item_line(node: dict) -> str:
    label = node.get("label") or node.get("name") or ""
    inner = next((c for c in node.get("children", ()) if c.get("kind") == "expression"), None)
    return f"“{label}”" + (f": {inner['summary']}" if inner and inner.get("summary") else "")


def _dedupe(lines: list[str]) -> list[str]:
    seen, out = set(), []
    for line in lines:
        if line not in seen:
            seen.add(line)
            out.append(line)
    return out


def _bullets(lines: list[str]) -> str:
    shown = [f"- {_md(line)}" for line in lines[:MAX_LINES]]
    if len(lines) > MAX_LINES:
        shown.append(f"- … and {len(lines) - MAX_LINES} more (see the full explanation)")
    return "\n".join(shown)


def _md(text: str) -> str:
    """Plain text made safe inside markdown (a record's display text must not become a link)."""
    return re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", text)


def level_card(result, explanation: dict, outcome_name: str, link: dict, source: dict,
               reference: dict | None = None, ranks: bool = False) -> dict:
    """The card for the stratification outcome. ``ranks``: the protocol ranks patients
    against others; ``reference``: the population it ranked against (None: not decided)."""
    outcome = next(o for o in explanation["outcomes"] if o["name"] == outcome_name)
    met, unknown = level_reasons(outcome)
    header = result.program.protocol.header
    parts = [f"**{_md(outcome.get('label') or outcome_name)}: {_md(outcome['display'])}**",
             f"Protocol {_md(header.name)} version {_md(header.version)}, evaluated as of "
             f"{result.as_of.isoformat()}."]
    if met:
        parts.append("Why:\n" + _bullets(met))
    if reference:
        parts.append(f"Ranked against a reference population of {reference['patients']:,} patients "
                     f"as of {reference['as_of']}.")
    elif ranks:
        parts.append("Criteria that rank the patient among other patients (such as the top 3% of the "
                     "practice) are not decided: the service has no reference population.")
    if unknown:
        parts.append("Not known from the record (recording these could change the level):\n" + _bullets(unknown))
    others = [o for o in explanation["outcomes"] if o["name"] != outcome_name]
    if others:
        parts.append("Other outcomes:\n" + _bullets([f"{o.get('label') or o['name']}: {o['display']}"
                                                    for o in others]))
    value = outcome.get("value")
    indicator = "warning" if value == 3 or unknown else "info"
    return {"summary": _short(f"{outcome.get('label') or outcome_name}: {outcome['display']}"),
            "indicator": indicator, "detail": "\n\n".join(parts), "source": source, "links": [link]}


def pathway_cards(snapshot, record, as_of, link: dict, source: dict) -> list[dict]:
    """One card per pathway whose entry condition holds for the patient, with its care plan."""
    from ..evaluate import Ctx, EngineError
    from ..record_index import RecordIndex

    cards = []
    index = RecordIndex(record)  # the record's collections depend on the record only: picked once for all
    for name in sorted(snapshot.programs):
        program = snapshot.programs[name]
        pathways = snapshot.compiled.get((name, None))
        if pathways is None:  # found once per snapshot
            pathways = snapshot.compiled[(name, None)] = [p for p in program.protocol.of_kind("pathway")
                                                          if p.entry is not None]
        if not pathways:
            continue
        compiled = program._fast  # noqa: SLF001 - the engine's own compiled form, same layer
        ctx = Ctx(compiled, index, as_of, {}, None, snapshot.population(name, {}))
        for pathway in pathways:
            key = (name, pathway.name)
            entry = snapshot.compiled.get(key)
            if entry is None:  # compiled once per snapshot, not per request
                entry = snapshot.compiled[key] = compiled.expr(pathway.entry)
            try:
                enters = entry(ctx)
            except EngineError:
                continue  # a pathway that cannot be decided for one patient is not suggested
            if enters is not True:
                continue
            card = _pathway_card(program, pathway, compiled, ctx, link, source, snapshot.compiled)
            suggestions = _plan_suggestions(program, pathway, record, as_of, ctx.population)
            if suggestions:
                card["suggestions"] = suggestions
                card["selectionBehavior"] = "at-most-one"
            cards.append(card)
    return cards


def _plan_suggestions(program, pathway, record, as_of, population) -> list[dict]:
    """For each care plan of the pathway, a suggestion whose action creates the patient's
    personalised plan as a draft FHIR CarePlan (intent ``proposal``: to agree with the patient),
    with its goals, activities and the criteria that put each line there."""
    import uuid

    from ..careplan import personalise
    from ..fhir_careplan import care_plan_resource

    out = []
    for plan in (p for p in program.protocol.of_kind("care_plan") if p.pathway == pathway.name):
        try:
            personal = personalise(program, plan.name, record, as_of, None, population)
        except Exception:  # noqa: BLE001 - a plan that cannot be drafted is not suggested; the card stands
            continue
        resource = {**care_plan_resource(personal), "status": "draft", "intent": "proposal"}
        title = plan.label or plan.name
        out.append({
            "label": _short(f"Draft the care plan: {title}"),
            "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"ltc-pathways:{resource['id']}")),  # same inputs, same id
            "isRecommended": True,
            "actions": [{"type": "create", "resource": resource,
                         "description": f"Create a draft care plan ({title}) to agree with the patient and carers"}],
        })
    return out


def _pathway_card(program, pathway, compiled, ctx, link: dict, source: dict, cache: dict) -> dict:
    label = pathway.label or pathway.name
    parts = [f"**Suggested pathway: {_md(label)}** (protocol {_md(program.protocol.header.name)})"]
    if pathway.steps:
        first = pathway.steps[0]
        line = f"First step: {_md(first.label or first.name)}"
        if first.actions:
            a = first.actions[0]
            line += f": {_md(a.label)} {a.timing} {_quantity(a.interval)}"
        parts.append(line)
    for plan in (p for p in program.protocol.of_kind("care_plan") if p.pathway == pathway.name):
        lines = []
        for section in plan.sections:
            items = [item for item in section.items if _holds(compiled, item.condition, ctx, cache)]
            for item in items:
                text = _fill(item.text, compiled, ctx)
                lines.append(f"{section.label or section.section}: {text}" + (f" ({item.role})" if item.role else ""))
        parts.append(f"Care plan: {_md(plan.label or plan.name)}\n" + _bullets(lines))
    header = program.protocol.header
    return {"summary": _short(f"Suggested pathway: {label}"), "indicator": "info",
            "detail": "\n\n".join(parts), "source": {**source, "label": f"ltc-pathways: {header.name} {header.version}"},
            "links": [link]}


def _quantity(q) -> str:
    value = int(q.value) if float(q.value).is_integer() else q.value
    return f"{value} {q.unit}"


def _holds(compiled, condition, ctx, cache: dict) -> bool:
    if condition is None:
        return True
    key = (id(compiled), condition.id or condition.model_dump_json())
    try:
        fn = cache.get(key)
        if fn is None:  # compiling costs more than evaluating: once per snapshot, not per request
            fn = cache[key] = compiled.expr(condition)
        return fn(ctx) is True
    except Exception:  # noqa: BLE001 - an item that cannot be decided is left out, not fatal
        return False


def _fill(text: str, compiled, ctx) -> str:
    def value(match: re.Match) -> str:
        alias, _, name = match.group(1).rpartition(".")
        owner, sub = (compiled, ctx) if not alias else \
            (compiled.imports.get(alias), ctx.sub(alias) if alias in compiled.imports else None)
        fn = owner.fns.get(name) if owner is not None else None
        if fn is None:
            return match.group(0)
        try:
            v = to_json(fn(sub))
        except Exception:  # noqa: BLE001 - a value that cannot be worked out reads as unknown
            v = None
        if v is None:
            return "unknown"
        if isinstance(v, dict) and "value" in v:
            return f"{v['value']} {v.get('unit', '')}".strip()
        return str(v)
    return _NAME.sub(value, text)
