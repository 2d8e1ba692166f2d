"""The facts of a test patient: ``born 1946-02-29``, ``admission emergency on 2023-05-01 for 5 days``.

A fact line is kept in the model as written (:class:`pathways.model.Fact`);
this module reads it into a :class:`pathways.records.PatientRecord`. The
checker runs the same reading (with no as-of date when the test has none)
to report problems, so a fact the checker accepts is one the runner can
build. docs/testing.md lists the vocabulary.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Callable

from pathways import model as m
from pathways import records as r
from pathways import schema

from .dates import check_date

#: A code list's codes by its (possibly dotted) name, or None when there is no such list.
CodesOf = Callable[[str], "tuple[m.Code, ...] | None"]

#: Regular contacts are capped so a slip (`every 1 days from 1900`) cannot build millions of items.
MAX_REPEATS = 1000

_CONTACTS = {  # first word -> (encounter kind, nouns that may follow)
    "ae": ("ae", ("attendance", "attendances")),
    "outpatient": ("outpatient", ("appointment", "appointments")),
    "gp": ("gp", ("consultation", "consultations")),
    "community": ("community", ("contact", "contacts")),
    "social": ("social_work", ()),  # `social work visit`, read below
}
_ASSESSMENTS = {"adl": "adl", "iadl": "iadl", "cognition": "cognition", "cognitive": "cognition"}
_EVENTS = ("referred", "approached", "consented", "declined", "assessed", "reviewed", "admitted",
           "discharged", "exited")
_LIFE = {"bereaved": "bereavement"}

#: Every word a fact may start with (for "did you mean").
VERBS = ("born", "aged", "sex", "practice", "lives", "has", "died", "condition", "conditions", "medicine",
         "medicines", "medication", "medications", "admission", "admissions", *_CONTACTS, "fall", "falls",
         *_ASSESSMENTS, "bereaved", "carer", "moved", "entered", *_EVENTS, "plan", "plan_agreed",
         "observation", "observations", "procedure", "procedures")

_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?$")
_NUMBER = re.compile(r"\d+(\.\d+)?$")


@dataclass(frozen=True)
class FactProblem:
    """Something wrong with one fact; ``word`` is the index of the word at fault (None: the line)."""

    fact: m.Fact
    code: str
    message: str
    word: int | None = None
    help: str | None = None


class _Bad(Exception):
    def __init__(self, code: str, message: str, word: int | None, help: str | None = None):
        super().__init__(message)
        self.code, self.message, self.word, self.help = code, message, word, help


@dataclass
class _Builder:
    patient: dict = field(default_factory=dict)
    conditions: list = field(default_factory=list)
    medications: list = field(default_factory=list)
    encounters: list = field(default_factory=list)
    observations: list = field(default_factory=list)
    procedures: list = field(default_factory=list)
    life_events: list = field(default_factory=list)
    pathway_events: list = field(default_factory=list)


class _Line:
    """A cursor over the words of one fact."""

    def __init__(self, fact: m.Fact):
        self.fact = fact
        self.words = [fact.verb, *fact.args]
        self.i = 0

    def peek(self) -> str | None:
        return self.words[self.i] if self.i < len(self.words) else None

    def take(self, what: str) -> str:
        word = self.peek()
        if word is None:
            raise _Bad("PW801", f"`{self.text()}` needs {what} at the end", None)
        self.i += 1
        return word

    def accept(self, *options: str) -> str | None:
        word = self.peek()
        if word is not None and word.lower() in options:
            self.i += 1
            return word.lower()
        return None

    def expect(self, *options: str) -> str:
        word = self.peek()
        found = self.accept(*options)
        if found is None:
            choices = " or ".join(f"`{o}`" for o in options)
            if word is None:
                raise _Bad("PW801", f"`{self.text()}` needs {choices} at the end", None)
            raise _Bad("PW801", f"expected {choices} here, not `{word}`", self.i)
        return found

    def date(self) -> r.PartialDate:
        word = self.take("a date (YYYY-MM-DD, YYYY-MM or YYYY)")
        if not _DATE.match(word):
            raise _Bad("PW802", f"`{word}` is not a date", self.i - 1,
                       help="write a date as YYYY-MM-DD, or YYYY-MM or YYYY when only the month or year is known")
        problem = check_date(word)
        if problem:
            raise _Bad("PW105", problem, self.i - 1)
        return r.PartialDate.parse(word)

    def number(self, what: str) -> float:
        word = self.take(what)
        if not _NUMBER.match(word):
            raise _Bad("PW801", f"expected {what} here, not `{word}`", self.i - 1)
        return float(word)

    def done(self) -> None:
        if self.peek() is not None:
            raise _Bad("PW801", f"`{self.peek()}` is not understood here", self.i,
                       help=f"remove it, or see docs/testing.md for how to write a `{self.fact.verb}` fact")

    def text(self) -> str:
        return " ".join(self.words)


def read_facts(facts: tuple[m.Fact, ...] | list[m.Fact], codes_of: CodesOf, as_of: dt.date | None,
               patient_id: str = "test patient") -> tuple[r.PatientRecord | None, list[FactProblem]]:
    """Build the record the facts describe; the record is None when any fact has a problem.

    Without ``as_of`` (checking a test that has no date) facts that need it
    (``aged``, an open-ended ``every``) are checked but build nothing.
    """
    out = _Builder()
    problems: list[FactProblem] = []
    for fact in facts:
        line = _Line(fact)
        try:
            _read(line, out, codes_of, as_of)
            line.done()
        except _Bad as bad:
            problems.append(FactProblem(fact, bad.code, bad.message, bad.word, bad.help))
        except (OverflowError, ValueError):  # date arithmetic past the calendar (year 1 to 9999)
            problems.append(FactProblem(fact, "PW801", "this fact reaches a date outside the calendar "
                                                       "(years 1 to 9999)", None,
                                        help="check the dates, ages and lengths on this line"))
    if problems:
        return None, problems
    record = r.PatientRecord(
        patient=r.Patient(id=patient_id, **out.patient),
        conditions=tuple(out.conditions), medications=tuple(out.medications),
        encounters=tuple(out.encounters), observations=tuple(out.observations),
        procedures=tuple(out.procedures), life_events=tuple(out.life_events),
        pathway_events=tuple(out.pathway_events))
    return record, []


def _read(line: _Line, out: _Builder, codes_of: CodesOf, as_of: dt.date | None) -> None:
    repeat = 1
    if _NUMBER.match(line.peek() or "") and not _DATE.match(line.peek()):
        repeat = int(line.number("a number"))
        if not 1 <= repeat <= MAX_REPEATS:
            raise _Bad("PW801", f"{repeat} is too many (at most {MAX_REPEATS})", 0)
    at = line.i
    verb = line.take("a fact").lower()
    src = f"line {line.fact.span.line}"
    if verb in ("born", "died"):
        out.patient["birth_date" if verb == "born" else "date_of_death"] = line.date()
    elif verb == "aged":
        years = int(line.number("an age in years"))
        line.accept("years")
        if as_of is not None:
            out.patient["birth_date"] = r.PartialDate.of(_add_months(as_of, -12 * years))
    elif verb == "sex":
        out.patient["sex"] = line.expect(*schema.ENUMS["sex"])
    elif verb == "practice":
        out.patient["practice"] = line.take("the practice, e.g. \"P1\"").strip('"')
    elif verb == "lives":
        if line.accept("alone"):
            out.patient["lives_alone"] = True
        else:
            line.expect("with")
            line.expect("others", "family", "someone")
            out.patient["lives_alone"] = False
    elif verb == "has":
        word = line.expect("a", "no")
        line.expect("carer")
        out.patient["has_carer"] = word == "a"
    elif verb in ("condition", "conditions"):
        _condition(line, out, codes_of, repeat, src)
    elif verb in ("medicine", "medicines", "medication", "medications"):
        _medicine(line, out, repeat, src)
    elif verb in ("admission", "admissions"):
        _admission(line, out, repeat, src)
    elif verb in _CONTACTS:
        kind, nouns = _CONTACTS[verb]
        if verb == "social":
            line.expect("work")
            line.accept("visit", "visits")
        elif nouns:
            line.accept(*nouns)
        for i, day in enumerate(_dates(line, as_of) * repeat):
            out.encounters.append(r.Encounter(kind=kind, start=day, source_id=f"{src} #{i + 1}"))
    elif verb in ("fall", "falls"):
        for i, day in enumerate(_dates(line, as_of) * repeat):
            out.observations.append(r.Observation(kind="fall", date=day, source_id=f"{src} #{i + 1}"))
    elif verb in _ASSESSMENTS:
        impaired = not line.accept("not")
        line.expect("impaired")
        line.accept("on")
        out.observations.append(r.Observation(kind=_ASSESSMENTS[verb], impaired=impaired, date=line.date(),
                                              source_id=src))
    elif verb in ("bereaved", "carer", "moved", "entered"):
        event = {"bereaved": "bereavement", "carer": "carer_death", "moved": "moved_home",
                 "entered": "entered_care_home"}[verb]
        if verb == "carer":
            line.expect("died")
        elif verb == "moved":
            line.expect("home")
        elif verb == "entered":
            line.expect("care")
            line.expect("home")
        line.accept("on")
        out.life_events.append(r.LifeEvent(event=event, date=line.date(), source_id=src))
    elif verb in _EVENTS or verb in ("plan", "plan_agreed"):
        event = verb
        if verb == "plan":
            line.expect("agreed")
            event = "plan_agreed"
        line.accept("on")
        day = line.date()
        pathway = line.take("a pathway name") if line.accept("in") else ""
        out.pathway_events.append(r.PathwayEventRecord(event=event, date=day, pathway=pathway, source_id=src))
    elif verb in ("observation", "observations"):
        system, code = _code(line, codes_of)
        value, unit = None, ""
        if line.accept("value"):
            value = line.number("a value")
            if (line.peek() or "").startswith('"'):
                unit = line.take("a unit").strip('"')
        line.accept("on")
        day = line.date()
        for i in range(repeat):
            out.observations.append(r.Observation(code=code, system=system, date=day, value=value, unit=unit,
                                                  source_id=f"{src} #{i + 1}"))
    elif verb in ("procedure", "procedures"):
        system, code = _code(line, codes_of)
        line.accept("on")
        day = line.date()
        for i in range(repeat):
            out.procedures.append(r.Procedure(code=code, system=system, date=day, source_id=f"{src} #{i + 1}"))
    else:
        from .diagnostics import did_you_mean
        raise _Bad("PW800", f"`{line.words[at]}` is not a fact the tests know", at,
                   help=did_you_mean(verb, VERBS) or "see docs/testing.md for the facts a test patient can have")
    if repeat != 1 and verb in ("born", "aged", "sex", "practice", "lives", "has", "died"):
        raise _Bad("PW801", f"`{verb}` cannot be repeated", 0)


def _code(line: _Line, codes_of: CodesOf) -> tuple[str, str]:
    """``snomed 13645005`` or a code list's name (its first code)."""
    word = line.take("a code list, or a code system and code")
    if word.lower() in schema.CODE_SYSTEMS:
        return word.lower(), line.take("a code").strip('"')
    codes = codes_of(word)
    if codes is None:
        raise _Bad("PW803", f"there is no code list called `{word}`", line.i - 1,
                   help="name a code list of the protocol (or `alias.name` of an imported one), "
                        "or write a code system and code, e.g. `snomed 13645005`")
    if not codes:
        raise _Bad("PW803", f"the code list `{word}` has no codes", line.i - 1)
    return codes[0].system, codes[0].code


def _condition(line: _Line, out: _Builder, codes_of: CodesOf, repeat: int, src: str) -> None:
    if repeat > 1:
        line.expect("from", "in")
    word = line.peek()
    if repeat > 1 and (word or "").lower() not in schema.CODE_SYSTEMS:
        codes = codes_of(line.take("a code list"))
        if codes is None:
            raise _Bad("PW803", f"there is no code list called `{word}`", line.i - 1,
                       help="name a code list of the protocol, or `alias.name` of an imported one")
        if len(codes) < repeat:
            raise _Bad("PW801", f"the code list `{word}` has only {len(codes)} codes, not {repeat}", line.i - 1)
        chosen = [(c.system, c.code) for c in codes[:repeat]]
    else:
        chosen = [_code(line, codes_of)] * repeat
    fields: dict = {}
    while line.peek() is not None:
        if line.accept("since", "from"):
            fields["onset"] = line.date()
        elif line.accept("until"):
            fields["abatement"] = line.date()
            fields.setdefault("status", "resolved")
        else:
            fields["status"] = line.expect(*schema.ENUMS["condition_status"], "since", "until")
    for i, (system, code) in enumerate(chosen):
        out.conditions.append(r.Condition(system=system, code=code, source_id=f"{src} #{i + 1}", **fields))


def _medicine(line: _Line, out: _Builder, repeat: int, src: str) -> None:
    name = line.take("a name").strip('"') if (line.peek() or "").startswith('"') else ""
    fields: dict = {}
    while line.peek() is not None:
        if line.accept("since", "from"):
            fields["start"] = line.date()
        elif line.accept("until"):
            fields["end"] = line.date()
            fields.setdefault("status", "stopped")
        elif line.accept("costing") or (line.peek() or "").startswith("£"):
            word = line.take("a cost, e.g. £12")
            if not word.startswith("£") or not _NUMBER.match(word[1:]):
                raise _Bad("PW801", f"expected a cost in pounds here, e.g. `£12`, not `{word}`", line.i - 1)
            fields["monthly_cost"] = float(word[1:])
            if line.accept("a", "per"):
                line.expect("month")
            else:
                line.accept("monthly")
            line.accept("each")
        else:
            fields["status"] = line.expect(*schema.ENUMS["medication_status"], "since", "until", "costing")
    for i in range(repeat):
        code = name or f"medicine {i + 1}"
        out.medications.append(r.Medication(code=code, system="local", source_id=f"{src} #{i + 1}", **fields))


def _admission(line: _Line, out: _Builder, repeat: int, src: str) -> None:
    method = line.accept("emergency", "elective")
    line.accept("on")
    start = line.date()
    end = None
    if line.accept("for"):
        amount = int(line.number("a length, e.g. `5 days`"))
        unit = line.expect("day", "days", "week", "weeks")
        days = amount * (7 if unit.startswith("week") else 1)
        if start.precision != "day":
            raise _Bad("PW801", "an admission with a length needs a full date (YYYY-MM-DD)", None)
        end = r.PartialDate.of(start.earliest + dt.timedelta(days=days))
    for i in range(repeat):
        out.encounters.append(r.Encounter(kind="admission", start=start, end=end, method=method,
                                          source_id=f"{src} #{i + 1}"))


def _dates(line: _Line, as_of: dt.date | None) -> list[r.PartialDate]:
    """``[on] DATE [and DATE ...]`` or ``every N days|weeks|months from DATE [to DATE]``."""
    if line.accept("every"):
        amount = int(line.number("how often, e.g. `every 14 days`"))
        unit = line.expect("day", "days", "week", "weeks", "month", "months")
        line.expect("from", "since")
        start = line.date()
        end = line.date() if line.accept("to", "until") else None
        if start.precision != "day" or (end is not None and end.precision != "day"):
            raise _Bad("PW801", "regular contacts need full dates (YYYY-MM-DD)", None)
        last = end.earliest if end is not None else as_of
        if last is None or amount < 1:
            return []
        days, i = [], 0
        while True:
            day = (_add_months(start.earliest, amount * i) if unit.startswith("month")
                   else start.earliest + dt.timedelta(days=amount * i * (7 if unit.startswith("week") else 1)))
            if day > last:
                return days
            if len(days) >= MAX_REPEATS:
                raise _Bad("PW801", f"this makes more than {MAX_REPEATS} contacts", None,
                           help="use a shorter period or a longer interval")
            days.append(r.PartialDate.of(day))
            i += 1
    line.accept("on")
    days = [line.date()]
    while line.accept("and"):
        days.append(line.date())
    return days


def _add_months(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` later (or earlier); the 29th-31st become the month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return dt.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))
