"""The embedding API: a compiled, immutable program evaluated per patient or per population."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Callable, Iterable, Iterator, Mapping

import orjson

from pathways import model as m
from pathways.records import PatientRecord

from .evaluate import CompiledProtocol, Ctx, EngineError, literal
from .record_index import RecordIndex
from .values import number_range, to_json


@lru_cache(maxsize=1)
def engine_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("ltc-pathways")
    except PackageNotFoundError:
        return "0+unknown"


def _as_date(as_of) -> dt.date:
    if isinstance(as_of, dt.datetime):
        return as_of.date()
    if isinstance(as_of, dt.date):
        return as_of
    if isinstance(as_of, str):
        try:
            return dt.date.fromisoformat(as_of)
        except ValueError:
            raise EngineError(f"as_of {as_of!r} is not a date (YYYY-MM-DD)") from None
    if as_of is None:
        raise EngineError("every evaluation needs an explicit as_of date (there is no hidden clock)")
    raise EngineError(f"as_of must be a datetime.date or text YYYY-MM-DD; got {type(as_of).__name__} {as_of!r}")


def _build(protocol: m.Protocol, tracing: bool, built: dict | None = None) -> CompiledProtocol:
    """Compile a protocol and its imports; one imported along two routes is compiled once."""
    built = {} if built is None else built
    key = protocol.sha256 or id(protocol)
    for model, compiled in built.get(key, ()):
        if model is protocol or model == protocol:
            return compiled
    imports = {u.alias: _build(u.protocol, tracing, built) for u in protocol.uses if u.protocol is not None}
    compiled = CompiledProtocol(protocol, tracing, imports)
    built.setdefault(key, []).append((protocol, compiled))
    return compiled


def default_outcomes(protocol: m.Protocol) -> tuple[str, ...]:
    """The protocol's `outcomes` line, or else every definition, score, band and level."""
    if protocol.outcomes:
        return protocol.outcomes
    return tuple(d.name for d in protocol.declarations if d.kind in ("definition", "score", "bands", "levels"))


@dataclass
class Result:
    """The outcomes of one protocol for one patient on one date."""

    patient_id: str
    as_of: dt.date
    outcomes: dict[str, object]
    program: "Program"
    parameters: dict[str, str]
    record: PatientRecord = field(repr=False)
    trace: dict | None = field(default=None, repr=False)
    population: dict | None = field(default=None, repr=False)  # the distributions ranked against

    def values(self) -> dict[str, object]:
        """Outcome values in plain JSON form (unknown is null)."""
        return {name: to_json(v) for name, v in self.outcomes.items()}

    @cached_property
    def envelope(self) -> dict:
        """What an auditor needs to reproduce the result."""
        header = self.program.protocol.header
        return {
            "protocol": header.name,
            "version": header.version,
            "sha256": self.program.protocol.sha256,
            "engine_version": engine_version(),
            "as_of": self.as_of.isoformat(),
            "parameters": dict(sorted(self.parameters.items())),
            "record_fingerprint": fingerprint(self.record),
        }

    def to_dict(self) -> dict:
        return {"patient_id": self.patient_id, "outcomes": self.values(), "envelope": self.envelope}

    def explain(self) -> dict:
        """Why each outcome is what it is, as JSON data (needs ``explain=True``); see engine.explain."""
        from .explain import explain_json
        return explain_json(self)

    def explain_text(self, ascii: bool = False) -> str:  # noqa: A002
        """The same explanation in plain language, as a clinician would read it aloud."""
        from .explain import explain_text
        return explain_text(self, ascii=ascii)


def fingerprint(record: PatientRecord) -> str:
    """A sha256 of the record's canonical JSON: the same data gives the same print."""
    data = orjson.dumps(record.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Program:
    """A protocol compiled for evaluation. Immutable; safe to share between threads."""

    def __init__(self, protocol: m.Protocol):
        self.protocol = protocol
        self.outcome_names = default_outcomes(protocol)
        missing = [n for n in self.outcome_names if protocol.get(n) is None]
        if missing:
            raise EngineError(f"protocol {protocol.header.name} has no declaration called {', '.join(missing)}")
        self._fast = _build(protocol, tracing=False)
        self._traced: CompiledProtocol | None = None
        self._lock = threading.Lock()
        self._checked: dict[tuple, dict[str, dict]] = {}  # overrides already checked, by their text
        self._terms = self._find_population_terms()
        self._expr_fns: dict[bool, dict[str, object]] = {}  # evaluate_expressions' compiled nodes

    def _compiled(self, explain: bool) -> CompiledProtocol:
        if not explain:
            return self._fast
        with self._lock:
            if self._traced is None:
                self._traced = _build(self.protocol, tracing=True)
            return self._traced

    def parameters(self, values: dict[str, str] | None) -> dict[str, dict]:
        """Check overrides (as protocol text: ``"12 months"``) and turn them into runtime values."""
        if not values:
            return {}
        if not isinstance(values, Mapping):
            raise EngineError("parameters must map each parameter's name to its value as protocol text, "
                              f"e.g. {{'lookback': '24 months'}}; got {type(values).__name__}")
        key = tuple(sorted((k, str(v)) for k, v in values.items()))
        found = self._checked.get(key)
        if found is None:  # compiling overrides is costly; an embedding system repeats the same ones
            found = self._checked[key] = _overrides(self.protocol, key)
        return found

    def evaluate(self, record: PatientRecord | RecordIndex, as_of, parameters: dict[str, str] | None = None,
                 explain: bool = False, population: dict | None = None) -> Result:
        """Evaluate every outcome for one patient on ``as_of``.

        ``record`` may be a prepared record (:func:`engine.prepare`): what the
        record's preparation works out is then not worked out again."""
        day = _as_date(as_of)
        overrides = self.parameters(parameters)
        return self._evaluate(record, day, overrides, _shown(parameters), explain, population)

    def _evaluate(self, record, day, overrides, shown, explain, population) -> Result:
        compiled = self._compiled(explain)
        trace = {} if explain else None
        index, record = _indexed(record)
        ctx = Ctx(compiled, index, day, overrides, trace, population)
        outcomes = {name: compiled.fns[name](ctx) for name in self.outcome_names}
        return Result(record.patient.id, day, outcomes, self, dict(shown), record, trace,
                      population if explain else None)

    def evaluate_expressions(self, record: PatientRecord, as_of, exprs: list[m.Expr],
                             parameters: dict[str, str] | None = None, explain: bool = False,
                             population: dict | None = None) -> tuple[list, dict | None]:
        """Evaluate expressions of the root protocol that are not outcomes (a pathway's
        ``entry`` and ``when`` conditions, a care-plan item's ``when``, a ``{name}``
        placeholder as a resolved ``Ref``) for one patient on ``as_of``.

        Returns their runtime values in order and, with ``explain``, the trace of
        every node and declaration evaluated (node id -> value)."""
        day = _as_date(as_of)
        compiled = self._compiled(explain)
        cache = self._expr_fns.setdefault(explain, {})
        fns = []
        for node in exprs:
            key = node.id or node.model_dump_json()
            fn = cache.get(key)
            if fn is None:  # compiling is costly next to evaluating; pathways reuse a few conditions
                fn = cache[key] = compiled.expr(node)
            fns.append(fn)
        trace = {} if explain else None
        ctx = Ctx(compiled, _indexed(record)[0], day, self.parameters(parameters), trace, population)
        return [fn(ctx) for fn in fns], trace

    def population_terms(self) -> list[tuple[str, CompiledProtocol, m.Expr]]:
        """(protocol path, compiled owner, term) for every rank/percentile term."""
        return self._terms

    def _find_population_terms(self) -> list[tuple[str, CompiledProtocol, m.Expr]]:
        out = []
        stack = [("", self._fast)]
        while stack:
            path, compiled = stack.pop()
            out.extend((path, compiled, term) for term in compiled.population_terms)
            # the path chains aliases (a.b): a ranked term two imports down is evaluated in its own protocol
            stack.extend((f"{path}.{alias}" if path else alias, sub) for alias, sub in compiled.imports.items())
        return out

    def distributions(self, records: Iterable[PatientRecord], as_of, parameters=None) -> dict:
        """Phase one of a population run: each rank term's values per group, sorted."""
        from .evaluate import group_key
        day = _as_date(as_of)
        overrides = self.parameters(parameters)
        terms = [(path, owner, term, owner.expr(term.value)) for path, owner, term in self.population_terms()]
        groups: dict[str, dict[str, list[float]]] = {term.id: {} for _, _, term, _ in terms}
        for record in records:
            index, record = _indexed(record)
            root = Ctx(self._fast, index, day, overrides, None, None)
            for path, _owner, term, value_fn in terms:
                ctx = root
                for alias in path.split(".") if path else ():
                    ctx = ctx.sub(alias)
                v = number_range(value_fn(ctx))
                if v is None or v[0] != v[1]:
                    continue  # an unknown or imprecise value does not move the others' ranks
                key = group_key(term.group, record)
                if key is not None:
                    groups[term.id].setdefault(key, []).append(v[0])
        for per_group in groups.values():
            for values in per_group.values():
                values.sort()
        return groups

    def evaluate_population(self, records: Iterable[PatientRecord] | Callable[[], Iterable[PatientRecord]],
                            as_of, parameters=None, explain: bool = False) -> Iterator[Result]:
        """Evaluate every patient, streaming one record at a time.

        A protocol that ranks patients against each other needs two passes. Give
        ``records`` as a function that returns a fresh iterable each time it is
        called (e.g. one that re-reads files) and both passes stream, in flat
        memory; given a plain iterable, the records are held between the passes.
        """
        if isinstance(records, (PatientRecord, RecordIndex)):
            raise EngineError("evaluate_population takes many records (an iterable of them, or a function "
                              "returning one); for one record, use evaluate")
        day = _as_date(as_of)
        overrides = self.parameters(parameters)
        shown = _shown(parameters)
        population = None
        if self._terms:
            if not callable(records):
                # no way to read them twice: hold them between the passes (as they are:
                # holding a prepared index per record as well costs the garbage collector
                # more than reading each record twice saves, measured 7.8 s against 4.2 s)
                held = list(records)
                records = lambda: held  # noqa: E731
            population = self.distributions(records(), day, parameters)
        for record in (records() if callable(records) else records):
            yield self._evaluate(record, day, overrides, shown, explain, population)


def _indexed(record) -> tuple[RecordIndex, PatientRecord]:
    """(an index of the record, the record), for a record or a prepared one."""
    if isinstance(record, RecordIndex):
        return record, record.record
    if not isinstance(record, PatientRecord):
        hint = " (read JSON with PatientRecord.model_validate)" if isinstance(record, dict) else ""
        raise EngineError(f"a record must be a pathways.records.PatientRecord or engine.prepare(record); "
                          f"got {type(record).__name__}{hint}")
    return RecordIndex(record), record


def _shown(parameters: dict | None) -> dict[str, str]:
    """Overrides as the envelope quotes them."""
    return {k: str(v) for k, v in (parameters or {}).items()}


def _overrides(protocol: m.Protocol, items: tuple[tuple[str, str], ...]) -> dict[str, dict]:
    from dsl.params import override

    new, problems = override(protocol, dict(items))
    if new is None:
        # (read after "Error: " on the command line: no second "error" in front)
        raise EngineError("; ".join(f"{p.message}: {p.help} [{p.code}]" if p.help else f"{p.message} [{p.code}]"
                                    for p in problems))
    out: dict[str, dict] = {}
    for key, _ in items:
        alias, _, name = key.rpartition(".")
        owner = new if not alias else next(u.protocol for u in new.uses if u.alias == alias)
        out.setdefault(alias, {})[name] = literal(owner.get(name).default)
    return out
