"""Worklists, registers and recall lists over a population, from pathway states.

A worklist is every patient active on a pathway (on it and not yet out of it)
with their current step and most urgent action, sorted by urgency: overdue
first (the longest overdue at the top), then by due date, then by patient id,
so the same data always give the same list. A register is the same patients
whatever is due; a recall list is the register cut to those due (within a
number of days) or overdue.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable

from pathways import model as m
from pathways.records import PatientRecord

from .pathway_state import PathwayState, state_of

COLUMNS = ("patient_id", "practice", "pathway", "step", "step_label", "next_action", "due", "overdue",
           "days_overdue", "recall", "findings")


def population_for(program, records: list[PatientRecord], as_of, parameters=None) -> dict | None:
    """Reference distributions when the protocol ranks patients against each other, else None."""
    return program.distributions(records, as_of, parameters) if program.population_terms() else None


def states(program, pathway: m.Pathway, records: Iterable[PatientRecord], as_of, parameters=None,
           population: dict | None = None) -> list[PathwayState]:
    """Every patient's state on ``pathway`` (explanations left out, for speed)."""
    return [state_of(program, pathway, r, as_of, parameters, explain=False, population=population)
            for r in records]


def urgency(state: PathwayState) -> tuple:
    """Sort key: overdue first (longest overdue first), then earliest due, then patient id."""
    nxt = state.next_action
    if nxt is None:
        return (2, dt.date.max, state.patient_id)
    if nxt.overdue:
        return (0, nxt.due, state.patient_id)
    return (1, nxt.due, state.patient_id)


def worklist(all_states: Iterable[PathwayState]) -> list[PathwayState]:
    """The active patients, most urgent first."""
    return sorted((s for s in all_states if s.active), key=urgency)


def recall(all_states: Iterable[PathwayState], as_of: dt.date, due_within: int | None = None,
           overdue_only: bool = False) -> list[PathwayState]:
    """The register cut to patients overdue (``overdue_only``) or due within ``due_within`` days."""
    out = []
    for s in worklist(all_states):
        nxt = s.next_action
        if nxt is None:
            continue
        if overdue_only and not nxt.overdue:
            continue
        if due_within is not None and not (nxt.overdue or (nxt.due - as_of).days <= due_within):
            continue
        out.append(s)
    return out


def row(state: PathwayState) -> dict:
    """One patient's line of a worklist, as plain JSON data (the columns of ``COLUMNS``)."""
    nxt = state.next_action
    step = state.step if state.exit is None else f"exit:{state.exit}"
    label = state.step_label if state.exit is None else state.exit_label
    return {
        "patient_id": state.patient_id,
        "practice": state.practice,
        "pathway": state.pathway,
        "step": step,
        "step_label": label,
        "next_action": nxt.action if nxt else _waiting(state),
        "due": nxt.due.isoformat() if nxt else None,
        "overdue": bool(nxt and nxt.overdue),
        "days_overdue": nxt.days_overdue if nxt else 0,
        "recall": bool(nxt and nxt.recall),
        "findings": [f"{f.source_id or 'no source id'} ({f.date}): {f.message}" for f in state.findings],
    }


def _waiting(state: PathwayState) -> str:
    """A step with nothing due waits for something to happen: say what."""
    events = [a.description[3:] for a in state.available if a.trigger == "event"]
    timers = [f"{a.target} on {a.fires_on.isoformat()}" for a in state.available
              if a.trigger == "after" and a.fires_on]
    text = "Waiting for " + (" or ".join(events) if events else "a change")
    return text + (f" (else {', '.join(timers)})" if timers else "")
