"""What every evaluating endpoint shares: read FHIR from a request, evaluate
under the limits, audit, and keep explanations to be opened later."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
import time
from collections import OrderedDict

from .. import EngineError

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class ServiceError(Exception):
    """An answer other than success: HTTP status, a plain message, and details (e.g. load problems)."""

    def __init__(self, status: int, message: str, details: list | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details or []


def parse_as_of(text: str | None, where: str = "as_of") -> dt.date:
    """An explicit YYYY-MM-DD date, or a 422 naming the parameter."""
    if not text:
        raise ServiceError(422, f"{where} is required: the date to evaluate on, written YYYY-MM-DD "
                                "(there is no hidden clock)")
    if not _DATE.fullmatch(text):
        raise ServiceError(422, f"{where}: {text[:40]!r} is not a date; write it as YYYY-MM-DD, e.g. 2024-04-01")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ServiceError(422, f"{where}: {text!r} is not a date in the calendar") from None


def parse_params(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ServiceError(422, f"param: {item[:60]!r} must be written NAME=VALUE, e.g. minimum_criteria=2")
        out[name.strip()] = value.strip()
    return out


def read_records(data, mapping, limits, source: str = "request"):
    """Patient records from FHIR in a request; 422 with every problem when none can be loaded."""
    from ..readers import read_fhir_json

    records, report = read_fhir_json(data, source=source, mapping=mapping,
                                     max_items_per_record=limits.max_items_per_record,
                                     max_record_bytes=limits.max_record_bytes)
    if not records:
        problems = [p.to_dict() for p in report.problems[:50]]
        raise ServiceError(422, "no patient could be read from the request: it needs a Patient resource "
                                "(see details for each problem found)", problems)
    return records, report


def load_summary(report) -> dict:
    """The load report without file names: counts and the first problems."""
    data = report.to_dict()
    return {"resources": data["resources"], "patients": data["patients"],
            "problem_count": data["problem_count"], "problems": data["problems"][:50]}


def evaluate(snapshot, name: str, record, as_of: dt.date, parameters: dict, limits, explain: bool):
    """One patient under the time limit; 404 for an unknown protocol, 422 for bad parameters."""
    program = snapshot.programs.get(name)
    if program is None:
        known = ", ".join(sorted(snapshot.programs)) or "none"
        raise ServiceError(404, f"there is no protocol called {name[:80]!r}; the protocols are: {known}")
    population = snapshot.population(name, parameters)
    if parameters:
        try:
            program.parameters(parameters)  # checked once per distinct set, then cached by the program
        except EngineError as exc:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(parameters.items()))
            raise ServiceError(422, f"the parameter override(s) {shown[:200]} cannot be used: {exc}") from None
    # The evaluation runs inline: a thread per patient to enforce the limit from outside
    # costs more than the evaluation itself. A runaway is cut off by the request's own
    # time limit (app.run_limited abandons the request); this check names the patient.
    start = time.perf_counter()
    try:
        result = program.evaluate(record, as_of, parameters, explain, population)
    except EngineError as exc:
        raise ServiceError(422, str(exc)) from None
    took = time.perf_counter() - start
    limit = limits.max_seconds_per_patient
    if limit is not None and took > limit:
        raise ServiceError(503, f"patient {record.patient.id}: the evaluation took {took:.2f} seconds, longer "
                                f"than the limit of {limit:g} seconds")
    return result


def explanation_id(result) -> str:
    """Deterministic: the same protocol, date, parameters and record give the same id."""
    env = result.envelope
    key = "|".join([env["sha256"], env["as_of"], repr(sorted(env["parameters"].items())),
                    env["record_fingerprint"]])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class Explanations:
    """The last ``size`` explained results, by id, for ``GET /explanations/{id}``. Held in memory only."""

    def __init__(self, size: int = 512):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def put(self, result) -> str:
        key = explanation_id(result)
        with self._lock:
            self._items[key] = result
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return key

    def get(self, key: str):
        with self._lock:
            return self._items.get(key)


def audit(app_state, results: list, who: str, via: str) -> None:
    """Append the evaluations to the service's audit log, if it has one."""
    log = app_state.audit
    if log is None or not results:
        return
    from ..audit import evaluation_entry
    log.append([evaluation_entry(r, who, via) for r in results])
