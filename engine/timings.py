"""Pathway times with parameter overrides applied, and the program a pathway belongs to.

A pathway time may be a parameter (``due "Review" every review_interval``).
The compiler writes the parameter's default into the time, a ``Quantity``
whose ``parameter`` field names the parameter, so code that reads
``action.interval`` / ``transition.delay`` keeps working and gets the
default. Code that honours overrides (a run with ``--param
review_interval="6 months"``) passes the pathway through :func:`pathway_times`
first, or a single time through :func:`duration`.
"""

from __future__ import annotations

import weakref

from pathways import model as m

# program -> {(id(pathway), overrides): (pathway, timed copy)}. A worklist asks for the same
# pathway once per patient; copying it each time would cost more than walking the events.
_TIMED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
# program -> {alias: Program of that import}: compiling a protocol is costly, so once per program
_OWNERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def duration(program, q: m.Quantity, parameters: dict[str, str] | None = None) -> m.Quantity:
    """The time ``q`` with the run's overrides: ``q`` itself when it names no
    parameter or the parameter is not overridden.

    ``program`` is the engine.Program the pathway belongs to; ``parameters``
    are the overrides as text (``{"review_interval": "6 months"}``), checked
    as in ``Program.evaluate`` (a wrong one raises EngineError)."""
    if not q.parameter or not parameters:
        return q
    alias, _, name = q.parameter.rpartition(".")
    value = program.parameters(parameters).get(alias, {}).get(name)
    if value is None:
        return q
    return q.model_copy(update={"value": float(value.value), "unit": value.unit, "text": _text(value.value)})


def pathway_times(program, pathway: m.Pathway, parameters: dict[str, str] | None = None) -> m.Pathway:
    """A copy of ``pathway`` whose ``due`` and ``after`` times carry the overrides
    (the pathway itself when nothing changes). Copies are kept per program, so
    calling this once per patient is cheap."""
    if not parameters:
        return pathway
    key = (id(pathway), tuple(sorted((k, str(v)) for k, v in parameters.items())))
    cache = _TIMED.setdefault(program, {})
    found = cache.get(key)
    if found is not None and found[0] is pathway:
        return found[1]
    steps = []
    for step in pathway.steps:
        actions = tuple(a.model_copy(update={"interval": duration(program, a.interval, parameters)})
                        for a in step.actions)
        transitions = tuple(t.model_copy(update={"delay": duration(program, t.delay, parameters)})
                            if t.delay is not None else t for t in step.transitions)
        steps.append(step.model_copy(update={"actions": actions, "transitions": transitions}))
    timed = pathway.model_copy(update={"steps": tuple(steps)})
    cache[key] = (pathway, timed)  # the original is kept so that its id cannot be reused
    return timed


def owner_of(program, dotted: str, parameters: dict[str, str] | None = None):
    """The pathway ``dotted`` names (``name``, or ``alias.name`` in a direct import, as a care
    plan's ``for`` does), the engine.Program to evaluate it with, and the overrides as that
    program sees them: ``case_management.review_interval`` given to the plan's protocol is
    ``review_interval`` to the imported one. None when there is no such pathway."""
    pathway = program.protocol.find(dotted)
    if not isinstance(pathway, m.Pathway):
        return None
    alias, _, _ = dotted.rpartition(".")
    if not alias:
        return pathway, program, parameters
    from .program import Program

    owners = _OWNERS.setdefault(program, {})
    sub = owners.get(alias)
    if sub is None:
        use = next(u for u in program.protocol.uses if u.alias == alias)
        sub = owners[alias] = Program(use.protocol)
    if parameters:
        program.parameters(parameters)  # a wrong override is reported against the protocol it was given to
    own = {k[len(alias) + 1:]: v for k, v in (parameters or {}).items() if k.startswith(alias + ".")}
    return pathway, sub, own or None
