"""Pathway times with parameter overrides applied.

A pathway time may be a parameter (``due "Review" every review_interval``).
The compiler writes the parameter's default into the time, a ``Quantity``
whose ``parameter`` field names the parameter, so code that reads
``action.interval`` / ``transition.delay`` keeps working and gets the
default. Code that honours overrides (a run with ``--param
review_interval="6 months"``) passes the pathway through :func:`pathway_times`
first, or a single time through :func:`duration`.
"""

from __future__ import annotations

from pathways import model as m


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
    (the pathway itself when nothing changes)."""
    if not parameters:
        return pathway
    steps = []
    for step in pathway.steps:
        actions = tuple(a.model_copy(update={"interval": duration(program, a.interval, parameters)})
                        for a in step.actions)
        transitions = tuple(t.model_copy(update={"delay": duration(program, t.delay, parameters)})
                            if t.delay is not None else t for t in step.transitions)
        steps.append(step.model_copy(update={"actions": actions, "transitions": transitions}))
    return pathway.model_copy(update={"steps": tuple(steps)})
