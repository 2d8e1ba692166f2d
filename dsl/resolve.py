"""Resolution: imports, the header, value sets, and what every name means.

Names inside ``where`` filters are attributes of one record item; they are
checked by the type checker, which knows the item kind. A name that cannot
be found is reported once, with a did-you-mean, and its uses elsewhere are
not reported again.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Callable

from pathways import model as m
from pathways import schema
from pathways.graphs import cycle_through, definition_cycles, dependency_graph
from pathways.walk import refs, walk

from .diagnostics import Label, did_you_mean
from .unit import Unit

#: How the compiler reads a file named by a protocol: (importing unit, relative path) -> unit or error.
ImportFn = Callable[[Unit, str, m.Span], "Unit | None"]
#: How the compiler reads a code list: (unit, relative path, where it is named) -> text, or None once reported.
ReadFn = Callable[[Unit, str, m.Span], "str | None"]

_BRACES = re.compile(r"\{[^{}\n]*\}")
#: ``{name}`` or ``{alias.name}`` in care-plan text
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)\}")


def name_span(unit: Unit, decl: m.Decl | m.Step | m.Exit) -> m.Span:
    """The span of a declaration's name on its first line (for precise carets)."""
    s = decl.span
    line = unit.source[s.start:].split("\n", 1)[0]
    match = re.search(rf"\b{re.escape(decl.name)}\b", line)
    if not match:
        return m.Span(line=s.line, column=s.column, end_line=s.line, end_column=s.column + 1, start=s.start)
    return m.Span(line=s.line, column=s.column + match.start(), end_line=s.line,
                  end_column=s.column + match.end(), start=s.start + match.start(), end=s.start + match.end())


def span_at(source: str, start: int, end: int) -> m.Span:
    """The span of ``source[start:end]`` (on one line)."""
    line = source.count("\n", 0, start) + 1
    column = start - (source.rfind("\n", 0, start) + 1) + 1
    return m.Span(line=line, column=column, end_line=line, end_column=column + (end - start), start=start, end=end)


def find_span(unit: Unit, within: m.Span, pattern: str) -> m.Span:
    """The span of the first match of ``pattern`` (of its group 1, if it has one)
    inside the text of ``within``; ``within`` itself when there is none.

    Model nodes keep names as plain strings; this puts the caret on the name."""
    if within.end <= within.start:
        return within
    match = re.compile(pattern, re.MULTILINE).search(unit.source, within.start, within.end)
    if not match:
        return within
    start, end = match.span(1 if match.re.groups else 0)
    return span_at(unit.source, start, end)


def resolve_header(unit: Unit) -> None:
    if unit.header is None:
        if unit.syntax and unit.syntax.failed_chunks:
            return  # the header may be the statement that failed to parse
        empty = not unit.source.strip()
        unit.sink.error("PW210", "this file is empty" if empty else "this file has no `protocol` header",
                        m.Span(line=1, column=1, end_line=1, end_column=2),
                        help='start the file with `protocol my_protocol:` and its `version "1.0.0"`')
        return
    h = unit.header
    if h.status not in ("draft", "active", "retired"):
        unit.sink.error("PW212", f"`{h.status}` is not a protocol status",
                        find_span(unit, h.span, rf"^[ \t]+status[ \t]+({re.escape(h.status)})\b"),
                        help=did_you_mean(h.status, ("draft", "active", "retired"))
                        or "the status is draft, active or retired")
    if not h.version:
        unit.sink.warning("PW213", f"protocol `{h.name}` has no version", h.span,
                          help='add a line `version "1.0.0"`: results quote the version they were made with')


def resolve_imports(unit: Unit, load: ImportFn) -> None:
    for use in unit.uses:
        if use.alias in unit.imports:
            unit.sink.error("PW603", f"`{use.alias}` is imported twice", use.span,
                            help="give the second import another name with `as`")
            continue
        unit.imports[use.alias] = load(unit, use.path, find_span(unit, use.span, r'"(?:[^"\\\n]|\\.)*"'))


def resolve_value_sets(unit: Unit, read: ReadFn) -> None:
    for decl in unit.order:
        if not isinstance(decl, m.ValueSet):
            continue
        codes = list(decl.codes)
        path_span = decl.span
        if decl.source_file is not None:
            path_span = find_span(unit, decl.span, r'\bfrom[ \t]+("(?:[^"\\\n]|\\.)*")')
            text = read(unit, decl.source_file, path_span)
            if text is not None:
                codes.extend(_read_codes_csv(unit, decl, text, path_span))
        unknown_systems: set[str] = set()
        for code in codes:
            if code.system not in schema.CODE_SYSTEMS and code.system not in unknown_systems:
                unknown_systems.add(code.system)  # once per list, not once per code
                where = path_span if decl.source_file else \
                    find_span(unit, decl.span, rf"^[ \t]+({re.escape(code.system)})\b")
                unit.sink.error("PW230", f"`{code.system}` is not a known code system"
                                + (f" (in {decl.source_file})" if decl.source_file else ""), where,
                                help=did_you_mean(code.system, schema.CODE_SYSTEMS)
                                or f"code systems are: {', '.join(schema.CODE_SYSTEMS)}")
        if not codes and decl.source_file is None:
            unit.sink.warning("PW232", f"code list `{decl.name}` is empty", decl.span)
        unit.codes[decl.name] = tuple(codes)


def _read_codes_csv(unit: Unit, decl: m.ValueSet, text: str, span: m.Span) -> list[m.Code]:
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None:
        if text:
            unit.sink.error("PW233", f"{decl.source_file}: the code list is empty", span)
        return []
    cols = [c.strip().lower() for c in header]
    if "system" not in cols or "code" not in cols:
        unit.sink.error("PW233", f"{decl.source_file}: the first row must name the columns system,code,display",
                        span, help=f"found: {', '.join(header)}")
        return []
    out = []
    for number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        record = dict(zip(cols, (c.strip() for c in row)))
        if not record.get("code") or not record.get("system"):
            unit.sink.error("PW233", f"{decl.source_file}:{number}: a row without a system or code", span,
                            help="every row needs a code system (such as snomed) and a code")
            continue
        out.append(m.Code(system=record["system"].lower(), code=record["code"],
                          display=record.get("display", "")))
    return out


def _known(unit: Unit) -> list[str]:
    return [*(n for n in unit.decls if not n.startswith(("test ", "patient "))), *schema.PATIENT_ATTRIBUTES,
            *schema.COLLECTIONS]


def lookup(unit: Unit, ref: m.Ref) -> str | None:
    """What a name means, as a target string, or None when unknown.

    Targets: ``decl:NAME``, ``import:ALIAS:NAME``, ``patient:NAME``,
    ``collection:NAME``; ``broken`` for names in an import that failed.
    """
    if ref.namespace is not None:
        if ref.namespace not in unit.imports:
            return None
        imported = unit.imports[ref.namespace]
        if imported is None:
            return "broken"
        return f"import:{ref.namespace}:{ref.name}" if ref.name in imported.decls else None
    if ref.name in schema.PATIENT_ATTRIBUTES:
        return f"patient:{ref.name}"
    if ref.name in schema.COLLECTIONS:
        return f"collection:{ref.name}"
    if ref.name in unit.decls:
        return f"decl:{ref.name}"
    return None


def report_unknown(unit: Unit, ref: m.Ref, extra: tuple[str, ...] = (), declare: str | None = None) -> None:
    """Report a name nothing declares, once per name and file. ``declare``: how to declare
    it, where the place it is used says what it must be (a code list after `code in`)."""
    key = (ref.namespace, ref.name)
    if key in unit.unknown:
        return
    unit.unknown.add(key)
    if ref.namespace is None and unit.syntax is not None and ref.name in unit.syntax.broken_names:
        return  # its declaration failed to parse, and that error was reported
    if ref.namespace is None and ref.name in ("yes", "no"):
        unit.sink.error("PW201", f"unknown name `{ref.name}`", ref.span,
                        help="write `true` or `false`")
        return
    if ref.namespace is not None and ref.namespace not in unit.imports:
        unit.sink.error("PW203", f"there is no import called `{ref.namespace}`", ref.span,
                        help=did_you_mean(ref.namespace, unit.imports)
                        or f'import it with `uses "{ref.namespace}.pw"`')
    elif ref.namespace is not None:
        imported = unit.imports[ref.namespace]
        unit.sink.error("PW204", f"`{ref.namespace}` has nothing called `{ref.name}`", ref.span,
                        help=did_you_mean(ref.name, imported.decls if imported else ()))
    else:
        unit.sink.error("PW201", f"unknown name `{ref.name}`", ref.span,
                        help=did_you_mean(ref.name, [*_known(unit), *extra])
                        or declare or "check the spelling, or declare it with `define`, `criterion` or `parameter`")


def _deferred(decl: m.Decl) -> set[int]:
    """Refs the type checker decides: the right side of ``x is NAME`` (NAME may
    be a symbol of x's type, such as ``active``) and names inside ``where``."""
    out: set[int] = set()
    for node in walk(decl):
        if isinstance(node, m.Compare) and node.op in ("=", "!=") and isinstance(node.right, m.Ref) \
                and node.right.namespace is None:
            out.add(id(node.right))
        elif isinstance(node, m.Filter):
            out.update(id(inner) for inner in walk(node.condition) if isinstance(inner, m.Ref))
    if isinstance(decl, m.ProtocolTest):
        # `expect efi_band is fit`: the value may be a band name, which only
        # the type checker, knowing the expected outcome, can decide
        out.update(id(e.value) for e in decl.expectations
                   if isinstance(e.value, m.Ref) and e.value.namespace is None)
    return out


def resolve_names(unit: Unit) -> None:
    """Give every name outside filters a target; report unknown names once each.

    Names the type checker decides (``status is active``: ``active`` is a value
    of ``status`` even if a definition is called ``active``) are left to it.
    """
    for decl in unit.order:
        if decl.kind != "test" and (decl.name in schema.PATIENT_ATTRIBUTES or decl.name in schema.COLLECTIONS):
            what = "a list" if decl.name in schema.COLLECTIONS else "a fact"
            unit.sink.error("PW207", f"`{decl.name}` is already {what} in the patient's record",
                            name_span(unit, decl), help=f"choose another name, such as `my_{decl.name}`")
        deferred = _deferred(decl)
        for ref in refs(decl):
            if id(ref) in deferred:
                continue
            target = lookup(unit, ref)
            if target is not None:
                unit.targets[id(ref)] = target
                if target.startswith("decl:"):
                    unit.used.add(target[5:])
                continue
            report_unknown(unit, ref)
    broken = unit.syntax.broken_names if unit.syntax is not None else set()
    for name, span in unit.outcomes:
        if name in broken:
            unit.used.add(name)  # its declaration failed to parse, and that error was reported
        elif name not in unit.decls:
            close = did_you_mean(name, unit.decls)
            unit.sink.error("PW206", f"outcome `{name}` is not declared in this protocol", span,
                            help=close or "declare it, or remove it from `outcomes`")
            if close:
                unit.used.add(close.split("`")[1])  # the name meant is not also "never used"
        else:
            unit.used.add(name)
    _check_plan_texts(unit)
    _check_pathways(unit)
    _check_tests(unit)


def check_cycles(unit: Unit) -> None:
    """Definitions that use each other in a circle (run after type checking,
    which settles what every name means)."""
    graph = dependency_graph(unit.order, target_of=lambda ref: unit.targets.get(id(ref), "-"))
    rank = {d.name: i for i, d in enumerate(unit.order)}
    for members in definition_cycles(graph):
        # a real circle, in the order one uses the next, from the first declared
        cycle = cycle_through(graph, members, min(members, key=lambda n: rank.get(n, len(rank))))
        first = unit.decls[cycle[0]]
        if len(cycle) == 1:
            unit.sink.error("PW205", f"`{first.name}` is worked out from itself", name_span(unit, first),
                            help=f"`{first.name}` cannot use its own name; say what it means in other terms")
            continue
        path = " → ".join([*cycle, cycle[0]])
        unit.sink.error("PW205", f"these definitions depend on each other in a circle: {path}",
                        name_span(unit, first),
                        labels=[Label(span=name_span(unit, unit.decls[n]), message="part of the circle")
                                for n in cycle[1:]],
                        help="one of them must be worked out without the others")


def _check_plan_texts(unit: Unit) -> None:
    for plan in unit.order:
        if not isinstance(plan, m.CarePlan):
            continue
        if plan.pathway is not None:
            _check_plan_pathway(unit, plan)
        seen: dict[str, m.Section] = {}
        for section in plan.sections:
            if section.section not in schema.SECTION_KINDS:
                unit.sink.error("PW251", f"`{section.section}` is not a care-plan section",
                                find_span(unit, section.span, rf"\b({re.escape(section.section)})\b"),
                                help=did_you_mean(section.section, schema.SECTION_KINDS)
                                or f"sections are: {', '.join(schema.SECTION_KINDS)}")
            elif section.section in seen:
                unit.sink.warning("PW252", f"the `{section.section}` section appears twice", section.span,
                                  labels=[Label(span=seen[section.section].span, message="first here")])
            seen.setdefault(section.section, section)
            for item in section.items:
                for match in _BRACES.finditer(item.text):
                    if not PLACEHOLDER.fullmatch(match.group(0)):
                        unit.sink.warning("PW253", f"`{match.group(0)}` in this text is not a placeholder",
                                          find_span(unit, item.span, re.escape(match.group(0))),
                                          help="placeholders are a lower-case name in braces with no spaces, "
                                               "e.g. `{ltc_count}`")
                for match in PLACEHOLDER.finditer(item.text):
                    name = match.group(1)
                    ns, _, base = name.rpartition(".")
                    ref = m.Ref(span=find_span(unit, item.span, re.escape(match.group(0))), name=base,
                                namespace=ns or None)
                    target = lookup(unit, ref)
                    if target is None:
                        report_unknown(unit, ref)
                    elif target.startswith("decl:"):
                        unit.used.add(base)


def _check_plan_pathway(unit: Unit, plan: m.CarePlan) -> None:
    """``for PATHWAY`` names a pathway here, or ``for alias.pathway`` one of an import."""
    alias, _, name = plan.pathway.rpartition(".")
    where = find_span(unit, plan.span, rf"\bfor[ \t]+({re.escape(plan.pathway)})\b")
    if alias and alias not in unit.imports:
        unit.sink.error("PW203", f"there is no import called `{alias}`", where,
                        help=did_you_mean(alias, unit.imports) or f'import it with `uses "{alias}.pw"`')
        return
    owner = unit.imports[alias] if alias else unit
    if owner is None:
        return  # the import failed, and that was reported
    if not alias and unit.syntax is not None and name in unit.syntax.broken_names:
        return  # the pathway failed to parse, and that error was reported
    target = owner.decls.get(name)
    if isinstance(target, m.Pathway):
        if not alias:
            unit.used.add(name)
        return
    pathways = [d.name for d in owner.order if isinstance(d, m.Pathway)]
    if not alias:  # `for case_management` meaning the imported one
        pathways += [f"{a}.{d.name}" for a, u in unit.imports.items() if u is not None
                     for d in u.order if isinstance(d, m.Pathway)]
    here = f"in `{alias}`" if alias else "in this protocol"
    unit.sink.error("PW250", f"`{name}` is not a pathway {here}", where,
                    help=did_you_mean(name, pathways)
                    or (f"the pathways it can name are: {', '.join(pathways)}" if pathways
                        else f"there is no pathway {here}"
                        + ("" if alias else "; name one of an imported protocol as `for alias.pathway`")))


def _check_pathways(unit: Unit) -> None:
    for pathway in unit.order:
        if not isinstance(pathway, m.Pathway):
            continue
        steps = {s.name for s in pathway.steps}
        exits = {e.name for e in pathway.exits}
        seen_steps: dict[str, m.Step] = {}
        for step in pathway.steps:
            if step.name in seen_steps:
                unit.sink.error("PW506", f"step `{step.name}` is declared twice", name_span(unit, step),
                                labels=[Label(span=name_span(unit, seen_steps[step.name]), message="first here")])
            seen_steps.setdefault(step.name, step)
            for t in step.transitions:
                if t.event is not None and t.event not in m.PATHWAY_EVENTS:
                    _bad_event(unit, t.event, find_span(unit, t.span, rf"\bon[ \t]+({re.escape(t.event)})\b"))
                pool, what = (exits, "exit") if t.target_is_exit else (steps, "step")
                if t.target not in pool:
                    unit.sink.error("PW504", f"pathway `{pathway.name}` has no {what} called `{t.target}`",
                                    find_span(unit, t.span, rf"\bto[ \t]+(?:exit[ \t]+)?({re.escape(t.target)})\b"),
                                    help=did_you_mean(t.target, pool)
                                    or (f"declare it with `exit {t.target} \"...\"`" if t.target_is_exit
                                        else "declare the step, or go to an `exit`"))
        for exit_ in pathway.exits:
            if exit_.event is not None and exit_.event not in m.PATHWAY_EVENTS:
                _bad_event(unit, exit_.event, find_span(unit, exit_.span, rf"\bon[ \t]+({re.escape(exit_.event)})\b"))
        if not pathway.steps:
            unit.sink.error("PW507", f"pathway `{pathway.name}` has no steps", name_span(unit, pathway),
                            help='add the steps a patient goes through, e.g. `step assessment "Assessment":`')


def _bad_event(unit: Unit, event: str, span: m.Span) -> None:
    unit.sink.error("PW505", f"`{event}` is not a pathway event", span,
                    help=did_you_mean(event, m.PATHWAY_EVENTS)
                    or f"pathway events are: {', '.join(m.PATHWAY_EVENTS)}")


def _check_tests(unit: Unit) -> None:
    for test in unit.order:
        if not isinstance(test, m.ProtocolTest):
            continue
        for o in test.overrides:
            ns, _, base = o.parameter.rpartition(".")
            where = find_span(unit, o.span, rf"\bwith[ \t]+({re.escape(o.parameter)})\b")
            ref = m.Ref(span=where, name=base, namespace=ns or None)
            target = lookup(unit, ref)
            owner = unit if not ns else unit.imports.get(ns)
            if target is None:
                report_unknown(unit, ref)
            elif target != "broken" and not isinstance(owner.decls.get(base) if owner else None, m.Parameter):
                params = [d.name for d in owner.order if isinstance(d, m.Parameter)] if owner else []
                unit.sink.error("PW260", f"`{o.parameter}` is not a parameter, so a test cannot set it", where,
                                help="a test sets only parameters with `with`"
                                + (f"; the parameters are: {', '.join(params)}" if params else
                                   "; describe the patient under `patient:` instead"))
        for e in test.expectations:
            ns, _, base = e.outcome.rpartition(".")
            ref = m.Ref(span=find_span(unit, e.span, rf"\bexpect[ \t]+({re.escape(e.outcome)})\b"), name=base,
                        namespace=ns or None)
            if lookup(unit, ref) is None:
                report_unknown(unit, ref)
            elif not ns:
                unit.used.add(base)
        named = [(reason.name, reason.span, rf"\bexpect[ \t]+({re.escape(reason.name)})\b")
                 for reason in test.reasons if reason.name is not None]
        named += [(e.outcome, e.span, rf"\bexpect[ \t]+({re.escape(e.outcome)})\b") for e in test.lists]
        named += [(e.pathway, e.span, rf"\b({re.escape(e.pathway)})\b") for e in test.steps]
        for name, span, pattern in named:
            ns, _, base = name.rpartition(".")
            ref = m.Ref(span=find_span(unit, span, pattern), name=base, namespace=ns or None)
            if lookup(unit, ref) is None:
                report_unknown(unit, ref)
            elif not ns:
                unit.used.add(base)
