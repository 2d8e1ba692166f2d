"""Checks on protocol tests beyond names and types: the facts of the patient,
the shared patient a test starts from, and the labels expected ``met``.

The runner (``engine.protocol_tests``) finds labels with :func:`labelled_items`
on the compiled model, the checker with :func:`unit_labels` on the unit
being compiled; both compare labels through :func:`norm_label`.
"""

from __future__ import annotations

import datetime as dt
import re

from pathways import model as m
from pathways.walk import walk

from .diagnostics import did_you_mean
from .facts import read_facts
from .unit import Unit


def norm_label(label: str) -> str:
    """Labels match whatever their case and spacing.

    >>> norm_label("  Aged 65  or over")
    'aged 65 or over'
    """
    return " ".join(label.lower().split())


def labelled_items(protocol: m.Protocol, path: tuple[str, ...] = ()):
    """(protocol names from the root, protocol, label, node id, kind) for every labelled item and
    criterion of a compiled protocol and its imports, in source order."""
    names = path + (protocol.header.name,)
    for decl in protocol.declarations:
        if isinstance(decl, m.Definition) and decl.label:
            yield names, protocol, decl.label, decl.id, "criterion" if decl.criterion else "definition"
        if decl.kind == "test":
            continue
        for node in walk(decl):
            if isinstance(node, m.Item) and node.label:
                yield names, protocol, node.label, node.id, "item"
    for use in protocol.uses:
        if use.protocol is not None:
            yield from labelled_items(use.protocol, names + (use.alias,))


def own_labels(unit: Unit) -> list[str]:
    """Labels of a unit's own labelled definitions and items (not its tests'), in source order.

    Worked out once per unit: the declarations of a compiled unit do not change."""
    found = unit.label_cache.get("own")
    if found is None:
        found = []
        for decl in unit.order:
            if isinstance(decl, m.ProtocolTest):
                continue
            if isinstance(decl, m.Definition) and decl.label:
                found.append(decl.label)
            found.extend(node.label for node in walk(decl) if isinstance(node, m.Item) and node.label)
        unit.label_cache["own"] = found  # whole, for a reader in another thread
    return found


def unit_labels(unit: Unit, seen: set[int] | None = None):
    """(protocol name, alias, label) for labelled items and definitions of a unit and its imports."""
    seen = set() if seen is None else seen
    if id(unit) in seen:
        return
    seen.add(id(unit))
    for label in own_labels(unit):
        yield unit.name, label
    for alias, sub in unit.imports.items():
        if sub is not None:
            for name, label in unit_labels(sub, seen):
                yield (alias if name == sub.name else name), label


def all_labels(unit: Unit) -> list[tuple[str, str]]:
    """``list(unit_labels(unit))``, worked out once per unit (its tests all ask for it)."""
    found = unit.label_cache.get("all")
    if found is None:
        found = unit.label_cache["all"] = list(unit_labels(unit))
    return found


def codes_in(unit: Unit):
    """A ``codes_of`` for :func:`dsl.facts.read_facts` over a unit and its imports."""
    def codes_of(name: str):
        ns, _, base = name.rpartition(".")
        owner = unit if not ns else unit.imports.get(ns)
        decl = owner.decls.get(base) if owner is not None else None
        if not isinstance(decl, m.ValueSet):
            return None
        return owner.codes.get(base, decl.codes)
    return codes_of


def _code_lists(unit: Unit) -> list[str]:
    names = [d.name for d in unit.order if isinstance(d, m.ValueSet)]
    for alias, sub in unit.imports.items():
        if sub is not None:
            names.extend(f"{alias}.{d.name}" for d in sub.order if isinstance(d, m.ValueSet))
    return names


def word_span(unit: Unit, fact: m.Fact, word: int | None) -> m.Span:
    """The span of the ``word``-th word of a fact line (the whole line when None)."""
    from .resolve import span_at
    s = fact.span
    if word is None or s.end <= s.start:
        return s
    pos = s.start
    for i, text in enumerate((fact.verb, *fact.args)):
        found = unit.source.find(text, pos, s.end)
        if found < 0:
            return s
        end = found + len(text)
        if i == word:
            return span_at(unit.source, found, end)
        pos = end
    return s


def check_test_parts(unit: Unit, test: m.ProtocolTest) -> None:
    """Report bad facts, unknown shared patients and unknown or ambiguous labels."""
    facts = list(test.facts)
    if test.patient is not None:
        shared = unit.decls.get(f"patient {test.patient}")
        if shared is None:
            pool = [d.name for d in unit.order if isinstance(d, m.ProtocolTest) and d.shared]
            where = _find(unit, test.span, rf"\bpatient[ \t]+({re.escape(test.patient)})\b")
            unit.sink.error("PW804", f"there is no shared patient called `{test.patient}`", where,
                            help=did_you_mean(test.patient, pool)
                            or f'declare it at the left edge: `patient {test.patient} "description":`')
    as_of = None
    if test.as_of is not None:  # facts relative to the test's date (`aged 80`) are checked against it
        try:
            as_of = dt.date.fromisoformat(test.as_of)
        except ValueError:
            pass  # an impossible `as of` date is reported where it is parsed
    _, problems = read_facts(facts, codes_in(unit), as_of)
    broken = unit.syntax.broken_names if unit.syntax is not None else set()
    for p in problems:
        help_ = p.help
        if p.code == "PW803" and p.word is not None and (p.fact.verb, *p.fact.args)[p.word] in broken:
            continue  # the code list failed to parse, and that error was reported
        if p.code == "PW803" and p.word is not None:  # suggest a code list with a name like the one written
            written = (p.fact.verb, *p.fact.args)[p.word]
            lists = _code_lists(unit)
            # a list of an import written without its alias (`copd` for `conditions.copd`)
            imported = [name for name in lists if name.rpartition(".")[2] == written and name != written]
            help_ = (f"did you mean {' or '.join(f'`{name}`' for name in imported)}?" if imported else None) \
                or did_you_mean(written, lists) or help_
        unit.sink.error(p.code, p.message, word_span(unit, p.fact, p.word), help=help_)
    for e in test.lists:
        _check_list(unit, e)
    for e in test.steps:
        _check_step(unit, e)
    if test.reasons:
        labels = all_labels(unit)
        for reason in test.reasons:
            if reason.label is not None:
                _check_label(unit, reason, labels)


def _check_label(unit: Unit, reason: m.ReasonExpectation, labels: list[tuple[str, str]]) -> None:
    want = norm_label(reason.label)
    where = _find(unit, reason.span, r'("(?:[^"\\\n]|\\.)*")')
    owners = sorted({name for name, label in labels if norm_label(label) == want})
    if reason.within is not None:
        if reason.within not in owners:
            unit.sink.error("PW805", f"`{reason.within}` has no item labelled \"{reason.label}\"", where,
                            help=f"it is in: {', '.join(owners)}" if owners else None)
        return
    if not owners:
        close = did_you_mean(reason.label, sorted({label for _, label in labels}))
        unit.sink.error("PW805", f"no criterion or item is labelled \"{reason.label}\"", where,
                        help=close.replace("`", '"') if close else
                        "copy the label exactly as the protocol writes it, in double quotes")
    elif len(owners) > 1:
        unit.sink.error("PW806", f"\"{reason.label}\" is a label in {len(owners)} protocols: "
                        f"{', '.join(owners)}", where,
                        help=f'say which: `expect "{reason.label}" in {owners[0]} ...`')


def _declared(unit: Unit, dotted: str):
    """The declaration a (dotted) name of the file or of an import names, or None."""
    ns, _, base = dotted.rpartition(".")
    owner = unit if not ns else unit.imports.get(ns)
    return owner.decls.get(base) if owner is not None else None


def _check_list(unit: Unit, e: m.ListExpectation) -> None:
    """``includes``/``does not include``/``is empty`` ask about a list of levels."""
    decl = _declared(unit, e.outcome)
    if decl is None:
        return  # an unknown name is reported by resolve
    where = _find(unit, e.span, rf"\bexpect[ \t]+({re.escape(e.outcome)})\b")
    target = decl.expr if isinstance(decl, m.Definition) else None
    if not isinstance(target, m.PossibleLevels):
        unit.sink.error("PW808", f"`{e.outcome}` is not a list of levels, so it cannot include one", where,
                        help=f"`includes` and `is empty` are for lists made by `possible higher levels of`; "
                             f"for other values write `expect {e.outcome} is VALUE`")
        return
    if e.level is None:
        return
    owner_ns = e.outcome.rpartition(".")[0]
    levels = _declared(unit, f"{owner_ns}.{target.target.name}" if owner_ns else target.target.dotted)
    numbers = [lv.number for lv in (*levels.levels, *((levels.fallback,) if levels.fallback else ()))] \
        if isinstance(levels, m.Levels) else []
    if numbers and e.level not in numbers:
        unit.sink.error("PW809", f"{e.level} is not one of the levels of `{target.target.dotted}`",
                        _find(unit, e.span, rf"\bincludes?[ \t]+({e.level})\b"),
                        help="its levels are " + ", ".join(str(n) for n in numbers))


def _check_step(unit: Unit, e: m.StepExpectation) -> None:
    """``at STEP`` / ``at exit EXIT`` / ``not on``: a pathway, and one of its steps or exits."""
    decl = _declared(unit, e.pathway)
    if decl is None:
        return  # an unknown name is reported by resolve
    where = _find(unit, e.span, rf"\b({re.escape(e.pathway)})\b")
    if not isinstance(decl, m.Pathway):
        ns = e.pathway.rpartition(".")[0]
        owner = unit if not ns else unit.imports.get(ns)
        pathways = [f"{ns}.{d.name}" if ns else d.name for d in owner.order if isinstance(d, m.Pathway)]
        unit.sink.error("PW810", f"`{e.pathway}` is not a pathway, so a patient cannot be at one of its steps",
                        where, help=did_you_mean(e.pathway, pathways) or
                        (f"the pathways here are: {', '.join(pathways)}" if pathways else
                         "name a pathway of this protocol or of one it imports (`alias.pathway`)"))
        return
    if e.name is None:
        return
    steps, exits = [s.name for s in decl.steps], [x.name for x in decl.exits]
    wanted, other = (steps, exits) if e.at == "step" else (exits, steps)
    if e.name in wanted:
        return
    kind = "step" if e.at == "step" else "exit"
    name_at = _find(unit, e.span, rf"\bat[ \t]+(?:exit[ \t]+)?({re.escape(e.name)})\b")
    if e.name in other:
        fixed = f"at exit {e.name}" if e.at == "step" else f"at {e.name}"
        unit.sink.error("PW811", f"`{e.name}` is {'an exit' if e.at == 'step' else 'a step'} of `{e.pathway}`, "
                        f"not {'a step' if e.at == 'step' else 'an exit'}", name_at,
                        help=f"write `expect {e.pathway} {fixed}`")
        return
    unit.sink.error("PW811", f"`{e.pathway}` has no {kind} called `{e.name}`", name_at,
                    help=did_you_mean(e.name, wanted) or f"its {kind}s are: {', '.join(wanted) or 'none'}")


def _find(unit: Unit, within: m.Span, pattern: str) -> m.Span:
    from .resolve import find_span
    return find_span(unit, within, pattern)
