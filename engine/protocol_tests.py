"""Run the tests written in protocols (``test "...":`` blocks).

The API the command line, the pytest plugin and the workbench share:

- :func:`discover` finds the tests in files and folders;
- :func:`run_test` builds the test's patient, evaluates the protocol on the
  test's date and checks every expectation;
- :func:`engine.protocol_coverage.coverage` says which criterion items,
  levels and bands the tests saw true, false and unknown.

docs/testing.md describes the format and the vocabulary of facts.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from pathways import model as m
from pathways.records import PatientRecord

from .evaluate import Ctx, EngineError, group_key, literal
from .program import Program, Result, default_outcomes
from .protocol_coverage import Coverage, coverage  # noqa: F401 - part of this module's API
from .record_index import RecordIndex
from .values import DateR, Qty, Rng, compare, number_range

_TEST_LINE = re.compile(r"^test\s", re.MULTILINE)


@dataclass
class TestCase:
    """One protocol test, found in ``file`` at ``line``; ``error`` when its file does not compile."""

    file: str
    name: str
    line: int
    protocol: m.Protocol | None = None
    test: m.ProtocolTest | None = None
    error: str | None = None

    __test__ = False  # not a pytest test class

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"


@dataclass
class Check:
    """One expectation: what was checked, the expected and the actual value (as text), and whether it held."""

    what: str
    expected: str
    actual: str
    passed: bool
    namespace: str = ""  # which imported protocol (by alias) the expectation is about; "" the file's own
    #: "value" (`expect NAME is VALUE`), "reason" (`expect "LABEL" met`), "list" (`expect NAME includes 3`)
    #: or "step" (`expect PATHWAY at STEP`)
    kind: str = "value"

    __test__ = False

    def lines(self) -> tuple[str, str]:
        """The two lines a failure shows, as the test would read aloud: what was expected,
        and what the protocol gave (``expected eligible is true`` / ``actual   eligible is false``)."""
        verb = "is " if self.kind == "value" else ""
        return (f"expected {self.what} {verb}{self.expected}",
                f"actual   {self.what} {'is ' if self.kind == 'list' else verb}{self.actual}")


@dataclass
class TestOutcome:
    """The result of running one test."""

    case: TestCase
    status: str  # "passed", "failed" or "error"
    checks: list[Check] = field(default_factory=list)
    explanation: str = ""
    message: str = ""
    trace: dict = field(default_factory=dict, repr=False)  # node id -> runtime value, for coverage

    __test__ = False

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


# --- discovery -------------------------------------------------------------------------------

def protocol_files(paths) -> list[Path]:
    """The ``.pw`` files named, and those inside the folders named (sorted, each once)."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():  # hidden folders (.venv, .git) hold no protocols of the project
            found.extend(sorted(q for q in p.rglob("*.pw") if q.is_file()
                                and not any(part.startswith(".") for part in q.relative_to(p).parts)))
        elif p.suffix == ".pw" or p.is_file():
            found.append(p)
    seen, out = set(), []
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def discover(paths) -> list[TestCase]:
    """Every test in the files and folders ``paths``, in file order then source order.

    A file with tests that does not compile gives one case in error (the
    rendered diagnostics in ``error``); a file with no tests gives none.
    """
    from dsl.compiler import Session, compile_file
    from dsl.diagnostics import render

    session = Session()
    cases: list[TestCase] = []
    for path in protocol_files(paths):
        display = str(path)
        if not path.exists():
            cases.append(TestCase(display, "(file)", 1, error=f"{display} does not exist"))
            continue
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            cases.append(TestCase(display, "(file)", 1, error=f"cannot read {display}: {exc}"))
            continue
        if not _TEST_LINE.search(text):
            continue
        result = compile_file(path, session)
        if result.protocol is None:
            errors = [d for d in result.diagnostics if d.severity == "error"]
            rendered = "\n\n".join(render(d, result.sources.get(d.file)) for d in errors)
            cases.append(TestCase(display, "(file)", 1, error=f"{display} does not compile: "
                                                               f"{len(errors)} error(s)\n\n{rendered}"))
            continue
        for decl in result.protocol.declarations:
            if isinstance(decl, m.ProtocolTest) and not decl.shared:
                cases.append(TestCase(display, decl.name, decl.span.line, result.protocol, decl))
    return cases


# --- running ---------------------------------------------------------------------------------

_PROGRAMS: dict[int, tuple[m.Protocol, Program]] = {}


def _program(protocol: m.Protocol) -> Program:
    """One Program per compiled protocol (compiling closures is the costly part of a run)."""
    found = _PROGRAMS.get(id(protocol))
    if found is None or found[0] is not protocol:
        found = _PROGRAMS[id(protocol)] = (protocol, Program(protocol))
    return found[1]


def patient_of(case: TestCase, as_of: dt.date | None) -> PatientRecord:
    """The record a test's facts describe (the shared patient's facts first, then the test's own)."""
    from dsl.facts import read_facts

    test, protocol = case.test, case.protocol
    facts: list[m.Fact] = []
    if test.patient is not None:
        shared = next((d for d in protocol.declarations if isinstance(d, m.ProtocolTest) and d.shared
                       and d.name == test.patient), None)
        if shared is None:
            raise EngineError(f"there is no shared patient called `{test.patient}`")
        facts.extend(shared.facts)
    facts.extend(test.facts)
    record, problems = read_facts(facts, _codes_of(protocol), as_of, patient_id=case.name)
    if problems:
        p = problems[0]
        raise EngineError(f"line {p.fact.span.line}: {p.message}")
    return record


def _codes_of(protocol: m.Protocol):
    def codes_of(name: str):
        ns, _, base = name.rpartition(".")
        owner = protocol if not ns else next((u.protocol for u in protocol.uses if u.alias == ns), None)
        decl = owner.get(base) if owner is not None else None
        return decl.codes if isinstance(decl, m.ValueSet) else None
    return codes_of


def run_test(case: TestCase) -> TestOutcome:
    """Run one test: build the patient, evaluate on the test's date, check each expectation.

    Never raises for a problem in the test itself: that is an outcome in error.
    """
    if case.error is not None:
        return TestOutcome(case, "error", message=case.error)
    test = case.test
    if test.as_of is None:
        return TestOutcome(case, "error", message="this test has no `as of` date: add a line such as "
                                                  "`as of 2024-01-01` (there is no hidden clock)")
    try:
        day = dt.date.fromisoformat(test.as_of)
    except ValueError:
        return TestOutcome(case, "error", message=f"`as of {test.as_of}` must be a full date, such as "
                                                  "`as of 2024-01-01`")
    try:
        return _run(case, day)
    except EngineError as exc:
        return TestOutcome(case, "error", message=str(exc))
    except Exception as exc:  # noqa: BLE001 - one broken test must not stop the others, nor show a traceback
        return TestOutcome(case, "error", message=f"the engine failed on this test, which is a fault in the "
                                                  f"engine, not in the test; please report it "
                                                  f"({type(exc).__name__}: {exc})")


def _run(case: TestCase, day: dt.date) -> TestOutcome:
    from dsl.formatter import expr_to_text

    test, protocol = case.test, case.protocol
    record = patient_of(case, day)
    program = _program(protocol)
    overrides = program.parameters({o.parameter: expr_to_text(o.value) for o in test.overrides})
    compiled = program._compiled(True)
    trace: dict = {}
    population = _population(compiled, record, day, overrides, test.ranked_among)
    root = Ctx(compiled, RecordIndex(record), day, overrides, trace, population)
    # Every outcome of the file and of each protocol it imports, so that reasons and coverage
    # see every item a test can reach, whichever outcome the test names.
    outcomes: dict[str, dict[str, object]] = {"": {n: compiled.fns[n](root) for n in program.outcome_names}}
    for use in protocol.uses:
        if use.protocol is not None:
            sub = root.sub(use.alias)
            outcomes[use.alias] = {n: sub.program.fns[n](sub) for n in default_outcomes(use.protocol)}
    from .protocol_coverage import walk_pathways
    trace.update(walk_pathways(protocol, _program, record, day,
                               {o.parameter: expr_to_text(o.value) for o in test.overrides}, population))
    checks = [_check_value(e, root, outcomes, day) for e in test.expectations]
    checks += [_check_reason(r, root, protocol, trace) for r in test.reasons]
    checks += [_check_list(e, root, outcomes) for e in test.lists]
    params = {o.parameter: expr_to_text(o.value) for o in test.overrides}
    checks += [_check_step(e, protocol, record, day, params, population) for e in test.steps]
    failed = [c for c in checks if not c.passed]
    outcome = TestOutcome(case, "failed" if failed else "passed", checks, trace=trace)
    if failed:
        outcome.explanation = _explain(protocol, record, day, outcomes, trace, population, test,
                                       {c.namespace for c in failed})
    return outcome


def _population(compiled, record, day, overrides, others: tuple[float, ...]) -> dict:
    """Reference groups for population-relative terms: the test's ``ranked among`` values and the
    patient's own; with no ``ranked among`` the groups are empty, so those terms are unknown."""
    population: dict = {}
    stack = [(compiled, Ctx(compiled, RecordIndex(record), day, overrides, {}, None))]  # a scratch trace
    while stack:
        owner, ctx = stack.pop()
        for term in owner.population_terms:
            groups: dict = {}
            key = group_key(term.group, record)
            if others and key is not None:
                values = list(others)
                v = number_range(owner.expr(term.value)(ctx))
                if v is not None and v[0] == v[1]:
                    values.append(v[0])
                groups[key] = sorted(values)
            population[term.id] = groups
        stack.extend((sub, ctx.sub(alias)) for alias, sub in owner.imports.items())
    return population


def _value_of(name: str, root: Ctx, outcomes: dict) -> object:
    ns, _, base = name.rpartition(".")
    if base in outcomes.get(ns, {}):
        return outcomes[ns][base]
    ctx = root.sub(ns) if ns else root
    fn = ctx.program.fns.get(base)
    if fn is None:
        raise EngineError(f"`{name}` cannot be evaluated (it is not a definition, criterion, score, band or level)")
    return fn(ctx)


def _check_value(e: m.Expectation, root: Ctx, outcomes: dict, day: dt.date) -> Check:
    from dsl.formatter import expr_to_text

    actual = _value_of(e.outcome, root, outcomes)
    ns = e.outcome.rpartition(".")[0]
    if e.value is None:
        return Check(f"{e.outcome}", "unknown", show(actual), actual is None or isinstance(actual, Rng), ns)
    if isinstance(e.value, m.Ref):  # a band's name
        expected = e.value.name
        passed = actual == expected
    else:
        expected = literal(e.value)
        passed = compare(actual, "=", expected, day) is True
    return Check(e.outcome, expr_to_text(e.value), show(actual), passed, ns)


def _check_list(e: m.ListExpectation, root: Ctx, outcomes: dict) -> Check:
    actual = _value_of(e.outcome, root, outcomes)
    ns = e.outcome.rpartition(".")[0]
    levels = list(actual) if isinstance(actual, tuple) else None
    if e.op == "empty":
        expected, passed = "is empty", levels == []
    elif e.op == "includes":
        expected, passed = f"includes {e.level}", levels is not None and e.level in levels
    else:
        expected, passed = f"does not include {e.level}", levels is not None and e.level not in levels
    return Check(e.outcome, expected, "empty" if levels == [] else show(actual), passed, ns, kind="list")


def _check_step(e: m.StepExpectation, protocol: m.Protocol, record, day: dt.date, params: dict[str, str],
                population) -> Check:
    """Where the patient is on the pathway, worked out through the protocol that declares it
    (with the test's overrides of that protocol's parameters, pathway times included)."""
    from .pathway_state import state_of
    from .timings import owner_of

    pathway, owner, own = owner_of(_program(protocol), e.pathway, params or None)
    state = state_of(owner, pathway, record, day, own, explain=False, population=population)
    actual = ("not on it" if not state.on_pathway else
              f"at exit {state.exit}" if state.exit else f"at {state.step}")
    expected = {"step": f"at {e.name}", "exit": f"at exit {e.name}", "not_on": "not on it"}[e.at]
    return Check(e.pathway, expected, actual, actual == expected, e.pathway.rpartition(".")[0], kind="step")


_STATE_WORDS = {"met": "met", "not_met": "not met", "unknown": "unknown"}


def _check_reason(reason: m.ReasonExpectation, root: Ctx, protocol: m.Protocol, trace: dict) -> Check:
    from dsl.checktests import labelled_items, norm_label

    want = reason.state
    if reason.name is not None:
        ns, _, base = reason.name.rpartition(".")
        owner = protocol if not ns else next(u.protocol for u in protocol.uses if u.alias == ns)
        ids = [(owner.get(base).id, ns)]
        what = reason.name
    else:
        label = norm_label(reason.label)
        found = [(node_id, names[1] if len(names) > 1 else "")
                 for names, _p, text, node_id, _k in labelled_items(protocol)
                 if norm_label(text) == label and (reason.within is None or reason.within in names[1:])]
        ids = list(dict.fromkeys(found))
        what = f'"{reason.label}"' + (f" in {reason.within}" if reason.within else "")
        if not ids:
            return Check(what, _STATE_WORDS[want], "no such label", False, kind="reason")
    states = {_state(trace.get(node_id, _MISSING)) for node_id, _ in ids}
    actual = " / ".join(sorted(states))
    return Check(what, _STATE_WORDS[want], actual, states == {_STATE_WORDS[want]}, ids[0][1], kind="reason")


_MISSING = object()


def _state(v) -> str:
    if v is _MISSING:
        return "not evaluated"
    if v is True:
        return "met"
    if v is False:
        return "not met"
    return "unknown"


def show(v) -> str:
    """A runtime value as a test failure shows it."""
    if v is None:
        return "unknown"
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, Rng):
        return f"between {_num(v.lo)} and {_num(v.hi)} (not known exactly)"
    if isinstance(v, Qty):
        return f"{_num(v.value)} {v.unit}"
    if isinstance(v, DateR):
        return v.lo.isoformat() if v.lo == v.hi else f"between {v.lo.isoformat()} and {v.hi.isoformat()}"
    if isinstance(v, float):
        return _num(v)
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(show(x) for x in v) + "]"
    from .values import to_json
    out = to_json(v)
    return str(out)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _explain(protocol, record, day, outcomes, trace, population, test, namespaces: set[str]) -> str:
    """The explanation text of the protocols the failed expectations are about."""
    parts = []
    for ns in sorted(namespaces):
        owner = protocol if not ns else next(u.protocol for u in protocol.uses if u.alias == ns)
        program = _program(owner)
        values = outcomes.get(ns, {})
        if not values:
            continue
        result = Result(record.patient.id, day, dict(values), program,
                        {o.parameter: _text(o.value) for o in test.overrides}, record, trace, population)
        try:
            parts.append(result.explain_text())
        except EngineError as exc:  # an explanation is a help, never the reason a run stops
            parts.append(f"(no explanation: {exc})")
    return "\n".join(parts)


def _text(expr) -> str:
    from dsl.formatter import expr_to_text
    return expr_to_text(expr)
