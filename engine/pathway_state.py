"""Where a patient is on a pathway, as of a date, and what is due.

The state is read from the patient's pathway events (approached, consented,
assessed, reviewed...) by walking the pathway's steps in date order. The
rules (docs/pathways.md has them with examples):

- Events count for a pathway when their ``pathway`` field names it; an
  event naming no pathway counts when the protocol has only one pathway,
  and is otherwise a finding for a patient on the pathway (never guessed).
  Events dated after the as-of date have not happened yet.
- A patient is on the pathway when they have events on it, or when they meet
  its entry criteria on the as-of date. With no events they are on the first
  step, entered on the as-of date (the engine does not guess when the
  criteria were first met); with events, the first step is entered on the
  date of the first event.
- A self-transition (``on reviewed go to monitoring``, ``after N go to`` the
  same step) re-enters the step: every clock of the step (``after`` timers,
  ``due ... within`` and ``due ... every``) runs from the latest entry.
- ``on EVENT`` transitions move the patient on the event's date; ``after N``
  timers fire N after the latest entry into the step (an event on the day a
  timer fires still counts; a timer back to its own step fires once per
  period); ``when`` transitions and ``when`` exits are tested on the as-of
  date only: past values of a condition are not reconstructed.
- ``due ... within N`` / ``every N``: due N after the latest entry into the
  step; ``every`` then recurs. Due before the as-of date and not done is
  overdue; an overdue recurring action is a recall.
- Pathway times written as parameters take the run's overrides
  (engine.timings).
- Nothing is guessed: an event with no transition from the step the patient
  is in, an event after death or after an exit, events recorded out of date
  order, and event dates known only to the month are findings, each with
  the event's source id and date. An event that is a finding does not move
  the patient.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, replace

from pathways import model as m
from pathways.records import PathwayEventRecord, PatientRecord

from .calendar import shift

#: how many ``when`` moves one as-of date may make (timerless cycles are a lint error)
_MAX_INSTANT_MOVES = 20
#: how many ``after`` timers one walk may fire (a 1-day timer renewing its own step for 270 years)
_MAX_TIMER_FIRES = 100_000
#: id(condition) -> (condition, its text): the condition is kept so that its id cannot be reused
_TEXTS: dict[int, tuple[m.Expr, str]] = {}


@dataclass(frozen=True)
class Finding:
    """Something in the history that does not fit the pathway; reported, not guessed."""

    kind: str  # no_transition, after_exit, after_death, out_of_order, imprecise_date, unnamed_pathway
    message: str
    source_id: str
    date: str


@dataclass(frozen=True)
class Visit:
    """One stay in a step: when it began and ended, and what moved the patient in."""

    step: str
    label: str
    entered: dt.date
    via: str
    source_id: str = ""
    left: dt.date | None = None
    renewed: tuple[dt.date, ...] = ()  # re-entries into the step by a self-transition (reviews)

    @property
    def since(self) -> dt.date:
        """The latest entry into the step, counting re-entries: every clock of the step runs from it."""
        return max((self.entered, *self.renewed))


@dataclass(frozen=True)
class Due:
    """An action of the current step with its due date."""

    action: str
    step: str
    timing: str  # within or every
    interval: str
    due: dt.date
    overdue: bool
    days_overdue: int
    recall: bool = False  # a recurring action missed: the patient is to be recalled
    missed: int = 0  # recurring: how many times it has fallen due and not been done


@dataclass(frozen=True)
class Available:
    """A way the patient can move on from where they are now."""

    trigger: str  # event, after, when
    description: str
    target: str
    holds: bool | None = None  # `when`: does the condition hold on the as-of date
    fires_on: dt.date | None = None  # `after`: the date the timer fires


@dataclass(frozen=True)
class Check:
    """A condition tested for the patient on the as-of date, and what it rested on."""

    condition: str
    value: bool | None
    because: tuple[dict, ...] = ()  # {name, label, value}: the names the condition uses

    @property
    def met(self) -> bool:
        return self.value is True


@dataclass
class PathwayState:
    """A patient's place on one pathway as of one date."""

    patient_id: str
    pathway: str
    as_of: dt.date
    entry: Check | None = None
    on_pathway: bool = False
    history: list[Visit] = field(default_factory=list)
    exit: str | None = None
    exit_label: str | None = None
    exit_date: dt.date | None = None
    exit_recorded: bool = False  # False: the exit criteria hold today but no event records the exit yet
    exit_check: Check | None = None
    actions: list[Due] = field(default_factory=list)
    available: list[Available] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    practice: str | None = None
    extra: list = field(default_factory=list)

    @property
    def step(self) -> str | None:
        """The step the patient is in (None when off the pathway or exited)."""
        return self.history[-1].step if self.history and self.exit is None else None

    @property
    def step_label(self) -> str | None:
        return self.history[-1].label if self.history and self.exit is None else None

    @property
    def active(self) -> bool:
        """On the pathway and not yet out of it (an exit met today but not recorded is still active)."""
        return self.on_pathway and (self.exit is None or not self.exit_recorded)

    @property
    def next_action(self) -> Due | None:
        """The most urgent outstanding action: the earliest due date."""
        return min(self.actions, key=lambda d: (d.due, d.action), default=None)

    def to_dict(self) -> dict:
        """Plain JSON data (dates as ISO text)."""
        def clean(v):
            if isinstance(v, dt.date):
                return v.isoformat()
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            return v
        return clean({
            "patient_id": self.patient_id, "pathway": self.pathway, "as_of": self.as_of,
            "on_pathway": self.on_pathway, "entry": asdict(self.entry) if self.entry else None,
            "step": self.step, "step_label": self.step_label,
            "history": [asdict(v) for v in self.history],
            "exit": self.exit, "exit_label": self.exit_label, "exit_date": self.exit_date,
            "exit_recorded": self.exit_recorded, "exit_check": asdict(self.exit_check) if self.exit_check else None,
            "actions": [asdict(a) for a in self.actions], "available": [asdict(a) for a in self.available],
            "findings": [asdict(f) for f in self.findings],
        })


def interval_text(q: m.Quantity) -> str:
    n = q.text or (str(int(q.value)) if float(q.value).is_integer() else str(q.value))
    unit = q.unit[:-1] if n == "1" and q.unit.endswith("s") else q.unit
    return f"{n} {unit}"


def _after(day: dt.date, q: m.Quantity) -> dt.date:
    return shift(day, q.value, q.unit)


class _Walk:
    """The step-by-step reading of one patient's events against one pathway."""

    def __init__(self, pathway: m.Pathway, state: PathwayState):
        self.p = pathway
        self.s = state
        self.steps = {s.name: s for s in pathway.steps}
        self.exits = {e.name: e for e in pathway.exits}
        self.applied: set[str] = set()  # events that moved the patient so far

    @property
    def current(self) -> m.Step:
        return self.steps[self.s.history[-1].step]

    def enter(self, target: str, to_exit: bool, day: dt.date, via: str, source_id: str = "",
              recorded: bool = True) -> None:
        last = self.s.history[-1]
        if not to_exit and target == last.step:
            self.s.history[-1] = replace(last, renewed=last.renewed + (day,))
            return
        self.s.history[-1] = replace(last, left=day)
        if to_exit:
            exit_ = self.exits[target]
            self.s.exit, self.s.exit_label, self.s.exit_date = target, exit_.label or target, day
            self.s.exit_recorded = recorded
            return
        step = self.steps[target]
        self.s.history.append(Visit(step.name, step.label or step.name, day, via, source_id))

    def timers_until(self, day: dt.date) -> None:
        """Fire ``after`` timers that fall on or before ``day`` (strictly before, for an event's day).

        Timers count from the latest entry into the step, re-entries included, so a timer that
        sends the patient back to its own step fires once per period, each time from the last."""
        for _ in range(_MAX_TIMER_FIRES):
            if self.s.exit is not None:
                return
            visit = self.s.history[-1]
            since = visit.since
            fired = [(_after(since, t.delay), i, t) for i, t in enumerate(self.current.transitions)
                     if t.trigger == "after" and t.delay is not None]
            # a zero-length timer back to its own step would renew it forever on one date
            due = [f for f in fired if f[0] <= day and not (f[2].target == visit.step and f[0] <= since
                                                             and not f[2].target_is_exit)]
            if not due:
                return
            when, _, t = min(due, key=lambda f: (f[0], f[1]))
            self.enter(t.target, t.target_is_exit, when, f"after {interval_text(t.delay)}")

    def event(self, ev: PathwayEventRecord, day: dt.date, first: bool) -> None:
        if self.s.exit is not None:
            self.finding("after_exit", ev, f"`{ev.event}` on {ev.date} is recorded after the patient left the "
                                           f"pathway ({self.s.exit_label}, {self.s.exit_date}); it was not applied")
            return
        for t in self.current.transitions:
            if t.trigger == "event" and t.event == ev.event:
                self.applied.add(ev.event)
                self.enter(t.target, t.target_is_exit, day, f"on {ev.event}", ev.source_id)
                return
        for exit_ in self.p.exits:
            if exit_.event == ev.event:
                self.enter(exit_.name, True, day, f"on {ev.event}", ev.source_id)
                return
        if first and ev.event == "referred":
            return  # a referral marks the identification: it is the entry to the first step
        step = self.current
        if ev.event == "reviewed" and "assessed" not in self.applied:
            reason = "a review before any assessment"
        else:
            reason = "an event the pathway does not expect here"
        self.finding("no_transition", ev, f"{reason}: `{ev.event}` on {ev.date}, but the patient was in step "
                                          f"`{step.name}` ({step.label or step.name}), which has no "
                                          f"transition on `{ev.event}`; it was not applied")

    def finding(self, kind: str, ev: PathwayEventRecord, message: str) -> None:
        self.s.findings.append(Finding(kind, message, ev.source_id, ev.date.text))


def pathway_events(record: PatientRecord, pathway: str, only_pathway: bool = True) -> list[PathwayEventRecord]:
    """The patient's events for ``pathway``, in record order. Events that name no pathway
    are read too when it is the protocol's only pathway (``only_pathway``)."""
    return [e for e in record.pathway_events if e.pathway == pathway or (only_pathway and not e.pathway)]


def state_of(program, pathway: m.Pathway, record: PatientRecord, as_of, parameters=None,
             explain: bool = True, population: dict | None = None, extra: tuple[m.Expr, ...] = ()) -> PathwayState:
    """The patient's state on ``pathway`` as of ``as_of`` (see the module's rules).

    ``program`` is the engine.Program the pathway belongs to: entry and ``when``
    conditions are evaluated through it. ``explain=False`` skips the names a
    condition rested on (faster, for worklists over a whole population).
    ``extra`` expressions are evaluated with the entry criteria; their values
    are in ``state.extra``."""
    (state,), values = states_of(program, (pathway,), record, as_of, parameters, explain, population, extra)
    state.extra = values
    return state


def states_of(program, pathways, record: PatientRecord, as_of, parameters=None, explain: bool = True,
              population: dict | None = None, extra: tuple[m.Expr, ...] = ()) -> tuple[list[PathwayState], list]:
    """The patient's state on each of ``pathways`` (all of ``program``'s protocol), and the values
    of ``extra`` (e.g. the pyramid's level).

    Every entry criterion and ``extra`` are evaluated in one pass, so what they share (the
    pyramid behind `identified`, a register's criterion) is worked out once. The ``when``
    conditions of steps and exits are evaluated only for a patient who is on the pathway:
    most of a population is not, and those conditions are often the costliest (stable for
    6 months re-reads both case-finding measures)."""
    from .program import _as_date, _indexed

    day = _as_date(as_of)
    index, record = _indexed(record)  # a prepared record (engine.prepare) is read once for every date
    entries = [p.entry for p in pathways if p.entry is not None]
    values, trace = program.evaluate_expressions(index, day, entries + list(extra), parameters,
                                                 explain=explain, population=population)
    entry_values = iter(values[:len(entries)])
    out = []
    for pathway in pathways:
        entry = _check(program, pathway.entry, next(entry_values), trace) if pathway.entry is not None else None
        out.append(_state(program, pathway, record, index, day, parameters, explain, population, entry))
    return out, values[len(entries):]


def _state(program, pathway: m.Pathway, record: PatientRecord, index, day: dt.date, parameters, explain: bool,
           population: dict | None, entry: Check | None) -> PathwayState:
    from .timings import pathway_times

    pathway = pathway_times(program, pathway, parameters)  # `--param review_interval=...` moves due dates
    state = PathwayState(record.id, pathway.name, day, practice=record.patient.practice)
    only = len(program.protocol.of_kind("pathway")) == 1
    events = pathway_events(record, pathway.name, only)
    walk = _Walk(pathway, state)
    _order_findings(events, walk)
    unnamed = [] if only else [e for e in record.pathway_events if not e.pathway]
    past = sorted((e for e in events if e.date.earliest <= day), key=lambda e: e.date.earliest)

    state.entry = entry
    if not past and (entry is None or not entry.met):
        return state  # (a pathway with no entry line is joined only by recorded events)
    if not pathway.steps:
        return state
    state.on_pathway = True
    conditions = _conditions(pathway)
    checks: dict = {}
    if conditions:
        values, trace = program.evaluate_expressions(index, day, [c for _, c in conditions], parameters,
                                                     explain=explain, population=population)
        checks = {key: _check(program, expr, v, trace) for (key, expr), v in zip(conditions, values)}
    for e in unnamed:  # with several pathways in the protocol, the engine will not guess which one
        walk.finding("unnamed_pathway", e, f"`{e.event}` on {e.date} names no pathway, and the protocol has "
                                           "several; it was not read for any of them")
    first = pathway.steps[0]
    start = past[0].date.earliest if past else day
    state.history.append(Visit(first.name, first.label or first.name, start, "entry",
                               past[0].source_id if past else ""))
    death = record.patient.date_of_death
    for i, ev in enumerate(past):
        when = ev.date.earliest
        if death is not None and when > death.latest:
            walk.finding("after_death", ev, f"`{ev.event}` on {ev.date} is recorded after the patient's death "
                                            f"({death}); it was not applied")
            continue
        walk.timers_until(when - dt.timedelta(days=1))
        walk.event(ev, when, i == 0)
    died_exit = next((e for e in pathway.exits if e.event == "died"), None)
    if state.exit is None and death is not None and death.earliest <= day and died_exit is not None:
        walk.timers_until(death.earliest - dt.timedelta(days=1))
        if state.exit is None:
            walk.enter(died_exit.name, True, death.earliest, "date of death on the record")
    walk.timers_until(day)
    _instant_moves(walk, checks, day)
    if state.exit is None:
        state.actions = _actions(walk.current, state.history[-1], day)
        state.available = _available(pathway, walk.current, state.history[-1], checks)
    elif not state.exit_recorded:
        # the exit criteria hold today: the case manager confirms the exit and records it
        state.actions = [Due(f"Exit criteria met ({state.exit_label}): confirm and record the exit",
                             state.history[-1].step, "exit", "", day, False, 0)]
    return state


def _order_findings(events: list[PathwayEventRecord], walk: _Walk) -> None:
    latest: PathwayEventRecord | None = None
    for ev in events:
        if ev.date.precision != "day":
            walk.finding("imprecise_date", ev, f"`{ev.event}` is dated only to the {ev.date.precision} "
                                               f"({ev.date}); it was taken as {ev.date.earliest}")
        if latest is not None and ev.date.earliest < latest.date.earliest:
            walk.finding("out_of_order", ev, f"`{ev.event}` on {ev.date} is recorded after `{latest.event}` on "
                                             f"{latest.date} ({latest.source_id or 'no source id'}); the "
                                             "events were read in date order")
        if latest is None or ev.date.earliest >= latest.date.earliest:
            latest = ev


def _conditions(pathway: m.Pathway) -> list[tuple[tuple, m.Expr]]:
    """The ``when`` conditions of steps and exits (the entry is evaluated before), in one pass."""
    out: list[tuple[tuple, m.Expr]] = []
    for step in pathway.steps:
        for i, t in enumerate(step.transitions):
            if t.trigger == "when" and t.condition is not None:
                out.append((("step", step.name, i), t.condition))
    for exit_ in pathway.exits:
        if exit_.condition is not None:
            out.append((("exit", exit_.name), exit_.condition))
    return out


def _check(program, expr: m.Expr, value, trace: dict | None) -> Check:
    from .explain import _text
    from .wording import show

    because = []
    if trace is not None:
        from pathways.walk import walk
        seen = set()
        for node in walk(expr):
            if isinstance(node, m.Ref) and node.target.split(":")[0] in ("decl", "import", "patient") \
                    and node.dotted not in seen and node.id in trace:
                seen.add(node.dotted)
                because.append({"name": node.dotted, "label": _label(program.protocol, node),
                                "value": show(trace[node.id])})
    found = _TEXTS.get(id(expr))
    if found is None or found[0] is not expr:  # written out once per condition, not once per patient
        found = _TEXTS[id(expr)] = (expr, _text(expr))
    return Check(found[1], value if isinstance(value, bool) else None, tuple(because))


def _label(protocol: m.Protocol, ref: m.Ref) -> str:
    owner = protocol
    if ref.namespace:
        owner = next((u.protocol for u in protocol.uses if u.alias == ref.namespace and u.protocol), None)
    decl = owner.get(ref.name) if owner is not None else None
    return (decl.label if decl is not None and decl.label else ref.name.replace("_", " "))


def _instant_moves(walk: _Walk, checks: dict, day: dt.date) -> None:
    """``when`` transitions and exits, tested on the as-of date."""
    state = walk.s
    for _ in range(_MAX_INSTANT_MOVES):
        if state.exit is not None or not state.history:
            return
        step = walk.current
        moved = False
        for i, t in enumerate(step.transitions):
            check = checks.get(("step", step.name, i))
            if t.trigger == "when" and check is not None and check.met and t.target != step.name:
                if t.target_is_exit:
                    state.exit_check = check
                walk.enter(t.target, t.target_is_exit, day, "when condition holds", recorded=False)
                moved = True
                break
        if not moved:
            for exit_ in walk.p.exits:
                check = checks.get(("exit", exit_.name))
                if check is not None and check.met:
                    state.exit_check = check
                    walk.enter(exit_.name, True, day, "exit criteria met", recorded=False)
                    moved = True
                    break
        if not moved:
            _note_exit_check(walk, checks)
            return


def _note_exit_check(walk: _Walk, checks: dict) -> None:
    """The exit criteria that could apply from here, with why they do not hold yet."""
    step = walk.current
    for i, t in enumerate(step.transitions):
        if t.trigger == "when" and t.target_is_exit and ("step", step.name, i) in checks:
            walk.s.exit_check = checks[("step", step.name, i)]
            return
    for exit_ in walk.p.exits:
        if ("exit", exit_.name) in checks:
            walk.s.exit_check = checks[("exit", exit_.name)]
            return


def _actions(step: m.Step, visit: Visit, day: dt.date) -> list[Due]:
    out = []
    for action in step.actions:
        if action.timing == "within":
            due = _after(visit.since, action.interval)
            late = (day - due).days
            out.append(Due(action.label, step.name, "within", interval_text(action.interval), due, late > 0,
                           max(late, 0)))
            continue
        since = visit.since
        due = _after(since, action.interval)
        missed, nxt = 0, due
        while nxt < day and missed < 1000:
            missed += 1
            nxt = _after(since, m.Quantity(value=action.interval.value * (missed + 1), unit=action.interval.unit))
        late = (day - due).days
        out.append(Due(action.label, step.name, "every", interval_text(action.interval), due, late > 0,
                       max(late, 0), recall=late > 0, missed=missed))
    return sorted(out, key=lambda d: (d.due, d.action))


def _available(pathway: m.Pathway, step: m.Step, visit: Visit, checks: dict) -> list[Available]:
    names = {s.name: s.label or s.name for s in pathway.steps}
    exits = {e.name: e.label or e.name for e in pathway.exits}
    out = []
    for i, t in enumerate(step.transitions):
        target = exits.get(t.target, t.target) if t.target_is_exit else names.get(t.target, t.target)
        where = f"exit: {target}" if t.target_is_exit else target
        if t.trigger == "event":
            out.append(Available("event", f"on {t.event}", where))
        elif t.trigger == "after" and t.delay is not None:
            out.append(Available("after", f"after {interval_text(t.delay)} in this step", where,
                                 fires_on=_after(visit.since, t.delay)))
        else:
            check = checks.get(("step", step.name, i))
            out.append(Available("when", f"when {check.condition if check else 'the condition holds'}", where,
                                 holds=check.value if check else None))
    for exit_ in pathway.exits:
        if exit_.event:
            out.append(Available("event", f"on {exit_.event}", f"exit: {exits[exit_.name]}"))
        elif exit_.condition is not None:
            check = checks.get(("exit", exit_.name))
            out.append(Available("when", f"when {check.condition if check else 'the exit criteria hold'}",
                                 f"exit: {exits[exit_.name]}", holds=check.value if check else None))
    return out


def find_declaration(protocol: m.Protocol, kind: str, what: str, name: str | None, error=LookupError):
    """The declaration of ``kind`` called ``name`` (the first when None); ``error`` says which
    exist, with a did-you-mean. ``what`` names the kind in words (``pathway``, ``care plan``)."""
    import difflib

    found = protocol.of_kind(kind)
    if not found:
        raise error(f"protocol {protocol.header.name} has no {what}s")
    if name is None:
        return found[0]
    for decl in found:
        if decl.name == name:
            return decl
    names = [decl.name for decl in found]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" Did you mean {close[0]}?" if close else ""
    raise error(f"protocol {protocol.header.name} has no {what} called {name!r} "
                f"(its {what}s: {', '.join(names)}).{hint}")


def find_pathway(protocol: m.Protocol, name: str | None) -> m.Pathway:
    """The pathway called ``name`` (the first when None); a LookupError says which exist."""
    return find_declaration(protocol, "pathway", "pathway", name)
