"""Datasets, stratification and what-if for the workbench (no textual here).

The population panel runs :func:`stratify` in a worker thread; the benchmark
times the same function, so the figure it prints is the workbench's own.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pathways import model as m

CASELOADS = (50, 80)
PROGRESS_EVERY = 250


class DataError(Exception):
    """A dataset that cannot be used; the message is for the reader, with the file and reason."""


@dataclass
class Dataset:
    """Patients held in memory for the explain and population panels."""

    records: list
    source: str
    report: str

    def __post_init__(self):
        self.by_id = {r.id: r for r in self.records}

    def search(self, text: str, limit: int = 200) -> list[str]:
        """Patient ids containing ``text`` (all of them, up to ``limit``, when it is empty)."""
        needle = text.strip().lower()
        ids = [r.id for r in self.records if needle in r.id.lower()]
        return ids[:limit]


def load_dataset(path: str) -> Dataset:
    """Read record JSON lines, a folder of tables or FHIR R4, with the same readers as `pathways run`."""
    import click

    from tui.run import load_data

    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{path}: there is no such file or folder")
    try:
        loaded = load_data(str(p), strict=False)
    except click.ClickException as exc:
        raise DataError(exc.format_message()) from None
    except Exception as exc:  # noqa: BLE001 - any reader failure is the input's, said plainly
        raise DataError(f"{path}: could not be read ({type(exc).__name__}: {exc})") from None
    if loaded.report is not None and hasattr(loaded.report, "summary"):
        report = str(loaded.report.summary())
    else:
        skipped = sum(loaded.skipped.values())
        report = f"{loaded.read:,} read, {len(loaded.records):,} loaded, {skipped:,} skipped"
        if skipped:
            report += " (" + ", ".join(f"{why}: {n}" for why, n in sorted(loaded.skipped.items())) + ")"
            report += "\n" + "\n".join(loaded.problems[:5])
    return Dataset(loaded.records, str(path), report)


def generate_dataset(patients: int, seed: int, as_of: str) -> Dataset:
    """A synthetic population from engine.generate (nothing about real people)."""
    from engine.generate import generate

    records = list(generate(patients, seed, as_of))
    return Dataset(records, f"{patients:,} generated patients (seed {seed}, as of {as_of})",
                   f"{len(records):,} patients generated, none skipped")


# --- parameters --------------------------------------------------------------


@dataclass(frozen=True)
class ParameterInfo:
    name: str  # as an override names it: ``minimum_criteria`` or ``castlefields.minimum_criteria``
    label: str
    default: str


def parameters_of(protocol: m.Protocol) -> list[ParameterInfo]:
    """Every parameter a what-if can change, this protocol's first, then its imports'."""
    from dsl.formatter import expr_to_text

    out = [ParameterInfo(d.name, d.label or d.name, expr_to_text(d.default))
           for d in protocol.declarations if isinstance(d, m.Parameter)]
    for use in protocol.uses:
        if use.protocol is not None:
            out.extend(ParameterInfo(f"{use.alias}.{p.name}", p.label, p.default)
                       for p in parameters_of(use.protocol) if "." not in p.name)
    return out


# --- stratification ----------------------------------------------------------


def value_key(value) -> str:
    """An outcome value as the panels show it."""
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(value_key(v) for v in value) or "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass
class Stratified:
    """One run of a protocol over a population."""

    outcome: str  # the outcome patients are sorted by (the levels, when there are any)
    counts: dict[str, Counter]  # outcome -> shown value -> patients
    by_patient: dict[str, str]  # patient id -> shown value of ``outcome``
    total: int
    parameters: dict[str, str] = field(default_factory=dict)
    top_level: int | None = None
    top_label: str = ""
    top_patients: int = 0
    hidden: int = 0  # the top level unknown, so placed lower

    def case_managers(self) -> dict[int, int]:
        """Community matrons needed for the top level at each caseload (rounded up)."""
        return {c: math.ceil(self.top_patients / c) for c in CASELOADS}


def key_outcome(protocol: m.Protocol, outcomes: tuple[str, ...]) -> str:
    for name in outcomes:
        if isinstance(protocol.get(name), m.Levels):
            return name
    return outcomes[0]


def stratify(program, records: list, as_of: str, parameters: dict[str, str] | None = None,
             progress: Callable[[int, int], None] | None = None,
             cancelled: Callable[[], bool] | None = None) -> Stratified | None:
    """Evaluate everyone; counts per outcome value, each patient's key value, and the hidden population.

    ``progress(done, total)`` is called every few hundred patients; when
    ``cancelled()`` becomes true the run stops and returns None.
    """
    protocol = program.protocol
    key = key_outcome(protocol, program.outcome_names)
    levels = protocol.get(key) if isinstance(protocol.get(key), m.Levels) else None
    top = levels.levels[0] if levels and levels.levels else None
    counts = {name: Counter() for name in program.outcome_names}
    by_patient: dict[str, str] = {}
    result = Stratified(key, counts, by_patient, 0, dict(parameters or {}),
                        top.number if top else None, top.label if top else "")
    total = len(records)
    # the trace says whether the top level was unknown (the hidden population)
    results = program.evaluate_population(records, as_of, parameters=parameters or None, explain=top is not None)
    for done, r in enumerate(results, start=1):
        values = r.outcomes
        for name in program.outcome_names:
            counts[name][value_key(values[name])] += 1
        shown = value_key(values[key])
        by_patient[r.patient_id] = shown
        if top is not None:
            if values[key] == top.number:
                result.top_patients += 1
            elif r.trace.get(top.id, False) is None:
                result.hidden += 1
        if done % PROGRESS_EVERY == 0:
            if cancelled is not None and cancelled():
                return None
            if progress is not None:
                progress(done, total)
    result.total = len(by_patient)
    if progress is not None:
        progress(total, total)
    return result


@dataclass
class Moves:
    """Who changed between two runs of the same population."""

    moved: list[tuple[str, str, str]]  # (patient id, before, after), sorted by id
    between: Counter  # (before, after) -> patients

    @property
    def count(self) -> int:
        return len(self.moved)


def compare(before: Stratified, after: Stratified) -> Moves:
    moved = [(pid, was, after.by_patient.get(pid, "unknown")) for pid, was in sorted(before.by_patient.items())
             if after.by_patient.get(pid, "unknown") != was]
    return Moves(moved, Counter((was, now) for _, was, now in moved))


def order_values(values) -> list[str]:
    """Shown values highest first (levels 3..0), then words, with unknown last."""
    def rank(v: str):
        try:
            return (0, -float(v), v)
        except ValueError:
            return (2 if v == "unknown" else 1, 0.0, v)
    return sorted(values, key=rank)
