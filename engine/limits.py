"""Limits on what the engine accepts: protocol size and nesting, record size and
items per record, evaluation time per patient.

Every limit has a default, can be changed (a service's configuration file,
``[limits]`` table, or :class:`Limits` in code) and, when exceeded, gives a
plain error naming the file, record or patient. ``docs/service.md`` lists them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields, replace
from pathlib import Path

from .evaluate import EngineError


class LimitError(EngineError):
    """A limit was exceeded; the message says which, by how much, and where."""


class EvaluationTimeout(LimitError):
    """One patient's evaluation took longer than the limit."""


def read_toml(path: str | Path, error: type[Exception], what: str = "") -> dict:
    """A TOML file as data; ``error`` (with the path) when it cannot be read or is not TOML."""
    import tomllib

    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read {what}{path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None


@dataclass(frozen=True)
class Limits:
    """The limits, with their defaults. ``None`` switches a limit off."""

    #: a protocol or code-list file larger than this is refused by the compiler (PW109)
    max_protocol_bytes: int = 2_000_000
    #: a declaration nesting deeper than this is refused by the compiler (PW108)
    max_nesting_depth: int = 60
    #: one record's data in bytes: a request body, an NDJSON line, a JSON-lines record
    max_record_bytes: int = 5_000_000
    #: items (conditions, medicines, encounters, observations, procedures) in one patient's record
    max_items_per_record: int = 50_000
    #: wall-clock seconds for one patient's evaluation (with its explanation)
    max_seconds_per_patient: float = 5.0

    @classmethod
    def from_dict(cls, table: dict, where: str = "[limits]") -> "Limits":
        """Limits from a configuration table; unknown names and bad values are errors."""
        known = {f.name: f for f in fields(cls)}
        values = {}
        for name, value in table.items():
            if name not in known:
                import difflib
                close = difflib.get_close_matches(name, list(known), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise LimitError(f"{where}: there is no limit called {name!r}{hint}; "
                                 f"the limits are {', '.join(known)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise LimitError(f"{where}: {name} must be a positive number, not {value!r}")
            if name != "max_seconds_per_patient" and not isinstance(value, int):
                raise LimitError(f"{where}: {name} must be a whole number, not {value!r}")
            values[name] = value
        return replace(cls(), **values)

    @classmethod
    def from_file(cls, path: str | Path) -> "Limits":
        """The ``[limits]`` table of a TOML file (a service configuration will do; other tables are ignored)."""
        data = read_toml(path, LimitError, "the limits file ")
        table = data.get("limits")
        if not isinstance(table, dict):
            raise LimitError(f"{path}: there is no [limits] table (see docs/service.md, Limits)")
        return cls.from_dict(table, f"{path} [limits]")

    def with_overrides(self, items) -> "Limits":
        """These limits with ``NAME=VALUE`` overrides (``--limit max_items_per_record=1000``)."""
        table = {}
        for item in items:
            name, sep, text = item.partition("=")
            if not sep or not name.strip() or not text.strip():
                raise LimitError(f"--limit {item!r}: write NAME=VALUE, e.g. max_items_per_record=20000")
            try:
                value = float(text) if "." in text or "e" in text.lower() else int(text.replace("_", ""))
            except ValueError:
                raise LimitError(f"--limit {name.strip()}: {text.strip()!r} is not a number") from None
            table[name.strip()] = value
        checked = Limits.from_dict(table, "--limit")  # names and kinds, with the same messages
        return replace(self, **{name: getattr(checked, name) for name in table})


DEFAULT = Limits()


def load_protocol(path: str | Path, limits: Limits = DEFAULT, session=None):
    """Compile a protocol under ``limits`` and make it runnable (engine.load with limits).

    Raises :class:`engine.ProtocolError` with every diagnostic when it does not compile.
    """
    from dsl.compiler import Session, compile_file
    from dsl.diagnostics import render

    from . import Program, ProtocolError

    session = session or Session(max_file_bytes=limits.max_protocol_bytes, max_depth=limits.max_nesting_depth)
    result = compile_file(path, session)
    if result.protocol is None:
        errors = [d for d in result.diagnostics if d.severity == "error"]
        text = "\n\n".join(render(d, result.sources.get(d.file)) for d in errors)
        raise ProtocolError(f"{path}: {len(errors)} error(s)\n\n{text}", result.diagnostics)
    return Program(result.protocol)


def record_items(record) -> int:
    """How many items a patient record holds (what ``max_items_per_record`` counts)."""
    return (len(record.conditions) + len(record.medications) + len(record.encounters)
            + len(record.observations) + len(record.procedures))


def check_record(record, limits: Limits = DEFAULT) -> None:
    """Raise :class:`LimitError` if a record (e.g. one read from JSON lines) is over the item limit."""
    n = record_items(record)
    if limits.max_items_per_record is not None and n > limits.max_items_per_record:
        raise LimitError(f"patient {record.patient.id}: the record has {n:,} items; "
                         f"the limit is {limits.max_items_per_record:,} per record")


def evaluate_within(fn, seconds: float | None, patient_id: str):
    """Run ``fn()`` (one patient's evaluation) and give up waiting after ``seconds``.

    Python cannot stop a computation from outside, so the evaluation runs in a
    daemon thread; on time-out the caller gets :class:`EvaluationTimeout` at
    once and the thread finishes in the background, its result thrown away.
    The item limit keeps such runs short.
    """
    if seconds is None:
        return fn()
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=run, name=f"evaluate-{patient_id}"[:40], daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise EvaluationTimeout(f"patient {patient_id}: the evaluation took longer than the limit of "
                                f"{seconds:g} seconds and was abandoned")
    if "error" in box:
        raise box["error"]
    return box["value"]
